"""The fit loop: a resumed run is the uninterrupted run, and the refusals that protect a run dir."""

import keras
import numpy as np
import pytest

from mobileseg.arch import builder, schema_io
from mobileseg.data.synthetic import SyntheticSource
from mobileseg.run.run_config import read_config
from mobileseg.training import run_files, trainer
from mobileseg.training.errors import ResumeError, TrainingError
from mobileseg.training.train_config import TrainConfig

GENOTYPE = schema_io.loads("""
name: tiny_aux
branches:
  - name: main
    source: null
    cells: [{op: conv, width: 8, stride: 2}, {op: mbconv, width: 12, stride: 2}, {op: mbconv, width: 16, stride: 2}]
head: {op: light, inputs: [{branch: main}], width: 16, aux: [{branch: main, cell: 1}]}
""")
SIZE = (32, 48)


def source():
    return SyntheticSource(16, size=SIZE)  # 12 train pairs: 6 steps of 2


def config(**overrides):
    settings = dict(epochs=2, batch_size=2, input_size=SIZE, warmup_epochs=0.5, verbose=0, tensorboard=False)
    return TrainConfig(**{**settings, **overrides})


def build():
    return builder.build_model(GENOTYPE, 8, SIZE, auxiliary=True)


class StopAfterOneEpoch(keras.callbacks.Callback):
    """Ends the run at the first epoch end, as a kill between epochs would."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_a_resumed_run_is_the_uninterrupted_run(tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    data = source()
    trainer.fit(build, data, whole, config())
    stopped = trainer.fit(build, data, split, config(), callbacks=[StopAfterOneEpoch()])
    assert stopped.epoch == 1 and run_files.RunState.load(split).status == "stopped"
    resumed = trainer.fit(build, data, split, config())

    assert (resumed.initial_epoch, resumed.epoch, resumed.optimizer_step) == (1, 2, 12)
    state = run_files.RunState.load(split)
    assert (state.status, state.epoch, state.optimizer_step) == ("finished", 2, 12)
    log_whole, log_split = run_files.read_log(whole), run_files.read_log(split)
    assert [e["epoch"] for e in log_split] == [1, 2]
    for a, b in zip(log_whole, log_split):  # same data order, dropout masks and optimizer state
        assert (a["loss"], a["main_loss"], a["aux_loss"], a["val_miou"]) == (
            b["loss"], b["main_loss"], b["aux_loss"], b["val_miou"])
    assert set(log_split[0]["val_per_class_iou"]) == set(data.class_names)
    last_whole = keras.saving.load_model(whole / "last.keras")
    last_split = keras.saving.load_model(split / "last.keras")
    for w_whole, w_split in zip(last_whole.get_weights(), last_split.get_weights()):
        np.testing.assert_array_equal(w_whole, w_split)
    assert int(last_split.optimizer.iterations) == 12
    best = keras.saving.load_model(split / "model.keras")
    assert len(best.outputs) == 1 and tuple(best.output.shape) == (None, 4, 6, 8)  # the main head only
    best_epoch = max(log_split, key=lambda e: e["val_miou"])["epoch"]
    assert state.best_epoch == best_epoch and state.best_miou == max(e["val_miou"] for e in log_split)
    assert read_config(split)["train"]["epochs"] == 2
    again = trainer.fit(build, data, split, config())  # already done: nothing to train
    assert (again.epoch, again.entries) == (2, [])


def test_decoded_images_in_memory_train_exactly_as_files_and_validation_skips_epochs(tmp_path):
    from mobileseg.data.camvid import CamVidSource
    from tests.data.fake_layouts import make_camvid

    data = CamVidSource(make_camvid(tmp_path / "camvid", counts={"train": 4, "val": 1}))

    def build_camvid():
        return builder.build_model(GENOTYPE, data.num_classes, SIZE, auxiliary=True)

    trainer.fit(build_camvid, data, tmp_path / "files", config(epochs=3, cache_images="no"))
    trainer.fit(build_camvid, data, tmp_path / "memory", config(epochs=3, cache_images="yes", val_every=2))
    files, memory = run_files.read_log(tmp_path / "files"), run_files.read_log(tmp_path / "memory")
    assert [e["loss"] for e in files] == [e["loss"] for e in memory]
    assert [e["val_miou"] is not None for e in memory] == [False, True, True]  # epoch 2, and 3 (the last)
    assert [e["best"] for e in memory][0] is False and run_files.RunState.load(tmp_path / "memory").best_epoch in (2, 3)
    weights = [keras.saving.load_model(tmp_path / run / "last.keras").get_weights() for run in ("files", "memory")]
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_resuming_with_other_fixed_settings_is_refused_and_changes_nothing(tmp_path):
    run_files.RunState(epoch=1, optimizer_step=6, fixed={"batch_size": 2, "seed": 0}).save(tmp_path)
    (tmp_path / "last.keras").write_bytes(b"checkpoint")
    before = snapshot(tmp_path)
    with pytest.raises(ResumeError, match="batch_size=2, but this run asks for batch_size=3"):
        trainer.fit(build, source(), tmp_path, config(batch_size=3))
    with pytest.raises(ResumeError, match="seed=0, but this run asks for seed=4"):
        trainer.fit(build, source(), tmp_path, config(seed=4))
    assert snapshot(tmp_path) == before


def test_a_folder_with_an_old_model_but_no_checkpoint_is_not_overwritten(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"someone's best model")
    with pytest.raises(TrainingError, match="no last.keras to resume from"):
        trainer.fit(build, source(), tmp_path, config())
    assert snapshot(tmp_path) == {tmp_path.joinpath("model.keras").relative_to(tmp_path): b"someone's best model"}


def test_a_model_for_other_classes_or_sizes_is_refused_before_writing(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match="predicts 5 classes but synthetic:16,size=32x48 has 8"):
        trainer.fit(lambda: builder.build_model(GENOTYPE, 5, SIZE), source(), run, config())
    with pytest.raises(TrainingError, match=r"takes \(64, 64\) images"):
        trainer.fit(lambda: builder.build_model(GENOTYPE, 8, (64, 64)), source(), run, config())
    with pytest.raises(TrainingError, match="larger than the 12 training pairs"):
        trainer.fit(build, source(), run, config(batch_size=13))
    assert not run.exists()


def test_mixed_bfloat16_trains_in_bfloat16_and_saves_model_keras_in_float32(tmp_path):
    from mobileseg.deploy import tflite_convert

    data = source()
    trainer.fit(build, data, tmp_path / "bf16", config(epochs=1, precision="mixed_bfloat16"))
    trainer.fit(build, data, tmp_path / "fp32", config(epochs=1))
    assert keras.config.dtype_policy().name == "float32"  # restored after the run
    last = keras.saving.load_model(tmp_path / "bf16" / "last.keras")
    assert {layer.dtype_policy.name for layer in last.layers[1:]} == {"mixed_bfloat16"}
    assert all(v.dtype == "float32" for v in last.weights)
    models = {run: keras.saving.load_model(tmp_path / run / "model.keras") for run in ("bf16", "fp32")}
    assert {layer.dtype_policy.name for layer in models["bf16"].layers} == {"float32"}
    ops = {run: tflite_convert.op_names(tflite_convert.convert(model, "fp32")) for run, model in models.items()}
    assert ops["bf16"] == ops["fp32"]
    with pytest.raises(ResumeError, match="precision"):  # a run keeps its precision
        trainer.fit(build, data, tmp_path / "bf16", config(epochs=2))


def test_pairs_left_out_by_skip_bad_are_named_in_the_run_config(tmp_path, caplog):
    from mobileseg.data.camvid import CamVidSource
    from tests.data.fake_layouts import make_camvid

    root = make_camvid(tmp_path / "camvid", counts={"train": 5, "val": 1})
    broken = sorted((root / "trainannot").iterdir())[0]
    broken.write_bytes(b"not a png")
    data = CamVidSource(root)

    def build_camvid():
        return builder.build_model(GENOTYPE, data.num_classes, SIZE, auxiliary=True)

    trainer.fit(build_camvid, data, tmp_path / "run", config(epochs=1, skip_bad=True))
    skipped = read_config(tmp_path / "run")["train"]["skipped_pairs"]
    assert list(skipped) == ["train"] and len(skipped["train"]) == 1 and broken.name in skipped["train"][0]
    assert "left out 1 bad pair" in caplog.text and broken.name in caplog.text


def test_training_on_train_and_val_counts_both_and_a_run_keeps_its_splits(tmp_path, caplog):
    from mobileseg.data.camvid import CamVidSource
    from tests.data.fake_layouts import make_camvid

    data = CamVidSource(make_camvid(tmp_path / "camvid", counts={"train": 4, "val": 2}))

    def build_camvid():
        return builder.build_model(GENOTYPE, data.num_classes, SIZE, auxiliary=True)

    run = tmp_path / "run"
    trainer.fit(build_camvid, data, run, config(epochs=1, train_split=("train", "val")))
    state = run_files.RunState.load(run)
    assert (state.optimizer_step, state.fixed["train_split"]) == (3, ["train", "val"])  # (4 + 2) pairs / batch 2
    assert "validating on val, which it also trains on" in caplog.text
    with pytest.raises(ResumeError, match=r"train_split=\['train', 'val'\], but this run asks for "
                                          r"train_split=\['train'\]"):
        trainer.fit(build_camvid, data, run, config(epochs=2))
