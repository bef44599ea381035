"""The latency table's blocks and the validation's networks are converted as export ships a network."""

from collections import Counter

from mobileseg.arch import schema_io
from mobileseg.deploy import tflite_convert
from mobileseg.latency.block_model import block_model
from mobileseg.latency.blocks import named_signatures
from mobileseg.latency.shipped import block_flatbuffer, network_flatbuffer
from mobileseg.litert_interpreter import load_interpreter

# a layer norm (efficient_attention), a squeeze-excite MBConv, a fuse with a context input, a two-input head
NETWORK = schema_io.loads("""
name: shipped
branches:
  - name: main
    source: null
    cells:
      - {op: conv, width: 8, stride: 2, act: hard_swish}
      - {op: mbconv, width: 16, stride: 2, kernel: 3, expansion: 2.0, se: true}
      - {op: efficient_attention, heads: 2, sr_ratio: 2, mlp_ratio: 2.0}
      - {op: fuse, context: {branch: low}, width: 16, mode: sum}
  - name: low
    source: {branch: main, cell: 2}
    cells:
      - {op: mbconv, width: 32, stride: 2, expansion: 2.0}
head: {op: light, inputs: [{branch: main}, {branch: low}], width: 16}
""")
SIZE, CLASSES = (32, 64), 5
BOUNDARY_OPS = {"QUANTIZE", "DEQUANTIZE", "RESHAPE"}


def compute_ops(flatbuffer: bytes) -> Counter:
    """The ops of a file, without the (de)quantizations and reshapes that differ at block boundaries."""
    return Counter(op for op in tflite_convert.op_names(flatbuffer) if op not in BOUNDARY_OPS)


def test_the_blocks_compute_what_the_shipped_network_computes():
    network = compute_ops(network_flatbuffer(NETWORK, SIZE, CLASSES))
    models = [block_model(signature) for _, signature in named_signatures(NETWORK, SIZE, CLASSES)]
    blocks = sum((compute_ops(block_flatbuffer(model, "int8")) for model in models), Counter())
    direct = sum((compute_ops(tflite_convert.convert(model, "int8")) for model in models), Counter())
    # the shipped network is its blocks plus the image normalisation (a 1x1 depthwise convolution)
    assert network - blocks == Counter({"DEPTHWISE_CONV_2D": 1}) and not blocks - network
    # converted directly, the layer norm keeps Keras' form (a float NEG island) that export never ships
    assert direct["NEG"] > 0 and "NEG" not in network


def test_the_timed_network_takes_the_shipped_uint8_image():
    flatbuffer = network_flatbuffer(NETWORK, SIZE, CLASSES)
    interpreter = load_interpreter(flatbuffer, "network", 1, "xnnpack")
    (image,), (logits,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert (image["dtype"].__name__, tuple(image["shape"])) == ("uint8", (1, *SIZE, 3))
    stride = 4  # the head reads main, two stride-2 cells deep
    assert (logits["dtype"].__name__, tuple(logits["shape"])) == ("int8", (1, SIZE[0] // stride, SIZE[1] // stride,
                                                                           CLASSES))
    mask = network_flatbuffer(NETWORK, SIZE, CLASSES, output="mask")
    interpreter = load_interpreter(mask, "mask", 1, "xnnpack")
    assert tuple(interpreter.get_output_details()[0]["shape"]) == (1, *SIZE)
