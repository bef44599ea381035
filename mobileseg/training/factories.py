"""What a training run is built from: the AdamW optimizer and its schedule, the loss, and each epoch's batches.

`mobileseg.training.trainer.fit`, the supernet's sandwich rule (`mobileseg.supernet.trainer`) and the
differentiable search (`mobileseg.search.differentiable`) all take them from here, so that the three
train with the same optimizer, schedule and data stream: epoch e's batches depend on (seed, e) only,
which is what lets every one of them resume exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from mobileseg.data.pipeline import Augmentation, decoded_pairs, train_dataset
from mobileseg.data.source import Pair, SegmentationSource
from mobileseg.training.losses import DistillationKL, OhemCrossEntropy, SegmentationLoss
from mobileseg.training.schedules import WarmupDecay
from mobileseg.training.train_config import CACHE_BUDGET_BYTES, TrainConfig
from mobileseg.training.weight_average import AveragingAdamW


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.AdamW:
    """AdamW with the warm-up + decay schedule over ``epochs * steps_per_epoch`` steps.

    Weight decay skips BatchNorm / LayerNorm scales and offsets and biases. With ``config.ema``, the optimizer
    also keeps the weights' moving average (`mobileseg.training.weight_average`).

    Example:
        >>> opt = make_optimizer(TrainConfig(epochs=2, lr=0.01, warmup_epochs=0.5, input_size=(8, 8)), 10)
        >>> schedule = opt.get_config()["learning_rate"]["config"]
        >>> schedule["total_steps"], schedule["warmup_steps"], round(float(opt.learning_rate), 6)
        (20, 5, 1e-05)
    """
    schedule = WarmupDecay(config.lr, total_steps=max(config.epochs * steps_per_epoch, 1),
                           warmup_steps=int(round(config.warmup_epochs * steps_per_epoch)),
                           decay=config.schedule, power=config.poly_power, end_lr=config.min_lr)
    if config.ema:
        optimizer = AveragingAdamW(learning_rate=schedule, weight_decay=config.weight_decay, use_ema=True,
                                   ema_momentum=config.ema)
    else:
        optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=config.weight_decay)
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return optimizer


def make_loss(config: TrainConfig, class_weights: Sequence[float] | None = None) -> SegmentationLoss:
    """The `SegmentationLoss` a config asks for (distillation is used only with a teacher).

    ``class_weights``: the per-class weights ``config.class_weight`` gave on the training split
    (`mobileseg.data.class_balance.class_weights`), or None.
    """
    return SegmentationLoss(
        OhemCrossEntropy(threshold=config.ohem_thresh, min_kept=config.min_kept(), stride=config.loss_stride,
                         class_weights=class_weights),
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
    read from the files or from ``decoded`` (`mobileseg.data.pipeline.decoded_pairs`). Distributed over
    several workers, it is sharded by DATA: every worker builds these batches and keeps its replicas'
    shares of each, so the workers together see the batches one machine would.

    Example:
        >>> from mobileseg.data.synthetic import SyntheticSource
        >>> source = SyntheticSource(12, size=(24, 32))
        >>> config = TrainConfig(epochs=3, batch_size=4, input_size=(16, 16))
        >>> [tuple(x.shape) for x, _ in epoch_batches(source, source.pairs("train"), config, epoch=1)]
        [(4, 16, 16, 3), (4, 16, 16, 3)]
    """
    augmentation = Augmentation(crop_size=tuple(config.input_size), scale_range=tuple(config.scale_range))
    dataset = train_dataset(source, augmentation=augmentation, batch_size=config.batch_size,
                            seed=epoch_seed(config.seed, epoch), pairs=list(pairs), decoded=decoded,
                            drop_remainder=True)
    options = tf.data.Options()  # on several machines, each builds every batch and keeps its replicas' shares
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


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
