"""``mobileseg COMMAND [flags]``: the console script, one subcommand per command module.

``mobileseg search --space default ...`` is ``python -m mobileseg.search --space default ...``:
the command's module runs as ``__main__`` with the remaining arguments (``runpy``), so its flags,
its ``--help``, its output and its exit codes are the same, and only that command's imports are
paid for. ``mobileseg --help`` lists the commands and the shipped files that a flag may name by
short name (`mobileseg.shipped_files`). ``python -m mobileseg`` is the same as ``mobileseg``.

Example:
    >>> main(["--help"])  # doctest: +ELLIPSIS
    usage: mobileseg COMMAND [flags]   (mobileseg COMMAND --help: the command's flags)
    <BLANKLINE>
    commands:
      pipeline  ...
    0
"""

from __future__ import annotations

import runpy
import sys
import textwrap
from collections.abc import Sequence

from mobileseg.shipped_files import shipped_names

COMMANDS = {
    "pipeline": ("mobileseg.pipeline", "the whole flow: search, train, QAT int8 export, bench, in one run folder"),
    "search": ("mobileseg.search", "search a space: latency table, supernet, NSGA-II, Pareto front, arch.yaml"),
    "train": ("mobileseg.train", "train a genotype on a data set (resumable)"),
    "export": ("mobileseg.export", "export a trained run: int8 (QAT/PTQ), fp16, fp32, ONNX, with checks"),
    "evaluate": ("mobileseg.evaluate", "mIoU and per-class IoU of a .keras or .tflite model"),
    "predict": ("mobileseg.predict", "colourised predictions of images"),
    "bench": ("mobileseg.bench", "time TFLite files with LiteRT here, or on phones over adb"),
    "report": ("mobileseg.report", "a run folder as one self-contained report.html"),
    "summary": ("mobileseg.summary", "params, MACs and per-block table of a genotype"),
    "zoo": ("mobileseg.zoo", "the reference networks side by side: params, MACs, latency"),
    "latency": ("mobileseg.latency", "build, calibrate and validate the block latency table"),
    "data": ("mobileseg.data", "check a data set, file by file"),
    "arm": ("mobileseg.arm", "the ARM check's runner (inside the emulated aarch64 python)"),
}
"""``{subcommand: (module run as __main__, what it does)}``: every command module of the package."""


def usage() -> str:
    """The text of ``mobileseg --help``: the commands, and the shipped files flags may name."""
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: mobileseg COMMAND [flags]   (mobileseg COMMAND --help: the command's flags)", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {about}" for name, (_, about) in COMMANDS.items()]
    lines += ["", "shipped files, named by path (search_space/default.yaml) or short name (default):"]
    for what, kind in (("spaces (--space)", "space"), ("genotypes (ARCH, --arch, --references)", "genotype"),
                       ("export profiles (--target)", "profile")):
        lines += textwrap.wrap(", ".join(shipped_names(kind)), 100, initial_indent=f"  {what}: ",
                               subsequent_indent="    ")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mobileseg COMMAND [flags]`` (``argv``: the words after ``mobileseg``; default ``sys.argv[1:]``).

    Returns:
        0 after ``--help`` or a command that returned; 2 for no or an unknown command (one line on
        stderr). A command that exits (``sys.exit``) exits with its own code.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"], ["help"]):
        print(usage())
        return 0
    if not argv or argv[0] not in COMMANDS:
        problem = f"unknown command {argv[0]!r}" if argv else "no command given"
        print(f"mobileseg: {problem}; expected one of {', '.join(COMMANDS)} (mobileseg --help)",
              file=sys.stderr)
        return 2
    module, _ = COMMANDS[argv[0]]
    sys.argv = [sys.argv[0], *argv[1:]]  # runpy sets argv[0] to the module's file, as python -m does
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return 0
