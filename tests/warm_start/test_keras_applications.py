"""keras.applications' MobileNetV3 weights into the MobileNetV3 reference (the test makes the file: nothing is
downloaded)."""

from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from mobileseg.arch import builder, schema_io
from mobileseg.warm_start.initialize import initialize, parse_init
from mobileseg.warm_start.matching import InitError

REPO = Path(__file__).resolve().parents[2]
SMALL = REPO / "search_space" / "references" / "mobilenetv3_small_lraspp.yaml"
SIZE = (64, 64)


@pytest.fixture(scope="module")
def application():
    """What ``MobileNetV3Small(weights="imagenet", include_top=False)`` would load, with random values."""
    model = keras.applications.MobileNetV3Small(weights=None, include_top=False, input_shape=(*SIZE, 3))
    rng = np.random.default_rng(0)
    for variable in model.weights:
        low = 0.5 if variable.path.endswith("moving_variance") else -0.5
        variable.assign(rng.uniform(low, low + 1.0, tuple(variable.shape)).astype("float32"))
    return model


def save(application, folder: Path, kind: str) -> Path:
    """Keras 3's ``.weights.h5``, or the legacy ``.h5`` layout of the ImageNet files Keras downloads."""
    if kind == "weights.h5":
        path = folder / "mobilenet_v3_small.weights.h5"
        application.save_weights(path)
        return path
    legacy = pytest.importorskip("keras.src.legacy.saving.legacy_h5_format",
                                 reason="Keras' legacy .h5 writer (to make a file like the ImageNet one)")
    path = folder / "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"
    with h5py.File(path, "w") as file:
        legacy.save_weights_to_hdf5_group(file, application)
    return path


@pytest.mark.parametrize("kind", ["weights.h5", "legacy h5"])
def test_the_small_reference_takes_every_backbone_weight(application, tmp_path, kind):
    path = save(application, tmp_path, kind)
    genotype = schema_io.load(SMALL)
    model = builder.build_model(genotype, 11, SIZE)
    report = initialize(model, parse_init(f"imagenet:{path}"), genotype)
    cells = [layer.name for layer in model.layers if layer.name.startswith("main_")]
    assert report.layers() == {"matched": sorted(cells), "partly_matched": [], "shape_mismatch": [],
                               "missing": ["head"], "unused": []}
    assert "folded" in report.notes[-1]
    np.testing.assert_array_equal(model.get_layer("main_5_mbconv").se.expand.kernel.numpy(),
                                  application.get_layer("expanded_conv_4_squeeze_excite_conv_1").kernel.numpy())
    np.testing.assert_array_equal(model.get_layer("main_12_conv").bn.moving_variance.numpy(),
                                  application.get_layer("conv_1_bn").moving_variance.numpy())

    # The first conv sees mobileseg's normalised pixels, the application [-1, 1]: the same features
    # wherever the padding (bottom and right rows at stride 2) does not reach.
    images = np.random.default_rng(1).uniform(0, 255, (2, *SIZE, 3)).astype("float32")
    ours = keras.Model(model.input, model.get_layer("main_0_conv").output)(images).numpy()
    after_bn = [layer.name for layer in application.layers].index("conv_bn") + 1
    theirs = keras.Model(application.input, application.layers[after_bn].output)(images).numpy()
    np.testing.assert_allclose(ours[:, :-1, :-1], theirs[:, :-1, :-1], atol=1e-3 * np.abs(theirs).max())


def test_a_file_of_another_network_is_refused(tmp_path):
    genotype = schema_io.load(SMALL)
    model = builder.build_model(genotype, 11, SIZE)
    other = keras.applications.MobileNetV3Small(weights=None, include_top=False, input_shape=(*SIZE, 3), alpha=0.75)
    other.save_weights(tmp_path / "alpha075.weights.h5")
    with pytest.raises(InitError, match="not a weights file of keras.applications MobileNetV3Small or Mobile"):
        initialize(model, parse_init(f"imagenet:{tmp_path / 'alpha075.weights.h5'}"), genotype)
