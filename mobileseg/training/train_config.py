"""`TrainConfig`, every setting of a training run (the flags of ``python -m mobileseg.train``), and the dtype policy.

The supernet's and the differentiable search's settings build one too
(`mobileseg.supernet.trainer.SupernetTrainConfig.train_config`) for the pieces they share: the optimizer
and its schedule, the OHEM loss and the augmentation (`mobileseg.training.factories`).
"""

from __future__ import annotations

import contextlib
import dataclasses

import keras

from mobileseg.data.class_balance import CLASS_WEIGHTS
from mobileseg.data.pipeline import Augmentation
from mobileseg.data.source import SegmentationSource
from mobileseg.training.schedules import DECAYS

CACHE_CHOICES = ("auto", "yes", "no")
PRECISIONS = ("float32", "mixed_bfloat16")
CACHE_BUDGET_BYTES = 4 << 30
"""``cache_images="auto"`` keeps decoded training images in memory up to this size (CamVid's train: 0.25 GB)."""

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
        class_weight: "none", or "enet": each pixel's loss weighted by its class's ENet weight
            computed on the training split (`mobileseg.data.class_balance`).
        ema: weight EMA (`mobileseg.training.weight_average`): each optimizer step moves an average of
            the weights by ``1 - ema`` towards them; validation and ``model.keras`` use the average.
            0: off.
        aux_weight: weight of each auxiliary head's loss.
        distill_weight: weight of the distillation term (with a teacher).
        temperature: distillation temperature.
        seed: seeds weights, data order and augmentation.
        train_split: the splits trained on: ("train",), or ("train", "val") once the recipe has been
            chosen on val (CamVid's protocol allows it; test never).
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
    class_weight: str = "none"
    ema: float = 0.0
    aux_weight: float = 0.4
    distill_weight: float = 1.0
    temperature: float = 1.0
    seed: int = 0
    train_split: tuple[str, ...] = ("train",)
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
        if not self.train_split or len(set(self.train_split)) != len(self.train_split):
            raise ValueError(f"train_split must name each split once, got {list(self.train_split)}")
        if self.class_weight not in CLASS_WEIGHTS:
            raise ValueError(f"class_weight must be one of {', '.join(CLASS_WEIGHTS)}, got {self.class_weight!r}")
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
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")
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
                "batch_size": self.batch_size, "seed": self.seed, "train_split": list(self.train_split),
                "train_pairs": train_pairs, "precision": self.precision, "ema": self.ema}


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
