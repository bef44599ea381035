"""Tiny real models for the latency docstring examples and tests.

`block_model` is also the smallest example of the ``make_model`` contract that
`LatencyTable.build` expects from the architecture code: a `BlockSignature` in,
the block alone at its input shape out.
"""

from __future__ import annotations

import functools

from mobileseg.latency.signature import BlockSignature

KINDS = ("conv", "softmax")


def block_model(signature: BlockSignature):
    """A standalone Keras model for a ``conv`` or ``softmax`` signature.

    ``conv``: ``Conv2D(out_c, kernel, stride, "same")`` + ReLU.
    ``softmax``: a 1x1 conv to ``out_c``, a channel softmax (which XNNPACK does not
    run in int8, so it falls back to the built-in kernel), and a 1x1 conv.

    Args:
        signature: ``op`` ``conv`` or ``softmax``; its input, output, kernel and stride.

    Raises:
        ValueError: another op, or an output shape the op cannot produce.

    Example:
        >>> sig = BlockSignature("conv", (8, 8, 4), (4, 4, 8), kernel=3, stride=2)
        >>> tuple(block_model(sig).output.shape)
        (None, 4, 4, 8)
    """
    import keras

    if signature.op not in KINDS:
        raise ValueError(f"testing.block_model builds {', '.join(KINDS)}, not {signature.op!r}")
    inputs = keras.Input(signature.input)
    if signature.op == "conv":
        outputs = keras.layers.Conv2D(signature.output[2], signature.kernel, signature.stride,
                                      padding="same", activation="relu")(inputs)
    else:
        hidden = keras.layers.Conv2D(signature.output[2], 1, signature.stride)(inputs)
        outputs = keras.layers.Conv2D(signature.output[2], 1)(keras.layers.Softmax()(hidden))
    model = keras.Model(inputs, outputs)
    if tuple(model.output.shape[1:]) != signature.output:
        raise ValueError(f"{signature.key}: the block gives output {tuple(model.output.shape[1:])}")
    return model


@functools.lru_cache(maxsize=16)
def tiny_tflite(kind: str = "conv", size: int = 16, channels: int = 8, mode: str = "int8") -> bytes:
    """A converted one-block model (cached): ``conv`` is fully delegated, ``softmax`` is not.

    The converter's own file (no `mobileseg.deploy.xnnpack_int8` rewrite), so an int8
    ``softmax`` keeps the op XNNPACK refuses: the fixture of every fallback report.

    Args:
        kind: ``conv`` or ``softmax`` (see `block_model`).
        size: input height and width.
        channels: input and output channels.
        mode: ``int8``, ``fp16`` or ``fp32`` (`mobileseg.deploy.tflite_convert.convert`).

    Example:
        >>> tiny_tflite("conv")[4:8]
        b'TFL3'
    """
    from mobileseg.deploy import tflite_convert

    signature = BlockSignature(kind, (size, size, channels), (size, size, channels), kernel=3,
                               quantization=mode)
    return tflite_convert.convert(block_model(signature), mode, xnnpack_rewrite=False)
