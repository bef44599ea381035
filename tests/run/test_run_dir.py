"""`RunDir`: the paths of a run folder's files, and the steps write the files it names."""

from pathlib import Path

from mobileseg.run.run_dir import RunDir


def names() -> dict[str, str]:
    return {key: value for key, value in vars(RunDir).items() if key.isupper() and isinstance(value, str)}


def test_files_are_paths_in_the_folder_and_the_bench_file_follows_the_device(tmp_path):
    run = RunDir(tmp_path / "run")
    assert run.path == tmp_path / "run" and repr(run) == f"RunDir({str(tmp_path / 'run')!r})"
    assert run.file(RunDir.ARCH) == tmp_path / "run" / "arch.yaml"
    assert run.file(RunDir.INT8) == tmp_path / "run" / "export" / "model_int8.tflite"
    assert run.bench(on_phone=False) == tmp_path / "run" / "bench" / "local.json"
    assert run.bench(on_phone=True) == tmp_path / "run" / "bench" / "adb.json"
    assert RunDir.BENCHES == (RunDir.BENCH_LOCAL, RunDir.BENCH_ADB)


def test_every_file_has_its_own_name_inside_the_folder():
    found = names()
    assert len(set(found.values())) == len(found) >= 18
    assert all(not Path(name).is_absolute() and ".." not in Path(name).parts for name in found.values())


def test_the_training_code_writes_the_files_run_dir_names(tmp_path):
    # the checkpoints (RunDir.LAST, RunDir.MODEL) are checked by tests/test_train.py, which kills a run writing them
    from mobileseg.run.run_config import record_config
    from mobileseg.training.run_files import RunState, read_log, write_log

    record_config(tmp_path, "test", {"seed": 1})
    assert [path.name for path in tmp_path.iterdir()] == [RunDir.CONFIG]
    RunState(epoch=1).save(tmp_path)
    write_log(tmp_path, [{"epoch": 1}])
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([RunDir.CONFIG, RunDir.TRAIN_STATE,
                                                                        RunDir.TRAIN_LOG])
    assert RunState.load(tmp_path).epoch == 1 and read_log(tmp_path) == [{"epoch": 1}]
