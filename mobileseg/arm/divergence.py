"""Which operator makes a file's output differ between this CPU and emulated aarch64 LiteRT.

`divergent_ops` marks every operator's output of the main graph as a graph output
(`every_tensor_out`: XNNPACK then writes each one out), runs the
file on one image here and in the arm64 root (`mobileseg.arm.runner.run_every_output`), and
returns the operators whose inputs are the same bits on both but whose outputs are not: the
kernels that compute differently on the two CPUs. A difference further down the graph only
propagates one of these. Issue 19 found that way that XNNPACK's float MEAN (its summation
order follows the vector width) and RSQRT (an approximation) differ by an ulp between x86 and
aarch64, and that a normalised value on an int8 rounding boundary then rounded differently
(`mobileseg.deploy.xnnpack_int8._exact_statistics` is the fix); its float SOFTMAX differs
the same way and is not fixed.
"""

from __future__ import annotations

import numpy as np

from mobileseg.arm.root import DEFAULT_CPU, ArmRoot


def every_tensor_out(flatbuffer: bytes) -> bytes:
    """The flatbuffer with every operator output of its main graph added to the graph's outputs."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(flatbuffer), 0))
    graph = model.subgraphs[0]
    outputs = [int(i) for i in graph.outputs]
    outputs += [int(i) for op in graph.operators for i in op.outputs if i >= 0 and int(i) not in outputs]
    graph.outputs = np.asarray(outputs, np.int32)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def divergent_ops(root: ArmRoot, model: bytes, image: np.ndarray, *, cpu: str = DEFAULT_CPU) -> list[dict]:
    """The operators of ``model`` whose inputs agree bit for bit here and on emulated aarch64 but whose
    outputs do not.

    Args:
        root: the arm64 root (`mobileseg.arm.root.find_root`).
        model: the flatbuffer bytes.
        image: float32 RGB [H, W, 3] in [0, 255] at the model's input size.
        cpu: the emulated CPU.

    Returns:
        ``[{"position", "op", "output", "dtype", "differing", "size", "max_difference"}]`` in execution
        order (``differing``: elements of the first output whose bits differ); empty when every tensor agrees.

    Raises:
        mobileseg.arm.parity.ArmRunError: the emulated run failed.
    """
    import tempfile
    from pathlib import Path

    from mobileseg.arm import parity, runner
    from mobileseg.litert_interpreter import builtin_interpreter

    exposed = every_tensor_out(model)
    with tempfile.TemporaryDirectory(prefix="mobileseg-divergence-") as folder:
        path = Path(folder) / "every_tensor_out.tflite"
        path.write_bytes(exposed)
        here = runner.run_every_output(path, image)
        there = parity.run_emulated_tensors(root, path, image, cpu=cpu)
    interpreter = builtin_interpreter(exposed)
    names = {detail["index"]: detail["name"] for detail in interpreter.get_tensor_details()}

    def same(index: int) -> bool:
        key = str(index)
        return key not in here or np.array_equal(here[key], there[key])

    found = []
    for op in interpreter._get_ops_details():
        if all(same(i) for i in op["inputs"] if i >= 0) and not all(same(o) for o in op["outputs"]):
            output = str(op["outputs"][0])
            a, b = here[output], there[output]
            found.append({"position": int(op["index"]), "op": op["op_name"], "output": names[op["outputs"][0]],
                          "dtype": str(a.dtype), "differing": int(np.sum(a != b)), "size": int(a.size),
                          "max_difference": float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))})
    return found
