"""Learning-rate schedules: linear warm-up, then poly or cosine decay, per optimizer step.

The schedules of the segmentation papers mobileseg follows: mmsegmentation's ``poly``
policy (power 0.9, SeaFormer, SegFormer, PP-LiteSeg) and cosine annealing
(Loshchilov & Hutter, "SGDR", ICLR 2017; RTFormer), both after a linear warm-up
(Goyal et al., "Accurate, Large Minibatch SGD", 2017). The schedule is a
`keras.optimizers.schedules.LearningRateSchedule` registered for serialisation, so an
optimizer using it saves into and loads from a ``.keras`` file.
"""

from __future__ import annotations

import math

import keras
from keras import ops

DECAYS = ("poly", "cosine")
"""The decay shapes `WarmupDecay` knows."""


@keras.saving.register_keras_serializable(package="mobileseg")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from ``warmup_start * peak_lr`` to ``peak_lr``, then decay to ``end_lr``.

    For step s (the optimizer's iteration count, from 0) with w = ``warmup_steps`` and
    T = ``total_steps``:

    - s < w: ``peak_lr * (warmup_start + (1 - warmup_start) * s / w)``;
    - otherwise, with t = min((s - w) / (T - w), 1):
      poly: ``end_lr + (peak_lr - end_lr) * (1 - t) ** power``;
      cosine: ``end_lr + (peak_lr - end_lr) * (1 + cos(pi * t)) / 2``.

    Past ``total_steps`` the rate stays at ``end_lr``.

    Args:
        peak_lr: the rate at the end of the warm-up.
        total_steps: the step at which the decay reaches ``end_lr`` (epochs x steps per epoch).
        warmup_steps: length of the warm-up (0: none).
        decay: "poly" or "cosine".
        power: exponent of the poly decay (0.9 as mmsegmentation).
        end_lr: the final rate.
        warmup_start: the first step's rate, as a fraction of ``peak_lr``.
        name: an optional name.

    Example:
        >>> schedule = WarmupDecay(1.0, total_steps=110, warmup_steps=10, decay="poly", power=1.0)
        >>> [round(float(schedule(s)), 3) for s in (0, 4, 10, 60, 110, 500)]
        [0.001, 0.401, 1.0, 0.5, 0.0, 0.0]
        >>> cosine = WarmupDecay(1.0, total_steps=100, decay="cosine", end_lr=0.1)
        >>> [round(float(cosine(s)), 3) for s in (0, 50, 100)]
        [1.0, 0.55, 0.1]
        >>> WarmupDecay.from_config(schedule.get_config()).get_config() == schedule.get_config()
        True
    """

    def __init__(self, peak_lr: float, total_steps: int, warmup_steps: int = 0, decay: str = "poly",
                 power: float = 0.9, end_lr: float = 0.0, warmup_start: float = 0.001, name: str | None = None):
        super().__init__()
        if decay not in DECAYS:
            raise ValueError(f"decay must be one of {', '.join(DECAYS)}, got {decay!r}")
        if not peak_lr > 0 or end_lr < 0 or end_lr > peak_lr:
            raise ValueError(f"need peak_lr > 0 and 0 <= end_lr <= peak_lr, got peak {peak_lr}, end {end_lr}")
        if total_steps < 1 or warmup_steps < 0:
            raise ValueError(f"need total_steps >= 1 and warmup_steps >= 0, got {total_steps}, {warmup_steps}")
        if not 0.0 <= warmup_start <= 1.0 or power <= 0:
            raise ValueError(f"need 0 <= warmup_start <= 1 and power > 0, got {warmup_start}, {power}")
        self.peak_lr = float(peak_lr)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.decay = decay
        self.power = float(power)
        self.end_lr = float(end_lr)
        self.warmup_start = float(warmup_start)
        self.name = name

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = float(max(self.warmup_steps, 1))
        warm = self.peak_lr * (self.warmup_start + (1.0 - self.warmup_start) * step / warmup)
        span = float(max(self.total_steps - self.warmup_steps, 1))
        t = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
        if self.decay == "poly":
            shape = ops.power(1.0 - t, self.power)
        else:
            shape = 0.5 * (1.0 + ops.cos(math.pi * t))
        decayed = self.end_lr + (self.peak_lr - self.end_lr) * shape
        return ops.where(step < self.warmup_steps, warm, decayed)

    def get_config(self):
        return {"peak_lr": self.peak_lr, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                "decay": self.decay, "power": self.power, "end_lr": self.end_lr,
                "warmup_start": self.warmup_start, "name": self.name}
