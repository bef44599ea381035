"""benchmarks/int8_profile.py: what a run keeps of the result file it adds to."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from int8_profile import kept  # noqa: E402

SETTINGS = {"size": "(360, 480)", "seed": "0", "work_dir": "/checkout_a/runs/int8_profile"}
PREVIOUS = {"command": "python benchmarks/int8_profile.py", "settings": SETTINGS,
            "rows": [{"network": "a"}, {"network": "b"}], "float_stem": [{"network": "a"}]}


def test_a_run_from_another_checkout_keeps_every_row_and_the_command():
    elsewhere = {**SETTINGS, "work_dir": "/checkout_b/runs/int8_profile"}
    assert kept(PREVIOUS, elsewhere) == {"earlier_commands": ["python benchmarks/int8_profile.py"],
                                         "rows": PREVIOUS["rows"], "float_stem": PREVIOUS["float_stem"]}


def test_a_run_measured_otherwise_or_a_first_run_keeps_nothing():
    empty = {"earlier_commands": [], "rows": [], "float_stem": []}
    assert kept(PREVIOUS, {**SETTINGS, "seed": "1"}) == empty
    assert kept({}, SETTINGS) == empty
