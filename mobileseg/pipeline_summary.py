"""The pipeline's summary: what the run's files say (`summarize`), as a table (`format_summary`).

`write_summary` writes it to ``DIR/summary.json`` with the time plan's planned against actual seconds,
and `record_measured_latency` writes the shipped network's measured latency back into ``pareto.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from mobileseg.latency.validation import error_pct
from mobileseg.pipeline_settings import PipelineSettings
from mobileseg.pipeline_steps import duration, read_json_dict
from mobileseg.run.run_dir import RunDir


def summarize(settings: PipelineSettings, steps: Mapping[str, dict] | None = None) -> dict:
    """The run's results, read from its files: mIoU float and int8, latency, size, file paths.

    Values a file does not hold are None.
    """
    run = RunDir(settings.run_dir)
    report = read_json_dict(run.file(RunDir.EXPORT_REPORT)) or {}
    float_entry = report.get("float") or {}
    int8_name = Path(RunDir.INT8).name
    int8 = next((e for e in report.get("files", []) if Path(str(e.get("file"))).name == int8_name), {})
    bench = read_json_dict(settings.bench_json) or {}
    device = (bench.get("devices") or [{}])[0]
    record = next((r for r in device.get("records", []) if Path(str(r.get("model"))).name == int8_name), {})
    fingerprint = device.get("fingerprint") or {}
    latency = record.get("median_ms")
    int8_path = run.file(RunDir.INT8)
    chosen = (read_json_dict(run.file(RunDir.PARETO_JSON)) or {}).get("chosen") or {}
    return {
        "run_dir": str(run.path),
        "space": str(settings.space), "data": settings.data, "split": report.get("split"),
        "arch_name": _arch_name(run.file(RunDir.ARCH)), "search_reason": chosen.get("reason"),
        "search_latency_ms": chosen.get("latency_ms"), "search_miou": chosen.get("miou"),
        "composition": chosen.get("composition"),
        "latency_error_pct": error_pct(chosen.get("latency_ms"), latency),
        "eval_images": float_entry.get("images"),
        "miou_float": float_entry.get("miou"), "miou_int8": int8.get("miou"),
        "latency_ms": latency, "threads": record.get("threads"),
        "device": fingerprint.get("cpu") or fingerprint.get("model") or fingerprint.get("serial"),
        "target_latency_ms": settings.target_latency_ms,
        "meets_target": None if latency is None else latency <= settings.target_latency_ms,
        "size_mb": round(int8_path.stat().st_size / 2 ** 20, 3) if int8_path.is_file() else None,
        "files": {
            "Pareto plot": str(run.file(RunDir.PARETO_PNG)), "Pareto front": str(run.file(RunDir.PARETO_JSON)),
            "architecture": str(run.file(RunDir.ARCH)), "float model": str(run.file(RunDir.MODEL)),
            "int8 TFLite": str(int8_path), "export report": str(run.file(RunDir.EXPORT_REPORT)),
            "benchmark": str(settings.bench_json), "run report": str(run.file(RunDir.REPORT_HTML)),
        },
        "steps": dict(steps or {}),
    }


def write_summary(settings: PipelineSettings, steps: Mapping[str, dict], seconds: float) -> dict:
    """Summarize the run (`summarize`, the time plan's rows), record the measured latency in ``pareto.json``
    and write ``DIR/summary.json``; returns the summary.

    Raises:
        mobileseg.atomic_write.AtomicWriteError: a file could not be written.
    """
    from mobileseg.atomic_write import write_atomic
    from mobileseg.pipeline_budget import planned_vs_actual

    summary = summarize(settings, steps)
    summary["time_plan"] = planned_vs_actual(settings.run_dir, steps, seconds)
    record_measured_latency(settings.run_dir, summary)
    write_atomic(RunDir(settings.run_dir).file(RunDir.SUMMARY), json.dumps(summary, indent=2) + "\n")
    return summary


def record_measured_latency(run_dir: Path, summary: dict) -> None:
    """Write the shipped network's measured latency and the prediction's error into ``pareto.json``."""
    from mobileseg.atomic_write import write_atomic

    path = RunDir(run_dir).file(RunDir.PARETO_JSON)
    report = read_json_dict(path)
    if not report or not isinstance(report.get("chosen"), dict) or summary.get("latency_ms") is None:
        return
    report["chosen"].update(measured_ms=summary["latency_ms"], measured_threads=summary.get("threads"),
                            measured_device=summary.get("device"), latency_error_pct=summary["latency_error_pct"])
    write_atomic(path, json.dumps(report, indent=2) + "\n")


def _arch_name(path: Path) -> str | None:
    from mobileseg.bounded_yaml import read_yaml
    from mobileseg.text_files import TextFileError

    try:
        data = read_yaml(path)
    except TextFileError:
        return None
    return data.get("name") if isinstance(data, dict) else None


def format_summary(summary: dict) -> str:
    """The summary as a two-column table, the files last.

    Example:
        >>> print(format_summary({"run_dir": "r", "arch_name": "demo_trial3", "search_reason": "the knee",
        ...     "search_latency_ms": 1.2, "search_miou": 0.3, "split": "test", "eval_images": 2,
        ...     "miou_float": 0.5, "miou_int8": 0.25, "latency_ms": 1.5, "threads": 1, "device": "X",
        ...     "target_latency_ms": 2.0, "meets_target": True, "size_mb": 0.031,
        ...     "files": {"Pareto plot": "r/pareto.png"},
        ...     "steps": {"search": {"ran": False, "seconds": 0.0}, "train": {"ran": True, "seconds": 75.0}}}))
        summary of r
          searched network             demo_trial3: the knee (predicted 1.200 ms, proxy mIoU 30.00 %)
          composition                  -
          mIoU float (test, 2 images)  50.00 %
          mIoU int8 (test, 2 images)   25.00 %
          int8 latency                 1.500 ms median, 1 thread(s), X (target 2 ms: met)
          int8 size                    0.031 MB
          steps                        search skipped, train 1m15s
          Pareto plot                  r/pareto.png (missing)
    """
    from mobileseg.timebudget.time_plan import format_planned_vs_actual

    def percent(value):
        return "-" if value is None else f"{100 * value:.2f} %"

    where = f"({summary.get('split') or '-'}, {summary.get('eval_images') or '-'} images)"
    if summary.get("latency_ms") is None:
        latency = "-"
    else:
        verdict = "met" if summary["meets_target"] else "MISSED"
        latency = (f"{summary['latency_ms']:.3f} ms median, {summary['threads']} thread(s), {summary['device']} "
                   f"(target {summary['target_latency_ms']:g} ms: {verdict})")
    steps = ", ".join(f"{step} {duration(info['seconds'])}" if info["ran"] else f"{step} skipped"
                      for step, info in summary.get("steps", {}).items())
    searched = summary.get("arch_name") or "-"
    if summary.get("search_latency_ms") is not None:
        searched += (f": {summary['search_reason']} (predicted {summary['search_latency_ms']:.3f} ms, "
                     f"proxy mIoU {percent(summary.get('search_miou'))})")
    if summary.get("latency_error_pct") is not None:
        latency += f"; predicted {summary['search_latency_ms']:.3f} ms, error {summary['latency_error_pct']:+.1f} %"
    rows = [("searched network", searched), ("composition", summary.get("composition") or "-"),
            (f"mIoU float {where}", percent(summary.get("miou_float"))),
            (f"mIoU int8 {where}", percent(summary.get("miou_int8"))),
            ("int8 latency", latency),
            ("int8 size", "-" if summary.get("size_mb") is None else f"{summary['size_mb']:.3f} MB"),
            ("steps", steps or "-"),
            *([("time planned / actual", format_planned_vs_actual(summary["time_plan"]))]
              if summary.get("time_plan") else []),
            *((name, path if Path(path).exists() else f"{path} (missing)") for name, path in summary["files"].items())]
    width = max(len(name) for name, _ in rows)
    return "\n".join([f"summary of {summary['run_dir']}", *(f"  {name.ljust(width)}  {value}" for name, value in rows)])

