"""`fit`: train a segmentation model on a data set into a run folder, resumably.

`fit` is ``keras.Model.fit`` on a thin wrapper (`mobileseg.training.training_model.TrainingModel`)
whose ``compute_loss`` is the `mobileseg.training.losses.SegmentationLoss` (OHEM cross-entropy on
the logits resized to the crop, auxiliary heads, optional distillation from a frozen teacher,
`mobileseg.training.teacher`), optimised by AdamW with the warm-up + poly/cosine `WarmupDecay`
schedule (`mobileseg.training.factories`; with ``ema``, validation and ``model.keras`` take the weights' moving
average, `mobileseg.training.weight_average`), with the callbacks of `mobileseg.training.callbacks`
(validation, checkpoints, state, NaN guard, TensorBoard, progress bar), one epoch at a time in
the epoch loop the other trainings share (`mobileseg.training.loop.EpochLoop`). Its settings are a
`mobileseg.training.train_config.TrainConfig`; it records them in the run folder's ``config.yaml``
(`mobileseg.run.run_config`).

Resuming: when the run folder holds ``last.keras``, `fit` loads it (weights and
optimizer moments and step count), continues at epoch ``optimizer step / steps per
epoch`` and drops any log line past it. Nothing random depends on how a run was split
into sessions: ``Model.fit`` runs once per epoch on a pipeline seeded with (seed, epoch),
and the dropout layers are re-seeded from (seed, epoch) too, so a resumed run computes
exactly what an uninterrupted one would (the tests check the weights are identical).
The learning-rate schedule is rebuilt from the current settings (so ``epochs`` may be
raised on resume); the settings that define the data stream (data, input size, batch
size, seed) must not change.

The paper settings followed: AdamW (Loshchilov & Hutter, ICLR 2019) with weight decay
0.01 off norms and biases, as SegFormer / SeaFormer / RTFormer train; OHEM as BiSeNet /
PP-LiteSeg; auxiliary heads weighted 0.4 as PSPNet.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import tensorflow as tf
from absl import logging

import mobileseg.arch.builder  # noqa: F401  (registers every mobileseg layer, to load last.keras)
from mobileseg.data.checks import verified_pairs
from mobileseg.data.class_balance import class_weights
from mobileseg.run.run_config import read_config, record_config
from mobileseg.run.run_dir import RunDir
from mobileseg.data.source import SegmentationSource
from mobileseg.training import callbacks as run_callbacks
from mobileseg.training import run_files
from mobileseg.training.distribute import AverageMovingStatistics, agreed_go_on, agreed_start
from mobileseg.training.errors import ResumeError, TrainingDiverged, TrainingError
from mobileseg.training.evaluation import Evaluator, input_size, output_stride, resized_copy
from mobileseg.training.factories import cached_images, epoch_batches, make_loss, make_optimizer
from mobileseg.training.loop import ASSUMED_FIXED, EpochLoop, fixed_conflicts
from mobileseg.training.teacher import num_classes_of, prepare_teacher
from mobileseg.training.tensorboard_logger import TensorBoardLogger
from mobileseg.training.train_config import TrainConfig, dtype_policy
from mobileseg.training.training_model import TrainingModel
from mobileseg.training.weight_average import averaged_weights


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What `fit` did.

    Attributes:
        run_dir: the run folder.
        epoch: epochs completed in total.
        optimizer_step: optimizer steps taken in total.
        best_miou: best validation mIoU (None if no epoch completed).
        best_epoch: the epoch that reached it.
        initial_epoch: the epoch this call started at (> 0 when resumed).
        entries: the train log entries this call wrote.
    """

    run_dir: Path
    epoch: int
    optimizer_step: int
    best_miou: float | None
    best_epoch: int | None
    initial_epoch: int
    entries: list


def _restore_optimizer(optimizer, saved, path: Path) -> None:
    """Copy the saved optimizer's state (step count, moments) into a fresh one built on the same variables."""
    if saved is None or not saved.variables:
        raise ResumeError(f"{path}: holds no optimizer state; cannot resume from it (use a new run dir)")
    if len(saved.variables) != len(optimizer.variables) or any(
            tuple(a.shape) != tuple(b.shape) for a, b in zip(saved.variables, optimizer.variables)):
        raise ResumeError(f"{path}: its optimizer state does not match the model ({len(saved.variables)} vs "
                          f"{len(optimizer.variables)} variables); cannot resume from it (use a new run dir)")
    for target, value in zip(optimizer.variables, saved.variables):
        target.assign(value)


def _check_run_dir(run_dir: Path, fixed: dict) -> bool:
    """Whether `run_dir` holds a run to resume; refuse one that cannot be continued (nothing is written)."""
    resuming = (run_dir / RunDir.LAST).is_file()
    if resuming:
        state = run_files.RunState.load(run_dir)
        stored = state.fixed if state is not None else {}
        # the settings the state records are compared, and those an older state that records fewer implies
        conflicts = fixed_conflicts(stored, {key: value for key, value in fixed.items()
                                             if key in stored or key in ASSUMED_FIXED})
        if conflicts:
            key, old, value = conflicts[0]
            raise ResumeError(f"{run_dir} holds a run with {key}={old}, but this run asks for {key}={value}; "
                              f"resume with the same {key}, or start a new run dir")
    elif run_files.read_log(run_dir) or (run_dir / RunDir.MODEL).exists():
        raise TrainingError(f"{run_dir} holds {RunDir.MODEL} or {RunDir.TRAIN_LOG} of an earlier run but no "
                            f"{RunDir.LAST} to resume from; use a new run dir (or move them away)")
    read_config(run_dir, error=TrainingError)  # a malformed config.yaml is refused before anything is written
    return resuming


@dataclasses.dataclass
class _Models:
    student: keras.Model  # trained, all outputs, compiled with `optimizer` so that it saves it
    deploy: keras.Model  # its main output only, sharing its layers
    trainer: TrainingModel
    optimizer: keras.optimizers.Optimizer


def _models(model, teacher, source: SegmentationSource, config: TrainConfig, steps_per_epoch: int,
            resume_from: Path | None, class_weights: tuple[float, ...] | None) -> _Models:
    """Build (or load) the student, its optimizer (with the saved state when resuming) and the wrapper."""
    if resume_from is not None:
        try:
            student = keras.saving.load_model(resume_from)
        except Exception as error:  # Keras raises many types for a bad archive
            raise ResumeError(f"{resume_from}: cannot load it to resume ({error}); move it away to start over")
    else:
        student = model if isinstance(model, keras.Model) else model()
    if num_classes_of(student) != source.num_classes:
        raise TrainingError(f"the model predicts {num_classes_of(student)} classes but {source.spec} has "
                            f"{source.num_classes}")
    if input_size(student) not in (None, tuple(config.input_size)):
        raise TrainingError(f"the model takes {input_size(student)} images but input_size is "
                            f"{tuple(config.input_size)}")
    optimizer = make_optimizer(config, steps_per_epoch)
    optimizer.build(student.trainable_variables)
    if resume_from is not None:
        _restore_optimizer(optimizer, student.optimizer, resume_from)
    if teacher is not None:
        teacher = teacher if isinstance(teacher, keras.Model) else teacher()
        teacher = prepare_teacher(teacher, source.num_classes, config.input_size)
    trainer = TrainingModel(student, make_loss(config, class_weights), teacher)
    trainer.compile(optimizer=optimizer, jit_compile=config.jit_compile)
    student.compile(optimizer=optimizer)
    deploy = student if len(student.outputs) == 1 else keras.Model(student.inputs[0], student.outputs[0],
                                                                   name=student.name)
    return _Models(student, deploy, trainer, optimizer)


def _start_state(run_dir: Path, initial_epoch: int, step: int, config: TrainConfig, steps_per_epoch: int,
                 fixed: dict) -> run_files.RunState:
    """The state a (resumed) run starts from; the log loses any epoch past ``initial_epoch``."""
    log = run_files.read_log(run_dir)
    kept = [e for e in log if e.get("epoch", 0) <= initial_epoch]
    if kept != log:
        run_files.write_log(run_dir, kept)
    scored = [e for e in kept if e.get("val_miou") is not None]
    best = max(scored, key=lambda e: e["val_miou"]) if scored else None
    return run_files.RunState(
        epoch=initial_epoch, optimizer_step=step, best_miou=best["val_miou"] if best else None,
        best_epoch=best["epoch"] if best else None, status="running", epochs=config.epochs,
        steps_per_epoch=steps_per_epoch, fixed=fixed)


def fit(
    model: keras.Model | Callable[[], keras.Model],
    source: SegmentationSource,
    run_dir: str | os.PathLike,
    config: TrainConfig,
    *,
    teacher: keras.Model | Callable[[], keras.Model] | None = None,
    strategy: tf.distribute.Strategy | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    record: dict | None = None,
    section: str = "train",
) -> TrainResult:
    """Train a segmentation model into a run folder, resuming the run already there.

    Args:
        model: the model to train (main logits [, auxiliary logits ...], input
            ``config.input_size``), or a function building it (called inside the strategy's
            scope; pass a function with a distribution strategy). Not used when the run
            folder holds ``last.keras``: the run resumes from that.
        source: the data set (its ``train`` split trains, ``config.val_split`` validates).
        run_dir: the run folder (created when missing); see `mobileseg.training.callbacks`.
        config: the settings.
        teacher: a trained model (or a function loading one) to distil from, or None.
        strategy: a `tf.distribute.Strategy` (default: the current one). Under one with several replicas,
            each takes ``batch_size / replicas`` images of every batch, the BatchNorm moving statistics are
            averaged over the replicas after every epoch, and on several machines the workers must start at
            the same step and stop together (`mobileseg.training.distribute`); pass the run folder of this
            worker (`mobileseg.training.distribute.worker_folder`).
        callbacks: more Keras callbacks, run after the built-in ones; one that sets
            ``model.stop_training`` ends the run after that epoch (status "stopped"; the message is the
            callback's ``stop_reason`` when it has one).
        record: what to write as this step's section of ``DIR/config.yaml`` once every
            check has passed (default: the fields of `config`).
        section: the name of that section.

    Returns:
        A `TrainResult`.

    Raises:
        mobileseg.data.problems.DataError: a bad split or pair (named).
        TrainingError: the model or teacher does not fit the data, there is too little
            data for one batch, a batch does not split evenly over the replicas, or (`ResumeError`)
            the folder holds a run with other fixed settings, or the workers of a multi-worker run
            would start at different steps; nothing in the run folder is changed then.
        TrainingDiverged: the loss became NaN or infinite; the message names the epoch and
            step, and the last good checkpoints are left as they were.
    """
    run_dir = Path(run_dir)
    strategy = strategy or tf.distribute.get_strategy()
    if config.batch_size % strategy.num_replicas_in_sync:  # each replica's loss is its share's mean (TrainingModel)
        raise TrainingError(f"batch_size {config.batch_size} is not a multiple of the {strategy.num_replicas_in_sync} "
                            "replicas; each replica takes an equal share of every batch")
    checked = {split: verified_pairs(source, split, skip_bad=config.skip_bad) for split in config.train_split}
    train_pairs = [pair for pairs, _ in checked.values() for pair in pairs]
    steps_per_epoch = len(train_pairs) // config.batch_size
    if steps_per_epoch < 1:
        raise TrainingError(f"batch_size {config.batch_size} is larger than the {len(train_pairs)} training pairs "
                            f"of {source.spec}")
    val_pairs, skipped_val = verified_pairs(source, config.val_split, skip_bad=config.skip_bad)
    skipped = {**{split: [str(problem) for problem in problems] for split, (_, problems) in checked.items()},
               config.val_split: [str(problem) for problem in skipped_val]}
    if config.val_split in config.train_split:
        logging.warning("%s: validating on %s, which it also trains on: model.keras is chosen on images it has "
                        "seen (train on val only once the recipe is chosen on it)", source.spec, config.val_split)
    for split, problems in skipped.items():
        if problems:
            logging.warning("%s %s: left out %d bad pair(s) (--skip_bad):\n%s", source.spec, split, len(problems),
                            "\n".join(problems))
    fixed = config.fixed(source, len(train_pairs))
    last_path = run_dir / RunDir.LAST
    resuming = _check_run_dir(run_dir, fixed)
    saved = run_files.RunState.load(run_dir) if resuming else None
    agreed_start(strategy, saved.optimizer_step if saved else -int(resuming))  # -1: last.keras without a state
    weights = class_weights(config.class_weight, source, train_pairs)
    keras.utils.set_random_seed(config.seed)
    with strategy.scope(), dtype_policy(config.precision):  # the network's layers take the policy when built
        models = _models(model, teacher, source, config, steps_per_epoch, last_path if resuming else None,
                         weights)
    step = run_files.optimizer_step(models.optimizer)
    if step % steps_per_epoch:
        raise ResumeError(f"{last_path}: saved at optimizer step {step}, not a multiple of the {steps_per_epoch} "
                          "steps per epoch; the data changed since (use a new run dir)")
    initial_epoch = step // steps_per_epoch

    # Every check has passed: from here on the run folder is written.
    run_dir.mkdir(parents=True, exist_ok=True)
    record = record if record is not None else dataclasses.asdict(config)
    left_out = {split: problems for split, problems in skipped.items() if problems}
    record_config(run_dir, section, {**record, **({"skipped_pairs": left_out} if left_out else {}),
                                     **({"class_weights": list(weights)} if weights else {})}, error=TrainingError)
    if weights:
        logging.info("%s: class weights (%s) %s", run_dir, config.class_weight,
                     ", ".join(f"{name} {w:.2f}" for name, w in zip(source.class_names, weights)))
    state = _start_state(run_dir, initial_epoch, step, config, steps_per_epoch, fixed)
    if resuming:
        logging.info("%s: resuming at epoch %d of %d (optimizer step %d)", run_dir, initial_epoch, config.epochs, step)
    if initial_epoch >= config.epochs:
        state.status = "finished"
        state.save(run_dir)
        return TrainResult(run_dir, initial_epoch, step, state.best_miou, state.best_epoch, initial_epoch, [])
    state.save(run_dir)

    deploy = models.deploy
    monitor = run_callbacks.TrainMonitor(config.batch_size)
    evaluator = Evaluator(source, config.val_split, pad_to_multiple=output_stride(deploy) if input_size(deploy) else 1,
                          batch_size=config.val_batch_size, size=config.val_size, pairs=val_pairs)
    validation = run_callbacks.Validation(evaluator, deploy, monitor, every=config.val_every, last=config.epochs,
                                          weights=lambda: averaged_weights(models.optimizer))
    model_size = tuple(config.model_size) if config.model_size else None

    def best_model():
        size = model_size if model_size and model_size != input_size(deploy) else None
        dtype = "float32" if config.precision != "float32" else None
        if not (size or dtype or config.ema):
            return deploy
        with averaged_weights(models.optimizer):  # a copy holds them after the block
            return resized_copy(deploy, size, dtype)

    checkpoint = run_callbacks.RunCheckpoint(
        run_dir, models.student, best_model, state, monitor, validation,
        hint=f"Lower the learning rate (lr {config.lr:g}) and run again with the same run dir to resume.")
    tensorboard = TensorBoardLogger(run_dir / RunDir.TENSORBOARD, validation)
    all_callbacks = [AverageMovingStatistics(models.student, strategy), monitor,
                     run_callbacks.EpochSeeds(models.student, config.seed), validation,
                     *([tensorboard] if config.tensorboard else []), checkpoint, *callbacks,
                     run_callbacks.EpochProgbar(config.epochs)]
    decoded = cached_images(source, train_pairs, config)

    def run_epoch(epoch: int) -> bool:
        # One fit() per epoch, each on that epoch's own dataset: the data order depends on the
        # epoch only, not on how many epochs this process has already run.
        models.trainer.fit(epoch_batches(source, train_pairs, config, epoch, decoded), epochs=epoch + 1,
                           initial_epoch=epoch, steps_per_epoch=steps_per_epoch, callbacks=all_callbacks,
                           verbose=config.verbose, shuffle=False)
        if monitor.diverged is not None:
            raise TrainingDiverged(state.message)
        # a callback (e.g. early stopping, the deadline) ends the run; on several machines, when it does on any
        return agreed_go_on(strategy, not models.trainer.stop_training)

    try:
        EpochLoop(config.epochs).run(initial_epoch, run_epoch)  # Keras shows the steps (EpochProgbar)
    finally:
        tensorboard.close()
    if state.epoch >= config.epochs:
        state.status = "finished"
    else:
        reasons = [callback.stop_reason for callback in callbacks if getattr(callback, "stop_reason", None)]
        state.status = "stopped"
        state.message = reasons[0] if reasons else f"stopped by a callback after epoch {state.epoch}"
    state.save(run_dir)
    return TrainResult(run_dir, state.epoch, state.optimizer_step, state.best_miou, state.best_epoch,
                       initial_epoch, checkpoint.entries)
