"""Differentiable search: per-cell architecture logits, GAS's GCN, FasterSeg's latency loss, one supernet.

The second strategy of ``python -m mobileseg.search`` (``--strategy differentiable``; NSGA-II
over a trained supernet is the first). Papers: Lin et al., "Graph-guided Architecture Search
for Real-time Semantic Segmentation" (GAS), CVPR 2020; Chen et al., "FasterSeg: Searching for
Faster Real-time Semantic Segmentation", ICLR 2020; Liu et al., "DARTS", ICLR 2019 (the
alternating first-order scheme on split training data); Dong & Yang, "Searching for a Robust
Neural Architecture in Four GPU Hours" (GDAS), CVPR 2019 (the straight-through Gumbel path).

What the search trains, its settings and its folder have their own modules: the logits per choice
point and GAS's GCN (`mobileseg.search.architecture_logits`), the settings, lambda's schedule and
the split of the training data (`mobileseg.search.differentiable_config`), the run folder's name,
checkpoint keys and state (`mobileseg.search.differentiable_folder`). This module holds the search.

**Relaxation: a straight-through Gumbel-softmax single path, not the full mixture.** The full
DARTS/GAS mixture runs every candidate of every cell at every step: up to 39 concrete
candidates a cell in the default space (up to 7 ops, each with its widths, kernels and expansions),
i.e. tens of networks per step on a 2-core CPU, and the supernet's one compiled graph runs
one group per cell (a ``switch``). So each step draws one network with the Gumbel-max trick
from ``softmax(alpha')`` per choice point (`CellChoices.sample`, redrawn if it does not
connect) and runs it through the supernet's graph, whose every cell output is multiplied by
``g = prod over the cell's sampled choices of (y_c - stop_gradient(y_c) + 1)`` with ``y =
softmax((alpha' + Gumbel) / temperature)``: 1 in the forward pass, the gradient of ``y_c`` in
the backward (GDAS; FasterSeg samples its widths this way, with this product). The gradient
reaches every logit of a choice point through the softmax's normalisation. A branch's fork
point and presence choices gate its first cell, the head's width choice the logits
(`Supernet.call`'s ``gates``).

**Training** (DARTS first order, as GAS and FasterSeg): the training split is split once,
seeded, into two halves; each step takes one architecture step on a batch of the second half,
then one weight step on a batch of the first:

- weights: AdamW (`mobileseg.training.factories.make_optimizer`) on the OHEM cross-entropy of a
  network sampled from the current distribution (no gates);
- architecture (logits and GCN maps): Adam (lr ``arch_lr``, betas 0.5/0.999 as DARTS and
  FasterSeg) on ``CE + lambda * E[latency] / scale``, where ``E[latency]`` is the expected
  latency of the distribution from the search's latency table
  (`mobileseg.search.expected_latency`, differentiable in the probabilities, no Gumbel noise)
  and ``scale`` is ``target_latency_ms``, or without a target the expected latency of the
  initial distribution. The first ``warmup_epochs`` epochs train the weights only (FasterSeg
  pretrains its supernet before searching). After every epoch that trained the architecture
  lambda follows the target (`mobileseg.search.differentiable_config.adapted_latency_weight`).

**Result**: after every epoch, the most likely network (`CellChoices.most_likely`: the argmax
per choice point, invalid combinations fixed by the next-best alternatives) is one candidate,
with its predicted latency and its proxy mIoU (`SupernetAccuracyModel`: batch norm
recalibrated, validation mIoU), so `mobileseg.search.pareto.write_outputs` writes
``arch.yaml``, ``pareto.json`` and ``pareto.png`` exactly as for NSGA-II (one trial per epoch).

**Resume**: ``RUN/differentiable/checkpoint.npz`` (weights, both optimizers, logits, GCN, lambda,
the architecture generator's state, the dropout layers' random-generator states, the candidates) is
replaced atomically after every epoch, and ``state.json`` says where the run is; the same call
resumes after the last completed epoch and continues exactly as the uninterrupted run would (the
data of epoch e depend on the seed and e only; a test compares the weights bit for bit). The epochs,
the progress bar and the two files are `mobileseg.training.loop`'s (`EpochLoop`, `CheckpointFolder`),
shared with the supernet's training and `mobileseg.training.trainer.fit`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from mobileseg.arch import schema_io
from mobileseg.data.checks import verified_pairs
from mobileseg.data.source import SegmentationSource
from mobileseg.latency.predictor import TableLatencyModel
from mobileseg.search.architecture_logits import ArchitectureLogits
from mobileseg.search.cell_choices import CellChoices, Chosen
from mobileseg.search.differentiable_config import DifferentiableConfig, adapted_latency_weight, split_halves
from mobileseg.search.differentiable_folder import (  # read_state: imported from here by search/__main__.py
    CHECKPOINT_KEYS,
    FOLDER,
    damaged_advice,
    read_state,  # noqa: F401
    resume_conflicts,
)
from mobileseg.run.run_config import record_config
from mobileseg.search.differentiable_result import DifferentiableResult, epoch_line, epochs_result
from mobileseg.search.expected_latency import ExpectedLatency
from mobileseg.supernet.accuracy import SupernetAccuracyModel
from mobileseg.supernet.graph_options import supernet_function_options
from mobileseg.supernet.model import Supernet
from mobileseg.training.errors import ResumeError, TrainingError
from mobileseg.training.factories import epoch_batches, make_optimizer
from mobileseg.training.loop import (
    CHECKPOINT,
    CheckpointFolder,
    EpochLoop,
    assign_arrays,
    check_finite,
    variable_arrays,
)
from mobileseg.training.losses import OhemCrossEntropy


class DifferentiableSearch:
    """Weights and architecture logits of one `Supernet`, trained alternately (module docstring).

    Args:
        supernet: the supernet of the space (its weights are the search's; its input size the crop).
        latency_model: the search's table latency model (table, overhead).
        config: the settings.

    Example:
        >>> import numpy as np, tempfile
        >>> from mobileseg.arch.space import SearchSpace
        >>> from mobileseg.latency.blocks import signatures_of
        >>> from mobileseg.latency.device import local_fingerprint
        >>> from mobileseg.latency.predictor import TableLatencyModel
        >>> from mobileseg.latency.table import LatencyTable
        >>> from mobileseg.supernet.train_config import SupernetTrainConfig
        >>> space = SearchSpace.from_text('''
        ... name: tiny
        ... branches:
        ...   - {name: main, source: null, cells: [{op: conv, width: 8, stride: 2},
        ...                                        {choice: [{op: conv, width: 8}, {op: skip}]}]}
        ... head: {op: light, inputs: [{branch: main}], width: 8}
        ... ''')
        >>> record = {"median_ms": 1.0, "p90_ms": 1, "std_ms": 0, "min_ms": 1, "runs": 1,
        ...           "xnnpack_partitions": 1, "fallback_ops": []}
        >>> table = LatencyTable(local_fingerprint())
        >>> for d in (0, 1):
        ...     for s in signatures_of(space.materialize({"branches[0].cells[1]": d}), (16, 16), 3):
        ...         table.add(s, record)
        >>> latency = TableLatencyModel(table, lambda g: signatures_of(g, (16, 16), 3))
        >>> search = DifferentiableSearch(Supernet(space, 3, (16, 16)), latency,
        ...                               DifferentiableConfig(SupernetTrainConfig(epochs=1), gcn=False))
        >>> search.set_steps_per_epoch(1)
        >>> images, labels = np.zeros((2, 16, 16, 3), "float32"), np.zeros((2, 16, 16), "int32")
        >>> sorted(search.arch_step(images, labels, np.random.default_rng(0)))
        ['ce', 'expected_ms', 'latency_loss']
    """

    def __init__(self, supernet: Supernet, latency_model: TableLatencyModel, config: DifferentiableConfig):
        self.supernet = supernet
        self.config = config
        self.latency_model = latency_model
        seed = config.weights.seed
        self.choices = CellChoices(supernet.space, supernet.plan, supernet.num_classes)
        self.arch = ArchitectureLogits(self.choices, config.gcn, config.gcn_hidden, config.gcn_gamma,
                                       config.init_scale, seed)
        self.latency = ExpectedLatency(self.choices, latency_model)
        self.train_config = config.weights.train_config(supernet.input_size)
        self.loss = OhemCrossEntropy(threshold=config.weights.ohem_thresh, min_kept=self.train_config.min_kept())
        self.weight_variables = list(supernet.trainable_variables)
        self.weight_optimizer = None
        self.arch_optimizer = keras.optimizers.Adam(config.arch_lr, beta_1=0.5, beta_2=0.999)
        self.arch_optimizer.build(self.arch.variables)
        self.latency_weight = config.latency_weight
        self.latency_scale_ms = config.target_latency_ms
        self._compiled_weight_step = tf.function(self._weight_step)
        self._compiled_arch_gradients = tf.function(self._arch_gradients)

    def set_steps_per_epoch(self, steps_per_epoch: int) -> None:
        """Create the weights' optimizer (AdamW with the schedule over ``epochs * steps_per_epoch`` steps)."""
        self.weight_optimizer = make_optimizer(self.train_config, steps_per_epoch)
        self.weight_optimizer.build(self.weight_variables)

    # -- the distribution ----------------------------------------------------------------------------
    def probabilities(self) -> np.ndarray:
        """``softmax(alpha')`` per choice point, ``[points, widest]``."""
        return self.arch.probabilities().numpy()

    def most_likely(self) -> Chosen:
        """The most likely valid network of the current distribution."""
        return self.choices.most_likely(self.probabilities())

    def expected_ms(self) -> float:
        """The expected latency of the current distribution (at its most likely network's shapes)."""
        ms, usable = self.latency.variant_ms(self.most_likely())
        return float(self.latency.expected_ms(self.arch.probabilities(), ms, usable))

    # -- steps -----------------------------------------------------------------------------------------
    def _weight_step(self, images, labels, arch):
        with tf.GradientTape() as tape:
            loss = self.loss(labels, self.supernet((images, arch), training=True))
        gradients = tape.gradient(loss, self.weight_variables)
        gradients = [tf.zeros_like(v) if g is None else g for g, v in zip(gradients, self.weight_variables,
                                                                            strict=True)]
        self.weight_optimizer.apply(gradients, self.weight_variables)
        return loss

    def _arch_gradients(self, images, labels, arch, noise, chosen, membership, candidate_ms, usable, weight,
                        scale):
        with tf.GradientTape() as tape:
            logits = self.arch.logits()
            soft = tf.nn.softmax((logits + noise) / self.config.temperature, axis=1)
            picked = tf.gather(soft, chosen, axis=1, batch_dims=1)
            straight_through = picked - tf.stop_gradient(picked) + 1.0
            gates = tf.reduce_prod(tf.where(membership > 0, straight_through[None, :], 1.0), axis=1)
            ce = self.loss(labels, self.supernet((images, arch), training=True, gates=gates))
            expected = self.latency.expected_ms(tf.nn.softmax(logits, axis=1), candidate_ms, usable)
            latency_loss = weight * expected / scale
            total = ce + latency_loss
        return ce, expected, latency_loss, tape.gradient(total, self.arch.variables)

    def arch_gradients(self, images, labels, sample: Chosen, noise, latency_weight: float | None = None):
        """The architecture loss of one batch and its gradients (for the logits, then the GCN's maps).

        Args:
            images, labels: a batch of the architecture half.
            sample: the network drawn (`CellChoices.sample`) with its Gumbel ``noise``.
            latency_weight: lambda (default: the search's current one).

        Returns:
            (cross-entropy, expected latency ms, lambda x latency / scale, gradients).
        """
        context = self.most_likely()
        candidate_ms, usable = self.latency.variant_ms(context)
        if self.latency_scale_ms is None:
            self.latency_scale_ms = self.expected_ms()
        weight = self.latency_weight if latency_weight is None else latency_weight
        with supernet_function_options():
            return self._compiled_arch_gradients(
                tf.convert_to_tensor(images, tf.float32), tf.convert_to_tensor(labels, tf.int32),
                tf.constant(sample.arch), tf.constant(noise, tf.float32),
                tf.constant(sample.indices, tf.int32), tf.constant(self.choices.gate_membership(sample.decisions)),
                tf.constant(candidate_ms), tf.constant(usable), tf.constant(weight, tf.float32),
                tf.constant(self.latency_scale_ms, tf.float32))

    def arch_step(self, images, labels, rng: np.random.Generator) -> dict:
        """One Adam step of the logits (and GCN) on a sampled network; returns its losses.

        Raises:
            TrainingDiverged: a loss is not finite (nothing is applied).
        """
        sample, noise = self.choices.sample(self.arch.logits().numpy(), rng)
        ce, expected, latency_loss, gradients = self.arch_gradients(images, labels, sample, noise)
        losses = {"ce": float(ce), "expected_ms": float(expected), "latency_loss": float(latency_loss)}
        check_finite(losses, "architecture")
        self.arch_optimizer.apply(gradients, self.arch.variables)
        return losses

    def weight_step(self, images, labels, rng: np.random.Generator) -> float:
        """One AdamW step of the supernet's weights on a network sampled from the distribution.

        Raises:
            TrainingError: call `set_steps_per_epoch` first.
            TrainingDiverged: a non-finite loss (the update is applied; the last checkpoint is kept).
        """
        if self.weight_optimizer is None:
            raise TrainingError("call set_steps_per_epoch (or fit) before weight steps")
        sample, _ = self.choices.sample(self.arch.logits().numpy(), rng)
        with supernet_function_options():
            loss = float(self._compiled_weight_step(tf.convert_to_tensor(images, tf.float32),
                                                    tf.convert_to_tensor(labels, tf.int32),
                                                    tf.constant(sample.arch)))
        check_finite(loss, "weight")
        return loss

    # -- a run -----------------------------------------------------------------------------------------
    def fixed(self, source: SegmentationSource, train_pairs: int) -> dict:
        """Settings a resumed run must share with the run it continues."""
        weights = self.config.weights
        return {"space": str(self.supernet.space.source), "input_size": list(self.supernet.input_size),
                "num_classes": self.supernet.num_classes, "data": source.spec, "train_pairs": train_pairs,
                "batch_size": weights.batch_size, "seed": weights.seed, "search_scale": weights.search_scale,
                "gcn": self.config.gcn, "precision": weights.precision, "points": len(self.choices.points),
                "weights": len(self.supernet.weights)}

    def fit(self, source: SegmentationSource, run_dir: str | os.PathLike, rng: np.random.Generator,
            progress: Callable[[str], None] | None = None) -> DifferentiableResult:
        """Search for ``config.epochs`` epochs into ``run_dir/differentiable``, resuming the run there.

        Args:
            source: the data set (``train`` split halved for the two sides, ``val`` for the proxy mIoU).
            run_dir: the run folder.
            rng: draws the networks; on resume its state is replaced by the saved one.
            progress: called with one line per epoch.

        Raises:
            TrainingError: too little data, or (`ResumeError`) the folder holds a run with other settings.
            TrainingDiverged: a non-finite loss (the last checkpoint is kept).
            mobileseg.state_files.StateFileError: a damaged ``checkpoint.npz`` (named, with what to do).
        """
        started = time.perf_counter()
        weights = self.config.weights
        if source.num_classes != self.supernet.num_classes:
            raise TrainingError(f"the supernet predicts {self.supernet.num_classes} classes but {source.spec} "
                                f"has {source.num_classes}")
        pairs, _ = verified_pairs(source, "train", skip_bad=weights.skip_bad)
        weight_half, arch_half = split_halves(pairs, weights.seed)
        steps = min(len(weight_half), len(arch_half)) // weights.batch_size
        if steps < 1:
            raise TrainingError(f"batch_size {weights.batch_size} is larger than half of the {len(pairs)} "
                                f"training pairs of {source.spec} (the differentiable search halves them)")
        if weights.steps_per_epoch is not None:
            steps = min(steps, weights.steps_per_epoch)
        folder = Path(run_dir) / FOLDER
        fixed = self.fixed(source, len(pairs))
        self.set_steps_per_epoch(steps)
        epoch, log, candidates = 0, [], []
        saved = self._checkpoints(folder).read()
        if saved is not None:
            epoch, log, candidates = self._restore(folder / CHECKPOINT, *saved, fixed, rng)
        initial_epoch = epoch
        record_config(run_dir, FOLDER, {**dataclasses.asdict(self.config.weights), **fixed,
                                        "target_latency_ms": self.config.target_latency_ms,
                                        "latency_weight": self.config.latency_weight, "arch_lr": self.config.arch_lr,
                                        "warmup_epochs": self.config.warmup, "temperature": self.config.temperature},
                      error=TrainingError)
        accuracy = SupernetAccuracyModel(
            self.supernet, source, source, calib_batches=self.config.calib_batches, batch_size=weights.batch_size,
            max_val_images=self.config.val_images, scale_range=self.train_config.scale_range, seed=weights.seed)
        if self.latency_scale_ms is None and epoch == 0:
            self.latency_scale_ms = self.expected_ms()
        # the same global seed whatever the epoch this process starts at: epoch e's data depend
        # on it and on e only, so a resumed search continues exactly (as `mobileseg.supernet.trainer`)
        keras.utils.set_random_seed(weights.seed)
        loop = EpochLoop(self.config.epochs, FOLDER, steps, weights.verbose)

        def batches(epoch: int):
            return zip(epoch_batches(source, weight_half, self.train_config, epoch).take(steps),
                       epoch_batches(source, arch_half, self.train_config, epoch).take(steps))

        def run_epoch(epoch: int) -> bool:
            search_arch = epoch >= self.config.warmup

            def step(batch) -> dict[str, float]:
                (weight_images, weight_labels), (arch_images, arch_labels) = batch
                losses = self.arch_step(arch_images, arch_labels, rng) if search_arch else {}
                losses["weight_ce"] = self.weight_step(weight_images, weight_labels, rng)
                return losses

            done = loop.run_steps(epoch, batches, step)
            best = self.most_likely()
            latency_ms = float(self.latency_model.latency_ms(best.genotype))
            miou = float(accuracy.miou([best.genotype])[0])
            weight_used = self.latency_weight
            if search_arch:
                self.latency_weight = adapted_latency_weight(self.latency_weight, latency_ms,
                                                             self.config.target_latency_ms)
            candidates.append({"epoch": epoch + 1, "genotype": schema_io.to_dict(best.genotype),
                               "decisions": best.decisions, "latency_ms": latency_ms, "miou": miou,
                               "fixups": best.fixups})
            log.append({"epoch": epoch + 1, **done.means, "steps": done.steps, "architecture": search_arch,
                        "latency_weight": weight_used, "next_latency_weight": self.latency_weight,
                        "latency_ms": latency_ms, "miou": miou, "seconds": time.perf_counter() - done.started})
            self._save(folder, epoch + 1, log, candidates, rng, fixed)
            if progress is not None:
                loop.say(epoch_line(log[-1], self.config.epochs), progress)
            return True

        epoch, _ = loop.run(initial_epoch, run_epoch)
        self._write_state(folder, epoch, log, fixed, "finished")
        result = epochs_result(candidates, self.config, time.perf_counter() - started, folder / CHECKPOINT)
        return DifferentiableResult(folder, initial_epoch, epoch, log, result, accuracy)

    # -- checkpoints -----------------------------------------------------------------------------------
    def _variables(self) -> dict[str, list]:
        """Everything a step reads that training changes, by checkpoint prefix (``s``: the dropout
        layers' random-generator states, absent from checkpoints written before they were kept)."""
        return {"w": list(self.supernet.weights), "o": list(self.weight_optimizer.variables),
                "a": self.arch.variables, "q": list(self.arch_optimizer.variables), "s": self.supernet.seed_states()}

    def _checkpoints(self, folder: Path) -> CheckpointFolder:
        return CheckpointFolder(folder, self.config.epochs, damaged_advice(folder), CHECKPOINT_KEYS)

    def _save(self, folder: Path, epoch: int, log: list[dict], candidates: list[dict], rng: np.random.Generator,
              fixed: dict) -> None:
        meta = {"epoch": epoch, "log": log, "candidates": candidates, "fixed": fixed, "rng": rng.bit_generator.state,
                "latency_weight": self.latency_weight, "latency_scale_ms": self.latency_scale_ms,
                "weights": [v.path for v in self.supernet.weights]}
        self._checkpoints(folder).save(meta, variable_arrays(self._variables()), epoch, log, fixed,
                                       latency_weight=self.latency_weight)

    def _write_state(self, folder: Path, epoch: int, log: list[dict], fixed: dict, status: str) -> None:
        self._checkpoints(folder).write_state(status, epoch, log, fixed, latency_weight=self.latency_weight)

    def _restore(self, path: Path, meta: dict, data: dict, fixed: dict, rng: np.random.Generator
                 ) -> tuple[int, list, list]:
        changed = resume_conflicts(meta["fixed"], fixed)
        if changed:
            raise ResumeError(f"{path.parent} holds a differentiable search with other settings "
                              f"({'; '.join(changed)}); resume with the same settings, or use a new run dir")
        variables = self._variables()
        if "s0" not in data and variables["s"]:
            logging.warning("%s: written by an older version without the dropout generators' state; resuming from "
                            "it, but not exactly as the search would have continued (the dropout masks start over)",
                            path)
            del variables["s"]
        if meta["weights"] != [v.path for v in self.supernet.weights] or any(
                f"{prefix}{len(found) - 1}" not in data or f"{prefix}{len(found)}" in data
                for prefix, found in variables.items() if found):
            raise ResumeError(f"{path}: its variables do not match this search; use a new run dir")
        assign_arrays(variables, data)
        rng.bit_generator.state = meta["rng"]
        self.latency_weight = float(meta["latency_weight"])
        self.latency_scale_ms = meta["latency_scale_ms"] if self.config.target_latency_ms is None \
            else self.config.target_latency_ms
        return int(meta["epoch"]), list(meta["log"]), list(meta["candidates"])
