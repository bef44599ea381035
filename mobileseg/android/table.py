"""One text table comparing models x settings x phones, from a `benchmark_on_devices` report."""

from __future__ import annotations

from collections.abc import Sequence

_COLUMNS = ("model", "threads", "delegate", "device", "avg ms", "std ms", "median ms",
            "p95 ms", "init ms", "peak MB", "runs", "vs best")
_NUMERIC = {"threads", "avg ms", "std ms", "median ms", "p95 ms", "init ms", "peak MB", "runs",
            "vs best"}


def _fmt(value: float | int | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _device_label(fingerprint: dict) -> str:
    model = fingerprint.get("model") or "?"
    return f"{model} [{fingerprint.get('id', '?')}]"


def _render(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = []
    for index, row in enumerate(rows):
        cells = [cell.rjust(width) if _COLUMNS[i] in _NUMERIC else cell.ljust(width)
                 for i, (cell, width) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def format_table(devices_result: dict) -> str:
    """One comparison table: a row per model x setting x phone, fastest model marked 1.00x.

    Rows are grouped by setting (threads, delegate), then phone, then model in the order
    measured, so the models compared on one phone sit together; ``vs best`` is each row's
    mean over the fastest model's mean for the same phone and setting. Failed measurements
    show their error; a phone that stopped early is listed under the table.

    Args:
        devices_result: the dict returned by `benchmark_on_devices`.

    Returns:
        The table as text (no trailing newline).

    Example:
        >>> fp = {"id": "R58M", "model": "Pixel 7"}
        >>> rec = lambda m, avg: {"model_name": m, "threads": 4, "delegate": "xnnpack",
        ...     "avg_ms": avg, "std_ms": 0.1, "median_ms": None, "p95_ms": None,
        ...     "init_ms": 20.0, "peak_mb": 31.5, "runs": 50}
        >>> print(format_table({"devices": [{"fingerprint": fp,
        ...     "records": [rec("a.tflite", 8.0), rec("b.tflite", 12.0)]}]}))
        model     threads  delegate  device          avg ms  std ms  median ms  p95 ms  init ms  peak MB  runs  vs best
        --------  -------  --------  --------------  ------  ------  ---------  ------  -------  -------  ----  -------
        a.tflite        4  xnnpack   Pixel 7 [R58M]    8.00    0.10          -       -    20.00     31.5    50    1.00x
        b.tflite        4  xnnpack   Pixel 7 [R58M]   12.00    0.10          -       -    20.00     31.5    50    1.50x
    """
    entries = devices_result.get("devices", [])
    measured = []  # (setting, device index, model index, record, device label)
    model_order: dict[str, int] = {}
    for device_index, entry in enumerate(entries):
        label = _device_label(entry.get("fingerprint", {}))
        for record in entry.get("records", []):
            name = record.get("model_name") or str(record.get("model", "?"))
            model_order.setdefault(name, len(model_order))
            setting = (record.get("threads", 0), record.get("delegate", ""))
            measured.append((setting, device_index, model_order[name], record, label, name))
    measured.sort(key=lambda item: item[:3])

    best: dict[tuple, float] = {}
    for setting, device_index, _, record, _, _ in measured:
        avg = record.get("avg_ms")
        if avg is not None:
            key = (setting, device_index)
            best[key] = min(avg, best.get(key, avg))

    rows = [list(_COLUMNS)]
    for setting, device_index, _, record, label, name in measured:
        avg = record.get("avg_ms")
        common = [name, str(setting[0]), setting[1], label]
        if avg is None:
            error = record.get("error") or {}
            rows.append(common + [f"error: {error.get('type', 'no result')}"] + ["-"] * 7)
            continue
        ratio = avg / best[(setting, device_index)] if best[(setting, device_index)] else None
        rows.append(common + [
            _fmt(avg), _fmt(record.get("std_ms")), _fmt(record.get("median_ms")),
            _fmt(record.get("p95_ms")), _fmt(record.get("init_ms")),
            _fmt(record.get("peak_mb"), 1), _fmt(record.get("runs")),
            "-" if ratio is None else f"{ratio:.2f}x"])
    text = _render(rows) if len(rows) > 1 else "(no measurement)"
    notes = []
    for entry in entries:
        error = entry.get("error")
        if error:
            notes.append(f"{_device_label(entry.get('fingerprint', {}))} stopped: "
                         f"{error.get('message', error)}")
    for _, _, _, record, label, name in measured:
        if record.get("avg_ms") is None and record.get("error"):
            notes.append(f"{name} on {label}: {record['error'].get('message')}")
    return text + ("\n\n" + "\n".join(notes) if notes else "")
