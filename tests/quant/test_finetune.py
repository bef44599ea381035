import keras
import numpy as np
import pytest

from mobileseg.arch import builder, schema_io
from mobileseg.data.synthetic import SyntheticSource
from mobileseg.quant.fake_quant import quantizers
from mobileseg.quant.finetune import quantization_aware_training
from mobileseg.quant.ptq import representative_images
from mobileseg.quant.qat import uncalibrated

TINY = """
name: tiny
branches:
  - {name: main, source: null, cells: [{op: conv, width: 8, stride: 2}, {op: mbconv, width: 8, stride: 2, se: true}]}
head: {op: light, inputs: [{branch: main}], width: 8}
"""


def test_quantization_aware_training_calibrates_then_fine_tunes():
    source = SyntheticSource(20, size=(32, 32))
    model = builder.build_model(schema_io.loads(TINY), source.num_classes, (32, 32))
    calibration = representative_images(source, (32, 32), 4)
    qat, history = quantization_aware_training(model, source, input_size=(32, 32), epochs=1, calibration=calibration,
                                               batch_size=2, steps_per_epoch=2, verbose=0, eager=True)
    assert uncalibrated(qat) == [] and len(history["loss"]) == 1 and np.isfinite(history["loss"][0])
    calibrated_only, empty = quantization_aware_training(model, source, input_size=(32, 32), epochs=0,
                                                         calibration=calibration, verbose=0)
    assert empty == {}
    trained = {q.name: float(q.range_max) for q in quantizers(qat)}
    assert trained != {q.name: float(q.range_max) for q in quantizers(calibrated_only)}
    kernels = [[w.numpy() for w in m.trainable_weights if w.path.endswith("kernel")] for m in (qat, calibrated_only)]
    assert not all(np.allclose(a, b) for a, b in zip(*kernels))  # the weights moved too


def test_negative_epochs_are_refused():
    model = builder.build_model(schema_io.loads(TINY), 8, (32, 32))
    with pytest.raises(ValueError, match="epochs must be >= 0"):
        quantization_aware_training(model, SyntheticSource(10), input_size=(32, 32), epochs=-1, calibration=[])
    keras.backend.clear_session()


def test_a_diverging_fine_tune_stops_with_advice_instead_of_exporting_nan_ranges():
    from mobileseg.quant.finetune import QatDiverged

    source = SyntheticSource(20, size=(32, 32))
    model = builder.build_model(schema_io.loads(TINY), source.num_classes, (32, 32))
    calibration = representative_images(source, (32, 32), 4)
    with pytest.raises(QatDiverged, match=r"diverged .*--qat_epochs 0"):
        quantization_aware_training(model, source, input_size=(32, 32), epochs=1, calibration=calibration,
                                    batch_size=2, steps_per_epoch=3, learning_rate=1e35, verbose=0, eager=True)
