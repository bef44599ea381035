"""Light segmentation heads: feature maps in, per-pixel class logits out.

Every head takes a list of NHWC feature maps whose first one is the finest; the
logits (``num_classes`` channels, no softmax) come out at that first map's resolution.
Upsampling the logits to the image size is left to the model. Dropout is channel-wise
(`keras.layers.SpatialDropout2D`, PyTorch's ``Dropout2d`` as in mmseg's heads) and is
an identity at inference.
"""

from __future__ import annotations

import keras
from keras import ops

from mobileseg.blocks.conv import ConvBNAct, check_positive_int
from mobileseg.blocks.fusion import input_shapes, resize_to


def _as_list(inputs) -> list:
    return list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]


def _check_dropout(owner: str, dropout) -> None:
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{owner}: dropout must be in [0, 1), got {dropout!r}")


def _classifier(num_classes: int, name: str = "classifier", dtype=None) -> keras.layers.Conv2D:
    return keras.layers.Conv2D(num_classes, 1, use_bias=True, name=name, dtype=dtype)


@keras.saving.register_keras_serializable(package="mobileseg")
class LightHead(keras.layers.Layer):
    """Light segmentation head: 1x1 conv-BN-ReLU, dropout, 1x1 classifier.

    Paper: "SeaFormer: Squeeze-enhanced Axial Transformer for Mobile Semantic Segmentation"
    (Wan et al., 2023), its light segmentation head (``LightHead`` in the official code)
    after the fusion blocks, which are `mobileseg.blocks.fusion.SigmoidGateFusion` layers.
    With one input (``width`` channels, the last fusion block's output): 1x1 conv-BN-ReLU,
    dropout, 1x1 classifier conv with a bias. The official configs all set ``is_dw=True``,
    which makes that 1x1 conv depthwise (``depthwise=True`` here, the default) so
    SeaFormer's parameter count is kept. With several inputs (HyCTAS-style branches) each is
    first projected by a 1x1 conv-BN to ``width``, resized to the first and summed.

    Args:
        num_classes: output channels (logits).
        width: head channels (SeaFormer's ``channels``: 96 / 128 / 160 / 192 for T / S / B / L).
        dropout: channel dropout rate before the classifier.
        depthwise: the 1x1 fuse conv is depthwise (SeaFormer ``is_dw``) instead of full.

    Example:
        >>> import numpy as np
        >>> head = LightHead(num_classes=19, width=32)
        >>> tuple(head(np.zeros((1, 16, 16, 32), "float32")).shape)
        (1, 16, 16, 19)
        >>> features = [np.zeros((1, 16, 16, 8), "float32"), np.zeros((1, 8, 8, 16), "float32")]
        >>> tuple(LightHead(num_classes=19, width=32)(features).shape)
        (1, 16, 16, 19)
    """

    def __init__(self, num_classes: int, width: int, dropout: float = 0.1, depthwise: bool = True, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        check_positive_int(owner, "num_classes", num_classes)
        check_positive_int(owner, "width", width)
        _check_dropout(owner, dropout)
        self.num_classes = num_classes
        self.width = width
        self.dropout = dropout
        self.depthwise = depthwise
        self.projections = []
        self.linear_fuse = ConvBNAct(width, 1, depthwise=depthwise, activation="relu", name="linear_fuse",
                                     dtype=self.dtype_policy)
        self.dropout_layer = keras.layers.SpatialDropout2D(dropout, name="dropout",
                                                           dtype=self.dtype_policy) if dropout > 0 else None
        self.classifier = _classifier(num_classes, dtype=self.dtype_policy)

    def build(self, input_shape):
        shapes = input_shapes(type(self).__name__, input_shape)
        if len(shapes) == 1 and shapes[0][-1] != self.width:
            raise ValueError(f"{type(self).__name__}: a single input must have width={self.width} channels, "
                             f"got {shapes[0][-1]}; give several inputs to have them projected")
        if len(shapes) > 1:
            self.projections = [ConvBNAct(self.width, 1, activation="none", name=f"project_{index}",
                                          dtype=self.dtype_policy)
                                for index in range(len(shapes))]
            for projection, shape in zip(self.projections, shapes, strict=True):
                projection.build(shape)
        fused_shape = (*shapes[0][:3], self.width)
        self.linear_fuse.build(fused_shape)
        self.classifier.build(fused_shape)

    def call(self, inputs, training=None):
        features = _as_list(inputs)
        if self.projections:
            size = ops.shape(features[0])[1:3]
            x = self.projections[0](features[0], training=training)
            for projection, feature in zip(self.projections[1:], features[1:], strict=True):
                x = x + resize_to(projection(feature, training=training), size)
        else:
            x = features[0]
        x = self.linear_fuse(x, training=training)
        if self.dropout_layer is not None:
            x = self.dropout_layer(x, training=training)
        return self.classifier(x)

    def compute_output_shape(self, input_shape):
        return (*input_shapes(type(self).__name__, input_shape)[0][:3], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, width=self.width, dropout=self.dropout,
                      depthwise=self.depthwise)
        return config


@keras.saving.register_keras_serializable(package="mobileseg")
class MLPDecoder(keras.layers.Layer):
    """All-MLP decoder: per-scale linear embedding, upsample, concatenate, fuse, classify.

    Paper: "SegFormer: Simple and Efficient Design for Semantic Segmentation with
    Transformers" (Xie et al., 2021), Sec. 3.2 "Lightweight All-MLP Decoder"
    (``SegFormerHead`` in the official code). Each input goes through a per-pixel linear
    layer (a 1x1 conv with a bias) to ``width`` and is resized to the first input's size;
    the results are concatenated coarsest first (the official ``cat([_c4, _c3, _c2,
    _c1])``), fused by a 1x1 conv-BN-ReLU (``len(inputs) * width -> width``), dropped out
    and classified by a 1x1 conv with a bias.

    Args:
        num_classes: output channels (logits).
        width: the decoder's embedding width (SegFormer-B0: 256, B1-B5: 768).
        dropout: channel dropout rate before the classifier.

    Example:
        >>> import numpy as np
        >>> features = [np.zeros((1, 16, 16, 8), "float32"), np.zeros((1, 8, 8, 16), "float32"),
        ...             np.zeros((1, 4, 4, 32), "float32")]
        >>> tuple(MLPDecoder(num_classes=19, width=32)(features).shape)
        (1, 16, 16, 19)
    """

    def __init__(self, num_classes: int, width: int, dropout: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        check_positive_int(owner, "num_classes", num_classes)
        check_positive_int(owner, "width", width)
        _check_dropout(owner, dropout)
        self.num_classes = num_classes
        self.width = width
        self.dropout = dropout
        self.linears = []
        self.linear_fuse = ConvBNAct(width, 1, activation="relu", name="linear_fuse", dtype=self.dtype_policy)
        self.dropout_layer = keras.layers.SpatialDropout2D(dropout, name="dropout",
                                                           dtype=self.dtype_policy) if dropout > 0 else None
        self.classifier = _classifier(num_classes, name="linear_pred", dtype=self.dtype_policy)

    def build(self, input_shape):
        shapes = input_shapes(type(self).__name__, input_shape)
        self.linears = [keras.layers.Conv2D(self.width, 1, use_bias=True, name=f"linear_c{index + 1}",
                                            dtype=self.dtype_policy)
                        for index in range(len(shapes))]
        for linear, shape in zip(self.linears, shapes, strict=True):
            linear.build(shape)
        self.linear_fuse.build((*shapes[0][:3], self.width * len(shapes)))
        self.classifier.build((*shapes[0][:3], self.width))

    def call(self, inputs, training=None):
        features = _as_list(inputs)
        size = ops.shape(features[0])[1:3]
        embedded = [resize_to(linear(feature), size)
                    for linear, feature in zip(self.linears, features, strict=True)]
        x = ops.concatenate(embedded[::-1], axis=-1) if len(embedded) > 1 else embedded[0]
        x = self.linear_fuse(x, training=training)
        if self.dropout_layer is not None:
            x = self.dropout_layer(x, training=training)
        return self.classifier(x)

    def compute_output_shape(self, input_shape):
        return (*input_shapes(type(self).__name__, input_shape)[0][:3], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, width=self.width, dropout=self.dropout)
        return config


@keras.saving.register_keras_serializable(package="mobileseg")
class LRASPPHead(keras.layers.Layer):
    """Lite R-ASPP head: a globally gated 1x1 branch on coarse features plus a classifier on finer ones.

    Paper: "Searching for MobileNetV3" (Howard et al., 2019), its "Lite R-ASPP" segmentation
    head. Inputs ``[low, high]`` (e.g. 1/8 and 1/16). As torchvision's ``LRASPPHead``:
    ``high`` -> 1x1 conv-BN-ReLU to ``width``, multiplied by ``sigmoid(conv1x1(global
    average pool of high))`` (no bias); resized to ``low``'s size and classified by a 1x1
    conv; plus a 1x1 classifier of ``low``; the two logits are summed. The paper pools with
    a 49x49 window and stride (16, 20) on 1024x2048 inputs; like torchvision this uses a
    global pool, which is size-independent and a single TFLite MEAN.

    Args:
        num_classes: output channels (logits).
        width: channels of the high branch (torchvision: 128).

    Example:
        >>> import numpy as np
        >>> low, high = np.zeros((1, 16, 16, 8), "float32"), np.zeros((1, 8, 8, 32), "float32")
        >>> tuple(LRASPPHead(num_classes=19, width=16)([low, high]).shape)
        (1, 16, 16, 19)
    """

    def __init__(self, num_classes: int, width: int = 128, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        check_positive_int(owner, "num_classes", num_classes)
        check_positive_int(owner, "width", width)
        self.num_classes = num_classes
        self.width = width
        self.cbr = ConvBNAct(width, 1, activation="relu", name="cbr", dtype=self.dtype_policy)
        self.scale = keras.layers.Conv2D(width, 1, use_bias=False, name="scale", dtype=self.dtype_policy)
        self.low_classifier = _classifier(num_classes, name="low_classifier", dtype=self.dtype_policy)
        self.high_classifier = _classifier(num_classes, name="high_classifier", dtype=self.dtype_policy)

    def build(self, input_shape):
        low_shape, high_shape = input_shapes(type(self).__name__, input_shape, count=2)
        self.cbr.build(high_shape)
        self.scale.build((high_shape[0], 1, 1, high_shape[-1]))
        self.low_classifier.build(low_shape)
        self.high_classifier.build((*low_shape[:3], self.width))

    def call(self, inputs, training=None):
        low, high = inputs
        x = self.cbr(high, training=training)
        pooled = ops.mean(high, axis=(1, 2), keepdims=True)
        x = x * ops.sigmoid(self.scale(pooled))
        x = resize_to(x, ops.shape(low)[1:3])
        return self.low_classifier(low) + self.high_classifier(x)

    def compute_output_shape(self, input_shape):
        return (*input_shape[0][:3], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, width=self.width)
        return config
