#!/usr/bin/env python3
"""A fake ``benchmark_model`` for the fake phones of fake_adb.py.

It reads its flags the way the real tool does (``--name=value`` only; unknown flags are
reported as unconsumed), fails like the real tool (no ``--graph``, a graph file that cannot
be opened, a GPU delegate that cannot be applied), and otherwise prints a fixture of real
output format, chosen by the phone's ``outputs`` in the state file:
``by_model`` (a name fragment of the graph -> fixture), else ``op_profile`` when
``--enable_op_profiling=true``, else ``default``. The fixture is printed whole, its own
parameter lines included, less its profiling tables without ``--enable_op_profiling=true``
and its periodic-peak memory lines without ``--report_peak_memory_footprint=true``. Like
the real tool it logs to stderr.

Faults (``device["faults"]``): ``killed_after_lines`` (print that many lines, then die
by SIGKILL, as under Android's low-memory killer), ``gpu_fails`` (``--use_gpu=true`` fails),
``delay_s`` (the run takes that long). Each call is appended to
``<phone>/benchmark_calls.jsonl`` with its start and end time.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

KNOWN = {"graph", "num_threads", "warmup_runs", "num_runs", "use_xnnpack", "use_gpu",
         "use_nnapi", "enable_op_profiling", "report_peak_memory_footprint", "min_secs",
         "warmup_min_secs", "max_secs"}
PEAK_LINES = ("via periodic monitoring", "Memory status at the end of exeution",
              "- VmRSS", "+ RssAnnon", "+ RssFile")


def log(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def fixture_lines(path: str) -> list[str]:
    with open(path) as file:
        return file.read().splitlines()


def without_op_profile(lines: list[str]) -> list[str]:
    """The output of the same run without --enable_op_profiling: no profiling tables."""
    starts = [i for i, line in enumerate(lines) if "Profiling Info for" in line
              or line.startswith("============================== Run Order")]
    ends = [i for i, line in enumerate(lines) if line.endswith(" nodes observed")]
    if not starts or not ends:
        return lines
    return lines[:starts[0]] + lines[ends[-1] + 1:]


def main(argv: list[str]) -> int:
    with open(os.environ["FAKE_ADB_STATE"]) as file:
        state = json.load(file)
    serial = os.environ["FAKE_SERIAL"]
    device = next(d for d in state["devices"] if d["serial"] == serial)
    root = os.path.join(state["root"], serial)

    flags, unconsumed = {}, []
    for arg in argv:
        name, eq, value = arg.removeprefix("--").partition("=")
        if arg.startswith("--") and eq and name in KNOWN:
            flags[name] = value
        else:
            unconsumed.append(arg)
    started = time.time()
    faults = device.get("faults", {})
    time.sleep(faults.get("delay_s", 0))
    with open(os.path.join(root, "benchmark_calls.jsonl"), "a") as file:
        file.write(json.dumps({"argv": argv, "flags": flags, "start": started,
                               "end": time.time()}) + "\n")

    if unconsumed:
        log("WARN: Unconsumed cmdline flags: " + " ".join(unconsumed))
    graph = flags.get("graph", "")
    if not graph or not os.path.isfile(graph):
        log("INFO: STARTING!")
        log("INFO: Log parameter values verbosely: [0]")
        log(f"INFO: Graph: [{graph}]")
        if not graph:
            log("ERROR: Please specify the name of your TF Lite input file with --graph")
        else:
            log(f"ERROR: Could not open '{graph}'.")
            log(f"ERROR: Failed to load model {graph}")
        log("ERROR: Benchmarking failed.")
        return 1

    outputs = device.get("outputs", {})
    fixtures = state["fixtures"]
    if flags.get("use_gpu") == "true" and faults.get("gpu_fails"):
        for line in fixture_lines(os.path.join(fixtures, "v2024_gpu_delegate_failed.txt")):
            log(line)
        return 1
    name = os.path.basename(graph)
    chosen = next((fixture for fragment, fixture in outputs.get("by_model", {}).items()
                   if fragment in name), None)
    if chosen is None and flags.get("enable_op_profiling") == "true":
        chosen = outputs.get("op_profile")
    chosen = chosen or outputs["default"]

    lines = fixture_lines(os.path.join(fixtures, chosen))
    if flags.get("enable_op_profiling") != "true":
        lines = without_op_profile(lines)
    if flags.get("report_peak_memory_footprint") != "true":
        lines = [line for line in lines if not any(mark in line for mark in PEAK_LINES)]
    kill_after = faults.get("killed_after_lines")
    for index, line in enumerate(lines):
        if kill_after is not None and index == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        log(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
