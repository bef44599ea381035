"""Branch fusion: merge a detail feature map with a (usually coarser) context map.

Each layer takes ``[x, context]``; ``context`` is brought to ``x``'s height and width
with bilinear resizing (`resize_to`, TFLite ``RESIZE_BILINEAR`` with half-pixel
centers, PyTorch's ``align_corners=False``), and the output has ``x``'s resolution.
"""

from __future__ import annotations

import keras
from keras import ops

from mobileseg.blocks.conv import ConvBNAct, check_positive_int, get_gate


def resize_to(x, size):
    """Bilinear resize of an NHWC tensor to ``size = (height, width)``; a no-op when it already has that size.

    Example:
        >>> import numpy as np
        >>> tuple(resize_to(np.zeros((1, 4, 4, 3), "float32"), (8, 8)).shape)
        (1, 8, 8, 3)
    """
    height, width = ops.shape(x)[1:3]
    if isinstance(height, int) and isinstance(width, int) and (height, width) == tuple(size):
        return x
    return ops.image.resize(x, tuple(size), interpolation="bilinear")


def input_shapes(owner: str, input_shape, count: int | None = None, minimum: int = 1) -> list[tuple]:
    """The list of NHWC input shapes a multi-input layer was built with, checked.

    Args:
        owner: the layer's class name, for the error message.
        input_shape: what Keras passes to ``build``: one shape or a list of shapes.
        count: the exact number of inputs required, if any.
        minimum: the smallest number of inputs allowed.

    Raises:
        ValueError: a wrong number of inputs, or an input that is not 4-D.

    Example:
        >>> input_shapes("SumFusion", [(1, 8, 8, 4), (1, 4, 4, 8)], count=2)
        [(1, 8, 8, 4), (1, 4, 4, 8)]
        >>> input_shapes("SumFusion", (1, 8, 8, 4), count=2)
        Traceback (most recent call last):
        ...
        ValueError: SumFusion takes a list of 2 NHWC inputs, got 1
    """
    if isinstance(input_shape, (list, tuple)) and input_shape and isinstance(input_shape[0], (list, tuple)):
        shapes = [tuple(shape) for shape in input_shape]
    else:
        shapes = [tuple(input_shape)]
    if count is not None and len(shapes) != count:
        raise ValueError(f"{owner} takes a list of {count} NHWC inputs, got {len(shapes)}")
    if len(shapes) < minimum:
        raise ValueError(f"{owner} takes at least {minimum} NHWC inputs, got {len(shapes)}")
    for shape in shapes:
        if len(shape) != 4:
            raise ValueError(f"{owner}: every input must be a 4-D NHWC tensor, got shape {shape}")
    return shapes


@keras.saving.register_keras_serializable(package="mobileseg")
class SumFusion(keras.layers.Layer):
    """Sum fusion of two branches at different resolutions.

    Paper: "Deep High-Resolution Representation Learning for Visual Recognition" (Wang et
    al., 2020), its repeated multi-resolution fusion, as HyCTAS merges its branches: ``x``
    and ``context`` each go through a 1x1 conv + BN (no activation) to ``filters``, the
    projected context is resized to ``x``'s size, and the two are added. The context is
    projected before resizing, so the 1x1 conv runs at its lower resolution.

    Args:
        filters: output channels.

    Example:
        >>> import numpy as np
        >>> x, context = np.zeros((1, 16, 16, 8), "float32"), np.zeros((1, 4, 4, 32), "float32")
        >>> tuple(SumFusion(16)([x, context]).shape)
        (1, 16, 16, 16)
    """

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        check_positive_int(type(self).__name__, "filters", filters)
        self.filters = filters
        self.project_x = ConvBNAct(filters, 1, activation="none", name="project_x", dtype=self.dtype_policy)
        self.project_context = ConvBNAct(filters, 1, activation="none", name="project_context", dtype=self.dtype_policy)

    def build(self, input_shape):
        x_shape, context_shape = input_shapes(type(self).__name__, input_shape, count=2)
        self.project_x.build(x_shape)
        self.project_context.build(context_shape)

    def call(self, inputs, training=None):
        x, context = inputs
        x_projected = self.project_x(x, training=training)
        context = self.project_context(context, training=training)
        return x_projected + resize_to(context, ops.shape(x)[1:3])

    def compute_output_shape(self, input_shape):
        return (*input_shape[0][:3], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters)
        return config


@keras.saving.register_keras_serializable(package="mobileseg")
class SigmoidGateFusion(keras.layers.Layer):
    """Gated fusion: detail features multiplied by a (hard-)sigmoid gate computed from the context.

    Paper: "SeaFormer: Squeeze-enhanced Axial Transformer for Mobile Semantic Segmentation"
    (Wan, Huang, Lu, Yu and Zhang, 2023), the fusion block of its light segmentation head
    (``Fusion_block`` in the official code). As the official code:
    ``local = BN(conv1x1(x))``, ``gate = hard_sigmoid(BN(conv1x1(context)))`` resized to
    ``x``'s size, output ``local * gate``. Both 1x1 convs have no bias (BN follows), so SeaFormer's
    parameter count is kept. The official gate is the hard sigmoid ReLU6(x + 3) / 6 (the
    paper says sigmoid); ``gate="sigmoid"`` selects the latter.

    Args:
        filters: output channels (SeaFormer's ``embed_dim``).
        gate: ``"hard_sigmoid"`` (official code) or ``"sigmoid"``.

    Example:
        >>> import numpy as np
        >>> x, context = np.zeros((1, 16, 16, 8), "float32"), np.zeros((1, 4, 4, 32), "float32")
        >>> tuple(SigmoidGateFusion(16)([x, context]).shape)
        (1, 16, 16, 16)
    """

    def __init__(self, filters: int, gate: str = "hard_sigmoid", **kwargs):
        super().__init__(**kwargs)
        check_positive_int(type(self).__name__, "filters", filters)
        self._gate = get_gate(gate)
        self.filters = filters
        self.gate = gate
        self.local_embedding = ConvBNAct(filters, 1, activation="none", name="local_embedding", dtype=self.dtype_policy)
        self.global_act = ConvBNAct(filters, 1, activation="none", name="global_act", dtype=self.dtype_policy)

    def build(self, input_shape):
        x_shape, context_shape = input_shapes(type(self).__name__, input_shape, count=2)
        self.local_embedding.build(x_shape)
        self.global_act.build(context_shape)

    def call(self, inputs, training=None):
        x, context = inputs
        local = self.local_embedding(x, training=training)
        gate = self._gate(self.global_act(context, training=training))
        return local * resize_to(gate, ops.shape(x)[1:3])

    def compute_output_shape(self, input_shape):
        return (*input_shape[0][:3], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, gate=self.gate)
        return config
