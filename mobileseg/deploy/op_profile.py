"""Where int8 time goes: the fp32 and int8 files of one network profiled op type by op type.

`compare_files` profiles both files interleaved with LiteRT's profiler
(`mobileseg.litert_op_profile`: XNNPACK's own per-operator timing, one thread) and sums each
file's nodes by op type. XNNPACK names an operator with its data types (``Convolution (NHWC,
F32) IGEMM`` in the fp32 file, ``Convolution (NHWC, QC8) IGEMM`` in the int8 one); `op_type`
drops them so that the same op of both files lands on one row, whose ``speedup`` is fp32 ms
over int8 ms: above 1 the op gains from int8, below 1 it loses. Ops of one file only (the
built-in ``CAST`` of a uint8 image into an fp32 file, the int8 ``Convert`` of a quantize step)
have 0 ms in the other. XNNPACK calls its int8 lookup-table unary operators (a hard swish or
sigmoid that ran as a float island, the image's uint8 -> int8 step) ``Invalid Unary Op``.

The files' whole times (thread CPU, `mobileseg.litert_measure`) are given by the caller; each
file's ``ops_vs_whole`` is the sum of its op times over its whole time, the error of the profile
(1.0: the ops account for the invoke exactly; the nodes' wall-clock times on a loaded machine
and LiteRT's work between ops move it).

Example:
    >>> from mobileseg.android.op_profile import OpProfileRow
    >>> from mobileseg.litert_op_profile import OpProfile
    >>> fp32 = OpProfile("a", 10, (OpProfileRow("Convolution (NHWC, F32) IGEMM", "0", 2.0),
    ...                            OpProfileRow("CAST", "1", 0.5)), 2.6)
    >>> int8 = OpProfile("b", 10, (OpProfileRow("Convolution (NHWC, QC8) IGEMM", "0", 0.5),), 0.55)
    >>> compare(fp32, int8)
    [{'op': 'Convolution (NHWC) IGEMM', 'fp32_ms': 2.0, 'int8_ms': 0.5, 'fp32_nodes': 1, 'int8_nodes': 1, \
'speedup': 4.0}, {'op': 'CAST', 'fp32_ms': 0.5, 'int8_ms': 0.0, 'fp32_nodes': 1, 'int8_nodes': 0, 'speedup': None}]
"""

from __future__ import annotations

import os
import re
from collections import defaultdict

from mobileseg.litert_op_profile import CLEAN, OpProfile, profile_interleaved

_DATA_TYPE = re.compile(r"^(?:B?F\d+|Q[A-Z]\d+[A-Z]?|X\d+)$")  # F32, BF16, QC8, QS8, QU8, QD8, QC8W, X32, X8
ROUNDS, ROUND_RUNS = 5, 10
METHOD = (f"LiteRT profiler (ai_edge_litert CompiledModel, CPU/XNNPACK, 1 thread): XNNPACK's per-operator "
          f"wall-clock times, each node the mean of its runs within {CLEAN[0]:.0%} (at least {CLEAN[1]:g} us) of its "
          "fastest (runs the scheduler interrupted left out), summed by op type; whole-file times are thread CPU")


def op_type(tag: str) -> str:
    """An op's type without its data types, so that the fp32 and int8 forms of one op match.

    Example:
        >>> op_type("Fully Connected (NC, QS8, QC8W) GEMM"), op_type("Fully Connected (NC, F32) GEMM")
        ('Fully Connected (NC) GEMM', 'Fully Connected (NC) GEMM')
        >>> op_type("Mean (ND) Reduce2"), op_type("Convert (NC, F32, QS8)"), op_type("Copy (NC, X32)"), op_type("ARG_MAX")
        ('Mean (ND) Reduce', 'Convert (NC)', 'Copy (NC)', 'ARG_MAX')
    """
    def strip(match: re.Match) -> str:
        kept = [part.strip() for part in match.group(1).split(",") if not _DATA_TYPE.match(part.strip())]
        return f"({', '.join(kept)})" if kept else ""

    name = re.sub(r"\(([^)]*)\)", strip, tag)
    name = re.sub(r"(?<=[a-z])\d$", "", name.strip())  # XNNPACK's "Reduce2" (fp32) is "Reduce" (int8)
    return re.sub(r"\s+", " ", name)


def _by_type(profile: OpProfile) -> tuple[dict[str, float], dict[str, int]]:
    ms, nodes = defaultdict(float), defaultdict(int)
    for node in profile.nodes:
        ms[op_type(node.op)] += node.ms_per_run
        nodes[op_type(node.op)] += 1
    return ms, nodes


def compare(fp32: OpProfile, int8: OpProfile) -> list[dict]:
    """One row per op type of either file: ms in each, nodes in each, fp32 ms over int8 ms; costliest first."""
    fp32_ms, fp32_nodes = _by_type(fp32)
    int8_ms, int8_nodes = _by_type(int8)
    rows = []
    for op in sorted(set(fp32_ms) | set(int8_ms), key=lambda op: -max(fp32_ms.get(op, 0.0), int8_ms.get(op, 0.0))):
        a, b = round(fp32_ms.get(op, 0.0), 4), round(int8_ms.get(op, 0.0), 4)
        rows.append({"op": op, "fp32_ms": a, "int8_ms": b, "fp32_nodes": fp32_nodes.get(op, 0),
                     "int8_nodes": int8_nodes.get(op, 0), "speedup": round(a / b, 3) if a > 0 and b > 0 else None})
    return rows


def compare_files(fp32_file: str | os.PathLike | bytes, int8_file: str | os.PathLike | bytes, fp32_ms: float | None,
                  int8_ms: float | None, *, rounds: int = ROUNDS, round_runs: int = ROUND_RUNS, seed: int = 0) -> dict:
    """Profile an fp32 and an int8 file of one network, interleaved, and compare them op type by op type.

    Args:
        fp32_file, int8_file: ``.tflite`` paths or flatbuffer bytes.
        fp32_ms, int8_ms: the files' whole times (thread CPU medians), or None when not measured.
        rounds, round_runs: profiled invokes of each file: ``rounds`` rounds of ``round_runs``.
        seed: seeds the random inputs.

    Returns:
        ``{"fp32_ms", "int8_ms", "speedup", "fp32_ops_ms", "int8_ops_ms", "fp32_ops_vs_whole",
        "int8_ops_vs_whole", "runs", "method", "ops": compare(...)}``.

    Raises:
        ValueError, FileNotFoundError, RuntimeError: as `mobileseg.litert_op_profile.profile_interleaved`.
    """
    fp32, int8 = profile_interleaved([fp32_file, int8_file], rounds=rounds, round_runs=round_runs, seed=seed)

    def ratio(a, b):
        return round(a / b, 3) if a and b else None

    return {"fp32_ms": fp32_ms, "int8_ms": int8_ms, "speedup": ratio(fp32_ms, int8_ms),
            "fp32_ops_ms": fp32.total_ms, "int8_ops_ms": int8.total_ms,
            "fp32_ops_vs_whole": ratio(fp32.total_ms, fp32_ms), "int8_ops_vs_whole": ratio(int8.total_ms, int8_ms),
            "runs": fp32.runs, "method": METHOD, "ops": compare(fp32, int8)}


def export_profile(fp32_path: str | os.PathLike, int8_path: str | os.PathLike, fp32_ms: float | None,
                   int8_ms: float | None, seed: int = 0) -> dict:
    """The export report's ``op_profile``: `compare_files` of its two files, with their names; a profile LiteRT
    cannot make is ``{"error": ...}`` (the export goes on without it). A temporary fp32 file (hidden name,
    ``.fp32_reference.tflite``) is named ``None``."""
    try:
        profile = compare_files(fp32_path, int8_path, fp32_ms, int8_ms, seed=seed)
    except (RuntimeError, ValueError, OSError) as error:
        return {"error": f"{type(error).__name__}: {error}"}
    fp32_name = os.path.basename(fp32_path)
    return {"fp32_file": None if fp32_name.startswith(".") else fp32_name, "int8_file": os.path.basename(int8_path),
            **profile}


def format_profile(profile: dict, top: int = 12) -> str:
    """The op-type table printed by ``python -m mobileseg.export``: the ``top`` costliest op types.

    Example:
        >>> print(format_profile({"fp32_ms": 3.0, "int8_ms": 1.0, "speedup": 3.0, "fp32_ops_ms": 2.9,
        ...     "int8_ops_ms": 0.9, "fp32_ops_vs_whole": 0.967, "int8_ops_vs_whole": 0.9, "ops": [
        ...     {"op": "Convolution (NHWC) IGEMM", "fp32_ms": 2.9, "int8_ms": 0.8, "speedup": 3.625},
        ...     {"op": "Convert (NC)", "fp32_ms": 0.0, "int8_ms": 0.1, "speedup": None}]}))
        op (XNNPACK operator or LiteRT kernel)        fp32 ms  int8 ms  x fp32
        Convolution (NHWC) IGEMM                        2.900    0.800    3.62
        Convert (NC)                                    0.000    0.100
        sum of the ops                                  2.900    0.900
        whole file (thread CPU)                         3.000    1.000    3.00
    """
    def cell(value, fmt="8.3f"):
        return f"{'':>8}" if value is None else format(value, fmt)

    rows = [f"{'op (XNNPACK operator or LiteRT kernel)':<44} {'fp32 ms':>8} {'int8 ms':>8} {'x fp32':>7}"]
    for op in profile["ops"][:top]:
        rows.append(f"{op['op'][:44]:<44} {cell(op['fp32_ms'])} {cell(op['int8_ms'])} "
                    f"{'' if op['speedup'] is None else format(op['speedup'], '7.2f'):>7}".rstrip())
    if len(profile["ops"]) > top:
        rows.append(f"({len(profile['ops']) - top} more op types in report.json)")
    rows.append(f"{'sum of the ops':<44} {cell(profile['fp32_ops_ms'])} {cell(profile['int8_ops_ms'])}")
    rows.append(f"{'whole file (thread CPU)':<44} {cell(profile['fp32_ms'])} {cell(profile['int8_ms'])} "
                f"{'' if profile['speedup'] is None else format(profile['speedup'], '7.2f'):>7}".rstrip())
    return "\n".join(rows)
