"""Quantization-aware models: a float model rewritten with fake quantization where TFLite has int8 tensors.

`quantize_model` first flattens the model (`mobileseg.quant.flatten`: every block
inlined, batch norms folded into their convolutions, the image normalisation as a 1x1
depthwise conv), then walks the flat graph once and places fake quantization by the
rules of the TFLite int8 converter and kernels:

- **weights**: every `FoldedConv` rounds its folded kernel per output channel
  (symmetric, narrow range); biases stay float (TFLite stores them as int32 at
  ``input_scale * weight_scale``, a rounding far below the activations').
- **activations**: an `ActivationQuantizer` (per tensor, moving-average range) on
  the output of every op that requantizes in TFLite: convolutions, ADD, SUB, MUL,
  MEAN, SUM, BATCH_MATMUL, RSQRT, EXP, LOG, GELU, HARD_SWISH, CONCATENATION, ...
  Attention is quantized as TFLite runs it: the queries and keys entering a
  BATCH_MATMUL are the int8 outputs of their projections (reshape and transpose keep
  the scale), the scaled logits are int8 (the softmax input), the SOFTMAX output has
  TFLite's fixed range [0, 255/256] (scale 1/256), and so does LOGISTIC's.
- **no quantizer** where TFLite has none of its own: after ops that keep their
  input's scale (RESHAPE, TRANSPOSE, STRIDED_SLICE, GATHER, PAD, MAX_POOL, REDUCE_MAX,
  RESIZE_*); on a convolution/ADD/SUB/MUL output whose only consumer is a ReLU or
  ReLU6 (fused into the op; the quantizer goes after the activation); on a convolution
  output whose only consumer is a hard sigmoid (its ``+ 3`` folds into the bias and
  ReLU6 fuses: ``hard_sigmoid(x) = relu6(x + 3) / 6`` is rewritten so and quantized
  after the ReLU6 and after the MUL); on integer tensors (indices).
- **concatenations**: the inputs and the output share one range (one quantizer,
  tracked on the output, applied to each input): the converter gives a CONCATENATION
  one scale, and when its inputs carry other ranges it either requantizes them or takes
  one input's range for the output, which QAT could not model. A concatenation whose inputs
  all carry one scale already (an adaptive max pool's bins: maxima of slices of one map) keeps
  that scale instead, as a reshape does.
- **a MEAN feeding RESHAPE -> TRANSPOSE** (SeaFormer's squeezed values) keeps its
  input's range: that is what the converter gives it (measured on TF 2.21).
- **batch normalization without a preceding convolution** (pre-activation blocks):
  TFLite's MUL and ADD, with the per-channel scale and offset quantized per tensor as
  the converter does (`ConstantQuantizer`) and the product quantized.
- **a normalisation's statistics** (a layer norm's ``centered * centered`` -> MEAN ->
  ``+ epsilon`` -> RSQRT; an L2 norm's sum of squares): no quantizer until the product with
  the RSQRT (`mobileseg.quant.float_statistics`: an int8 variance rounds small variances to 0,
  whose RSQRT is infinite); the export runs the same path in float inside XNNPACK.
- **constants meeting activations** (positional embeddings, a learnt residual gain):
  quantized per tensor from their values (`ConstantQuantizer`).
- **the image input**: fixed range [0, 255], i.e. the raw uint8 pixel (scale 1).
- **the second operand of an activation x activation matmul** (attention keys and
  values): quantized symmetrically, zero point 0, the only int8 BATCH_MATMUL XNNPACK
  delegates (its quantizer, wherever the operand was reshaped or transposed from, is
  made ``symmetric``).
- **a ReLU or ReLU6 after an op with a quantizer of its own** (an attention output),
  directly or through reshapes and transposes: no ReLU op; that quantizer is clipped to
  ``[0, 6]`` and clamps as the ReLU6 would (XNNPACK runs no int8 RELU/RELU6; after a
  convolution, ADD or MUL the converter fuses the ReLU instead, as before).

What stays approximate: int32 biases (rounded at ``input_scale * weight_scale``);
TFLite's integer kernels for the nonlinear ops XNNPACK runs in int8 (LOGISTIC, TANH, ...
use lookup tables or fixed-point arithmetic, within an int8 step or two of the rounded
float result; SOFTMAX, GELU, HARD_SWISH, RSQRT, EXP run in float between a DEQUANTIZE
and a QUANTIZE in the exported file, `mobileseg.deploy.xnnpack_int8`, which is what
the fake quantization computes); TFLite's fixed-point requantization (an output can land one
int8 step away from the float rounding); an input of a concatenation that only
reshapes or gathers a tensor quantized elsewhere (token merging), which the
concatenation requantizes. Every range the file uses can be checked against the
model's quantizers (`mobileseg.deploy.report.qat_coverage`): a tensor no rule covered
is listed there (the converter calibrated it from the representative set).

The rule tables the walk follows (which ops keep their input's scale, fixed ranges, fusing)
are `mobileseg.quant.qat_rules`; a quantization-aware model's ranges are filled and queried by
`mobileseg.quant.qat_calibration`.
"""

from __future__ import annotations

import collections

import keras
from keras import ops

from mobileseg.quant.fake_quant import DEFAULT_DECAY, IMAGE_RANGE, ActivationQuantizer, ConstantQuantizer
from mobileseg.quant.flatten import copy_layer, flatten_model, is_last_axis
from mobileseg.quant.float_statistics import float_statistics
from mobileseg.quant.folded import BatchNormTerms, FoldedConv
from mobileseg.quant.qat_rules import (
    FIXED_RANGE_OPS,
    FUSING_PRODUCERS,
    RELU_BOUNDS,
    RELU_COMMUTING_OPS,
    SAME_SCALE_OPS,
    WEIGHT_LAYERS,
    op_kind,
)

def quantize_model(model: keras.Model, *, decay: float = DEFAULT_DECAY, strict: bool = False,
                   input_range: tuple[float, float] | None = IMAGE_RANGE) -> keras.Model:
    """The quantization-aware version of a float model (new weights; ``model`` is untouched).

    Args:
        model: a functional float model (e.g. `mobileseg.arch.builder.build_model`'s).
        decay: moving-average decay of the activation ranges.
        strict: raise instead of keeping a block that cannot be inlined whole.
        input_range: the fixed range of every model input (the [0, 255] image), or
            None to track it like an activation.

    Returns:
        A functional model with the same inputs and outputs. Its ranges are empty until
        `calibrate` or training fills them.

    Example:
        >>> import numpy as np
        >>> from mobileseg.blocks.conv import ConvBNAct
        >>> from mobileseg.quant.qat_calibration import calibrate, uncalibrated
        >>> inputs = keras.Input((8, 8, 3))
        >>> qat = quantize_model(keras.Model(inputs, ConvBNAct(4)(inputs)))
        >>> [type(layer).__name__ for layer in qat.layers]
        ['InputLayer', 'ActivationQuantizer', 'FoldedConv', 'ActivationQuantizer']
        >>> calibrate(qat, [np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")])
        >>> tuple(qat(np.zeros((1, 8, 8, 3), "float32")).shape), uncalibrated(qat)
        ((1, 8, 8, 4), [])
    """
    flat = flatten_model(model, strict=strict)
    return _QuantizedGraph(flat, decay, input_range).build()


class _QuantizedGraph:
    """One walk over a flat graph, emitting the quantization-aware graph."""

    def __init__(self, flat: keras.Model, decay: float, input_range):
        self.flat = flat
        self.decay = decay
        self.input_range = input_range
        self.nodes = [node for depth in sorted(flat._nodes_by_depth, reverse=True)
                      for node in flat._nodes_by_depth[depth] if not node.is_input]
        self.consumers = collections.defaultdict(list)
        for node in self.nodes:
            for tensor in node.input_tensors:
                self.consumers[id(tensor)].append(node)
        self.output_ids = {id(t) for t in flat.outputs}
        self.float_statistics = float_statistics(self.nodes, self.consumers, self.output_ids)
        self.tensors: dict[int, object] = {}      # flat tensor id -> new tensor
        self.quantizer_of: dict[int, ActivationQuantizer] = {}  # flat tensor id -> the quantizer of its scale
        self.weight_only: set[int] = set()        # flat tensors that depend on weights only
        self.constants: dict[int, object] = {}    # flat tensor id -> its ConstantQuantizer output
        self.shared: dict[int, ActivationQuantizer] = {}  # concatenation node id -> its shared quantizer
        self.done: set[int] = set()               # nodes already emitted (a batch norm folded upstream)
        self.elided: set[int] = set()             # ReLU nodes a clipped quantizer upstream computes
        self.matmul_operands: list = []           # second operands of activation x activation matmuls
        self.clones: dict[int, object] = {}       # flat operation id -> its copy (a shared layer stays shared)

    def build(self) -> keras.Model:
        inputs = []
        for tensor in self.flat.inputs:
            name = tensor._keras_history.operation.name
            new = keras.Input(batch_shape=tuple(tensor.shape), dtype=tensor.dtype, name=name)
            inputs.append(new)
            quantizer = ActivationQuantizer(self.decay, fixed_range=self.input_range, name=f"{name}.quant")
            self.tensors[id(tensor)] = quantizer(new)
            self.quantizer_of[id(tensor)] = quantizer
        for node in self.nodes:
            if id(node) not in self.done:
                self._emit(node)
        self._make_symmetric(self.matmul_operands)
        outputs = [self.tensors[id(t)] for t in self.flat.outputs]
        return keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs if len(outputs) > 1 else outputs[0],
                           name=f"{self.flat.name}_qat")

    def _clone(self, operation):
        """The copy of a flat operation; one per operation, however many nodes call it."""
        if id(operation) not in self.clones:
            self.clones[id(operation)] = _clone(operation)
        return self.clones[id(operation)]

    # -- one node ---------------------------------------------------------------------------
    def _emit(self, node) -> None:
        operation = node.operation
        kind = op_kind(operation)
        if id(node) in self.elided:  # the clipped quantizer upstream already applied this ReLU
            source = node.input_tensors[0]
            self.tensors[id(node.outputs[0])] = self.tensors[id(source)]
            self.quantizer_of[id(node.outputs[0])] = self.quantizer_of.get(id(source))
            return
        if isinstance(operation, WEIGHT_LAYERS) or (
                node.input_tensors and all(id(t) in self.weight_only for t in node.input_tensors)):
            args, kwargs = node.arguments.fill_in(self.tensors)
            outputs = keras.tree.flatten(self._clone(operation)(*args, **kwargs))
            for old, new in zip(node.outputs, outputs, strict=True):
                self.tensors[id(old)] = new
                self.weight_only.add(id(old))
            return
        if kind in SAME_SCALE_OPS:
            args, kwargs = node.arguments.fill_in(self.tensors)
        else:
            args, kwargs = node.arguments.fill_in(self._with_constants_quantized(node))
        if kind == "FoldedConv":
            self._emit_conv(node, args[0])
        elif kind == "BatchNormalization":
            self._emit_batch_norm(node, args[0], operation)
        elif kind == "HardSigmoid":
            lifted = self._own_quantizer(f"{operation.name}.relu6")(ops.relu6(args[0] + 3.0))
            self._finish(node, node.outputs[0], lifted * (1.0 / 6.0), "Multiply")
        else:
            outputs = keras.tree.flatten(self._clone(operation)(*args, **kwargs))
            for old, new in zip(node.outputs, outputs, strict=True):
                self._finish(node, old, new, kind)
            if kind == "Matmul":
                self.matmul_operands.append(node.input_tensors[1])

    def _emit_conv(self, node, x) -> None:
        conv = node.operation
        bn_node = self._foldable_batch_norm(node)
        config = conv.get_config()
        config["quantize_weights"] = True
        weights = conv.get_weights()
        if bn_node is not None:
            bn = bn_node.operation
            config.update(batch_norm=True, epsilon=bn.epsilon)
            ones, zeros = ops.ones_like(bn.moving_mean), ops.zeros_like(bn.moving_mean)
            weights += [ops.convert_to_numpy(v) for v in (bn.gamma if bn.gamma is not None else ones,
                                                           bn.beta if bn.beta is not None else zeros,
                                                           bn.moving_mean, bn.moving_variance)]
            self.done.add(id(bn_node))
        twin = FoldedConv.from_config(config)
        twin.build(tuple(x.shape))
        twin.set_weights(weights)
        if bn_node is not None:
            self._finish(bn_node, bn_node.outputs[0], twin(x), "FoldedConv")
        else:
            self._finish(node, node.outputs[0], twin(x), "FoldedConv")

    def _foldable_batch_norm(self, node):
        """The batch-norm node right after a bare convolution (its only consumer), or None."""
        conv = node.operation
        users = self.consumers[id(node.outputs[0])]
        if conv.batch_norm or conv.activation != "none" or len(users) != 1 or id(node.outputs[0]) in self.output_ids:
            return None
        user = users[0]
        if op_kind(user.operation) != "BatchNormalization" or not is_last_axis(user.operation.axis,
                                                                               len(node.outputs[0].shape)):
            return None
        return user if len(user.input_tensors) == 1 else None

    def _emit_batch_norm(self, node, x, bn) -> None:
        terms = BatchNormTerms(x.shape[-1], epsilon=bn.epsilon, center=bn.center, scale=bn.scale, name=bn.name)
        terms.set_weights(bn.get_weights())
        scale, offset = terms(x)
        scaled = self._own_quantizer(f"{bn.name}.mul")(x * ConstantQuantizer(name=f"{bn.name}.scale.quant")(scale))
        self._finish(node, node.outputs[0], scaled + ConstantQuantizer(name=f"{bn.name}.offset.quant")(offset),
                     "BatchNormalization")

    # -- quantizer placement ----------------------------------------------------------------
    def _finish(self, node, old, new, kind: str) -> None:
        """Record the rewrite of flat tensor ``old`` (output of ``node``), quantized as TFLite will hold it."""
        key = id(old)
        if not _is_float(new):  # indices and other integer tensors are not quantized
            self.tensors[key] = new
            self.quantizer_of[key] = None
            return
        concats = [user for user in self.consumers[key] if op_kind(user.operation) == "Concatenate"]
        keeps_scale = kind in SAME_SCALE_OPS or self._joins_one_scale(node, kind)
        if kind == "Concatenate" and not keeps_scale:
            quantizer = self._shared_quantizer(node)
            new = quantizer(new)
            if concats and concats[0] is not node:  # feeds another concatenation: requantized there
                quantizer = self._shared_quantizer(concats[0])
                new = quantizer(new, track=False)
        elif concats and key not in self.output_ids and not (keeps_scale and self._source_quantized(node)):
            # one scale for every input of a concatenation and its output (else the converter
            # picks one input's scale and requantizes, or refuses); tracked at the output.
            # An input that only reshapes or gathers a tensor quantized elsewhere keeps that
            # scale (the converter refuses two scales around a RESHAPE/GATHER) and is
            # requantized by the concatenation.
            quantizer = self._shared_quantizer(concats[0])
            new = quantizer(new, track=False)
        elif keeps_scale:
            sources = [t for t in node.input_tensors if id(t) not in self.weight_only]
            quantizer = self.quantizer_of.get(id(sources[0])) if sources else None
        elif not self._needs_quantizer(old, kind):
            quantizer = None
        elif kind == "Mean" and self._keeps_input_scale(node):
            # the converter gives a MEAN that feeds RESHAPE -> TRANSPOSE its input's scale
            quantizer = self.quantizer_of.get(id(node.input_tensors[0]))
            if quantizer is not None:
                new = quantizer(new, track=False)
        else:
            fixed = FIXED_RANGE_OPS.get(kind)
            name = _name_of(new, kind)
            if len(node.outputs) > 1:
                name = f"{name}.{node.outputs.index(old)}"
            relu = None if fixed else self._relu_after(old)
            clip = None
            if relu is not None:  # XNNPACK runs no int8 RELU/RELU6 op: the quantizer clamps instead
                self.elided.add(id(relu))
                clip = (0.0, RELU_BOUNDS[op_kind(relu.operation)])
            quantizer = ActivationQuantizer(self.decay, fixed_range=fixed, clip=clip, name=f"{name}.quant")
            new = quantizer(new)
        self.tensors[key] = new
        self.quantizer_of[key] = quantizer

    def _relu_after(self, tensor):
        """The ReLU/ReLU6 node that ``tensor`` alone feeds, through single-use layout ops, or None.

        Such a ReLU needs no op of its own: the quantizer of ``tensor`` clamps to
        ``[0, 6]`` (or ``[0, max]``) and the layout ops between keep the values.
        """
        while id(tensor) not in self.output_ids:
            users = self.consumers[id(tensor)]
            if len(users) != 1:
                return None
            kind = op_kind(users[0].operation)
            if kind in RELU_BOUNDS:
                after = self.consumers[id(users[0].outputs[0])]
                concatenated = any(op_kind(user.operation) == "Concatenate" for user in after)
                return None if concatenated or id(users[0].outputs[0]) in self.output_ids else users[0]
            if kind not in RELU_COMMUTING_OPS:
                return None
            tensor = users[0].outputs[0]
        return None

    def _make_symmetric(self, operands) -> None:
        """Quantize the second operands of activation x activation matmuls with zero point 0.

        XNNPACK delegates an int8 BATCH_MATMUL only then (`mobileseg.deploy.xnnpack_int8`).
        An operand's scale is that of the op it was reshaped, transposed or gathered from,
        so that op's quantizer becomes symmetric; and so does the range of a concatenation
        that takes another reshape or gather of the same tensor (token merging's kept
        tokens): the converter moves that concatenation's requantization up to the shared
        source, which then reaches the matmul with the concatenation's range (TF 2.21).
        """
        chosen = {self.quantizer_of.get(id(t)) for t in operands if id(t) not in self.weight_only}
        chosen = {q for q in chosen if q is not None and q.fixed_range is None}
        for node in self.nodes:
            shared = self.shared.get(id(node))
            if shared is not None and any(self.quantizer_of.get(id(t)) in chosen for t in node.input_tensors):
                chosen.add(shared)
        for quantizer in chosen:
            quantizer.symmetric = True

    def _joins_one_scale(self, node, kind: str) -> bool:
        """Whether ``node`` concatenates tensors that all carry one scale, not its own (an
        adaptive max pool's bins: maxima of slices of one map).

        Such a concatenation keeps that scale as a reshape does: TFLite's int8 CONCATENATION
        then copies bytes. A range of its own would make the converter requantize inputs that
        it may have merged (equal slices of one tensor, deduplicated, feeding concatenations of
        other ranges), which it refuses ("same scale constraint", TF 2.21).
        """
        if kind != "Concatenate" or any(id(t) in self.weight_only for t in node.input_tensors):
            return False
        scales = {self.quantizer_of.get(id(t)) for t in node.input_tensors}
        return len(scales) == 1 and None not in scales and self.shared.get(id(node)) not in scales

    def _source_quantized(self, node) -> bool:
        sources = [t for t in node.input_tensors if id(t) not in self.weight_only]
        return bool(sources) and self.quantizer_of.get(id(sources[0])) is not None

    def _needs_quantizer(self, tensor, kind: str) -> bool:
        if id(tensor) in self.output_ids:
            return True
        if id(tensor) in self.float_statistics:
            return False  # a normalisation's variance path: float in the file too
        users = [op_kind(node.operation) for node in self.consumers[id(tensor)]]
        if len(users) == 1 and kind in FUSING_PRODUCERS and users[0] in ("Relu", "Relu6"):
            return False  # fused: the range is the activation's
        if len(users) == 1 and kind == "FoldedConv" and users[0] == "HardSigmoid":
            return False  # "+ 3" folds into the bias, ReLU6 fuses
        return True

    def _keeps_input_scale(self, node) -> bool:
        users = self.consumers[id(node.outputs[0])]
        if len(users) != 1 or op_kind(users[0].operation) != "Reshape":
            return False
        after = self.consumers[id(users[0].outputs[0])]
        return len(after) == 1 and op_kind(after[0].operation) == "Transpose"

    def _shared_quantizer(self, concat_node) -> ActivationQuantizer:
        if id(concat_node) not in self.shared:
            self.shared[id(concat_node)] = self._own_quantizer(concat_node.operation.name)
        return self.shared[id(concat_node)]

    def _with_constants_quantized(self, node) -> dict:
        """The tensor map for ``node``'s arguments, its weight-only inputs rounded as TFLite will."""
        mapping = self.tensors
        for tensor in node.input_tensors:
            if id(tensor) in self.weight_only:
                if id(tensor) not in self.constants:
                    source = tensor._keras_history.operation.name
                    self.constants[id(tensor)] = ConstantQuantizer(name=f"{source}.const_quant_{len(self.constants)}")(
                        self.tensors[id(tensor)])
                mapping = dict(mapping) if mapping is self.tensors else mapping
                mapping[id(tensor)] = self.constants[id(tensor)]
        return mapping

    def _own_quantizer(self, name: str) -> ActivationQuantizer:
        return ActivationQuantizer(self.decay, name=f"{name}.quant")


def _is_float(tensor) -> bool:
    return "float" in str(getattr(tensor, "dtype", "float32"))


def _name_of(tensor, fallback: str) -> str:
    history = getattr(tensor, "_keras_history", None)
    return history.operation.name if history is not None else fallback


def _clone(operation):
    """A fresh copy of a layer (weights copied) or of a keras.ops operation (same config)."""
    if isinstance(operation, keras.layers.Layer):
        return copy_layer(operation, operation.name)
    try:
        return type(operation).from_config(operation.get_config())
    except Exception:  # an operation whose config does not round-trip: share it (it holds no state)
        return operation
