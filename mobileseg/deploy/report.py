"""Verification of exported files: what each one is, how it runs here, how well it segments.

For every exported file `verify` records: its size; its ops and whether all are TFLite
builtins (no Flex / TF Select, no custom op); the XNNPACK partitions LiteRT makes and
the ops left out of them (`mobileseg.litert_measure`); whether the GPU delegate takes
it (``tf.lite.experimental.Analyzer`` with ``gpu_compatibility=True``); the median
latency at 1 thread (thread CPU time: this machine is shared), all files timed
interleaved so machine noise hits them alike; and
the mIoU on the val split through `mobileseg.split_evaluation.evaluate` (the same data and the
same code for every file and for the float ``.keras`` model). A profile's checks
(`mobileseg.deploy.profiles`) are then applied to the file it targets. The shipped int8 file's
op-type profile against the fp32 file (`mobileseg.deploy.op_profile`) closes the printed table.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections import Counter
from pathlib import Path

import numpy as np

GPU_OK = "looks compatible with GPU delegate"


def tflite_ops(flatbuffer: bytes) -> list[str]:
    """Operator names of a flatbuffer in execution order; custom and Flex ops by their custom code.

    Example:
        >>> from mobileseg.latency.testing import tiny_tflite
        >>> tflite_ops(tiny_tflite("conv"))
        ['CONV_2D']
    """
    from mobileseg.deploy.tflite_convert import op_names

    return op_names(flatbuffer)


def non_builtin(ops: list[str]) -> list[str]:
    """The ops that are not TFLite builtins (Flex ops, custom ops).

    Example:
        >>> non_builtin(["CONV_2D", "FlexErf", "CUSTOM", "ARG_MAX"])
        ['FlexErf', 'CUSTOM']
    """
    return [op for op in ops if op == "CUSTOM" or op.startswith("Flex") or not re.fullmatch(r"[A-Z0-9_]+", op)]


GPU_DELEGATE_OPS = frozenset({
    "ABS", "ADD", "ADD_N", "ATAN2", "AVERAGE_POOL_2D", "BATCH_MATMUL", "CAST", "CEIL", "CONCATENATION", "CONV_2D",
    "COS", "CUMSUM", "DENSIFY", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE", "DEQUANTIZE", "DIV", "DYNAMIC_UPDATE_SLICE",
    "ELU", "EMBEDDING_LOOKUP", "EQUAL", "EXP", "FLOOR", "FLOOR_DIV", "FLOOR_MOD", "FULLY_CONNECTED", "GATHER", "GELU",
    "GREATER", "GREATER_EQUAL", "HARD_SWISH", "LEAKY_RELU", "LESS", "LESS_EQUAL", "LOG", "LOGICAL_AND", "LOGISTIC",
    "LSTM", "MAXIMUM", "MAX_POOL_2D", "MEAN", "MINIMUM", "MIRROR_PAD", "MUL", "NEG", "NOT_EQUAL", "ONE_HOT", "PACK",
    "PAD", "PADV2", "POW", "PRELU", "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "RELU", "RELU6",
    "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SELECT", "SELECT_V2", "SIGN",
    "SIN", "SLICE", "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SPLIT_V", "SQRT", "SQUARE", "SQUARED_DIFFERENCE",
    "STRIDED_SLICE", "SUB", "SUM", "TANH", "TILE", "TRANSPOSE", "TRANSPOSE_CONV",
})
"""The builtin ops the GPU delegate's ``CheckGpuDelegateCompatibility`` accepts by name
(``tensorflow/lite/tools/versioning/gpu_compatibility.cc``); it also checks parameters
(broadcast shapes, strides, softmax beta...), which this name check does not."""


def gpu_compatibility(flatbuffer: bytes) -> dict:
    """Whether LiteRT's GPU delegate can take every op of a float model.

    Two checks: ``tf.lite.experimental.Analyzer(gpu_compatibility=True)`` (its warning
    lines), and the op names against `GPU_DELEGATE_OPS`. Measured here (TF 2.21 wheel):
    the Analyzer says "looks compatible" even for a model with TOPK_V2 and ARG_MAX,
    which the delegate refuses, so the name check is what catches such ops. The GPU
    delegate runs float (or dequantized) tensors; an int8 model is reported on by op
    name only.

    Returns:
        ``{"compatible": bool, "issues": [analyzer warnings and unsupported op names]}``.

    Example:
        >>> from mobileseg.latency.testing import tiny_tflite
        >>> gpu_compatibility(tiny_tflite("conv", mode="fp16"))
        {'compatible': True, 'issues': []}
    """
    import tensorflow as tf

    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        tf.lite.experimental.Analyzer.analyze(model_content=flatbuffer, gpu_compatibility=True)
    report = text.getvalue()
    issues = sorted({line.strip() for line in report.splitlines() if "GPU COMPATIBILITY WARNING" in line})
    unsupported = sorted({op for op in tflite_ops(flatbuffer) if op not in GPU_DELEGATE_OPS})
    issues += [f"{op}: not a GPU delegate op" for op in unsupported]
    return {"compatible": GPU_OK in report and not issues, "issues": issues}


def describe_tflite(path: str | Path) -> dict:
    """Size, ops, builtin-only and GPU compatibility of a ``.tflite`` file (no timing).

    Example:
        >>> import pathlib, tempfile
        >>> from mobileseg.latency.testing import tiny_tflite
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.tflite"
        >>> _ = path.write_bytes(tiny_tflite("conv"))
        >>> info = describe_tflite(path)
        >>> info["ops"], info["builtin_only"], info["gpu_compatible"]
        ({'CONV_2D': 1}, True, True)
    """
    data = Path(path).read_bytes()
    ops = tflite_ops(data)
    gpu = gpu_compatibility(data)
    return {"file": str(path), "format": "tflite", "size_mb": round(len(data) / 2 ** 20, 3),
            "ops": dict(Counter(ops)), "builtin_only": not non_builtin(ops), "non_builtin_ops": non_builtin(ops),
            "gpu_compatible": gpu["compatible"], "gpu_issues": gpu["issues"]}


def describe_onnx(path: str | Path) -> dict:
    """Size and op types of an ``.onnx`` file."""
    import onnx

    model = onnx.load(str(path))
    return {"file": str(path), "format": "onnx", "size_mb": round(Path(path).stat().st_size / 2 ** 20, 3),
            "ops": dict(Counter(node.op_type for node in model.graph.node)), "opset":
            max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None)}


def time_tflite(paths: list[str | Path], threads: int = 1, max_seconds: float = 60.0) -> dict[str, dict]:
    """Median latency, XNNPACK partitions and fallback ops of each file, timed interleaved.

    At one thread the clock is the invoking thread's CPU time (`mobileseg.litert_measure`:
    the invoke runs on the caller, so this is the latency on an idle core, unmoved by
    other processes on a shared machine); with more threads it is the wall clock.

    Returns:
        path -> ``{"latency_ms", "xnnpack_partitions", "fallback_ops", "threads", "clock", "runs"}``.
    """
    from mobileseg.litert_measure import measure_interleaved

    if not paths:
        return {}
    clock = "thread_cpu" if threads == 1 else "wall"
    records = measure_interleaved([str(p) for p in paths], threads=threads, max_seconds=max_seconds, clock=clock)
    return {str(path): {"latency_ms": round(record.median_ms, 3), "xnnpack_partitions": record.xnnpack_partitions,
                        "fallback_ops": list(record.fallback_ops), "threads": threads, "clock": clock,
                        "runs": record.runs}
            for path, record in zip(paths, records, strict=True)}


def evaluate_file(path: str | Path, source, split: str = "val", max_images: int | None = None) -> dict:
    """mIoU and pixel accuracy of a ``.keras``, ``.tflite`` or ``.onnx`` file through `mobileseg.split_evaluation.evaluate`.

    Every file goes through the shared evaluator (full-resolution labels, the model's
    input size, the same resizing), so the numbers compare.
    """
    from mobileseg.split_evaluation import evaluate
    from mobileseg.inference import Segmenter

    if Path(path).suffix == ".onnx":
        from mobileseg.deploy.onnx_export import OnnxSegmenter

        segmenter = OnnxSegmenter(path)
    else:
        segmenter = Segmenter.load(path)
    result = evaluate(segmenter, source, split, max_images=max_images, progress=False)
    return {"miou": result["miou"], "pixel_accuracy": result["pixel_accuracy"], "images": result["images"],
            "per_class_iou": result["per_class_iou"]}


def qat_coverage(qat_model, flatbuffer: bytes) -> dict:
    """Which int8 activations of a file got their range from quantization-aware training.

    Every int8 tensor an op of the file produces should carry the (scale, zero point) of
    one of the model's `ActivationQuantizer` ranges (directly, or through an op that
    keeps its input's scale); one that does not was calibrated by the converter from the
    representative set, i.e. QAT did not model it. Also lists quantizers whose range
    appears nowhere in the file (the converter dropped or merged them).

    Returns:
        ``{"quantizers": n, "calibrated_tensors": [names], "unused_quantizers": [names]}``.
    """
    from mobileseg.litert_interpreter import builtin_interpreter
    from mobileseg.quant.fake_quant import int8_parameters, quantizers

    ranges = {}
    for quantizer in quantizers(qat_model):
        low, high = quantizer.fixed_range or (float(quantizer.range_min.numpy()), float(quantizer.range_max.numpy()))
        if high - low > 1e-5:
            ranges[quantizer.name] = int8_parameters(low, high)
    interpreter = builtin_interpreter(flatbuffer)
    details = {d["index"]: d for d in interpreter.get_tensor_details()}

    def matching(params) -> list[str]:
        scale, zero = params
        return [name for name, (want_scale, want_zero) in ranges.items()
                if zero == want_zero and abs(scale - want_scale) <= 1e-5 * want_scale]

    used, calibrated = set(), []
    for op in interpreter._get_ops_details():
        for index in op["outputs"]:
            detail = details[index]
            if detail["dtype"] != np.int8 or not detail["quantization"][0]:
                continue
            names = matching(detail["quantization"])
            if names:
                used.update(names)
            else:
                calibrated.append(f"{op['op_name']} -> {detail['name']}")
    return {"quantizers": len(ranges), "calibrated_tensors": calibrated,
            "unused_quantizers": sorted(set(ranges) - used)}


def apply_checks(entry: dict, checks, fp32_latency_ms: float | None, float_miou: float | None) -> list[dict]:
    """The profile checks on one file's entry: a list of ``{check, limit, value, passed}``.

    A check whose measurement is missing (no data for mIoU) fails and says why, so a
    profile that asks for it cannot pass unverified.

    Example:
        >>> from mobileseg.deploy.profiles import Checks
        >>> entry = {"builtin_only": True, "xnnpack_partitions": 3, "size_mb": 1.0, "latency_ms": 5.0}
        >>> [(c["check"], c["passed"]) for c in apply_checks(entry, Checks(builtin_only=True, max_partitions=1,
        ...                                                                    min_speedup_vs_fp32=1.8), 10.0, None)]
        [('builtin_only', True), ('max_partitions', False), ('min_speedup_vs_fp32', True)]
    """
    results = []

    def add(name, limit, value, passed, note=None):
        item = {"check": name, "limit": limit, "value": value, "passed": bool(passed)}
        if note:
            item["note"] = note
        results.append(item)

    if checks.builtin_only:
        add("builtin_only", True, entry.get("builtin_only"), entry.get("builtin_only") is True)
    if checks.max_partitions is not None:
        value = entry.get("xnnpack_partitions")
        add("max_partitions", checks.max_partitions, value, value is not None and value <= checks.max_partitions)
    if checks.gpu_compatible:
        value = entry.get("gpu_compatible")
        add("gpu_compatible", True, value, value is True, "; ".join(entry.get("gpu_issues", [])[:3]) or None)
    if checks.max_size_mb is not None:
        add("max_size_mb", checks.max_size_mb, entry.get("size_mb"), entry.get("size_mb", np.inf) <= checks.max_size_mb)
    if checks.max_latency_ms is not None:
        value = entry.get("latency_ms")
        add("max_latency_ms", checks.max_latency_ms, value, value is not None and value <= checks.max_latency_ms)
    if checks.min_speedup_vs_fp32 is not None:
        latency = entry.get("latency_ms")
        speedup = round(fp32_latency_ms / latency, 3) if latency and fp32_latency_ms else None
        add("min_speedup_vs_fp32", checks.min_speedup_vs_fp32, speedup,
            speedup is not None and speedup >= checks.min_speedup_vs_fp32)
    if checks.max_miou_drop is not None:
        miou = entry.get("miou")
        if miou is None or float_miou is None:
            add("max_miou_drop", checks.max_miou_drop, None, False, "no mIoU: give --data (or a run config with data)")
        else:
            drop = round(100.0 * (float_miou - miou), 3)
            add("max_miou_drop", checks.max_miou_drop, drop, drop <= checks.max_miou_drop)
    return results


def format_table(report: dict) -> str:
    """The verification table printed by ``python -m mobileseg.export``.

    Example:
        >>> print(format_table({"float": {"file": "model.keras", "miou": 0.5}, "files": [
        ...     {"file": "export/model_int8.tflite", "mode": "int8", "method": "qat", "size_mb": 1.25,
        ...      "builtin_only": True, "xnnpack_partitions": 1, "fallback_ops": ["ARG_MAX"], "gpu_compatible": False,
        ...      "latency_ms": 4.2, "speedup_vs_fp32": 2.0, "miou": 0.498, "miou_drop": 0.2}]}))
        file                        mode  method  size MB  builtin  partitions  GPU  ms @1T  x fp32  mIoU %  drop
        model.keras                 float                                                             50.00
        model_int8.tflite           int8  qat        1.25  yes               1  no     4.20    2.00   49.80  0.20
          left out of XNNPACK: ARG_MAX
    """
    def cell(value, fmt):
        return "" if value is None else format(value, fmt)

    rows = [f"{'file':<27} {'mode':<5} {'method':<7} {'size MB':>7}  {'builtin':<7}  {'partitions':>10}  "
            f"{'GPU':<3} {'ms @1T':>7} {'x fp32':>7} {'mIoU %':>7} {'drop':>5}"]
    float_entry = report.get("float") or {}
    if float_entry:
        miou = float_entry.get("miou")
        rows.append(f"{Path(float_entry['file']).name:<27} {'float':<5} {'':<7} {'':>7}  {'':<7}  {'':>10}  "
                    f"{'':<3} {'':>7} {'':>7} {cell(None if miou is None else 100 * miou, '.2f'):>7}")
    for entry in report.get("files", []):
        name = Path(entry["file"]).name
        builtin = {True: "yes", False: "NO", None: ""}[entry.get("builtin_only")]
        gpu = {True: "yes", False: "no", None: ""}[entry.get("gpu_compatible")]
        miou = entry.get("miou")
        rows.append(f"{name:<27} {entry.get('mode', ''):<5} {entry.get('method') or '':<7} "
                    f"{cell(entry.get('size_mb'), '.2f'):>7}  {builtin:<7}  "
                    f"{cell(entry.get('xnnpack_partitions'), 'd'):>10}  {gpu:<3} "
                    f"{cell(entry.get('latency_ms'), '.2f'):>7} {cell(entry.get('speedup_vs_fp32'), '.2f'):>7} "
                    f"{cell(None if miou is None else 100 * miou, '.2f'):>7} {cell(entry.get('miou_drop'), '.2f'):>5}")
        if entry.get("fallback_ops"):
            left = Counter(entry["fallback_ops"])
            rows.append("  left out of XNNPACK: " + ", ".join(f"{op} x{n}" if n > 1 else op for op, n in left.items()))
        if entry.get("parity"):
            rows.append("  vs Keras: " + ", ".join(f"{k} {v:.3g}" for k, v in entry["parity"].items()))
        for check in entry.get("checks", []):
            if not check["passed"]:
                rows.append(f"  FAILED {check['check']}: {check['value']} (limit {check['limit']})"
                            + (f" - {check['note']}" if check.get("note") else ""))
    profile = report.get("op_profile") or {}
    if profile.get("ops"):
        from mobileseg.deploy.op_profile import format_profile

        rows += ["", f"where int8 time goes ({profile['int8_file']} against "
                 f"{profile.get('fp32_file') or 'an fp32 conversion'}, 1 thread, LiteRT profiler):",
                 format_profile(profile)]
    elif profile.get("error"):
        rows.append(f"no op profile: {profile['error']}")
    return "\n".join(rows)
