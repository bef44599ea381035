"""The training loop: `fit` a segmentation model on a data set into a run folder, resumably.

`fit` is ``keras.Model.fit`` on a thin wrapper (`TrainingModel`) whose ``compute_loss``
is the `mobileseg.training.losses.SegmentationLoss` (OHEM cross-entropy on the logits
resized to the crop, auxiliary heads, optional distillation from a frozen teacher),
optimised by AdamW with the warm-up + poly/cosine `WarmupDecay` schedule, with the
callbacks of `mobileseg.training.callbacks` (validation, checkpoints, state, NaN guard,
TensorBoard, progress bar).

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

import contextlib
import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import tensorflow as tf
import yaml
from absl import logging

import mobileseg.arch.builder  # noqa: F401  (registers every mobileseg layer, to load last.keras and teachers)
from mobileseg.atomic_write import write_atomic
from mobileseg.data.checks import verified_pairs
from mobileseg.data.pipeline import Augmentation, decoded_pairs, train_dataset
from mobileseg.data.source import Pair, SegmentationSource
from mobileseg.training import callbacks as run_callbacks
from mobileseg.training.evaluation import Evaluator, input_size, output_stride, resized_copy
from mobileseg.training.losses import DistillationKL, OhemCrossEntropy, SegmentationLoss
from mobileseg.training.schedules import DECAYS, WarmupDecay
from mobileseg.text_files import read_text


CACHE_CHOICES = ("auto", "yes", "no")
PRECISIONS = ("float32", "mixed_bfloat16")
CACHE_BUDGET_BYTES = 4 << 30
"""``cache_images="auto"`` keeps decoded training images in memory up to this size (CamVid's train: 0.25 GB)."""


class TrainingError(RuntimeError):
    """A training run that cannot start or continue; the message says why and what to do."""


class ResumeError(TrainingError):
    """The run folder holds a run whose fixed settings differ from the ones asked for."""


class TrainingDiverged(TrainingError):
    """The loss became NaN or infinite; the message names the epoch and step."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run (`mobileseg.train` flags map one to one).

    Args:
        epochs: epochs to train in total (a resumed run continues up to this).
        batch_size: images per optimizer step (across replicas).
        input_size: (height, width) of the training crops, the model's input size.
        lr: peak learning rate of AdamW.
        weight_decay: AdamW's decoupled weight decay (not applied to norms and biases).
        schedule: "poly" or "cosine" decay after the warm-up.
        poly_power: exponent of the poly decay.
        warmup_epochs: length of the linear warm-up, in epochs (may be fractional).
        min_lr: the rate at the end of training.
        ohem_thresh: OHEM probability threshold; None for plain cross-entropy.
        ohem_min_kept: pixels per image always in the loss; None: a quarter of the crop.
        loss_stride: the loss compares every ``loss_stride``-th pixel of the crop in each
            direction (`mobileseg.training.losses.OhemCrossEntropy`'s ``stride``); 1: every pixel.
        aux_weight: weight of each auxiliary head's loss.
        distill_weight: weight of the distillation term (with a teacher).
        temperature: distillation temperature.
        seed: seeds weights, data order and augmentation.
        scale_range: random rescaling range of the training augmentation.
        val_split: the split validated on after every epoch.
        val_size: resize validation pairs to this (height, width); None: full resolution.
        val_batch_size: validation images per batch.
        val_every: validate after every ``val_every``-th epoch, and after the last one
            (``model.keras`` is chosen among the validated epochs).
        cache_images: keep the decoded training images in memory for the whole run:
            "auto" (when they take at most `CACHE_BUDGET_BYTES`), "yes" or "no".
        precision: the Keras dtype policy the network trains under: "float32" or
            "mixed_bfloat16" (float32 weights, bfloat16 compute; the loss in float32).
            ``model.keras`` is saved in float32 either way, so export and evaluation see the
            same file as after a float32 run.
        model_size: (height, width) to save ``model.keras`` at; None: ``input_size``.
        skip_bad: leave bad pairs out instead of stopping at the first.
        verbose: Keras progress bar: 0 silent, 1 bar, 2 one line per epoch.
        jit_compile: compile the training step with XLA.
        tensorboard: write TensorBoard logs.

    Example:
        >>> config = TrainConfig(input_size=(64, 64), batch_size=4)
        >>> config.min_kept(), config.schedule
        (1024, 'poly')
        >>> TrainConfig(input_size=(64, 64), schedule="step")
        Traceback (most recent call last):
        ...
        ValueError: schedule must be one of poly, cosine, got 'step'
    """

    epochs: int = 100
    batch_size: int = 8
    input_size: tuple[int, int] = (512, 512)
    lr: float = 1e-3
    weight_decay: float = 0.01
    schedule: str = "poly"
    poly_power: float = 0.9
    warmup_epochs: float = 1.0
    min_lr: float = 0.0
    ohem_thresh: float | None = 0.7
    ohem_min_kept: int | None = None
    loss_stride: int = 2
    aux_weight: float = 0.4
    distill_weight: float = 1.0
    temperature: float = 1.0
    seed: int = 0
    scale_range: tuple[float, float] = (0.5, 2.0)
    val_split: str = "val"
    val_size: tuple[int, int] | None = None
    val_batch_size: int = 1
    val_every: int = 1
    cache_images: str = "auto"
    precision: str = "float32"
    model_size: tuple[int, int] | None = None
    skip_bad: bool = False
    verbose: int = 1
    jit_compile: bool = False
    tensorboard: bool = True

    def __post_init__(self):
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "val_batch_size": self.val_batch_size,
                    "lr": self.lr, "temperature": self.temperature, "loss_stride": self.loss_stride,
                    "val_every": self.val_every}
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.cache_images not in CACHE_CHOICES:
            raise ValueError(f"cache_images must be one of {', '.join(CACHE_CHOICES)}, got {self.cache_images!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.schedule not in DECAYS:
            raise ValueError(f"schedule must be one of {', '.join(DECAYS)}, got {self.schedule!r}")
        nonnegative = {"weight_decay": self.weight_decay, "warmup_epochs": self.warmup_epochs,
                       "min_lr": self.min_lr, "aux_weight": self.aux_weight, "distill_weight": self.distill_weight}
        for name, value in nonnegative.items():
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed lr ({self.lr})")
        if self.ohem_thresh is not None and not 0 < self.ohem_thresh <= 1:
            raise ValueError(f"ohem_thresh must be in (0, 1], got {self.ohem_thresh}")
        if self.ohem_min_kept is not None and self.ohem_min_kept < 0:
            raise ValueError(f"ohem_min_kept must be >= 0, got {self.ohem_min_kept}")
        Augmentation(crop_size=tuple(self.input_size), scale_range=tuple(self.scale_range))  # validates both

    def min_kept(self) -> int:
        """OHEM's pixels kept per image: ``ohem_min_kept``, or a quarter of the crop."""
        if self.ohem_min_kept is not None:
            return self.ohem_min_kept
        return self.input_size[0] * self.input_size[1] // 4

    def fixed(self, source: SegmentationSource, train_pairs: int) -> dict:
        """The settings a resumed run must share with the run it continues."""
        return {"data": source.spec, "num_classes": source.num_classes, "input_size": list(self.input_size),
                "batch_size": self.batch_size, "seed": self.seed, "train_pairs": train_pairs,
                "precision": self.precision}


@contextlib.contextmanager
def dtype_policy(name: str):
    """Keras' global dtype policy set to ``name`` for the block (layers built in it take it), then restored.

    Example:
        >>> with dtype_policy("mixed_bfloat16"):
        ...     keras.layers.Dense(2).compute_dtype
        'bfloat16'
        >>> keras.config.dtype_policy().name
        'float32'
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.AdamW:
    """AdamW with the warm-up + decay schedule over ``epochs * steps_per_epoch`` steps.

    Weight decay skips BatchNorm / LayerNorm scales and offsets and biases.

    Example:
        >>> opt = make_optimizer(TrainConfig(epochs=2, lr=0.01, warmup_epochs=0.5, input_size=(8, 8)), 10)
        >>> schedule = opt.get_config()["learning_rate"]["config"]
        >>> schedule["total_steps"], schedule["warmup_steps"], round(float(opt.learning_rate), 6)
        (20, 5, 1e-05)
    """
    schedule = WarmupDecay(config.lr, total_steps=max(config.epochs * steps_per_epoch, 1),
                           warmup_steps=int(round(config.warmup_epochs * steps_per_epoch)),
                           decay=config.schedule, power=config.poly_power, end_lr=config.min_lr)
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=config.weight_decay)
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return optimizer


def make_loss(config: TrainConfig) -> SegmentationLoss:
    """The `SegmentationLoss` a config asks for (distillation is used only with a teacher)."""
    return SegmentationLoss(
        OhemCrossEntropy(threshold=config.ohem_thresh, min_kept=config.min_kept(), stride=config.loss_stride),
        aux_weight=config.aux_weight,
        distillation=DistillationKL(temperature=config.temperature),
        distill_weight=config.distill_weight,
    )


def epoch_seed(seed: int, epoch: int) -> int:
    """The data seed of one epoch: a function of (seed, epoch) only."""
    return seed * 1_000_003 + epoch


def epoch_batches(source: SegmentationSource, pairs: Sequence[Pair], config: TrainConfig,
                  epoch: int, decoded: tf.data.Dataset | None = None) -> tf.data.Dataset:
    """The training batches of one epoch: full batches, augmented, in an order fixed by (seed, epoch).

    Epoch e is `mobileseg.data.pipeline.train_dataset` seeded with ``epoch_seed(seed, e)``,
    so its batches are the same whichever epoch a run (re)started at, given the same
    TensorFlow global seed (`fit` sets it from ``config.seed``), and whether the pairs are
    read from the files or from ``decoded`` (`mobileseg.data.pipeline.decoded_pairs`).

    Example:
        >>> from mobileseg.data.synthetic import SyntheticSource
        >>> source = SyntheticSource(12, size=(24, 32))
        >>> config = TrainConfig(epochs=3, batch_size=4, input_size=(16, 16))
        >>> [tuple(x.shape) for x, _ in epoch_batches(source, source.pairs("train"), config, epoch=1)]
        [(4, 16, 16, 3), (4, 16, 16, 3)]
    """
    augmentation = Augmentation(crop_size=tuple(config.input_size), scale_range=tuple(config.scale_range))
    return train_dataset(source, augmentation=augmentation, batch_size=config.batch_size,
                         seed=epoch_seed(config.seed, epoch), pairs=list(pairs), decoded=decoded,
                         drop_remainder=True)


def cached_images(source: SegmentationSource, pairs: Sequence[Pair], config: TrainConfig) -> tf.data.Dataset | None:
    """The decoded training pairs to keep in memory, or None, as ``config.cache_images`` says.

    "auto" caches when the decoded split, estimated from its first pair, takes at most
    `CACHE_BUDGET_BYTES`.
    """
    if config.cache_images == "no" or not pairs:
        return None
    if config.cache_images == "auto":
        image, mask = source.load_pair(pairs[0])
        if (image.nbytes + mask.nbytes) * len(pairs) > CACHE_BUDGET_BYTES:
            return None
    return decoded_pairs(source, list(pairs))


def num_classes_of(model: keras.Model) -> int:
    """Classes a segmentation model predicts: channels of its first output."""
    return int(model.outputs[0].shape[-1])


def load_teacher(path: str | os.PathLike) -> keras.Model:
    """Load a trained model to distil from: a ``.keras`` file, or a run folder's ``model.keras``.

    Raises:
        TrainingError: nothing loadable there (the message names the path).
    """
    path = Path(path)
    file = path / run_callbacks.BEST if path.is_dir() else path
    if not file.is_file():
        raise TrainingError(f"{path}: no teacher model there (expected a .keras file or a run folder with "
                            f"{run_callbacks.BEST})")
    try:
        return keras.saving.load_model(file, compile=False)
    except Exception as error:  # Keras raises many types for a bad archive
        raise TrainingError(f"{file}: cannot load the teacher model: {error}") from None


def prepare_teacher(teacher: keras.Model, num_classes: int, size: tuple[int, int], name: str = "teacher"
                    ) -> keras.Model:
    """A frozen teacher taking ``size`` inputs, after checking it predicts ``num_classes`` classes.

    Raises:
        TrainingError: the class counts differ (both are named).
    """
    if num_classes_of(teacher) != num_classes:
        raise TrainingError(f"{name}: the teacher predicts {num_classes_of(teacher)} classes but the data set "
                            f"has {num_classes}")
    if input_size(teacher) not in (None, tuple(size)):
        teacher = resized_copy(teacher, size)
    teacher.trainable = False
    return teacher


class TrainingModel(keras.Model):
    """Wraps a segmentation model for ``fit``: its loss is a `SegmentationLoss`, with a teacher if given.

    Calling it calls the student (all outputs). ``compute_loss`` resizes and compares every
    output with the labels, adds the distillation term from the frozen teacher's logits on
    the same images, and logs the parts (``main_loss``, ``aux_loss``, ``distill_loss``)
    when there is more than one. Only the student is saved (`fit` saves it, with the
    optimizer this wrapper is compiled with).

    Args:
        student: the model being trained; outputs main logits [, auxiliary logits ...].
        loss: the objective.
        teacher: a frozen model predicting the same classes on the same images, or None.

    Example:
        >>> import numpy as np
        >>> inputs = keras.Input((16, 16, 3))
        >>> student = keras.Model(inputs, keras.layers.Conv2D(3, 1, strides=8, kernel_initializer="zeros")(inputs))
        >>> trainer = TrainingModel(student, make_loss(TrainConfig(input_size=(16, 16), ohem_thresh=None)))
        >>> trainer.compile(optimizer="sgd")
        >>> images, labels = np.zeros((2, 16, 16, 3), "float32"), np.ones((2, 16, 16), "int32")
        >>> round(trainer.evaluate(images, labels, verbose=0), 4)  # zero weights: uniform over 3 classes
        1.0986
    """

    def __init__(self, student: keras.Model, loss: SegmentationLoss, teacher: keras.Model | None = None, **kwargs):
        super().__init__(name=kwargs.pop("name", f"{student.name}_training"), **kwargs)
        self.student = student
        self.objective = loss
        self.teacher = teacher
        self.has_aux = len(student.outputs) > 1
        parts = (["main"] if self.has_aux or teacher is not None else []) + (["aux"] if self.has_aux else []) + (
            ["distill"] if teacher is not None else [])
        self.part_trackers = {part: keras.metrics.Mean(name=f"{part}_loss") for part in parts}  # fit logs them

    def call(self, images, training=False):
        return self.student(images, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        teacher_logits = None
        if self.teacher is not None:
            teacher_logits = self.teacher(x, training=False)
            if isinstance(teacher_logits, (list, tuple)):
                teacher_logits = teacher_logits[0]
        terms = self.objective(y, y_pred, teacher_logits)
        for part, tracker in self.part_trackers.items():
            tracker.update_state(getattr(terms, part))
        total = terms.total
        for extra in self.losses:  # layer regularizers, if any
            total = total + keras.ops.cast(keras.ops.sum(extra), total.dtype)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return total / replicas if replicas > 1 else total  # Keras sums the replicas' gradients

    def get_config(self):
        raise NotImplementedError("TrainingModel is not saved; save its student")


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


CONFIG = "config.yaml"
"""The run folder's settings file, one section per step (docs/architecture.md, section 2)."""


def read_config(run_dir: str | os.PathLike) -> dict:
    """``DIR/config.yaml`` as a dict ({} when missing).

    Raises:
        TrainingError: the file is not a YAML mapping (named), so that nothing overwrites it.
    """
    path = Path(run_dir) / CONFIG
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(read_text(path, error=TrainingError))
    except yaml.YAMLError as error:
        raise TrainingError(f"{path}: not valid YAML ({error}); fix or move it away") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TrainingError(f"{path}: expected a mapping of step sections, got {type(data).__name__}")
    return data


def record_config(run_dir: str | os.PathLike, section: str, values: dict) -> None:
    """Set one step's section of ``DIR/config.yaml``, keeping the other steps' sections; atomic.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> record_config(folder, "search", {"budget_ms": 10})
        >>> record_config(folder, "train", {"epochs": 2, "input_size": (8, 8)})
        >>> read_config(folder)
        {'search': {'budget_ms': 10}, 'train': {'epochs': 2, 'input_size': [8, 8]}}
    """
    data = read_config(run_dir)
    data[section] = json.loads(json.dumps(values))  # plain lists, numbers and strings only
    write_atomic(Path(run_dir) / CONFIG, yaml.safe_dump(data, sort_keys=False))


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
    resuming = (run_dir / run_callbacks.LAST).is_file()
    if resuming:
        state = run_callbacks.RunState.load(run_dir)
        for key, value in fixed.items():
            if state is not None and key in state.fixed and state.fixed[key] != value:
                raise ResumeError(
                    f"{run_dir} holds a run with {key}={state.fixed[key]}, but this run asks for {key}={value}; "
                    f"resume with the same {key}, or start a new run dir")
    elif run_callbacks.read_log(run_dir) or (run_dir / run_callbacks.BEST).exists():
        raise TrainingError(f"{run_dir} holds {run_callbacks.BEST} or {run_callbacks.LOG} of an earlier run but no "
                            f"{run_callbacks.LAST} to resume from; use a new run dir (or move them away)")
    read_config(run_dir)  # a malformed config.yaml is refused before anything is written
    return resuming


@dataclasses.dataclass
class _Models:
    student: keras.Model  # trained, all outputs, compiled with `optimizer` so that it saves it
    deploy: keras.Model  # its main output only, sharing its layers
    trainer: TrainingModel
    optimizer: keras.optimizers.Optimizer


def _models(model, teacher, source: SegmentationSource, config: TrainConfig, steps_per_epoch: int,
            resume_from: Path | None) -> _Models:
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
    trainer = TrainingModel(student, make_loss(config), teacher)
    trainer.compile(optimizer=optimizer, jit_compile=config.jit_compile)
    student.compile(optimizer=optimizer)
    deploy = student if len(student.outputs) == 1 else keras.Model(student.inputs[0], student.outputs[0],
                                                                   name=student.name)
    return _Models(student, deploy, trainer, optimizer)


def _start_state(run_dir: Path, initial_epoch: int, step: int, config: TrainConfig, steps_per_epoch: int,
                 fixed: dict) -> run_callbacks.RunState:
    """The state a (resumed) run starts from; the log loses any epoch past ``initial_epoch``."""
    log = run_callbacks.read_log(run_dir)
    kept = [e for e in log if e.get("epoch", 0) <= initial_epoch]
    if kept != log:
        run_callbacks.write_log(run_dir, kept)
    scored = [e for e in kept if e.get("val_miou") is not None]
    best = max(scored, key=lambda e: e["val_miou"]) if scored else None
    return run_callbacks.RunState(
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
        strategy: a `tf.distribute.Strategy` (default: the current one).
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
            data for one batch, or (`ResumeError`) the folder holds a run with other fixed
            settings; nothing in the run folder is changed then.
        TrainingDiverged: the loss became NaN or infinite; the message names the epoch and
            step, and the last good checkpoints are left as they were.
    """
    run_dir = Path(run_dir)
    strategy = strategy or tf.distribute.get_strategy()
    train_pairs, skipped_train = verified_pairs(source, "train", skip_bad=config.skip_bad)
    steps_per_epoch = len(train_pairs) // config.batch_size
    if steps_per_epoch < 1:
        raise TrainingError(f"batch_size {config.batch_size} is larger than the {len(train_pairs)} training pairs "
                            f"of {source.spec}")
    val_pairs, skipped_val = verified_pairs(source, config.val_split, skip_bad=config.skip_bad)
    skipped = {"train": [str(problem) for problem in skipped_train],
               config.val_split: [str(problem) for problem in skipped_val]}
    for split, problems in skipped.items():
        if problems:
            logging.warning("%s %s: left out %d bad pair(s) (--skip_bad):\n%s", source.spec, split, len(problems),
                            "\n".join(problems))
    fixed = config.fixed(source, len(train_pairs))
    last_path = run_dir / run_callbacks.LAST
    resuming = _check_run_dir(run_dir, fixed)
    keras.utils.set_random_seed(config.seed)
    with strategy.scope(), dtype_policy(config.precision):  # the network's layers take the policy when built
        models = _models(model, teacher, source, config, steps_per_epoch, last_path if resuming else None)
    step = run_callbacks.optimizer_step(models.optimizer)
    if step % steps_per_epoch:
        raise ResumeError(f"{last_path}: saved at optimizer step {step}, not a multiple of the {steps_per_epoch} "
                          "steps per epoch; the data changed since (use a new run dir)")
    initial_epoch = step // steps_per_epoch

    # Every check has passed: from here on the run folder is written.
    run_dir.mkdir(parents=True, exist_ok=True)
    record = record if record is not None else dataclasses.asdict(config)
    left_out = {split: problems for split, problems in skipped.items() if problems}
    record_config(run_dir, section, {**record, **({"skipped_pairs": left_out} if left_out else {})})
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
    validation = run_callbacks.Validation(evaluator, deploy, monitor, every=config.val_every, last=config.epochs)
    model_size = tuple(config.model_size) if config.model_size else None

    def best_model():
        size = model_size if model_size and model_size != input_size(deploy) else None
        dtype = "float32" if config.precision != "float32" else None
        return resized_copy(deploy, size, dtype) if size or dtype else deploy

    checkpoint = run_callbacks.RunCheckpoint(
        run_dir, models.student, best_model, state, monitor, validation,
        hint=f"Lower the learning rate (lr {config.lr:g}) and run again with the same run dir to resume.")
    tensorboard = run_callbacks.TensorBoardLogger(run_dir / run_callbacks.TENSORBOARD, validation)
    all_callbacks = [monitor, run_callbacks.EpochSeeds(models.student, config.seed), validation,
                     *([tensorboard] if config.tensorboard else []), checkpoint, *callbacks,
                     run_callbacks.EpochProgbar(config.epochs)]
    decoded = cached_images(source, train_pairs, config)
    try:
        # One fit() per epoch, each on that epoch's own dataset: the data order depends on the
        # epoch only, not on how many epochs this process has already run.
        for epoch in range(initial_epoch, config.epochs):
            models.trainer.fit(epoch_batches(source, train_pairs, config, epoch, decoded), epochs=epoch + 1,
                               initial_epoch=epoch, steps_per_epoch=steps_per_epoch, callbacks=all_callbacks,
                               verbose=config.verbose, shuffle=False)
            if monitor.diverged is not None:
                raise TrainingDiverged(state.message)
            if models.trainer.stop_training:  # a callback (e.g. early stopping) ended the run
                break
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
