"""benchmarks/pareto_camvid.py: issue 13's camvid_full rows and the dominance of searched networks over references."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from pareto_camvid import RECIPES, camvid_rows, dominance  # noqa: E402
from train_references_camvid import RECIPE as FULL_RECIPE  # noqa: E402


def _result(network, searched, ms, miou):
    return {"network": network, "searched": searched, "epochs": 120, "size": "360x480", "float_test_miou": miou + 0.01,
            "int8_test_miou": miou, "int8_ms": ms, "int8_latency": {"xnnpack_partitions": 1 if searched else 3}}


RESULTS = [_result("mobilenetv3_small_lraspp", False, 4.0, 0.451), _result("searched_trial3", True, 3.5, 0.47),
           _result("segformer_b0", False, 20.0, 0.55)]


def test_rows_follow_the_issue_layout_in_percent():
    rows = camvid_rows(RESULTS)
    assert [list(row) for row in rows] == [["network", "kind", "epochs", "input_size", "float_test_miou",
                                            "int8_test_miou", "int8_ms", "partitions"]] * 3
    assert rows[1] == {"network": "searched_trial3", "kind": "searched", "epochs": 120, "input_size": "360x480",
                       "float_test_miou": 48.0, "int8_test_miou": 47.0, "int8_ms": 3.5, "partitions": 1}
    assert [row["kind"] for row in rows] == ["reference", "searched", "reference"]


def test_a_searched_network_dominates_only_slower_and_worse_references():
    assert {row["reference"]: row["dominated_by"] for row in dominance(RESULTS)} == {
        "mobilenetv3_small_lraspp": ["searched_trial3"], "segformer_b0": []}


def test_the_full_recipe_is_the_one_the_references_trained_with():
    assert RECIPES["full"] == (FULL_RECIPE, "360x480")
