"""The settings of a supernet training run (`mobileseg.supernet.trainer.SupernetTrainer`).

`SupernetTrainConfig` also gives the `mobileseg.training.train_config.TrainConfig` of the pieces the
supernet shares with a network's training (optimizer, schedule, OHEM, augmentation); the
differentiable search takes its weight side from it too.
"""

from __future__ import annotations

import dataclasses

from mobileseg.training.train_config import PRECISIONS, TrainConfig


@dataclasses.dataclass(frozen=True)
class SupernetTrainConfig:
    """Settings of a supernet training run.

    Args:
        epochs: epochs in total (a resumed run continues up to this).
        batch_size: images per step (every network of the sandwich sees the same batch).
        steps_per_epoch: at most this many steps per epoch (a budget); None: one pass over
            the training split.
        lr, weight_decay, schedule, warmup_epochs, min_lr: AdamW and its warm-up + decay
            schedule, as `mobileseg.training.train_config.TrainConfig`.
        ohem_thresh, ohem_min_kept: the OHEM cross-entropy (min_kept None: a quarter of the crop).
        num_random: random networks per step besides the largest and the smallest.
        distill_weight: weight of the in-place distillation KL for all but the largest.
        temperature: distillation temperature.
        scale_range: random rescaling of the training images at ``search_scale == 1``.
        search_scale: multiplies ``scale_range``; 0.5 searches at half the data's resolution.
        seed: data order and augmentation (architectures come from the generator passed to `fit`).
        skip_bad: leave bad training pairs out instead of stopping.
        precision: the Keras dtype policy the supernet trains under, as `TrainConfig`'s: the
            supernet must be built under it (``with dtype_policy(config.precision)``); weights,
            checkpoints and the loss stay float32.
        verbose: show a progress bar.

    Example:
        >>> SupernetTrainConfig(epochs=2, search_scale=0.5).train_config((32, 32)).scale_range
        (0.25, 1.0)
    """

    epochs: int = 100
    batch_size: int = 8
    steps_per_epoch: int | None = None
    lr: float = 1e-3
    weight_decay: float = 0.01
    schedule: str = "poly"
    warmup_epochs: float = 1.0
    min_lr: float = 0.0
    ohem_thresh: float | None = 0.7
    ohem_min_kept: int | None = None
    num_random: int = 2
    distill_weight: float = 1.0
    temperature: float = 1.0
    scale_range: tuple[float, float] = (0.5, 2.0)
    search_scale: float = 1.0
    seed: int = 0
    skip_bad: bool = False
    precision: str = "float32"
    verbose: bool = True

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.num_random < 0:
            raise ValueError(f"num_random must be >= 0, got {self.num_random}")
        if not self.search_scale > 0:
            raise ValueError(f"search_scale must be positive, got {self.search_scale}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1 or None, got {self.steps_per_epoch}")

    def train_config(self, input_size: tuple[int, int]) -> TrainConfig:
        """The `TrainConfig` of the shared pieces (optimizer, schedule, OHEM, augmentation)."""
        low, high = self.scale_range
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, input_size=tuple(input_size),
                           lr=self.lr, weight_decay=self.weight_decay, schedule=self.schedule,
                           warmup_epochs=self.warmup_epochs, min_lr=self.min_lr, ohem_thresh=self.ohem_thresh,
                           ohem_min_kept=self.ohem_min_kept, temperature=self.temperature, seed=self.seed,
                           scale_range=(low * self.search_scale, high * self.search_scale),
                           skip_bad=self.skip_bad, precision=self.precision, verbose=0, tensorboard=False)
