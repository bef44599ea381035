"""python -m mobileseg.search with a time budget: the plan of a dry run, a budget too small, stages cut at their
deadline (the search still finishes with its outputs)."""

import json
import time

import pytest

from mobileseg.arch.space import SearchSpace
from mobileseg.data.sources import open_source
from mobileseg.timebudget.deadline import CUT
from mobileseg.timebudget.time_plan import ORDER, TimePlan, write_plan
from tests.search.latency_tables import fake_table
from tests.search.test_main import DATA, files, run_cli, snapshot, state  # noqa: F401 (files: a fixture)


def budget_args(files, run_dir, *extra):  # noqa: F811
    """The search of tests/search/test_main.py with the sizes left to the budget."""
    return ["--space", str(files / "space.yaml"), "--data", DATA, "--run_dir", str(run_dir), "--input_size", "32x32",
            "--batch_size", "2", "--calib_batches", "1", "--references", "none", "--noprogress", *extra]


def test_a_dry_run_prints_the_plan_writes_plan_json_and_nothing_else(files, tmp_path):  # noqa: F811
    run_dir = tmp_path / "run"
    code, out, err = run_cli(*budget_args(files, run_dir, "--time_budget", "20m", "--dry_run", "--population", "6"))
    assert code == 0, err
    assert out.startswith("plan (time budget 20m00s):\n")
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[1:7]] == ["probe", "latency", "supernet", "search", "reserve", "total"]
    assert "8 of 8 blocks to measure" in lines[2] and f"the plan is in {run_dir / 'plan.json'}" in lines[-1]
    assert sorted(snapshot(run_dir)) == [run_dir.joinpath("plan.json").relative_to(run_dir)]  # no table, no study
    plan = json.loads((run_dir / "plan.json").read_text())
    assert plan["budget_s"] == 1200 and plan["started"] is None and plan["command"] == "search"
    assert plan["sizes"]["population"] == 6  # given: the budget does not change it
    assert plan["total_s"] <= 1200 and [stage["stage"] for stage in plan["stages"]] == [
        "probe", "latency", "supernet", "search", "reserve"]
    assert all(stage["deadline"] is None for stage in plan["stages"])
    assert plan["facts"]["sandwich_step_s"] > 0 and plan["facts"]["trial_s"] > 0


def test_a_budget_too_small_exits_2_naming_the_minimum_and_writes_nothing(files, tmp_path):  # noqa: F811
    run_dir = tmp_path / "run"
    code, out, err = run_cli(*budget_args(files, run_dir, "--time_budget", "3s"))
    assert code == 2
    assert "mobileseg.search: error: --time_budget 3.0s: too small; the smallest run on this machine (probe " in err
    assert "1 supernet epoch, 4 networks, reserve" in err and ") needs about " in err
    assert "Traceback" not in err and snapshot(run_dir) == {}


@pytest.mark.parametrize("extra, message", [
    (("--time_budget", "2 hours"), "--time_budget '2 hours': not a duration; expected e.g. 45m, 2h"),
    (("--time_budget", "1h", "--strategy", "random", "--target_latency_ms", "1"), "for --strategy evolutionary"),
    (("--time_budget", "1h", "--time_plan", "plan.json"), "--time_plan: not with --time_budget"),
    (("--time_plan", "missing.json"), "missing.json: cannot read it"),
])
def test_bad_budget_flags_exit_2_with_one_line(files, tmp_path, extra, message):  # noqa: F811
    code, _, err = run_cli(*budget_args(files, tmp_path / "run", *extra))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_stages_past_their_deadlines_are_cut_at_a_boundary_and_the_search_still_finishes(files, tmp_path):  # noqa: F811
    run_dir = tmp_path / "run"
    plan = TimePlan("search", 60.0, {"supernet_epochs": 3, "population": 4, "generations": 3},
                    {stage: 1.0 for stage in ORDER[:4] + ("reserve",)}, {})
    plan.start(time.time() - 3600)  # every deadline is an hour ago
    path = write_plan(tmp_path, plan)
    table = tmp_path / "table.json"  # every block of the space, made up: nothing to measure
    fake_table(SearchSpace.load(files / "space.yaml"), (32, 32), open_source(DATA).num_classes, path=table)
    code, out, err = run_cli(*budget_args(files, run_dir, "--supernet_epochs", "3", "--population", "4",
                                          "--generations", "3", "--steps_per_epoch", "2",
                                          "--latency_backend", f"table:{table}", "--time_plan", str(path)))
    assert code == 0, err
    assert f"supernet: {CUT} after 1 of 3 epochs: another epoch would end past " in out
    assert f"search: {CUT} after 1 of 3 generations: another generation would end past " in out
    assert "going on with what it has" in out
    assert "time planned / actual: probe 1.0s / 1.0s, latency 1.0s / " in out
    assert (run_dir / "arch.yaml").is_file() and (run_dir / "pareto.json").is_file()
    supernet = json.loads((run_dir / "supernet" / "state.json").read_text())
    assert (supernet["status"], supernet["epoch"], supernet["epochs"]) == ("cut", 1, 3)
    stages = state(run_dir)["stages"]
    assert stages["supernet"]["cut"].startswith(f"supernet: {CUT}") and stages["search"]["generations"] == 1


def test_a_training_split_of_one_batch_is_timed_over_again(files, tmp_path):  # noqa: F811
    """6 training images in batches of 4: one batch, which the probe times again rather than failing."""
    args = budget_args(files, tmp_path / "run", "--time_budget", "20m", "--dry_run", "--population", "6")
    args[args.index("--batch_size") + 1] = "4"
    code, out, err = run_cli(*args)
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "plan.json").read_text())["facts"]["sandwich_step_s"] > 0

