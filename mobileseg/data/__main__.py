"""`python -m mobileseg.data check --data KIND:PATH`: find every bad file of a data set.

Prints one line per problem ("[split] PATH: PROBLEM"), then a summary line with the
pairs per split. Exit status: 0 when clean, 1 when problems were found, 2 when the data
set cannot be opened at all (unknown kind, missing folder, bad classes.yaml) or the
command line is wrong.

Example::

    python -m mobileseg.data check --data camvid:../shared/datasets/camvid
    python -m mobileseg.data check --data folder:my_data --splits train,val --progress
"""

from __future__ import annotations

import sys

from absl import app, flags

from mobileseg.data.checks import check_source
from mobileseg.data.problems import DataError
from mobileseg.data.sources import DATA_FLAG_HELP, open_source

COMMANDS = ("check",)

_DATA = flags.DEFINE_string("data", None, DATA_FLAG_HELP)
_SPLITS = flags.DEFINE_list("splits", None, "Splits to check (default: all the data set has).")
_PROGRESS = flags.DEFINE_bool("progress", None, "Show a progress bar (default: only when stderr is a terminal).")


def main(argv: list[str]) -> int:
    """Run the command named in argv[1]; returns the exit status."""
    if len(argv) != 2 or argv[1] not in COMMANDS:
        raise app.UsageError(f"usage: python -m mobileseg.data {{{','.join(COMMANDS)}}} --data KIND:PATH", exitcode=2)
    if not _DATA.value:
        raise app.UsageError(f"--data is required. {DATA_FLAG_HELP}", exitcode=2)
    try:
        source = open_source(_DATA.value)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = check_source(source, _SPLITS.value, progress=_PROGRESS.value)
    for problem in report.problems:
        print(f"[{problem.split}] {problem}")
    print(report.summary())
    return 0 if report.clean else 1


if __name__ == "__main__":
    app.run(main)
