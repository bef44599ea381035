"""The activation ranges of a quantization-aware model (`mobileseg.quant.qat.quantize_model`'s).

Whether a model holds fake quantization (`is_qat_model`), which of its ranges are still empty
(`uncalibrated`), and filling them from float forward passes as the TFLite calibrator does
(`calibrate`).
"""

from __future__ import annotations

import keras

from mobileseg.quant.fake_quant import quantizers


def is_qat_model(model: keras.Model) -> bool:
    """Whether ``model`` holds fake quantization (was made by `quantize_model`)."""
    return bool(quantizers(model))


def uncalibrated(model: keras.Model) -> list[str]:
    """Names of the activation quantizers that have no range yet (neither trained nor calibrated)."""
    return [q.name for q in quantizers(model) if float(q.initialized.numpy()) < 0.5]


def calibrate(model: keras.Model, batches) -> None:
    """Set every tracked activation range to the min and max seen on ``batches`` (float forward passes).

    This is what the TFLite calibrator does for post-training quantization; before
    fine-tuning it starts quantization-aware training from the post-training ranges.

    Args:
        model: a model from `quantize_model`.
        batches: an iterable of input batches (float images in [0, 255]).
    """
    tracked = [q for q in quantizers(model) if q.fixed_range is None]
    for quantizer in tracked:
        quantizer.initialized.assign(0.0)
        quantizer.observing = True
    try:
        for batch in batches:
            model(batch, training=False)
    finally:
        for quantizer in tracked:
            quantizer.observing = False
