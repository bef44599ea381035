"""LiteRT (``ai_edge_litert``) interpreters of TFLite models: read, load, check, inspect, feed.

The TFLite file is read and checked for its ``TFL3`` identifier (`read_flatbuffer`); an interpreter
is made quietly (`new_interpreter`: LiteRT's notices go to the native log, `mobileseg.console`), at
a thread count with XNNPACK or the built-in kernels (`load_interpreter`, `check_model`), or
unallocated with the built-in kernels only to read the graph as converted (`builtin_interpreter`).
`delegate_report` reads the XNNPACK partitions and the ops left to built-in kernels;
`random_inputs` fills the inputs. Timing is `mobileseg.litert_measure`'s. This module imports only
`mobileseg.console`.
"""

from __future__ import annotations

import os

import numpy as np

TFLITE_IDENTIFIER = b"TFL3"


def read_flatbuffer(model: str | os.PathLike | bytes) -> tuple[bytes, str]:
    """The bytes of a TFLite model and the name to report it under.

    Args:
        model: a ``.tflite`` path, or the flatbuffer bytes.

    Raises:
        FileNotFoundError: no such file (named).
        ValueError: the data is not a TFLite flatbuffer (named).

    Example:
        >>> read_flatbuffer(b"\\x1c\\x00\\x00\\x00TFL3" + bytes(8))[1]
        '<bytes>'
        >>> read_flatbuffer(b"not a model")
        Traceback (most recent call last):
        ...
        ValueError: <bytes> is not a TFLite model (no 'TFL3' file identifier at bytes 4-8)
    """
    if isinstance(model, (bytes, bytearray, memoryview)):
        data, name = bytes(model), "<bytes>"
    else:
        name = os.fspath(model)
        if not os.path.isfile(name):
            raise FileNotFoundError(f"no such TFLite file: {name}")
        with open(name, "rb") as handle:
            data = handle.read()
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise ValueError(f"{name} is not a TFLite model (no 'TFL3' file identifier at bytes 4-8)")
    return data, name


def new_interpreter(**kwargs):
    """An allocated ``ai_edge_litert.interpreter.Interpreter(**kwargs)``; what LiteRT prints while making
    it (its notice that it created the XNNPACK delegate, on the first allocation) goes to the native log
    (`mobileseg.console`)."""
    from ai_edge_litert.interpreter import Interpreter

    from mobileseg.console import quietly

    def make():
        interpreter = Interpreter(**kwargs)
        interpreter.allocate_tensors()
        return interpreter

    return quietly(make)


def builtin_interpreter(flatbuffer: bytes):
    """An unallocated LiteRT interpreter of ``flatbuffer`` with the built-in kernels only (no default delegate):
    the graph's ops and tensors as converted, before delegation."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    return Interpreter(model_content=flatbuffer,
                       experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)


def load_interpreter(flatbuffer: bytes, name: str, threads: int, delegate: str):
    """An allocated interpreter of ``flatbuffer`` at ``threads`` threads, XNNPACK or (``delegate="none"``) the
    built-in kernels only.

    Raises:
        ValueError: LiteRT cannot load the model, or an input has a dynamic height, width or channel count
            (named ``name``).
    """
    from ai_edge_litert.interpreter import OpResolverType

    kwargs = {"model_content": flatbuffer, "num_threads": threads}
    if delegate == "none":
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interpreter = new_interpreter(**kwargs)
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"{name}: LiteRT cannot load this model: {error}") from error
    for detail in interpreter.get_input_details():
        signature = [int(side) for side in detail["shape_signature"]]
        if any(side < 0 for side in signature[1:]):
            raise ValueError(
                f"{name}: input {detail['name']!r} has a dynamic shape {signature} (-1: any size); LiteRT would "
                f"time it at {[int(side) for side in detail['shape']]}, not at an image's size: convert it at a "
                "fixed input size (python -m mobileseg.export --input_size HxW)")
    return interpreter


def check_model(model: str | os.PathLike | bytes) -> None:
    """Raise unless ``model`` is a TFLite file LiteRT loads, with fixed input sizes (a batch of -1 runs as 1).

    Raises:
        FileNotFoundError: no such file (named).
        ValueError: not a TFLite file, one LiteRT cannot load, or a dynamic input height, width or
            channel count (named).

    Example:
        >>> from mobileseg.latency.testing import tiny_tflite
        >>> check_model(tiny_tflite("softmax"))  # 1x16x16x8 in: nothing to say
    """
    flatbuffer, name = read_flatbuffer(model)
    load_interpreter(flatbuffer, name, 1, "none")


def delegate_report(interpreter) -> tuple[int, list[str]]:
    """XNNPACK partitions and the ops left to built-in kernels, from an allocated interpreter.

    LiteRT keeps the model's own nodes in the node list and appends one
    ``DELEGATE`` node per partition. A partition replaced exactly the nodes that
    lie between its inputs and outputs, found by walking back from each output
    tensor to the partition's input tensors. The other model nodes still run.

    Args:
        interpreter: an ``ai_edge_litert.interpreter.Interpreter`` after ``allocate_tensors``.

    Returns:
        ``(partitions, fallback_ops)``, the latter in execution order, one name per node.

    Example:
        >>> from ai_edge_litert.interpreter import Interpreter
        >>> from mobileseg.latency.testing import tiny_tflite
        >>> interpreter = Interpreter(model_content=tiny_tflite("softmax"))
        >>> interpreter.allocate_tensors()
        >>> delegate_report(interpreter)
        (2, ['SOFTMAX'])
    """
    ops = interpreter._get_ops_details()
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    own = [op for op in ops if op["op_name"] != "DELEGATE"]
    producer = {int(tensor): op["index"] for op in own for tensor in op["outputs"]}
    by_index = {op["index"]: op for op in ops}
    replaced: set[int] = set()
    for node in delegates:
        boundary = {int(tensor) for tensor in node["inputs"]}
        pending = [int(tensor) for tensor in node["outputs"]]
        visited: set[int] = set()
        while pending:
            tensor = pending.pop()
            if tensor < 0 or tensor in visited or tensor in boundary:
                continue
            visited.add(tensor)
            index = producer.get(tensor)
            if index is None or index in replaced:
                continue
            replaced.add(index)
            pending.extend(int(t) for t in by_index[index]["inputs"])
    return len(delegates), [op["op_name"] for op in own if op["index"] not in replaced]


def random_inputs(interpreter, seed: int = 0) -> list[np.ndarray]:
    """Seeded random data for every input, in each tensor's dtype and shape.

    int8/uint8/int16 inputs span their full range; other integer inputs (indices)
    are 0 or 1; float inputs are uniform in [-1, 1]; bool inputs are random.
    """
    rng = np.random.default_rng(seed)
    arrays = []
    for detail in interpreter.get_input_details():
        shape, dtype = tuple(detail["shape"]), np.dtype(detail["dtype"])
        if dtype == np.bool_:
            value = rng.integers(0, 2, size=shape).astype(bool)
        elif np.issubdtype(dtype, np.integer) and dtype.itemsize <= 2:
            info = np.iinfo(dtype)
            value = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
        elif np.issubdtype(dtype, np.integer):
            value = rng.integers(0, 2, size=shape).astype(dtype)
        else:
            value = rng.uniform(-1.0, 1.0, size=shape).astype(dtype)
        arrays.append(value)
    return arrays
