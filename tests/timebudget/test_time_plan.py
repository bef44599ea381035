"""The plan: shares and deadlines, the printed table, plan.json, planned against actual."""

import json

import pytest

from mobileseg.run.exit_codes import BadInput
from mobileseg.timebudget.time_plan import (ORDER, PlanError, TimePlan, budget_and_kept_plan, earlier_plan,
                                            format_planned_vs_actual, planned_vs_actual, read_plan, stage_deadline,
                                            write_plan)

SIZES = {"supernet_epochs": 4, "population": 8, "generations": 3, "train_epochs": 20, "qat_epochs": 2}
ESTIMATES = {"probe": 30.0, "latency": 120.0, "supernet": 240.0, "search": 72.0, "train": 800.0, "qat": 160.0,
             "reserve": 100.0}
FACTS = {"blocks_to_measure": 40, "blocks": 120, "block_s": 3.0, "steps_per_epoch": 45}


def plan(budget=None):
    return TimePlan("pipeline", budget, dict(SIZES), dict(ESTIMATES), dict(FACTS))


def test_shares_fill_the_budget_in_stage_order_and_deadlines_count_from_the_start():
    p = plan(budget=3044.0)  # twice the estimates' 1522 s
    assert p.total_s == 1522.0
    assert p.shares() == {stage: 2 * seconds for stage, seconds in ESTIMATES.items()}
    assert p.deadline("train").at is None  # not started
    p.start(10_000.0)
    ends = [p.deadline(stage).at for stage in ORDER]
    assert ends == sorted(ends) and ends[-1] == pytest.approx(13_044.0)
    assert p.deadline("supernet").at == pytest.approx(10_000.0 + 2 * (30 + 120 + 240))
    with pytest.raises(PlanError, match="no stage 'bench'"):
        p.deadline("bench")


def test_without_a_budget_there_are_no_deadlines():
    p = plan()
    p.start(0.0)
    assert all(p.deadline(stage).at is None for stage in ORDER)
    assert p.format().startswith("plan (no time budget):")


def test_the_printed_plan_has_every_stage_with_its_size_and_estimate_and_the_total():
    lines = plan(budget=3600.0).format().splitlines()
    assert lines[0] == "plan (time budget 1h00m):"
    assert [line.split()[0] for line in lines[1:]] == [*ORDER, "total"]
    text = "\n".join(lines)
    for words in ("40 of 120 blocks to measure, 3.0 s each", "4 epochs of 45 steps", "NSGA-II, 8 x 3 networks",
                  "20 epochs", "2 QAT epochs", "outputs, export, bench", "13m20s", "25m22s"):
        assert words in text


def test_plan_json_round_trips_and_holds_the_deadlines(tmp_path):
    p = plan(budget=3600.0)
    p.start(5_000.0)
    path = write_plan(tmp_path / "run", p)
    assert read_plan(path) == p
    data = json.loads(path.read_text())
    assert [stage["stage"] for stage in data["stages"]] == list(ORDER)
    assert data["stages"][-1]["deadline"] == pytest.approx(8_600.0)
    assert stage_deadline(str(path), "train").at == p.deadline("train").at
    assert stage_deadline(None, "train").at is None


@pytest.mark.parametrize("content, words", [(None, "cannot read it"), ("{", "not a plan"), ("[]", "not a plan"),
                                            ('{"command": "search"}', "not a plan")])
def test_a_bad_plan_file_is_named(tmp_path, content, words):
    path = tmp_path / "plan.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(PlanError, match=f"{path}: {words}"):
        read_plan(path)


def test_planned_against_actual_has_a_row_per_stage_and_the_total():
    rows = planned_vs_actual(plan(budget=3600.0), {"probe": 31.0, "latency": 100.0, "supernet": 250.5, "total": 500})
    assert [row["stage"] for row in rows] == [*ORDER, "total"]
    assert rows[1] == {"stage": "latency", "planned_s": 120.0, "actual_s": 100.0}
    assert rows[3]["actual_s"] is None and rows[-1] == {"stage": "total", "planned_s": 3600.0, "actual_s": 500.0}
    assert format_planned_vs_actual(rows).startswith("probe 30.0s / 31.0s, latency 2m00s / 1m40s, ")
    assert "train 13m20s / -" in format_planned_vs_actual(rows)


def test_the_plan_of_a_started_run_with_the_same_budget_is_kept_for_the_same_command(tmp_path):
    run_dir = tmp_path / "run"
    assert earlier_plan(run_dir, 3600.0, "pipeline") is None  # no plan yet
    dry = plan(budget=3600.0)
    write_plan(run_dir, dry)
    assert earlier_plan(run_dir, 3600.0, "pipeline") is None  # a dry run's: never started
    started = plan(budget=3600.0)
    started.start(1234.0)
    write_plan(run_dir, started)
    assert earlier_plan(run_dir, 3600.0, "pipeline") == started
    assert earlier_plan(run_dir, 7200.0, "pipeline") is None and earlier_plan(run_dir, 3600.0, "search") is None
    assert earlier_plan(run_dir, None, "pipeline") is None


def test_the_budget_is_parsed_and_a_kept_plan_is_announced_but_never_for_a_dry_run(tmp_path):
    run_dir, said = tmp_path / "run", []
    assert budget_and_kept_plan("1h", run_dir, False, "pipeline", said.append) == (3600.0, None)
    assert budget_and_kept_plan(None, run_dir, False, "pipeline", said.append) == (None, None)
    assert said == []
    started = plan(budget=3600.0)
    started.start(1234.0)
    write_plan(run_dir, started)
    assert budget_and_kept_plan("1h", run_dir, False, "pipeline", said.append) == (3600.0, started)
    assert said == [f"plan: kept from the run started in {run_dir} with this budget; deadlines count from now"]
    assert budget_and_kept_plan("1h", run_dir, True, "pipeline", said.append) == (3600.0, None)  # a dry run
    assert budget_and_kept_plan("2h", run_dir, False, "pipeline", said.append) == (7200.0, None)
    assert len(said) == 1
    with pytest.raises(BadInput, match="^--time_budget .*soon"):
        budget_and_kept_plan("soon", run_dir, False, "search", said.append)
