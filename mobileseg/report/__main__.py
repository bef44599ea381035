"""``python -m mobileseg.report --run_dir DIR [--samples N]``: the run report, ``DIR/report.html``.

One self-contained page (inline CSS and SVG, images as data: URIs, no script and no URL, so it
opens offline and can be mailed): the Pareto plot and front, the chosen network drawn as its
branches and cells, per-class IoU and the confusion matrices of the float and int8 models on
the test split (val when there is none), ``--samples`` test images with both models'
predictions overlaid, the chosen network's latency block by block against the measured int8
file, and the export's checks with the benchmark (`mobileseg.report.sections`). Parts the run
does not have yet say "not in this run". The page is written atomically and its path printed;
``python -m mobileseg.pipeline`` writes it at the end of every run.

Exit codes: 0 written; 1 it could not be written (`mobileseg.atomic_write.AtomicWriteError`);
2 bad input: ``--run_dir`` missing, not a folder, or a folder that holds no run.

Example:
    python -m mobileseg.report --run_dir runs/demo
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def define_flags(flag_values=None) -> None:
    """Declare the flags (at start-up only, so importing this module declares nothing)."""
    from absl import flags

    flag_values = flags.FLAGS if flag_values is None else flag_values
    flags.DEFINE_string("run_dir", None, "The run folder (of python -m mobileseg.pipeline, or of its steps).",
                        flag_values=flag_values)
    flags.DEFINE_integer("samples", 4, "Test images shown with their predictions (0: none).", lower_bound=0,
                         flag_values=flag_values)
    flags.DEFINE_bool("progress", True, "Show the evaluation's progress bars on stderr.", flag_values=flag_values)


def run(flag_values, argv: Sequence[str]) -> int:
    """Write the report as the parsed flags say; returns the exit code."""
    from mobileseg.atomic_write import AtomicWriteError, write_atomic
    from mobileseg.console import keep_native_log_in
    from mobileseg.report.run_folder import NotARunError, open_run
    from mobileseg.report.sections import report_html
    from mobileseg.run.run_dir import RunDir

    if len(argv) > 1:
        print(f"mobileseg.report: error: unexpected arguments {list(argv[1:])}", file=sys.stderr)
        return 2
    if not flag_values.run_dir:
        print("mobileseg.report: error: --run_dir required", file=sys.stderr)
        return 2
    try:
        folder = open_run(flag_values.run_dir)
    except NotARunError as error:
        print(f"mobileseg.report: error: --run_dir {error}", file=sys.stderr)
        return 2
    keep_native_log_in(folder.path)
    page = report_html(folder, samples=flag_values.samples, progress=flag_values.progress)
    try:
        write_atomic(folder.path / RunDir.REPORT_HTML, page)
    except AtomicWriteError as error:
        print(f"mobileseg.report: error: {error}", file=sys.stderr)
        return 1
    print(folder.path / RunDir.REPORT_HTML)
    return 0


def main() -> None:
    """Entry point of ``python -m mobileseg.report``."""
    from mobileseg.cli_flags import absl_main

    absl_main(define_flags, run)


if __name__ == "__main__":
    main()
