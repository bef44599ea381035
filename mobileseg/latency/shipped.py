"""What the latency commands time: blocks and whole networks converted the way export ships a network.

Export does not convert the builder's Keras model as it is. `mobileseg.deploy.packaging.convert`
flattens it (`mobileseg.quant.flatten.flatten_model`: batch norms folded into the convolutions, the
image normalisation as a 1x1 depthwise convolution, Keras layer norms as the int8 arithmetic of
`mobileseg.blocks.layer_norm.LayerNorm`), freezes the kernels (`mobileseg.deploy.packaging.freeze`),
takes a uint8 image and returns int8 logits. The latency table's blocks (`block_flatbuffer`, the
default conversion of `mobileseg.latency.table.LatencyTable.build`), the networks that calibrate and
validate the table (`network_flatbuffer`) and the zoo are converted that way, so what is timed is the
graph that ships (issue 22). Measured at 184x240 on 12 networks of the default space, timed
interleaved in one session (benchmarks/results/latency_predictor_184x240_in_context.json): on the 7
under 6 ms the builder's model converted directly took 0.48-1.13 ms (19-33%) more than the packaged
file, a file that differs in its image normalisation and its layer norms.
"""

from __future__ import annotations

from mobileseg.deploy import packaging, tflite_convert
from mobileseg.quant.flatten import flatten_model


def block_flatbuffer(model, quantization: str) -> bytes:
    """One block alone, flattened and frozen as export flattens a network, converted by export's converter.

    Args:
        model: the block as a `keras.Model` (`mobileseg.latency.block_model.block_model`).
        quantization: ``int8``, ``fp16`` or ``fp32`` (`mobileseg.deploy.tflite_convert.MODES`).

    Raises:
        ValueError: a layer that cannot be flattened (`flatten_model` with ``strict=True``).

    Example:
        >>> from mobileseg.arch.ops.convolutions import Conv
        >>> from mobileseg.deploy.tflite_convert import op_names
        >>> from mobileseg.latency.block_model import block_model
        >>> from mobileseg.latency.blocks import cell_signature
        >>> sig = cell_signature(Conv(width=8, stride=2), (16, 16, 3), (8, 8, 8))
        >>> op_names(block_flatbuffer(block_model(sig), "int8"))
        ['CONV_2D']
    """
    return tflite_convert.convert(packaging.freeze(flatten_model(model, strict=True)), quantization)


def network_flatbuffer(genotype, input_size: tuple[int, int], num_classes: int, quantization: str = "int8",
                       output: str = "logits") -> bytes:
    """The whole network as export writes it: `build_model` (batch 1, random weights) through `shipped_flatbuffer`.

    Args:
        genotype: a valid, buildable genotype.
        input_size: (height, width) of the image.
        num_classes: classes of the head.
        quantization: ``int8``, ``fp16`` or ``fp32``.
        output: ``logits``, or ``mask`` (a class map at the input size: export's ``--output mask``, with its
            default ``--mask_upsample``).
    """
    from mobileseg.arch import builder

    model = builder.build_model(genotype, num_classes, tuple(input_size), batch_size=1)
    return shipped_flatbuffer(model, quantization, output)


def shipped_flatbuffer(model, quantization: str = "int8", output: str = "logits") -> bytes:
    """A float network (random or trained weights) packaged and converted by `mobileseg.deploy.packaging.convert`:
    a uint8 image in; ``int8``: calibrated on random images in [0, 255], int8 logits out, the XNNPACK rewrite.

    Args:
        model: a float `keras.Model` with a fixed input size, taking pixels in [0, 255].
        quantization: ``int8``, ``fp16`` or ``fp32``.
        output: ``logits`` or ``mask`` (`mobileseg.deploy.packaging.OUTPUTS`).

    Example:
        >>> import keras
        >>> from mobileseg.deploy.tflite_convert import op_names
        >>> image = keras.Input((8, 16, 3), batch_size=1)
        >>> model = keras.Model(image, keras.layers.Conv2D(4, 3, padding="same")(image))
        >>> op_names(shipped_flatbuffer(model, "int8"))
        ['DEQUANTIZE', 'QUANTIZE', 'CONV_2D']
    """
    shape = (1, *model.inputs[0].shape[1:])
    images = tflite_convert.random_representative([shape], num_samples=8, low=0.0, high=255.0)
    return packaging.convert(model, quantization, output=output, input_dtype="uint8", representative=images)
