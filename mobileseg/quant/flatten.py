"""Rewrite a model into one flat functional graph of the ops TFLite will run.

mobileseg's blocks are subclassed layers (`mobileseg.blocks`) whose ``call`` mixes
sub-layers with ``keras.ops`` arithmetic (residual adds, attention matmuls, softmax,
gates). A quantization-aware model must place fake quantization *inside* them, where
TFLite keeps int8 tensors, so a top-level clone is not enough. `flatten_model`
inlines every block instead: it calls the block's own ``call`` on symbolic
``KerasTensor`` inputs while the block's sub-layers are temporarily replaced by
their rewrites (an ``object.__setattr__`` that bypasses Keras' tracking and is
undone afterwards), so each ``keras.ops`` call and each leaf layer becomes its own
node of a new functional model. Blocks need no quantization code of their own, and a
new block is covered as soon as it is written with ``keras.ops``.

Leaf rewrites (each float-exact at inference):

- ``ConvBNAct`` and bare ``Conv2D`` / ``DepthwiseConv2D`` / ``Dense`` -> `FoldedConv`
  (batch normalization folded, ReLU/ReLU6 fused; another activation becomes its own op); a depthwise
  kernel past XNNPACK's depthwise kernels (7x7) -> row bands of `FoldedConv` summed
  (`mobileseg.quant.wide_depthwise`), the same values at a fraction of the time;
- ``Normalization`` (the image normalisation of `mobileseg.arch.builder`) -> a frozen
  1x1 depthwise `FoldedConv` over groups of 16 pixels (the image reshaped to
  ``[1, H, W / 16, 48]`` and back: the same values, 6x quicker in XNNPACK than 3
  channels), so the normalisation is folded into the int8 graph;
- Keras ``LayerNormalization`` -> the arithmetic of `mobileseg.blocks.layer_norm.LayerNorm`
  (same result; int8 ops only, where Keras' form leaves a float NEG island);
- ``ReLU`` / ``Activation`` layers -> the ``keras.ops`` activation;
- a weight used directly in a block's arithmetic -> a `WeightTensor` node;
- ``BatchNormalization``, ``Dropout``, ``SpatialDropout2D``, ``Identity``, ``Resizing``
  -> copies (`mobileseg.quant.qat` folds or expands batch normalizations).

A layer that cannot be inlined (its ``call`` needs concrete tensors) stays whole as an
*opaque* copy; `flatten_model` warns, or raises with ``strict=True``.
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np
from absl import logging
from keras import ops

from mobileseg.blocks.conv import ConvBNAct
from mobileseg.blocks.layer_norm import LayerNorm
from mobileseg.quant.folded import FUSED_ACTIVATIONS, FoldedConv, WeightTensor, normalization_as_depthwise
from mobileseg.quant.wide_depthwise import banded_depthwise, needs_bands

COPIED_LEAVES = (keras.layers.BatchNormalization, keras.layers.Dropout, keras.layers.SpatialDropout2D,
                 keras.layers.Identity, keras.layers.Resizing, keras.layers.InputLayer)
ACTIVATION_OPS = {
    "relu": ops.relu,
    "relu6": ops.relu6,
    "hard_swish": ops.hard_silu,
    "hard_silu": ops.hard_silu,
    "gelu": lambda x: ops.gelu(x, approximate=False),
    "sigmoid": ops.sigmoid,
    "hard_sigmoid": ops.hard_sigmoid,
    "tanh": ops.tanh,
    "softmax": ops.softmax,
    "none": None,
    "linear": None,
}
_KERAS_INTERNALS = frozenset(vars(keras.layers.Layer()))


class FlattenError(ValueError):
    """A layer could not be inlined and ``strict=True`` was asked; the message names it."""


def flatten_model(model: keras.Model, *, strict: bool = False) -> keras.Model:
    """The same function as ``model``, as a flat functional graph of leaf layers and ``keras.ops``.

    Args:
        model: a functional Keras model (e.g. from `mobileseg.arch.builder.build_model`).
        strict: raise `FlattenError` instead of keeping a layer that cannot be inlined whole.

    Returns:
        A new functional model with new weights copied from ``model`` (the two share
        nothing); its inference outputs equal ``model``'s up to float rounding.

    Example:
        >>> import numpy as np
        >>> from mobileseg.blocks.conv import MBConv
        >>> inputs = keras.Input((8, 8, 4))
        >>> model = keras.Model(inputs, MBConv(4, se_ratio=0.25, activation="hard_swish")(inputs))
        >>> flat = flatten_model(model, strict=True)
        >>> sorted({type(op).__name__ for op in flat.operations} - {"InputLayer"})
        ['Add', 'FoldedConv', 'HardSigmoid', 'HardSilu', 'Mean', 'Multiply', 'ReLU']
        >>> x = np.random.default_rng(0).normal(size=(1, 8, 8, 4)).astype("float32")
        >>> bool(np.allclose(flat(x), model(x), atol=1e-5))
        True
    """
    rewriter = _Rewriter(strict)
    inputs = [keras.Input(batch_shape=tuple(t.shape), dtype=t.dtype, name=_input_name(t)) for t in model.inputs]
    with _reshapes_infer_symbolic_batch():
        outputs = model._run_through_graph(inputs if len(inputs) > 1 else inputs[0],
                                           operation_fn=lambda op: rewriter.callable_for(op, ""))
    flat = keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs, name=model.name)
    if rewriter.opaque:
        logging.warning("kept whole (not inlined, so not quantized inside): %s", ", ".join(rewriter.opaque))
    return flat


@contextlib.contextmanager
def _reshapes_infer_symbolic_batch():
    """While inlining, a reshape to a ``None`` batch (a block's ``ops.shape(x)[0]``) infers it.

    A block written as ``b, n, c = ops.shape(x); ops.reshape(x, (b, -1, c))`` (as keras-hub's
    attention layers are) passes ``None`` as the batch when called on symbolic inputs, which
    no eager reshape accepts: the batch becomes ``-1``, and a ``-1`` elsewhere its value.
    """
    original = ops.reshape

    def reshape(x, newshape):
        if isinstance(newshape, (tuple, list)) and newshape and newshape[0] is None and isinstance(x, keras.KerasTensor):
            rest, per_item = list(newshape[1:]), x.shape[1:]
            if None not in rest and None not in per_item and rest.count(-1) <= 1:
                if -1 in rest:
                    rest[rest.index(-1)] = int(np.prod(per_item)) // int(np.prod([d for d in rest if d != -1]))
                newshape = (-1, *rest)
        return original(x, newshape)

    modules = (ops, keras.src.ops)  # blocks' ``keras.ops`` and Keras' own layers (``Reshape``)
    for module in modules:
        module.reshape = reshape
    try:
        yield
    finally:
        for module in modules:
            module.reshape = original


def _input_name(tensor) -> str:
    history = getattr(tensor, "_keras_history", None)
    return history.operation.name if history is not None else "image"


class _Rewriter:
    """Turns each layer met in the graph into a callable that emits its flat rewrite."""

    def __init__(self, strict: bool):
        self.strict = strict
        self.opaque: list[str] = []
        self._done: dict[int, object] = {}

    def callable_for(self, layer, prefix: str):
        if not isinstance(layer, keras.layers.Layer):
            return layer  # a keras.ops operation of the outer graph: kept as is
        path = f"{prefix}.{layer.name}" if prefix else layer.name
        key = id(layer)
        if key not in self._done:
            self._done[key] = self._rewrite(layer, path)
        return self._done[key]

    def _rewrite(self, layer, path: str):
        if isinstance(layer, ConvBNAct):
            return _conv_callable(layer.conv, layer.bn, layer.activation, path)
        if type(layer) in (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense):
            if _foldable(layer):
                return _conv_callable(layer, None, "none", path)
            return self._keep_whole(layer, path)
        if type(layer) is keras.layers.Normalization:
            return _normalization_callable(layer, path)
        if type(layer) is keras.layers.LayerNormalization:
            return self._inline_callable(_as_int8_layer_norm(layer), path)
        if type(layer) is keras.layers.ReLU and _plain_relu(layer):
            fn = ops.relu6 if layer.max_value == 6.0 else ops.relu
            return _ignore_training(fn)
        if type(layer) is keras.layers.Activation and _activation_name(layer.activation) in ACTIVATION_OPS:
            fn = ACTIVATION_OPS[_activation_name(layer.activation)] or (lambda x: x)
            return _ignore_training(fn)
        if isinstance(layer, COPIED_LEAVES):
            return copy_layer(layer, path)
        return self._inline_callable(layer, path)

    def _inline_callable(self, layer, path: str):
        def inline(*args, **kwargs):
            try:
                return self._inline(layer, path, args, kwargs)
            except FlattenError:
                raise
            except Exception as error:  # a call that needs concrete tensors: keep the layer whole
                if self.strict:
                    raise FlattenError(f"{path} ({type(layer).__name__}) cannot be inlined: {error}") from error
                return self._keep_whole(layer, path)(*args, **kwargs)
        return inline

    def _keep_whole(self, layer, path: str):
        if self.strict:
            raise FlattenError(f"{path} ({type(layer).__name__}) cannot be rewritten for quantization")
        self.opaque.append(f"{path} ({type(layer).__name__})")
        return copy_layer(layer, path)

    def _inline(self, layer, path: str, args, kwargs):
        anchor = next(t for t in keras.tree.flatten((args, kwargs)) if isinstance(t, keras.KerasTensor))
        if isinstance(layer, keras.Sequential):
            x = args[0]
            for sub in layer.layers:
                x = self.callable_for(sub, path)(x, **kwargs)
            return x
        if isinstance(layer, keras.Model) and hasattr(layer, "_run_through_graph"):  # a nested functional model
            return layer._run_through_graph(args[0], operation_fn=lambda op: self.callable_for(op, path))
        replaced = {}
        for name, value in list(vars(layer).items()):
            if name in _KERAS_INTERNALS:
                continue
            if isinstance(value, keras.layers.Layer):
                replaced[name] = value
                object.__setattr__(layer, name, self.callable_for(value, path))
            elif isinstance(value, (list, tuple)) and value and all(isinstance(v, keras.layers.Layer) for v in value):
                replaced[name] = value
                object.__setattr__(layer, name, [self.callable_for(v, path) for v in value])
            elif isinstance(value, keras.Variable):
                replaced[name] = value
                object.__setattr__(layer, name, self._weight_tensor(value, f"{path}.{name}")(anchor))
        try:
            return layer.call(*args, **kwargs)
        finally:
            for name, value in replaced.items():
                object.__setattr__(layer, name, value)

    def _weight_tensor(self, variable, path: str) -> WeightTensor:
        key = id(variable)
        if key not in self._done:
            layer = WeightTensor(variable.shape, trainable_value=variable.trainable, name=path)
            layer.value.assign(variable)
            self._done[key] = layer
        return self._done[key]


def logits_model(model: keras.Model) -> keras.Model:
    """The part of a trained model that ships: its first output, without a final resize to the input size.

    A model built with auxiliary heads keeps only the main logits; a model built with
    ``resize_output=True`` (a ``Resizing`` layer named ``resize_logits`` last) gives the
    logits before that resize, so a mask can be taken at the low resolution.

    Example:
        >>> from mobileseg.arch import schema_io, builder
        >>> g = schema_io.loads('''
        ... name: t
        ... branches: [{name: main, source: null, cells: [{op: conv, width: 8, stride: 2},
        ...     {op: conv, width: 8, stride: 2}, {op: conv, width: 8, stride: 2}]}]
        ... head: {op: light, inputs: [{branch: main}], width: 8}
        ... ''')
        >>> model = builder.build_model(g, 3, (32, 32), resize_output=True)
        >>> model.output.shape, logits_model(model).output.shape
        ((None, 32, 32, 3), (None, 4, 4, 3))
    """
    output = model.outputs[0]
    history = output._keras_history
    if isinstance(history.operation, keras.layers.Resizing) and history.operation.name == "resize_logits":
        output = history.operation._inbound_nodes[history.node_index].input_tensors[0]
    if output is model.outputs[0] and len(model.outputs) == 1:
        return model
    return keras.Model(model.inputs, output, name=model.name)


def copy_layer(layer: keras.layers.Layer, name: str) -> keras.layers.Layer:
    """A new layer with ``layer``'s config (under ``name``) and a copy of its weights.

    Example:
        >>> dense = keras.layers.Dense(2)
        >>> dense.build((None, 3))
        >>> twin = copy_layer(dense, "twin")
        >>> twin.name, twin is dense, bool((twin.kernel.numpy() == dense.kernel.numpy()).all())
        ('twin', False, True)
    """
    config = layer.get_config()
    config["name"] = name
    twin = type(layer).from_config(config)
    build_config = layer.get_build_config() if hasattr(layer, "get_build_config") else None
    if build_config:
        twin.build_from_config(build_config)
    if layer.weights:
        twin.set_weights(layer.get_weights())
    return twin


NORMALIZATION_PIXELS = (16, 8, 4, 2)
"""How many neighbouring pixels the image normalization takes at once, the first that divides the width."""


def _normalization_callable(layer: keras.layers.Normalization, name: str):
    """The image normalization as one depthwise conv over groups of pixels (`normalization_as_depthwise`)."""
    mean, variance = ops.convert_to_numpy(layer.mean), ops.convert_to_numpy(layer.variance)
    convs = {}  # pixels -> its conv (one layer however often the normalization is called)

    def run(x, *args, training=None, **kwargs):
        height, width, channels = x.shape[1:]
        pixels = next((p for p in NORMALIZATION_PIXELS if width and width % p == 0), 1)
        if pixels not in convs:
            convs[pixels] = normalization_as_depthwise(mean, variance, keras.backend.epsilon(), name, pixels)
        folded = convs[pixels]
        if pixels == 1:
            return folded(x)
        grouped = ops.reshape(x, (-1, height, width // pixels, channels * pixels))
        return ops.reshape(folded(grouped), (-1, height, width, channels))
    return run


def _ignore_training(fn):
    return lambda x, *args, training=None, **kwargs: fn(x)


def _activation_name(activation) -> str:
    if activation is None:
        return "none"
    name = keras.activations.serialize(activation)
    return name if isinstance(name, str) else str(name.get("config", name))


def _plain_relu(layer) -> bool:
    return (not layer.negative_slope and not layer.threshold
            and layer.max_value in (None, 6.0))


def _foldable(layer) -> bool:
    config = layer.get_config()
    return (config.get("data_format", "channels_last") == "channels_last" and config.get("groups", 1) == 1
            and _activation_name(layer.activation) in (*ACTIVATION_OPS, "linear")
            and not getattr(layer, "lora_enabled", False))


def _conv_callable(conv, bn, activation: str, name: str):
    """``conv`` (+ ``bn``) as a `FoldedConv`, followed by ``activation`` (fused when ReLU/ReLU6)."""
    config = conv.get_config()
    if isinstance(conv, keras.layers.DepthwiseConv2D):
        kind, channels = "depthwise", conv.kernel.shape[-2]
    elif isinstance(conv, keras.layers.Dense):
        kind, channels = "dense", conv.kernel.shape[0]
    else:
        kind, channels = "conv", conv.kernel.shape[-2]
    own_activation = _activation_name(conv.activation)
    if own_activation not in ("none", "linear") and (bn is not None or activation not in ("none", "linear")):
        raise FlattenError(f"{name}: a convolution with its own activation followed by more is not supported")
    if own_activation not in ("none", "linear"):
        activation = own_activation
    activation = "none" if activation == "linear" else activation
    fused = activation if activation in FUSED_ACTIVATIONS else "none"
    folded = FoldedConv(
        kind, filters=config.get("filters", config.get("units")), kernel_size=config.get("kernel_size", 1),
        strides=config.get("strides", 1), padding=config.get("padding", "valid"),
        dilation_rate=config.get("dilation_rate", 1), depth_multiplier=config.get("depth_multiplier", 1),
        use_bias=conv.use_bias, batch_norm=bn is not None, epsilon=bn.epsilon if bn is not None else 1e-3,
        activation=fused, name=name)
    folded.build((None, None, None, channels) if kind != "dense" else (None, channels))
    weights = [conv.kernel.numpy()] + ([conv.bias.numpy()] if conv.use_bias else [])
    if bn is not None:
        if not is_last_axis(bn.axis, 2 if kind == "dense" else 4):
            raise FlattenError(f"{name}: batch normalization over axis {bn.axis} cannot be folded")
        ones, zeros = ops.ones_like(bn.moving_mean), ops.zeros_like(bn.moving_mean)
        gamma = bn.gamma if bn.gamma is not None else ones
        beta = bn.beta if bn.beta is not None else zeros
        weights += [ops.convert_to_numpy(v) for v in (gamma, beta, bn.moving_mean, bn.moving_variance)]
    folded.set_weights(weights)
    after = None if fused == activation else ACTIVATION_OPS.get(activation)
    if activation not in ACTIVATION_OPS:
        raise FlattenError(f"{name}: unknown activation {activation!r}")

    banded = None
    if kind == "depthwise" and needs_bands(folded.kernel_size):  # past XNNPACK's depthwise kernels
        banded = banded_depthwise(config, weights, conv.use_bias, bn is not None, folded.epsilon, fused, name)

    def run(x, *args, training=None, **kwargs):
        y = banded(x) if banded is not None and None not in x.shape[1:3] else folded(x)
        return after(y) if after is not None else y
    return run


def is_last_axis(axis, rank: int) -> bool:
    """Whether a batch normalization's ``axis`` is the last axis of a rank-``rank`` tensor."""
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    return axes in ([-1], [rank - 1])


def _as_int8_layer_norm(layer: keras.layers.LayerNormalization) -> LayerNorm:
    twin = LayerNorm.from_config(layer.get_config())
    twin.build_from_config(layer.get_build_config())
    twin.set_weights(layer.get_weights())
    return twin
