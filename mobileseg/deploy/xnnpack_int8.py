"""Rewrites of a converted int8 flatbuffer so that XNNPACK runs all of it, in one partition.

An op XNNPACK refuses stays with LiteRT's built-in kernels and splits the delegated graph
into partitions, each boundary a copy and a hand-over. The conditions, from
``tensorflow/lite/delegates/xnnpack/xnnpack_delegate.cc`` and measured on one-op models
with ai-edge-litert 2.3 (tests/deploy/test_xnnpack_int8.py):

- SOFTMAX, HARD_SWISH, GELU, RELU, RELU6, RSQRT, EXP, AVERAGE_POOL_2D, DIV, MAXIMUM, ...
  (`FLOAT_ONLY_OPS`) are delegated for float32 tensors only (``VisitSoftmaxNode``,
  ``VisitUnaryNode``, ``VisitBinaryNode``, ``VisitAveragePool2DNode`` call
  ``CheckTensorFloat32Type``/``CheckTensorFloatType``); a standalone int8 RELU6 falls out
  even with identical input and output quantization. XNNPACK does take DEQUANTIZE
  (int8/uint8 -> float32) and QUANTIZE (float32 -> int8, or int8 -> int8 at another scale),
  so `float_islands` runs each such op in float between a DEQUANTIZE and a QUANTIZE to
  the op's own output quantization: the graph stays in one partition and the op computes
  what quantization-aware training modelled (the float function of the int8 input,
  rounded to the output's int8 grid), not TFLite's fixed-point approximation of it.
- ADD and SUB on int8 are delegated only when each input's scale over the output's lies in
  [2^-10, 2^8) (XNNPACK's qs8 add/subtract operators refuse other ratios). A layer norm's
  ``variance + epsilon`` breaks it: the constant epsilon gets a scale a million times
  smaller than the variance (measured on a SegFormer-B0 file: exactly its 26 such ADDs and
  2 SUBs fell out, 29 partitions). `float_islands` runs those in float as well.
- BATCH_MATMUL of two int8 tensors is delegated only when the second operand has zero
  point 0 (XNNPACK's ``qint8 x qint8`` batch matrix multiply; measured: an operand with zero
  point -43 falls out). Quantization-aware models quantize that operand symmetrically
  (`mobileseg.quant.qat`); `symmetric_matmul_operands` requantizes any other one (a
  post-training file) to zero point 0 with one int8 QUANTIZE, scale ``max|range| / 127``.
- QUANTIZE from the uint8 image to int8 is refused (XNNPACK requantizes only within one
  type) and its built-in kernel is slow (0.37 ms for a 360x480 image, measured):
  `dequantize_uint8_inputs` makes it DEQUANTIZE (uint8 -> float32) + QUANTIZE (float32 ->
  int8), both delegated, values unchanged (the image is exact in both).

- A normalisation's statistics path (``x * x`` -> MEAN or SUM -> ``+ epsilon`` -> RSQRT, then
  the MULs by that RSQRT: a layer norm's variance, an L2 norm's sum of squares) runs in float
  as ONE island (`_statistics_paths`): only the squared tensor is dequantized and only the
  MULs' outputs (the normalised values, bounded) are quantized. The int8 variance cannot hold the
  spread of a trained network's per-token variances (a range of [0, 1547] rounds every variance
  below 3 to 0, whose RSQRT is infinite), and quantization-aware training keeps the same
  tensors float (`mobileseg.quant.float_statistics`), so the file computes what QAT modelled.
  That island gives the same bits on every CPU (`_exact_statistics`): XNNPACK's float MEAN
  and SUM add in an order that depends on the vector width, and its RSQRT (and SQRT) are
  approximations that differ by an ulp between x86 (AVX-512) and aarch64 (NEON), so a
  normalised value on an int8 rounding boundary rounded one way here and the other way on
  ARM (issue 19: the one disagreeing file of benchmarks/results/arm_parity.json, 2 int8
  steps at its output; tests/arm/test_divergence.py). So the square is taken of the
  value in int8 steps, ``ROUND(t / scale)``, an integer, which makes the reduction's sum
  exact in any order (while ``channels * max|q - zero point|^2 < 2^24``: up to 258 channels
  at any zero point), scaled back by ``scale^2`` after it; and the RSQRT becomes
  ``EXP(-0.5 * LOG(v))``, whose XNNPACK kernels give the same bits on both (measured on 1.3
  million values, within 5e-7 of the exact value). SOFTMAX, whose sum has the same order
  problem, is not rewritten (README, Android section).

`for_xnnpack` applies all four. Tensors are only appended, so the signature's tensor
indices stay valid; new operators take version 1 (float) or the version the converter
gives the same kernel on int8.
"""

from __future__ import annotations

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

FLOAT_ONLY_OPS = frozenset({
    "SOFTMAX", "HARD_SWISH", "GELU", "RELU", "RELU6", "RELU_N1_TO_1", "RSQRT", "SQRT", "EXP", "ABS", "NEG",
    "SQUARE", "FLOOR", "CEIL", "ROUND", "SIN", "COS", "AVERAGE_POOL_2D", "DIV", "MAXIMUM", "MINIMUM",
    "SQUARED_DIFFERENCE", "PRELU", "LOG",
})
"""Builtin ops XNNPACK delegates on float32 tensors only (xnnpack_delegate.cc, ai-edge-litert 2.3)."""
SCALE_RATIO_OPS = frozenset({"ADD", "SUB"})
"""Int8 ops XNNPACK delegates only when every input-to-output scale ratio is in `SCALE_RATIOS`."""
SCALE_RATIOS = (2.0 ** -10, 2.0 ** 8)

_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
_INT8, _UINT8, _FLOAT32 = schema.TensorType.INT8, schema.TensorType.UINT8, schema.TensorType.FLOAT32


def for_xnnpack(flatbuffer: bytes) -> bytes:
    """An int8 flatbuffer with every rewrite of this module applied (a float one comes back unchanged).

    Example:
        >>> from mobileseg.deploy.tflite_convert import op_names
        >>> from mobileseg.latency.testing import tiny_tflite
        >>> op_names(for_xnnpack(tiny_tflite("softmax", mode="int8")))
        ['CONV_2D', 'DEQUANTIZE', 'SOFTMAX', 'QUANTIZE', 'CONV_2D']
    """
    model = _read(flatbuffer)
    changed = _float_islands(model) + _symmetric_matmul_operands(model) + _dequantize_uint8_inputs(model)
    return _write(model) if changed else flatbuffer


def float_islands(flatbuffer: bytes, ops: frozenset[str] = FLOAT_ONLY_OPS) -> bytes:
    """Every int8 op named in ``ops``, an ADD/SUB whose scales XNNPACK refuses, or an op of a
    normalisation's statistics path, run in float: DEQUANTIZE its int8
    inputs, QUANTIZE its outputs back (not between two ops of one statistics path)."""
    model = _read(flatbuffer)
    return _write(model) if _float_islands(model, ops) else flatbuffer


def symmetric_matmul_operands(flatbuffer: bytes) -> bytes:
    """Every int8 BATCH_MATMUL's second operand requantized to zero point 0 when it has another."""
    model = _read(flatbuffer)
    return _write(model) if _symmetric_matmul_operands(model) else flatbuffer


def dequantize_uint8_inputs(flatbuffer: bytes) -> bytes:
    """Every QUANTIZE uint8 -> int8 replaced by DEQUANTIZE uint8 -> float32 and QUANTIZE float32 -> int8."""
    model = _read(flatbuffer)
    return _write(model) if _dequantize_uint8_inputs(model) else flatbuffer


# -- the rewrites, on the flatbuffer's object API ------------------------------------------------
def _float_islands(model, ops: frozenset[str] = FLOAT_ONLY_OPS) -> int:
    count = 0
    for graph in model.subgraphs:
        statistics_roles, kept_float = _statistics_paths(model, graph)
        floats = {}  # int8 tensor -> the float tensor holding its value (dequantized, or computed and kept float)
        rewritten = []
        for position, op in enumerate(graph.operators):
            name = _op_name(model, op)
            tensors = [graph.tensors[i] for i in (*op.inputs, *op.outputs) if i >= 0]
            refused = (name in ops or position in statistics_roles
                       or (name in SCALE_RATIO_OPS and _scale_ratio_refused(graph, op)))
            if not refused or not any(t.type == _INT8 for t in tensors):
                rewritten.append(op)
                continue
            inputs = []
            for index in op.inputs:
                if index >= 0 and graph.tensors[index].type == _INT8:
                    if index not in floats:
                        floats[index] = _add_float_tensor(model, graph, index, "dequantized")
                        rewritten.append(_operator(model, "DEQUANTIZE", 2, [index], [floats[index]]))
                    index = floats[index]
                inputs.append(index)
            outputs, requantize = [], []
            for index in op.outputs:
                if graph.tensors[index].type == _INT8:
                    computed = _add_float_tensor(model, graph, index, "float")
                    if index in kept_float:
                        floats[index] = computed
                    else:
                        requantize.append(_operator(model, "QUANTIZE", 1, [computed], [index]))
                    index = computed
                outputs.append(index)
            op.inputs, op.outputs = inputs, outputs
            op.opcodeIndex = _opcode(model, name, 1)
            exact = (_exact_statistics(model, graph, op, *statistics_roles[position])
                     if position in statistics_roles else [op])
            rewritten += [*exact, *requantize]
            count += 1
        graph.operators = rewritten
    return count


def _statistics_paths(model, graph) -> tuple[dict[int, tuple[str, float]], set[int]]:
    """The operators of every normalisation statistics path, and the tensors inside them.

    A path is ``MUL(t, t)`` of an int8 ``t`` -> ``MEAN`` or ``SUM`` -> ``ADD`` of a constant ->
    ``RSQRT``, each the only consumer of the one before, and every MUL that takes the RSQRT
    (the normalised output). The tensors kept float are the square, the reduction, the sum and
    the RSQRT; the MULs' outputs stay int8. The Keras side of the same rule:
    `mobileseg.quant.float_statistics`.

    Returns:
        ``{position: (role, scale)}`` for each op of a path, role ``square``, ``reduce``, ``add``,
        ``rsqrt`` or ``normalise`` (the MULs), with ``t``'s int8 scale (`_exact_statistics`);
        and the indices of the tensors kept float.
    """
    consumers = {}
    for position, op in enumerate(graph.operators):
        for index in set(op.inputs):
            consumers.setdefault(index, []).append(position)
    outputs = set(graph.outputs)

    def only_consumer(index, names):
        users = consumers.get(index, [])
        ok = len(users) == 1 and index not in outputs and _op_name(model, graph.operators[users[0]]) in names
        return users[0] if ok else None

    roles, kept = {}, set()
    for position, op in enumerate(graph.operators):
        if _op_name(model, op) != "MUL" or not _is_square(op):
            continue
        scale = _per_tensor(graph.tensors[op.inputs[0]])[0]
        if graph.tensors[op.inputs[0]].type != _INT8 or not scale:
            continue
        square = op.outputs[0]
        reduce = only_consumer(square, ("MEAN", "SUM"))
        add = reduce is not None and only_consumer(graph.operators[reduce].outputs[0], ("ADD",))
        if not add or not any(_is_constant(model, graph, i) for i in graph.operators[add].inputs):
            continue
        rsqrt = only_consumer(graph.operators[add].outputs[0], ("RSQRT",))
        scaled = rsqrt is not None and consumers.get(graph.operators[rsqrt].outputs[0], [])
        if not scaled or graph.operators[rsqrt].outputs[0] in outputs or any(
                _op_name(model, graph.operators[user]) != "MUL" for user in scaled):
            continue
        path = [position, reduce, add, rsqrt]
        roles.update({p: (role, scale) for p, role in zip(path, ("square", "reduce", "add", "rsqrt"), strict=True)})
        roles.update({p: ("normalise", scale) for p in scaled})
        kept.update(graph.operators[p].outputs[0] for p in path)
    return roles, kept


def _exact_statistics(model, graph, op, role: str, scale: float) -> list:
    """The operators that compute statistics op ``op`` (already float) to the same bits on every CPU.

    ``square``: ``ROUND(t * (1 / scale))`` (t in int8 steps: an exact integer) squared;
    ``reduce``: the MEAN or SUM of those integer squares (an exact sum), times ``scale^2``;
    ``rsqrt``: ``EXP(-0.5 * LOG(v))``; any other role: ``[op]``. See the module docstring.
    """
    if role == "square":
        steps, integers = (_add_float_tensor(model, graph, op.inputs[0], suffix) for suffix in ("steps", "integers"))
        to_steps = _operator(model, "MUL", 1, [op.inputs[0], _add_constant(model, graph, 1.0 / scale, "1/scale")],
                             [steps])
        op.inputs = [integers, integers]
        return [to_steps, _operator(model, "ROUND", 1, [steps], [integers]), op]
    if role == "reduce":
        result = op.outputs[0]
        op.outputs = [_add_float_tensor(model, graph, result, "in_steps")]
        return [op, _operator(model, "MUL", 1, [op.outputs[0], _add_constant(model, graph, scale * scale, "scale^2")],
                              [result])]
    if role == "rsqrt":
        result = op.outputs[0]
        logarithm, half = (_add_float_tensor(model, graph, result, suffix) for suffix in ("log", "-log/2"))
        op.opcodeIndex, op.outputs = _opcode(model, "LOG", 1), [logarithm]
        return [op, _operator(model, "MUL", 1, [logarithm, _add_constant(model, graph, -0.5, "-1/2")], [half]),
                _operator(model, "EXP", 1, [half], [result])]
    return [op]


def _is_square(op) -> bool:
    return len(op.inputs) == 2 and op.inputs[0] == op.inputs[1]


def _is_constant(model, graph, index: int) -> bool:
    buffer = model.buffers[graph.tensors[index].buffer] if index >= 0 else None
    return buffer is not None and buffer.data is not None and len(buffer.data) > 0


def _scale_ratio_refused(graph, op) -> bool:
    """Whether an int8 input's scale over the output's falls outside `SCALE_RATIOS`."""
    output = _per_tensor(graph.tensors[op.outputs[0]])[0]
    if graph.tensors[op.outputs[0]].type != _INT8 or not output:
        return False
    scales = [_per_tensor(graph.tensors[i])[0] for i in op.inputs if i >= 0 and graph.tensors[i].type == _INT8]
    return any(scale is not None and not SCALE_RATIOS[0] <= scale / output < SCALE_RATIOS[1] for scale in scales)


def _symmetric_matmul_operands(model) -> int:
    count = 0
    for graph in model.subgraphs:
        rewritten = []
        for op in graph.operators:
            if _op_name(model, op) == "BATCH_MATMUL" and len(op.inputs) > 1:
                operand = graph.tensors[op.inputs[1]]
                scale, zero = _per_tensor(operand)
                if operand.type == _INT8 and zero not in (None, 0):
                    low, high = (-128 - zero) * scale, (127 - zero) * scale
                    symmetric = _add_tensor(model, graph, operand, "symmetric", _INT8,
                                            (max(-low, high) / 127.0, 0))
                    rewritten.append(_operator(model, "QUANTIZE", 2, [op.inputs[1]], [symmetric]))
                    op.inputs = [op.inputs[0], symmetric, *op.inputs[2:]]
                    count += 1
            rewritten.append(op)
        graph.operators = rewritten
    return count


def _dequantize_uint8_inputs(model) -> int:
    count = 0
    for graph in model.subgraphs:
        rewritten = []
        for op in graph.operators:
            if (_op_name(model, op) == "QUANTIZE" and graph.tensors[op.inputs[0]].type == _UINT8
                    and graph.tensors[op.outputs[0]].type == _INT8):
                dequantized = _add_float_tensor(model, graph, op.inputs[0], "dequantized")
                rewritten.append(_operator(model, "DEQUANTIZE", 1, [op.inputs[0]], [dequantized]))
                op.inputs = [dequantized]
                op.opcodeIndex = _opcode(model, "QUANTIZE", 1)
                count += 1
            rewritten.append(op)
        graph.operators = rewritten
    return count


# -- flatbuffer plumbing ----------------------------------------------------------------------
def _read(flatbuffer: bytes):
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(flatbuffer), 0))


def _write(model) -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _op_name(model, op) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    return _NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")


def _opcode(model, name: str, version: int) -> int:
    """The index of the operator code ``name`` at ``version``, added when missing."""
    builtin = getattr(schema.BuiltinOperator, name)
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin and code.version == version:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), version
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _operator(model, name: str, version: int, inputs: list[int], outputs: list[int]):
    op = schema.OperatorT()
    op.opcodeIndex = _opcode(model, name, version)
    op.inputs, op.outputs = list(inputs), list(outputs)
    return op


def _per_tensor(tensor) -> tuple[float | None, int | None]:
    quantization = tensor.quantization
    if quantization is None or quantization.scale is None or len(quantization.scale) != 1:
        return None, None
    return float(quantization.scale[0]), int(quantization.zeroPoint[0])


def _add_constant(model, graph, value: float, name: str) -> int:
    """Append a float32 scalar constant tensor holding ``value``; return its index."""
    tensor = schema.TensorT()
    tensor.shape = np.asarray([], np.int32)
    tensor.type = _FLOAT32
    tensor.name = f"mobileseg/exact_statistics/{name}"
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(np.float32(value).tobytes(), np.uint8)
    model.buffers.append(buffer)
    tensor.buffer = len(model.buffers) - 1
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _add_float_tensor(model, graph, like: int, suffix: str) -> int:
    return _add_tensor(model, graph, graph.tensors[like], suffix, _FLOAT32, None)


def _add_tensor(model, graph, like, suffix: str, dtype: int, quantization: tuple[float, int] | None) -> int:
    """Append a tensor shaped like ``like`` (an empty buffer: computed at run time); return its index."""
    tensor = schema.TensorT()
    tensor.shape = None if like.shape is None else np.asarray(like.shape, np.int32)
    tensor.shapeSignature = None if like.shapeSignature is None else np.asarray(like.shapeSignature, np.int32)
    tensor.type = dtype
    name = like.name.decode() if isinstance(like.name, bytes) else like.name
    tensor.name = f"{name}/{suffix}"
    if quantization is not None:
        params = schema.QuantizationParametersT()
        params.scale = np.asarray([quantization[0]], np.float32)
        params.zeroPoint = np.asarray([quantization[1]], np.int64)
        tensor.quantization = params
    model.buffers.append(schema.BufferT())
    tensor.buffer = len(model.buffers) - 1
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1
