"""How benchmarks/train_references_camvid.py gathers networks trained at different times into one result file."""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from train_references_camvid import RECIPE, merged, recipe_of  # noqa: E402

SETTING = {"recipe": ["--lr", "2e-3"], "size": "360x480", "epochs": 120, "qat_epochs": 2}


def _report(command, *networks):
    return {**SETTING, "command": command, "results": [{"network": n, "float_test_miou": 0.5} for n in networks]}


def test_networks_of_the_same_setting_gather_and_a_rerun_replaces_its_own_row(tmp_path):
    out = tmp_path / "r.json"
    assert merged(out, _report("a", "x")) == _report("a", "x")  # no file yet
    out.write_text(json.dumps(merged(out, _report("a", "x"))))
    out.write_text(json.dumps(merged(out, _report("b", "y", "z"))))
    rerun = merged(out, {**_report("c", "y"), "results": [{"network": "y", "float_test_miou": 0.6}]})
    assert [(r["network"], r["float_test_miou"]) for r in rerun["results"]] == [("x", 0.5), ("z", 0.5), ("y", 0.6)]
    assert rerun["command"] == "c" and rerun["earlier_commands"] == ["a", "b"]


def test_a_file_of_another_setting_is_replaced(tmp_path):
    out = tmp_path / "r.json"
    out.write_text(json.dumps(_report("a", "x")))
    longer = {**_report("b", "y"), "epochs": 300}
    assert merged(out, longer) == longer


def test_the_recipe_carries_each_departure_the_flags_ask_for():
    plain = argparse.Namespace(class_weight="enet", teacher=None, distill_weight=1.0, ema=0.0, train_split="train",
                               loss_stride=None)
    assert recipe_of(plain) == RECIPE
    every = argparse.Namespace(class_weight="none", teacher=Path("t.keras"), distill_weight=2.0, ema=0.999,
                               train_split="train,val", loss_stride=1)
    recipe = recipe_of(every)
    assert recipe[recipe.index("--class_weight") + 1] == "none"
    assert recipe[len(RECIPE):] == ["--teacher", "t.keras", "--distill_weight", "2.0", "--ema", "0.999",
                                    "--train_split", "train,val", "--loss_stride", "1"]
