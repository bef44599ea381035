"""python -m mobileseg.pipeline with a time budget: the plan before any step (and nothing else on a dry run),
the sizes and the plan handed to the steps, planned against actual in the summary."""

import json

from mobileseg import pipeline, pipeline_budget, pipeline_settings, pipeline_steps
from mobileseg.arch import schema_io
from tests.run.test_fingerprint import PINNED
from tests.test_pipeline import TINY_SPACE, fake_commands, steps_run


def budget_settings(tmp_path, **change):
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    values = dict(space=space, data="synthetic:8,size=32x32", run_dir=tmp_path / "run", target_latency_ms=4.0,
                  search_input_size=(32, 32), batch_size=2, references="none", time_budget="1h")
    return pipeline_settings.PipelineSettings(**{**values, **change})


def test_a_dry_run_prints_the_plan_and_writes_only_plan_json(tmp_path, capsys):
    settings = budget_settings(tmp_path, dry_run=True)
    assert pipeline.run_pipeline(settings, fake_commands(tmp_path, settings)) == 0
    out = capsys.readouterr().out
    assert out.startswith("plan (time budget 1h00m):\n") and "dry run: nothing else done" in out
    assert [line.split()[0] for line in out.splitlines()[1:9]] == [
        "probe", "latency", "supernet", "search", "train", "qat", "reserve", "total"]
    assert steps_run(settings) == [] and [p.name for p in settings.run_dir.iterdir()] == ["plan.json"]
    plan = json.loads((settings.run_dir / "plan.json").read_text())
    assert plan["command"] == "pipeline" and plan["started"] is None and plan["total_s"] <= 3600
    assert set(plan["sizes"]) == {"supernet_epochs", "population", "generations", "train_epochs", "qat_epochs"}
    assert plan["facts"]["train_step_s"] > 0  # a training step of a network of the space, timed
    assert plan["facts"]["costs"]["train_epoch_s"] > plan["facts"]["train_step_s"]


def test_the_steps_get_the_plan_s_sizes_and_deadlines_and_the_summary_has_planned_against_actual(tmp_path, capsys):
    settings = budget_settings(tmp_path)
    seen = {}
    fakes = fake_commands(tmp_path, settings)

    def recording(step):
        def command(s):
            seen[step] = s
            return fakes[step](s)
        return command

    explicit = {"train_epochs": 2, "qat_epochs": None}  # the fake training writes 2 epochs
    commands = {step: recording(step) for step in pipeline_settings.STEPS}
    assert pipeline.run_pipeline(settings, commands, explicit=explicit) == 0
    assert steps_run(settings) == ["search", "train", "export", "bench"]
    plan = json.loads((settings.run_dir / "plan.json").read_text())
    assert plan["started"] is not None and plan["stages"][-1]["deadline"] - plan["started"] == 3600
    sizes = {name: getattr(seen["train"], name) for name in plan["sizes"]}
    assert sizes == plan["sizes"] and sizes["train_epochs"] == 2  # given: the budget does not change it
    search = pipeline_steps.search_command(seen["search"])
    assert search[search.index("--time_plan") + 1] == str(settings.run_dir / "plan.json")
    assert search[search.index("--supernet_epochs") + 1] == str(sizes["supernet_epochs"])
    export = pipeline_steps.export_command(seen["export"])
    assert export[export.index("--qat_epochs") + 1] == str(sizes["qat_epochs"])
    summary = json.loads((settings.run_dir / "summary.json").read_text())
    rows = {row["stage"]: row for row in summary["time_plan"]}
    assert list(rows) == ["probe", "latency", "supernet", "search", "train", "qat", "reserve", "total"]
    assert rows["train"]["actual_s"] == summary["steps"]["train"]["seconds"]
    assert rows["qat"]["actual_s"] == summary["steps"]["export"]["seconds"]
    assert rows["total"]["planned_s"] == 3600 and 0 < rows["total"]["actual_s"] < 3600
    assert rows["latency"]["actual_s"] is None  # the fake search writes no search_state.json
    line = next(line for line in capsys.readouterr().out.splitlines() if "time planned / actual" in line)
    assert line.split("time planned / actual")[1].strip().startswith("probe ") and ", total 1h00m / " in line

    # The same command again keeps the plan's sizes (no probe) and finds every step done.
    assert pipeline.run_pipeline(settings, commands, explicit=explicit) == 0
    out = capsys.readouterr().out
    assert f"plan: kept from the run started in {settings.run_dir} with this budget" in out
    assert json.loads((settings.run_dir / "plan.json").read_text())["sizes"] == plan["sizes"]
    assert steps_run(settings) == ["search", "train", "export", "bench"]


def test_a_budget_too_small_for_the_pipeline_exits_2_before_any_step(tmp_path, capsys):
    settings = budget_settings(tmp_path, time_budget="10s")
    assert pipeline.run_pipeline(settings, fake_commands(tmp_path, settings)) == 2
    err = capsys.readouterr().err
    assert "mobileseg.pipeline: error: --time_budget 10.0s: too small; the smallest run on this machine" in err
    assert "1 training epoch, 1 QAT epoch" in err and steps_run(settings) == []


def chosen_run(tmp_path, train_s=3000.0):
    """A run folder as the search step leaves it (arch.yaml, the search's config section) with a started plan."""
    from mobileseg.run.run_config import record_config
    from mobileseg.timebudget.time_plan import TimePlan, write_plan

    settings = budget_settings(tmp_path)
    settings.run_dir.mkdir()
    schema_io.dump(PINNED, settings.run_dir / "arch.yaml")  # a 2-cell network
    record_config(settings.run_dir, "search", {"input_size": [32, 32], "search_scale": 0.5})
    plan = TimePlan("pipeline", 3600.0, {"supernet_epochs": 1, "population": 4, "generations": 1,
                                         "train_epochs": 5, "qat_epochs": 1},
                    {"probe": 1.0, "latency": 1.0, "supernet": 1.0, "search": 1.0, "train": train_s, "qat": 1.0,
                     "reserve": 1.0}, {"train_step_s": 0.25, "model_save_s": 0.25})
    plan.start(1000.0)
    write_plan(settings.run_dir, plan)
    return settings, plan.deadline("train").at


def test_training_is_sized_to_the_chosen_network_timed_on_the_data(tmp_path):
    settings, deadline = chosen_run(tmp_path)
    lines = []
    sized = pipeline_budget.fit_training(settings, {}, lines.append, clock=lambda: 1004.0)
    plan = json.loads((settings.run_dir / "plan.json").read_text())
    assert sized.train_epochs == 100 == plan["sizes"]["train_epochs"]  # an hour of a tiny network: the cap
    assert plan["facts"]["chosen_train_step_s"] > 0 and plan["stages"][4]["deadline"] == deadline
    assert lines[0].startswith("train: 100 epochs of ") and "the plan's 5 epochs were for a step of 0.250 s" in lines[0]


def test_the_epochs_are_those_that_end_by_the_train_deadline(tmp_path, monkeypatch):
    settings, deadline = chosen_run(tmp_path)
    monkeypatch.setattr(pipeline_budget, "_chosen_training_step", lambda s: (0.5, 2.0, 10, 0.0))  # epochs of 5.5 s
    assert pipeline_budget.fit_training(settings, {}, print, clock=lambda: deadline - 2.0 - 55.2).train_epochs == 10
    assert pipeline_budget.fit_training(settings, {}, print, clock=lambda: deadline - 2.0 - 54.8).train_epochs == 9
    assert pipeline_budget.fit_training(settings, {}, print, clock=lambda: deadline + 60.0).train_epochs == 1


def test_given_epochs_or_a_started_training_are_kept(tmp_path, monkeypatch):
    settings, _ = chosen_run(tmp_path)

    def untimed(s):
        raise AssertionError("nothing to time")

    monkeypatch.setattr(pipeline_budget, "_chosen_training_step", untimed)
    assert pipeline_budget.fit_training(settings, {"train_epochs": 7}, print) is settings
    (settings.run_dir / "train_state.json").write_text("{}")
    assert pipeline_budget.fit_training(settings, {}, print) is settings
    unbudgeted = budget_settings(tmp_path, time_budget=None)
    assert pipeline_budget.fit_training(unbudgeted, {}, print) is unbudgeted
