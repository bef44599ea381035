"""A depthwise convolution wider than XNNPACK's depthwise kernels, rewritten as row bands it runs fast.

XNNPACK (in ai-edge-litert 2.3.0, ``requirements.txt``) has depthwise-convolution micro-kernels for
at most `MAX_TAPS` (25) kernel taps, i.e. up to 5x5. A 7x7 depthwise convolution (49 taps: the
``kernel: 7`` choice of MobileNetV3-style ``mbconv`` cells, as in MnasNet and once-for-all) falls
back to a grouped IGEMM with one channel per group. Measured on this CPU (Intel Xeon, LiteRT 1
thread, XNNPACK's per-operator profile; one 23x30x96 depthwise convolution + ReLU, 2026-12-06, a
training and a search beside it): int8 28.6 ms for 7x7 against 0.21 ms for 5x5; fp32 3.4 ms against 0.13 ms. A
CamVid network whose 7x7 cell the latency table priced at 8.5 ms ran at 27.6 ms int8, 2.8x slower
than its fp32 file (`benchmarks/results/search_vs_random_camvid.json`, random at 10.56 ms).

A ``kh x kw`` depthwise convolution is exactly the sum of depthwise convolutions over bands of its
kernel rows: band ``[r0, r1)`` is a ``(r1 - r0) x kw`` convolution over the input padded once (as
``same`` padding pads it) and sliced from row ``r0``. With bands of ``MAX_TAPS // kw`` rows (3 for
a 7-wide kernel: bands of 3, 3 and 1 rows, each within the fast kernels) the file runs PAD, then
3 x (STRIDED_SLICE, DEPTHWISE_CONV_2D) and 2 ADD, all in XNNPACK with its depthwise kernels; a
Keras model of the same bands took 0.58 ms int8 and 0.40 ms fp32 where the 7x7 kernel took 28.6
and 3.4 ms (the measurement above). `benchmarks/wide_depthwise_camvid.py` measures a trained network.

`banded_depthwise` builds that rewrite from a depthwise convolution's folded weights, for
`mobileseg.quant.flatten` (so export, QAT and the latency table's blocks all see it): each band is a
`FoldedConv` (the batch normalization folded into every band's kernel, its bias in the first band
only), so quantization-aware training places a quantizer on each band and on each sum, as the
int8 file has them.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from mobileseg.quant.folded import FoldedConv

MAX_TAPS = 25
"""The most taps (kernel height x width) of XNNPACK's depthwise micro-kernels (5x5)."""


def needs_bands(kernel_size: tuple[int, int]) -> bool:
    """Whether a depthwise kernel of this size is past XNNPACK's depthwise kernels.

    Example:
        >>> needs_bands((5, 5)), needs_bands((3, 7)), needs_bands((7, 7))
        (False, False, True)
    """
    return kernel_size[0] * kernel_size[1] > MAX_TAPS


def row_bands(kernel_height: int, kernel_width: int, max_taps: int = MAX_TAPS) -> list[tuple[int, int]]:
    """The kernel rows ``[r0, r1)`` of each band: as many rows as fit in ``max_taps`` taps (at least one).

    Example:
        >>> row_bands(7, 7), row_bands(9, 9)
        ([(0, 3), (3, 6), (6, 7)], [(0, 2), (2, 4), (4, 6), (6, 8), (8, 9)])
    """
    rows = max(1, max_taps // kernel_width)
    return [(start, min(start + rows, kernel_height)) for start in range(0, kernel_height, rows)]


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """The padding before and after one axis that TensorFlow's ``same`` padding gives it.

    Example:
        >>> same_padding(23, 7, 1, 1), same_padding(24, 7, 2, 1), same_padding(23, 7, 2, 1)
        ((3, 3), (2, 3), (3, 3))
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def banded_depthwise(config: dict, weights: list, use_bias: bool, batch_norm: bool, epsilon: float,
                     activation: str, name: str):
    """A depthwise convolution's computation as row bands (module docstring); a function of the input tensor.

    Args:
        config: the Keras ``DepthwiseConv2D`` config (kernel size, strides, padding, dilation, multiplier).
        weights: its `FoldedConv` weights: kernel, then the bias (``use_bias``), then gamma, beta, moving
            mean and moving variance (``batch_norm``).
        use_bias, batch_norm, epsilon: as `FoldedConv`'s.
        activation: the fused activation (``none``, ``relu``, ``relu6``), applied after the sum.
        name: the bands are ``NAME_rowsR0`` and so on.

    The function takes an input of known height and width (for others, `mobileseg.quant.flatten` keeps the
    plain convolution).
    """
    kernel_h, kernel_w = config["kernel_size"]
    strides, dilation = tuple(config["strides"]), tuple(config["dilation_rate"])
    kernel, rest = weights[0], weights[1:]
    bias = rest[:1] if use_bias else []
    statistics = rest[len(bias):]  # gamma, beta, moving mean, moving variance
    bands = []
    for start, stop in row_bands(kernel_h, kernel_w):
        first = start == 0
        band = FoldedConv("depthwise", kernel_size=(stop - start, kernel_w), strides=strides, padding="valid",
                          dilation_rate=dilation, depth_multiplier=config.get("depth_multiplier", 1),
                          use_bias=use_bias and first, batch_norm=batch_norm, epsilon=epsilon,
                          name=f"{name}_rows{start}")
        band_statistics = statistics
        if batch_norm and not first:  # the batch norm's scale in every band, its offset in the first only
            gamma, beta, mean, variance = statistics
            band_statistics = [gamma, np.zeros_like(beta), np.zeros_like(mean), variance]
        band.build((None, None, None, kernel.shape[2]))
        band.set_weights([kernel[start:stop], *(bias if first else []), *band_statistics])
        bands.append((start, stop, band))

    def run(x):
        height, width = x.shape[1], x.shape[2]
        if config["padding"] == "same":
            pad_h = same_padding(height, kernel_h, strides[0], dilation[0])
            pad_w = same_padding(width, kernel_w, strides[1], dilation[1])
            x = ops.pad(x, [[0, 0], list(pad_h), list(pad_w), [0, 0]])
        out_h = (x.shape[1] - (kernel_h - 1) * dilation[0] - 1) // strides[0] + 1
        total = None
        for start, stop, band in bands:
            offset = start * dilation[0]
            span = (out_h - 1) * strides[0] + (stop - start - 1) * dilation[0] + 1
            y = band(x[:, offset:offset + span])
            total = y if total is None else ops.add(total, y)
        if activation == "relu":
            return ops.relu(total)
        if activation == "relu6":
            return ops.relu6(total)
        return total
    return run
