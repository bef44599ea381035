"""Quantization-aware fine-tuning: from a trained float model to a trained quantization-aware one.

`quantization_aware_training` rewrites the float model (`mobileseg.quant.qat.quantize_model`),
starts every activation range from post-training calibration on training images
(`calibrate`), then fine-tunes for a few epochs on the training split with the usual
augmentation: the weights learn to live with int8 rounding while the ranges follow by
moving averages. Batch-norm statistics stay frozen (see `mobileseg.quant.folded`).

The objective is the trainer's (`mobileseg.training`): cross-entropy on the logits
resized to the labels (OHEM with the thresholds the float model was trained with, when
given), plus distillation from the float model itself (``distill_weight``; Hinton et
al.'s KL at temperature 1, the teacher frozen). Fine-tuning aims at the float model's
accuracy under int8 rounding, so the float model's own predictions are the closest
target; measured on CamVid (benchmarks/export_camvid.py), one epoch of plain
cross-entropy at 1e-4 moved both reference networks 1-2 mIoU points *below* their
post-training int8 files. The learning rate defaults to 2e-5, of the order of the end
of the float training's schedule (Krishnamoorthi, "Quantizing deep convolutional
networks for efficient inference", 2018, Sec. 3.2: fine-tune from the float model with
a small rate).

Distillation should dominate: measured on CamVid-trained SeaFormer-T (int8 mask file on
the test split; the fp32 file scores 28.51 mIoU): calibration alone 28.22; one epoch at
2e-5 with ``distill_weight`` 1: 27.71, 5: 28.10 (28.08 with another seed), 20: 28.18;
two epochs at 20: 28.28. Other knobs did not help: 2e-6 (27.96), ranges moving alone
(learning rate 0: 28.07) or nearly frozen (decay 0.9999: 28.01). MobileNetV3-Small
(fp32 file 33.28): calibration alone 33.15, two epochs at ``distill_weight`` 20: 33.20.
"""

from __future__ import annotations

import keras
from absl import logging
from keras import ops


class QatDiverged(ValueError):
    """Quantization-aware fine-tuning produced a non-finite loss or weights; the message says what to try."""


def quantization_aware_training(model: keras.Model, source, *, input_size: tuple[int, int], epochs: int,
                                calibration: list, batch_size: int = 8, learning_rate: float = 2e-5,
                                seed: int = 0, steps_per_epoch: int | None = None,
                                ohem_thresh: float | None = None, ohem_min_kept: int = 0,
                                distill_weight: float = 1.0, decay: float | None = None, split: str = "train",
                                verbose: int = 1,
                                eager: bool = False) -> tuple[keras.Model, dict]:
    """Fine-tune the quantization-aware version of ``model``.

    Args:
        model: the trained float model (its first output is the logits).
        source: the data set (`mobileseg.data.source.SegmentationSource`).
        input_size: (height, width) of the model input; training crops have this size.
        epochs: passes over the training split (0 only calibrates).
        calibration: images (``[1, H, W, 3]`` float32) that set the initial ranges
            (`mobileseg.quant.ptq.representative_images`).
        batch_size: images per step.
        learning_rate: peak learning rate of AdamW, decayed by a cosine to 0.
        seed: seeds augmentation and shuffling.
        steps_per_epoch: cut each epoch short (quick runs and tests).
        ohem_thresh, ohem_min_kept: online hard example mining of the cross-entropy, as
            `mobileseg.training.losses.OhemCrossEntropy` (None: every labelled pixel).
        distill_weight: weight of the distillation from the float model (0: none).
        decay: moving-average decay of the activation ranges (default: the quantizers').
        split: the training split.
        verbose: Keras ``fit`` verbosity.
        eager: run the steps eagerly: no graph tracing (which takes tens of seconds for a
            large quantization-aware graph) but slower steps; for runs of a few steps.

    Returns:
        (the quantization-aware model, the ``fit`` history as a dict of lists: ``loss``, and
        ``main_loss`` / ``distill_loss`` with distillation).
    """
    import numpy as np

    from mobileseg.data.pipeline import Augmentation, train_dataset
    from mobileseg.quant.flatten import logits_model
    from mobileseg.quant.qat import quantize_model
    from mobileseg.quant.qat_calibration import calibrate
    from mobileseg.training.losses import DistillationKL, OhemCrossEntropy, SegmentationLoss
    from mobileseg.training.training_model import TrainingModel

    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if distill_weight < 0:
        raise ValueError(f"distill_weight must be >= 0, got {distill_weight}")
    float_model = logits_model(model)
    qat_model = quantize_model(float_model) if decay is None else quantize_model(float_model, decay=decay)
    calibrate(qat_model, [np.concatenate(calibration[i:i + batch_size])
                          for i in range(0, len(calibration), batch_size)])
    if epochs == 0:
        return qat_model, {}
    data = train_dataset(source, split, augmentation=Augmentation(crop_size=tuple(input_size)),
                         batch_size=batch_size, seed=seed, drop_remainder=True)
    steps = steps_per_epoch or int(data.cardinality())
    if steps < 1:
        raise ValueError(f"{source.spec}: the {split} split has fewer than {batch_size} images for one batch")
    if steps_per_epoch:
        data = data.repeat().take(steps * epochs)
    objective = SegmentationLoss(OhemCrossEntropy(threshold=ohem_thresh, min_kept=ohem_min_kept), aux_weight=0.0,
                                 distillation=DistillationKL() if distill_weight else None,
                                 distill_weight=distill_weight)
    trainable = float_model.trainable
    float_model.trainable = False
    try:
        trainer = TrainingModel(qat_model, objective, teacher=float_model if distill_weight else None)
        schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps * epochs)
        trainer.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4), jit_compile=False,
                        run_eagerly=eager)
        logging.info("quantization-aware fine-tuning: %d epoch(s) of %d steps", epochs, steps)
        history = trainer.fit(data, epochs=epochs, steps_per_epoch=steps if steps_per_epoch else None,
                              verbose=verbose, callbacks=[keras.callbacks.TerminateOnNaN()])
    finally:
        float_model.trainable = trainable
    broken = [w.path for w in qat_model.weights if not np.all(np.isfinite(ops.convert_to_numpy(w)))]
    losses = history.history.get("loss", [])
    if broken or not np.all(np.isfinite(losses)):
        raise QatDiverged(f"quantization-aware fine-tuning diverged (loss {losses}; {len(broken)} weights not "
                          f"finite, first {broken[:1]}); the float model is untouched: export post-training int8 "
                          "(--qat_epochs 0) or fine-tune with a lower --learning_rate")
    return qat_model, {name: [float(v) for v in values] for name, values in history.history.items()}
