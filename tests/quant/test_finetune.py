from pathlib import Path

import keras
import numpy as np
import pytest

from mobileseg.arch import builder, schema_io
from mobileseg.data.synthetic import SyntheticSource
from mobileseg.quant.fake_quant import quantizers
from mobileseg.quant.finetune import quantization_aware_training
from mobileseg.quant.ptq import representative_images
from mobileseg.quant.qat_calibration import uncalibrated
from tests.quant.networks import all_ops_model, int8_file_gap, randomize_statistics

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


REFERENCES = sorted(path.stem for path in (Path(__file__).resolve().parents[2] / "search_space" / "references").glob(
    "*.yaml"))
WIDER_SEAFORMERS = ("seaformer_small", "seaformer_base", "seaformer_large")
"""Left out of the per-reference test to keep `make test` near 20 minutes (about 350 s of CPU): they are
seaformer_tiny's blocks, wider, with the same known gap (`SEAFORMER_GAP`), which seaformer_tiny keeps in view."""
SEAFORMER_GAP = ("the SeaFormers' int8 file differs from the quantization-aware model by 0.17-0.34 of the logits' "
                 "std (seaformer_tiny: 0.27; 0.22 right after calibration, before any step, as on main). No op is "
                 "modelled wrong: every op recomputed from the file's own int8 inputs lands on the file's value "
                 "but for 0.1-0.5% of a convolution's outputs (4% of an attention dwconv's, up to 6% of a "
                 "BATCH_MATMUL's) one int8 step away. The int8 network amplifies such steps: moving 0.1% of the "
                 "input pixels one step moves the calibrated model's own logits by 0.22 of their std (the float "
                 "model's by 0.0025; mobilenetv3_small_lraspp's by 0.005 quantized). The amplifier is this test's "
                 "untrained network, not a quantizer: noise of 1% of its std on any one tensor of the detail "
                 "branch moves the logits by 1.8-7.6% of their std, activation quantizers off (mobilenetv3's "
                 "untrained network: at most 0.6%, its deep path barely reaches the logits); turning any one "
                 "quantizer off leaves 0.17-0.31 of the 0.22; the ranges are not outlier-bound (median std 29 "
                 "steps; 99.9-99.99th percentile ranges do no better) and weights are per channel. Trained 300 "
                 "float steps on these images first, seaformer_tiny's calibrated model moves by 0.044 "
                 "(mobilenetv3's 0.023) and its file's gap is 0.063 (0.033)")
AGREEMENT_GAPS = {"all_ops": "the int8 file differs from the quantization-aware model by 0.14 of the logits' std "
                             "(0.07 right after calibration; likely the SeaFormers' cause, `SEAFORMER_GAP`: moving "
                             "0.1% of the input pixels one step moves the calibrated model's logits by 0.12)",
                  **{name: SEAFORMER_GAP for name in REFERENCES if name.startswith("seaformer_")}}
"""Issue 15, open: networks whose int8 file does not yet compute what the quantization-aware model does."""


@pytest.mark.slow
@pytest.mark.parametrize("network", ["all_ops", *(name for name in REFERENCES if name not in WIDER_SEAFORMERS)])
def test_quantization_aware_steps_stay_finite_and_the_int8_file_computes_what_they_trained(network):
    """Issue 15: a few fine-tuning steps on every cell op (`ALL_OPS_YAML` without token merging, which
    adds partitions) and every reference network, on synthetic street scenes (flat road and sky beside
    textures: widely spread layer-norm variances), leave every weight and range finite; the exported
    int8 file is one XNNPACK partition, takes every range from the model, and computes what the
    quantization-aware model computes. The known failures (`AGREEMENT_GAPS`) are checked to still
    fail, then reported as expected failures: fixing one fails this test until its entry goes."""
    size = (32, 32) if network == "all_ops" else (64, 64)
    source = SyntheticSource(12, size=size)
    if network == "all_ops":
        model = all_ops_model(source.num_classes, token_merging=False)
    else:
        keras.utils.set_random_seed(0)
        genotype = schema_io.load(Path(__file__).resolve().parents[2] / "search_space" / "references" / f"{network}.yaml")
        model = builder.build_model(genotype, source.num_classes, size)
        randomize_statistics(model)
    qat, history = quantization_aware_training(
        model, source, input_size=size, epochs=1, calibration=representative_images(source, size, 4), batch_size=2,
        steps_per_epoch=2, learning_rate=1e-3, verbose=0, eager=True)
    assert np.all(np.isfinite(history["loss"]))
    ranges = np.array([(float(q.range_min), float(q.range_max)) for q in quantizers(qat)])
    assert np.all(np.isfinite(ranges)) and np.all(ranges[:, 1] - ranges[:, 0] > 0)
    assert all(np.all(np.isfinite(w.numpy())) for w in qat.weights)

    gap = int8_file_gap(qat, source, size)
    if network in AGREEMENT_GAPS:
        assert gap >= 0.1, f"{network} agrees now (gap {gap:.3f}): remove it from AGREEMENT_GAPS"
        pytest.xfail(AGREEMENT_GAPS[network])
    assert gap < 0.1
