"""The differentiable search's settings, its lambda schedule and its split of the training data.

**Lambda** (FasterSeg's schedule made proportional): after every epoch that trained the
architecture, with a target, ``lambda *= clip(L / target, 1/2, 2)`` where ``L`` is the
predicted latency (`LatencyModel.latency_ms`) of that epoch's most likely network: a network
over the target raises the pressure, one under it lowers it, at most by FasterSeg's factor 2
per epoch. Without a target lambda stays at ``latency_weight``.

The training split is split once, seeded, into the weights' half and the architecture's half
(DARTS first order). The search that uses them is `mobileseg.search.differentiable`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mobileseg.supernet.train_config import SupernetTrainConfig

LAMBDA_STEP = 2.0
"""Lambda moves by at most this factor per epoch (FasterSeg doubles or halves it)."""


@dataclasses.dataclass(frozen=True)
class DifferentiableConfig:
    """Settings of a differentiable search.

    Args:
        weights: the weight side (epochs, batch size, steps per epoch, AdamW and its schedule,
            OHEM, augmentation, ``search_scale``, seed), as the supernet trainer's.
        gcn: pass the logits through GAS's GCN-Guided Module.
        target_latency_ms: the latency lambda steers towards; None: lambda stays fixed.
        latency_weight: lambda at the start.
        arch_lr: Adam's learning rate for the logits and the GCN. DARTS uses 3e-4 over some 20,000
            steps; a CPU search takes a few hundred (CamVid: 22 steps an epoch of 8 images a half), and
            Adam moves a logit by about the learning rate a step, so 1e-2 lets a logit move by a few
            units in such a run.
        temperature: of the Gumbel softmax (FasterSeg: 1).
        warmup_epochs: epochs that train the weights only; None: a quarter of the epochs.
        gcn_hidden, gcn_gamma: the GCN's embedding width and update weight.
        calib_batches, val_images: the proxy mIoU of each epoch's network (`SupernetAccuracyModel`).
        init_scale: standard deviation of the initial logits.

    Example:
        >>> DifferentiableConfig(SupernetTrainConfig(epochs=8)).warmup
        2
    """

    weights: SupernetTrainConfig
    gcn: bool = True
    target_latency_ms: float | None = None
    latency_weight: float = 0.1
    arch_lr: float = 1e-2
    temperature: float = 1.0
    warmup_epochs: int | None = None
    gcn_hidden: int = 16
    gcn_gamma: float = 0.5
    calib_batches: int = 4
    val_images: int | None = None
    init_scale: float = 1e-3

    @property
    def epochs(self) -> int:
        return self.weights.epochs

    @property
    def warmup(self) -> int:
        """Epochs without architecture steps."""
        return self.epochs // 4 if self.warmup_epochs is None else self.warmup_epochs


def adapted_latency_weight(weight: float, predicted_ms: float, target_ms: float | None) -> float:
    """Lambda after an epoch whose most likely network is predicted at ``predicted_ms`` (module docstring).

    Example:
        >>> adapted_latency_weight(0.1, 30.0, 20.0), adapted_latency_weight(0.1, 10.0, 20.0)
        (0.15000000000000002, 0.05)
        >>> adapted_latency_weight(0.1, 90.0, 20.0), adapted_latency_weight(0.1, 90.0, None)
        (0.2, 0.1)
    """
    if target_ms is None:
        return weight
    return weight * min(LAMBDA_STEP, max(1.0 / LAMBDA_STEP, predicted_ms / target_ms))


def split_halves(pairs: list, seed: int) -> tuple[list, list]:
    """A fixed seeded split of the training pairs into the weights' half and the architecture's half.

    Example:
        >>> split_halves(list(range(5)), seed=0)
        ([2, 4], [3, 0, 1])
    """
    order = np.random.default_rng(seed).permutation(len(pairs))
    half = len(pairs) // 2
    return [pairs[i] for i in order[:half]], [pairs[i] for i in order[half:]]

