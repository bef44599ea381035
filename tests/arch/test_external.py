import numpy as np
import pytest

from mobileseg.arch import builder, schema_io
from mobileseg.arch.external import External
from mobileseg.arch.schema_io import GenotypeError
from mobileseg.quant.flatten import flatten_model
from mobileseg.run.sizes import logits_stride

HUB = "search_space/external/keras_hub_segformer_b0.yaml"


def test_the_reference_file_names_keras_hubs_segformer_and_round_trips(tmp_path):
    network = schema_io.load(HUB)
    assert network == External(name="keras_hub_segformer_b0", external="keras_hub_segformer_b0")
    schema_io.dump(network, tmp_path / "again.yaml")
    assert schema_io.load(tmp_path / "again.yaml") == network
    assert logits_stride(network) == 32  # MiT's reshapes need every stage's side whole


@pytest.mark.parametrize("text, message", [
    ("name: x\nexternal: timm_vit\n", "x.yaml: external: unknown network 'timm_vit'"),
    ("name: x\nexternal: keras_hub_segformer_b0\nbranches: []\n", "x.yaml: branches: not allowed beside 'external'"),
    ("external: keras_hub_segformer_b0\n", "x.yaml: name: a non-empty string is required"),
])
def test_a_bad_external_entry_is_refused_naming_the_file_and_key(text, message):
    with pytest.raises(GenotypeError, match=message):
        schema_io.loads(text, source="x.yaml")


def test_keras_hubs_segformer_takes_pixels_and_inlines_for_quantization():
    model = builder.build_model(schema_io.load(HUB), num_classes=5, input_size=(64, 64))
    assert model.output.shape == (None, 64, 64, 5)
    assert 3.6e6 < model.count_params() < 3.8e6  # SegFormer-B0: 3.7 M with a 5-class head
    flat = flatten_model(model, strict=True)  # keras-hub's reshapes to ops.shape(x)[0] inline
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(flat(x)), np.asarray(model(x)), atol=1e-4)


@pytest.mark.parametrize("sizes, message", [
    (["--input_size", "64x96"], "--input_size must be square"),
    (["--input_size", "64x64"], "--val_size must be square .* got each image's own size"),
])
def test_train_refuses_sizes_keras_hubs_segformer_cannot_take_naming_the_flag(tmp_path, sizes, message):
    import re
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "mobileseg.train", "--arch", HUB, "--data", "synthetic:8",
                             "--run_dir", str(tmp_path / "run"), "--epochs", "1", *sizes],
                            capture_output=True, text=True)
    assert result.returncode == 2 and re.search(message, result.stderr), result.stderr
    assert not (tmp_path / "run").exists()
