"""Train a supernet with the sandwich rule and in-place distillation, resumably, into ``RUN/supernet/``.

Every optimizer step (Yu et al., "BigNAS: Scaling Up Neural Architecture Search with Big
Single-Stage Models", ECCV 2020; Yu & Huang, "Universally Slimmable Networks", ICCV 2019):

1. the **largest** network (`Supernet.largest`) on the batch, OHEM cross-entropy on the labels;
2. the **smallest** (`Supernet.smallest`) and ``num_random`` **random** networks
   (`Supernet.sample` with the ``np.random.Generator`` passed in), each with the
   cross-entropy plus ``distill_weight`` x the KL divergence from the largest network's
   logits of the same step (in-place distillation; the teacher's logits are a stopped
   gradient);
3. one AdamW update with the sum of the four networks' gradients.

Each network runs through one compiled function, `SupernetTrainer.subnet_step`, whose
architecture is a tensor argument: one trace serves every network (its trace count is
what the tests check), and the gradients accumulate in variables between the calls
(one network's activations in memory at a time). Grappler's memory optimizer is off for
these functions (`mobileseg.supernet.graph_options` says why).

Known approximation: AdamW moves every shared weight at every step, also the weights of
alternatives no network of that step ran (zero gradient, but Adam's moments and the
weight decay still act), as in every weight-sharing supernet trained with a momentum
optimizer (once-for-all and BigNAS use SGD with momentum, which does the same).

The search resolution is the supernet's input size (the crop); ``search_scale`` scales
the random rescaling of the augmentation, so 0.5 trains on crops of half-size images
(the usual setting: search at half resolution, train the found network at full).

The epochs, the progress bar, the deadline and the two files of the run folder are
`mobileseg.training.loop`'s (`EpochLoop`, `CheckpointFolder`), shared with the other trainings.
Run folder (``RUN/supernet/``): ``checkpoint.npz`` is replaced atomically at the end of
every epoch (it is the commit point); ``state.json`` says where the run is (also atomic).
The checkpoint holds everything a step reads that changes during training:

- ``w0..`` the supernet's weights (``Supernet.weights``: kernels, biases, BN scales and
  offsets, and the BN moving statistics); header ``weights``: their paths;
- ``o0..`` the optimizer's variables (``optimizer.variables``: the step count, which
  also drives the learning-rate schedule, and AdamW's first and second moments);
- ``s0..`` the states of the supernet's random generators (the Keras ``SeedGenerator`` of
  every dropout / drop-path layer, e.g. the head's dropout: in ``Supernet.variables``
  but not in ``Supernet.weights``); header ``seed_states``: how many;
- header ``rng``: the state of the architecture sampler's ``np.random.Generator``;
  ``epoch``: epochs completed; ``log``: the epoch log; ``fixed``: the settings a resumed
  run must share (`SupernetTrainer.fixed`).

The rest needs no saving: the gradient accumulators are zero between steps, and epoch
e's batches depend on (seed, e) only: the pipeline is seeded with ``epoch_seed(seed, e)``
(`mobileseg.training.factories`, as for `mobileseg.training.trainer.fit`) under the
TensorFlow global seed that `fit` sets to ``seed``, the same however many epochs ran before,
in this process or another. So a run started again on the same folder resumes after the
last completed epoch and computes exactly what the uninterrupted run would have (the same
data, architecture sequence, dropout masks and updates; the tests compare the weights bit
for bit). Raising ``epochs`` on resume is allowed but, as in `mobileseg.training`, rebuilds
the learning-rate schedule over the new total (unless it is constant). A checkpoint written
before ``seed_states`` existed still resumes, with a warning that its dropout masks start over.
Learning-rate schedule, optimizer and losses are those of `mobileseg.training`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from absl import logging
from keras import ops

from mobileseg.data.checks import verified_pairs
from mobileseg.data.source import SegmentationSource
from mobileseg.run.run_config import record_config
from mobileseg.state_files import read_checkpoint
from mobileseg.supernet.graph_options import supernet_function_options
from mobileseg.supernet.model import Supernet
from mobileseg.supernet.train_config import SupernetTrainConfig
from mobileseg.training.errors import ResumeError, TrainingDiverged, TrainingError
from mobileseg.training.factories import epoch_batches, make_optimizer
from mobileseg.training.loop import STATE  # noqa: F401  (RUN/supernet/state.json: the pipeline and warm start read it)
from mobileseg.training.loop import (
    CHECKPOINT,
    CheckpointFolder,
    EpochLoop,
    assign_arrays,
    check_finite,
    fixed_conflicts,
    variable_arrays,
)
from mobileseg.training.losses import OhemCrossEntropy, distillation_kl

FOLDER = "supernet"
CHECKPOINT_KEYS = ("epoch", "log", "fixed", "rng", "weights")
"""The header keys ``checkpoint.npz`` must have (``seed_states`` too since it exists; older files lack it)."""


def damaged_advice(folder: Path) -> str:
    """What to do about a damaged file of ``RUN/supernet/``: the message's second half."""
    return f"delete {folder} to train the supernet again from the start, or put back a good copy of the file"


@dataclasses.dataclass
class SupernetTrainResult:
    """What `SupernetTrainer.fit` did.

    Attributes:
        folder: ``RUN/supernet``.
        initial_epoch: the epoch this call started at (> 0 when resumed).
        epoch: epochs completed.
        steps: optimizer steps completed.
        log: one dict per completed epoch (losses, seconds, steps/s).
        cut: why training stopped before ``config.epochs`` (the time budget's deadline), or None.
    """

    folder: Path
    initial_epoch: int
    epoch: int
    steps: int
    log: list[dict]
    cut: str | None = None


class SupernetTrainer:
    """The sandwich-rule trainer of one `Supernet`.

    Args:
        supernet: the supernet to train (its input size is the crop size).
        config: the settings.
        steps_per_epoch: optimizer steps per epoch, for the learning-rate schedule; `fit`
            sets it from the data (give it to use `sandwich_step` alone).

    Example:
        >>> import numpy as np
        >>> from mobileseg.arch.space import SearchSpace
        >>> space = SearchSpace.from_text('''
        ... name: tiny
        ... branches:
        ...   - {name: main, source: null, cells: [{op: conv, width: {choice: [8, 16]}, stride: 2}]}
        ... head: {op: light, inputs: [{branch: main}], width: {choice: [8, 16]}}
        ... ''')
        >>> trainer = SupernetTrainer(Supernet(space, 3, (16, 16)), SupernetTrainConfig(epochs=1), steps_per_epoch=4)
        >>> images, labels = np.zeros((2, 16, 16, 3), "float32"), np.zeros((2, 16, 16), "int32")
        >>> rng = np.random.default_rng(0)
        >>> sorted(trainer.sandwich_step(images, labels, rng))
        ['distill', 'largest_ce', 'student_ce']
        >>> trainer.subnet_tracing_count()
        1
    """

    def __init__(self, supernet: Supernet, config: SupernetTrainConfig, steps_per_epoch: int | None = None):
        self.supernet = supernet
        self.config = config
        self.train_config = config.train_config(supernet.input_size)
        self.loss = OhemCrossEntropy(threshold=config.ohem_thresh, min_kept=self.train_config.min_kept())
        self.variables = list(supernet.trainable_variables)
        self.seed_states = supernet.seed_states()
        self._accumulators = [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False) for v in self.variables]
        self.optimizer = None
        if steps_per_epoch is not None:
            self.set_steps_per_epoch(steps_per_epoch)
        self._largest = supernet.encode(supernet.largest())
        self._smallest = supernet.encode(supernet.smallest())
        self._zeros, self._zeros_key = None, None
        self._distill_weight = tf.constant(config.distill_weight, tf.float32)
        self._no_distill = tf.constant(0.0, tf.float32)
        self._compiled_subnet_step = tf.function(self._subnet_step)
        self._compiled_apply_step = tf.function(self._apply_step)

    def subnet_step(self, images, labels, arch, teacher_logits, distill_weight):
        """Forward and backward of one network (``arch`` a tensor); gradients add into the accumulators.

        One compiled function for every network: `subnet_tracing_count` stays 1.
        Returns (cross-entropy, distillation KL, logits).
        """
        with supernet_function_options():
            return self._compiled_subnet_step(images, labels, arch, teacher_logits, distill_weight)

    def apply_step(self) -> None:
        """One optimizer update with the accumulated gradients; clears them."""
        with supernet_function_options():
            self._compiled_apply_step()

    def subnet_tracing_count(self) -> int:
        """How many times the network step was traced (1 however many networks ran)."""
        return self._compiled_subnet_step.experimental_get_tracing_count()

    def set_steps_per_epoch(self, steps_per_epoch: int) -> None:
        """Create the optimizer (AdamW with the schedule over ``epochs * steps_per_epoch`` steps)."""
        self.optimizer = make_optimizer(self.train_config, steps_per_epoch)
        self.optimizer.build(self.variables)

    # -- one step --------------------------------------------------------------------------------
    def _subnet_step(self, images, labels, arch, teacher_logits, distill_weight):
        with tf.GradientTape() as tape:
            logits = ops.cast(self.supernet((images, arch), training=True), "float32")  # the loss in float32
            ce = self.loss(labels, logits)
            distill = distillation_kl(logits, teacher_logits, self.config.temperature)
            total = ce + distill_weight * distill
        for accumulator, gradient in zip(self._accumulators, tape.gradient(total, self.variables), strict=True):
            if gradient is not None:
                accumulator.assign_add(tf.convert_to_tensor(gradient))
        return ce, distill, logits

    def _apply_step(self):
        self.optimizer.apply([a.value() for a in self._accumulators], self.variables)
        for accumulator in self._accumulators:
            accumulator.assign(tf.zeros_like(accumulator))

    def architectures(self, rng: np.random.Generator) -> list[np.ndarray]:
        """The arch vectors of one sandwich step: largest, smallest, then ``num_random`` random ones."""
        randoms = [self.supernet.encode(self.supernet.sample(rng)) for _ in range(self.config.num_random)]
        return [self._largest, self._smallest, *randoms]

    def sandwich_step(self, images, labels, rng: np.random.Generator) -> dict:
        """One optimizer step of the sandwich rule on one batch; returns its losses (floats).

        Raises:
            TrainingDiverged: a loss is not finite (the update is not applied).
        """
        if self.optimizer is None:
            raise TrainingError("call set_steps_per_epoch (or fit) before training steps")
        images = tf.convert_to_tensor(images, tf.float32)
        labels = tf.convert_to_tensor(labels, tf.int32)
        largest, *students = self.architectures(rng)
        ce, _, teacher = self.subnet_step(images, labels, tf.constant(largest), self._zero_teacher(images),
                                          self._no_distill)
        teacher = tf.stop_gradient(teacher)
        student_ce, distill = [], []
        for arch in students:
            loss, kl, _ = self.subnet_step(images, labels, tf.constant(arch), teacher, self._distill_weight)
            student_ce.append(loss)
            distill.append(kl)
        losses = {"largest_ce": float(ce),
                  "student_ce": float(np.mean([float(v) for v in student_ce])) if student_ce else 0.0,
                  "distill": float(np.mean([float(v) for v in distill])) if distill else 0.0}
        try:
            check_finite(losses, "supernet")
        except TrainingDiverged:
            for accumulator in self._accumulators:
                accumulator.assign(tf.zeros_like(accumulator))
            raise
        self.apply_step()
        return losses

    def _zero_teacher(self, images):
        key = tuple(images.shape)
        if self._zeros_key != key:
            height, width = self.supernet.plan.slot(*self.supernet.plan.head.inputs[0].candidates[0]).size
            self._zeros = tf.zeros((images.shape[0], height, width, self.supernet.num_classes))
            self._zeros_key = key
        return self._zeros

    # -- a run -----------------------------------------------------------------------------------
    def fixed(self, source: SegmentationSource, train_pairs: int) -> dict:
        """Settings a resumed run must share with the run it continues."""
        return {"space": self.supernet.space.source, "layout": self.supernet.arch_size,
                "weights": len(self.supernet.weights), "input_size": list(self.supernet.input_size),
                "num_classes": self.supernet.num_classes, "data": source.spec, "train_pairs": train_pairs,
                "batch_size": self.config.batch_size, "seed": self.config.seed,
                "search_scale": self.config.search_scale, "precision": self.config.precision}

    def fit(self, source: SegmentationSource, run_dir: str | os.PathLike, rng: np.random.Generator,
            deadline=None) -> SupernetTrainResult:
        """Train for ``config.epochs`` epochs into ``run_dir/supernet``, resuming the run already there.

        Args:
            source: the data set (its ``train`` split).
            run_dir: the run folder.
            rng: draws the random networks; on resume its state is replaced by the saved one,
                so the architecture sequence continues as if never interrupted.
            deadline: a `mobileseg.timebudget.deadline.Deadline`, or None: after an epoch is saved, training
                stops there when another epoch (at this call's mean pace) would end past it (state ``cut``).

        Raises:
            TrainingError: too little data, or (`ResumeError`) the folder holds a run with
                other fixed settings.
            TrainingDiverged: a non-finite loss (the last checkpoint is kept).
            mobileseg.state_files.StateFileError: a damaged ``checkpoint.npz`` (named, with what to do).
        """
        if source.num_classes != self.supernet.num_classes:
            raise TrainingError(f"the supernet predicts {self.supernet.num_classes} classes but {source.spec} "
                                f"has {source.num_classes}")
        folder = Path(run_dir) / FOLDER
        pairs, _ = verified_pairs(source, "train", skip_bad=self.config.skip_bad)
        steps_per_epoch = len(pairs) // self.config.batch_size
        if steps_per_epoch < 1:
            raise TrainingError(f"batch_size {self.config.batch_size} is larger than the {len(pairs)} training "
                                f"pairs of {source.spec}")
        if self.config.steps_per_epoch is not None:
            steps_per_epoch = min(steps_per_epoch, self.config.steps_per_epoch)
        fixed = self.fixed(source, len(pairs))
        self.set_steps_per_epoch(steps_per_epoch)
        epoch, log = 0, []
        saved = self._checkpoints(folder).read()
        if saved is not None:
            epoch, log = self._restore(folder / CHECKPOINT, *saved, fixed, rng)
        initial_epoch = epoch
        record_config(run_dir, "supernet", {**dataclasses.asdict(self.config), **fixed}, error=TrainingError)
        # The same global seed whatever the epoch this process starts at: the data of epoch e
        # depend on it (and on e), never on where the run was interrupted.
        keras.utils.set_random_seed(self.config.seed)
        loop = EpochLoop(self.config.epochs, FOLDER, steps_per_epoch, self.config.verbose, deadline)

        def run_epoch(epoch: int) -> bool:
            done = loop.run_steps(epoch, lambda e: epoch_batches(source, pairs, self.train_config, e).take(
                steps_per_epoch), lambda batch: self.sandwich_step(*batch, rng))
            log.append({"epoch": epoch + 1, **done.means, "steps": done.steps, "seconds": done.seconds,
                        "steps_per_second": done.steps / done.seconds})
            self._save(folder, epoch + 1, log, rng, fixed)
            return True

        epoch, cut = loop.run(initial_epoch, run_epoch)
        self._write_state(folder, epoch, log, fixed, "cut" if cut else "finished")
        return SupernetTrainResult(folder, initial_epoch, epoch, self.steps(), log, cut)

    def steps(self) -> int:
        """Optimizer steps taken so far."""
        return int(self.optimizer.iterations.numpy()) if self.optimizer is not None else 0

    def _checkpoints(self, folder: Path) -> CheckpointFolder:
        return CheckpointFolder(folder, self.config.epochs, damaged_advice(folder), CHECKPOINT_KEYS)

    def _save(self, folder: Path, epoch: int, log: list[dict], rng: np.random.Generator, fixed: dict) -> None:
        meta = {"epoch": epoch, "log": log, "fixed": fixed, "rng": rng.bit_generator.state,
                "weights": [v.path for v in self.supernet.weights], "seed_states": len(self.seed_states)}
        arrays = variable_arrays({"w": self.supernet.weights, "o": self.optimizer.variables, "s": self.seed_states})
        self._checkpoints(folder).save(meta, arrays, epoch, log, fixed, optimizer_step=self.steps())

    def _write_state(self, folder: Path, epoch: int, log: list[dict], fixed: dict, status: str) -> None:
        self._checkpoints(folder).write_state(status, epoch, log, fixed, optimizer_step=self.steps())

    def _restore(self, path: Path, meta: dict, data: dict, fixed: dict, rng: np.random.Generator
                 ) -> tuple[int, list[dict]]:
        conflicts = fixed_conflicts(meta["fixed"], fixed)
        if conflicts:
            key, stored, value = conflicts[0]
            raise ResumeError(f"{path.parent} holds a supernet run with {key}={stored}, but this "
                              f"run asks for {key}={value}; resume with the same {key}, or use a new run dir")
        weights, optimizer_vars = self.supernet.weights, self.optimizer.variables
        if meta["weights"] != [v.path for v in weights] or f"o{len(optimizer_vars) - 1}" not in data:
            raise ResumeError(f"{path}: its weights do not match this supernet; use a new run dir")
        seed_states = self._saved_seed_states(path, meta, data)
        groups = {"w": weights, "o": optimizer_vars, **({"s": self.seed_states} if seed_states is not None else {})}
        assign_arrays(groups, data)
        rng.bit_generator.state = meta["rng"]
        return int(meta["epoch"]), list(meta["log"])

    def _saved_seed_states(self, path: Path, meta: dict, data: dict) -> list[np.ndarray] | None:
        """The saved random-generator states, checked against `seed_states`; None from an older checkpoint.

        They are matched by position (their paths depend on how many were created in the process).
        """
        if "seed_states" not in meta:
            if self.seed_states:
                logging.warning("%s: written by an older version without the dropout generators' state; resuming "
                                "from it, but not exactly as the run would have continued (the dropout masks start "
                                "over)", path)
            return None
        count = meta["seed_states"]
        saved = [data.get(f"s{i}") for i in range(count)] if isinstance(count, int) else [None]
        if len(saved) != len(self.seed_states) or any(
                value is None or value.shape != tuple(v.shape) or value.dtype != np.dtype(v.dtype)
                for value, v in zip(saved, self.seed_states)):
            raise ResumeError(f"{path}: its random-generator states do not match this supernet; use a new run dir")
        return saved


def load_supernet_weights(supernet: Supernet, run_dir: str | os.PathLike) -> int:
    """Load the weights of ``run_dir/supernet/checkpoint.npz`` into ``supernet``; returns its epoch.

    Raises:
        ResumeError: no checkpoint, or one of another supernet.
        mobileseg.state_files.StateFileError: a damaged checkpoint (named, with what to do).
    """
    path = Path(run_dir) / FOLDER / CHECKPOINT
    if not path.is_file():
        raise ResumeError(f"{path}: no supernet checkpoint (train the supernet first)")
    meta, data = read_checkpoint(path, damaged_advice(path.parent), CHECKPOINT_KEYS)
    if meta["weights"] != [v.path for v in supernet.weights]:
        raise ResumeError(f"{path}: its weights do not match this supernet (another space or size?)")
    assign_arrays({"w": supernet.weights}, data)
    return int(meta["epoch"])
