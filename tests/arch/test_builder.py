import keras
import numpy as np
import pytest

from mobileseg.arch import builder, schema_io
from mobileseg.arch.space import SearchSpace
from mobileseg.data.normalization import normalize
from mobileseg.deploy import tflite_convert
from mobileseg.search.reference_choice import REFERENCES, reference_files

SPACE_FILE = REFERENCES.parent / "default.yaml"
INPUT = (64, 64)
WIDER_SEAFORMERS = ("seaformer_base", "seaformer_large")
"""Left out of the save-and-convert test to keep `make test` near 20 minutes (about 55 s of CPU): they are
seaformer_tiny's and seaformer_small's blocks, wider, which those two keep in view (the zoo tests build them)."""


def roundtrip_and_int8(genotype, tmp_path, num_classes=5):
    """Build, check the logits' shape, save/load with equal outputs, convert to int8 with builtin ops."""
    model = builder.build_model(genotype, num_classes, INPUT)
    strides = genotype.cell_strides()
    branch, index = genotype.resolve(genotype.head.inputs[0])
    stride = strides[branch][index]
    assert model.output.shape[1:] == (INPUT[0] // stride, INPUT[1] // stride, num_classes)
    for (branch_name, index), shape in genotype.cell_shapes(INPUT).items():
        cell = genotype.branch(branch_name).cells[index]
        layer = model.get_layer(f"{branch_name}_{index}_{cell.OP}")
        assert tuple(layer.output.shape[1:]) == shape.output, (branch_name, index)
    images = np.random.default_rng(0).uniform(0, 255, size=(1, *INPUT, 3)).astype(np.float32)
    expected = np.asarray(model(images))
    path = tmp_path / "model.keras"
    model.save(path)
    np.testing.assert_allclose(np.asarray(keras.saving.load_model(path)(images)), expected, rtol=1e-5, atol=1e-5)
    calibration = tflite_convert.random_representative([(1, *INPUT, 3)], num_samples=2, low=0, high=255)
    flatbuffer = tflite_convert.convert(model, "int8", representative=calibration)
    ops = tflite_convert.op_names(flatbuffer)
    assert not [op for op in ops if op.startswith("Flex") or op == "CUSTOM"], ops
    assert tflite_convert.run(flatbuffer, [images])[0].shape == expected.shape


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in reference_files() if p.stem not in WIDER_SEAFORMERS], ids=lambda p: p.stem)
def test_every_reference_builds_saves_and_converts(path, tmp_path):
    roundtrip_and_int8(schema_io.load(path), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))  # 10 s of CPU each; every op alone: tests/quant's all_ops network
def test_default_space_samples_build_save_and_convert(seed, tmp_path):
    genotype = SearchSpace.load(SPACE_FILE).sample(np.random.default_rng(seed))
    roundtrip_and_int8(genotype, tmp_path)


def test_resize_output_and_auxiliary_heads():
    genotype = schema_io.loads("""
name: aux
branches:
  - {name: main, source: null, cells: [{op: conv, width: 8, stride: 2}, {op: mbconv, width: 16, stride: 2}]}
head: {op: light, inputs: [{branch: main}], width: 16, aux: [{branch: main, cell: 0}]}
""")
    model = builder.build_model(genotype, 3, (32, 32), resize_output=True, auxiliary=True)
    logits, aux = model.outputs
    assert logits.shape[1:] == (32, 32, 3)
    assert aux.shape[1:] == (16, 16, 3)
    assert len(builder.build_model(genotype, 3, (32, 32)).outputs) == 1


def test_layers_are_named_after_branch_cell_and_op():
    genotype = schema_io.load(REFERENCES / "mobilenetv3_small_lraspp.yaml")
    names = [layer.name for layer in builder.build_model(genotype, 3, (64, 64)).layers]
    assert "main_0_conv" in names and "main_12_conv" in names and "head" in names


def test_inputs_are_normalised_in_the_graph():
    genotype = schema_io.loads("""
name: n
branches: [{name: main, source: null, cells: [{op: skip}, {op: conv, width: 4, kernel: 1}]}]
head: {op: light, inputs: [{branch: main}], width: 4}
""")
    model = builder.build_model(genotype, 2, (8, 8))
    normalized = keras.Model(model.input, model.get_layer("normalize").output)
    image = np.random.default_rng(0).uniform(0, 255, (1, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(normalized(image)), normalize(image), rtol=1e-5, atol=1e-5)


@pytest.fixture(params=["mixed_float16", "mixed_bfloat16"])
def mixed_policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in reference_files() if p.stem not in WIDER_SEAFORMERS], ids=lambda p: p.stem)
def test_every_reference_trains_a_step_under_mixed_precision(path, mixed_policy):
    import tensorflow as tf

    genotype = schema_io.load(path)
    model = builder.build_model(genotype, 5, INPUT, auxiliary=bool(genotype.head.aux))
    images = np.random.default_rng(1).uniform(0, 255, size=(2, *INPUT, 3)).astype(np.float32)
    with tf.GradientTape() as tape:
        outputs = model(images, training=True)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        loss = sum(tf.reduce_mean(tf.square(tf.cast(out, tf.float32))) for out in outputs)
    compute = mixed_policy.removeprefix("mixed_")
    assert all(keras.backend.standardize_dtype(out.dtype) == compute for out in outputs)
    assert all(v.dtype == "float32" for v in model.weights if keras.backend.is_float_dtype(v.dtype))
    assert np.isfinite(float(loss))
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in grads)
    if compute == "bfloat16":  # float16 gradients may overflow without the loss scaling Keras adds in fit()
        assert all(np.all(np.isfinite(g)) for g in grads)
