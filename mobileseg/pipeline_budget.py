"""The pipeline's time budget (``--time_budget``, ``--dry_run``): the plan before any step, and planned vs actual.

`plan_pipeline` checks the search step exactly as it will run (its own ``check_inputs`` on the command
line the pipeline would give it), probes this machine (`mobileseg.search.time_planner.make_plan`), prints
the plan and writes ``DIR/plan.json``; with a budget the returned settings carry the sizes it chose
(supernet epochs, population, generations, training and QAT epochs; flags given on the command line
win), and the search and training steps get ``--time_plan DIR/plan.json`` so each of their stages keeps
to its deadline. QAT is sized, not cut (a few epochs, minutes). The same command run again on the
folder keeps the plan's sizes (the steps resume where they stopped) and counts the deadlines from then.

`planned_vs_actual` lines the plan's stages up with what the run took: the search's stages from
``search_state.json``, training from its step, ``qat`` the export step (QAT, conversion, evaluation) and
``reserve`` the search's outputs and the bench step; ``total`` is the budget against the whole run's
wall time.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from mobileseg.run.run_dir import RunDir
from mobileseg.timebudget.time_plan import TimePlan

SIZES = ("supernet_epochs", "population", "generations", "train_epochs", "qat_epochs")
"""The pipeline's settings a time budget sizes."""


def plan_pipeline(settings, search_args: Sequence[str], explicit: Mapping[str, int | None], started: float,
                  log: Callable[[str], None] = print) -> tuple[object, TimePlan]:
    """Plan the run (see the module docstring); returns the settings at the plan's sizes and the plan.

    Args:
        settings: the checked `mobileseg.pipeline_settings.PipelineSettings`.
        search_args: the flags the pipeline gives its search step.
        explicit: sizes given on the command line (None: not given).
        started: `time.time` when the run started (its deadlines count from it; not used by a dry run).
        log: where the plan is printed.

    Raises:
        mobileseg.run.exit_codes.BadInput: the search step refuses its inputs, or a bad ``--time_budget``.
        mobileseg.timebudget.split.BudgetTooSmall: the budget cannot hold the smallest run.
    """
    from absl import flags

    from mobileseg.search.search_flags import define_flags
    from mobileseg.search.search_plan import check_inputs
    from mobileseg.search.time_planner import PipelineSizes, make_plan
    from mobileseg.timebudget.time_plan import budget_and_kept_plan, write_plan

    budget, time_plan = budget_and_kept_plan(settings.time_budget, settings.run_dir, settings.dry_run, "pipeline",
                                             log)
    if time_plan is None:
        flag_values = flags.FlagValues()
        define_flags(flag_values)
        flag_values(["mobileseg.search", *search_args, "--noprogress"])
        time_plan = make_plan(check_inputs(flag_values), budget, explicit,
                              PipelineSizes(settings.train_epochs, settings.qat_epochs, settings.eval_split))
    log(time_plan.format())
    if settings.dry_run:
        log(f"dry run: nothing else done; the plan is in {write_plan(settings.run_dir, time_plan)}")
        return settings, time_plan
    time_plan.start(started)
    write_plan(settings.run_dir, time_plan)
    return dataclasses.replace(settings, **{name: time_plan.sizes[name] for name in SIZES}), time_plan


def planned_vs_actual(run_dir: Path, steps: Mapping[str, dict], total_s: float) -> list[dict] | None:
    """Rows ``{"stage", "planned_s", "actual_s"}`` of ``DIR/plan.json`` against this run (None: no plan)."""
    from mobileseg.timebudget.time_plan import PlanError, planned_vs_actual as rows, read_plan

    try:
        plan = read_plan(RunDir(run_dir).file(RunDir.PLAN))
    except PlanError:
        return None
    try:
        stages = json.loads(RunDir(run_dir).file(RunDir.SEARCH_STATE).read_text()).get("stages", {})
    except (OSError, ValueError):
        stages = {}

    def ran(step: str) -> float | None:
        info = steps.get(step) or {}
        return info.get("seconds") if info.get("ran") else None

    def seconds(stage: str) -> float | None:
        return (stages.get(stage) or {}).get("seconds") if ran("search") is not None else None

    parts = [seconds("outputs"), ran("bench")]
    actual = {"probe": plan.estimates.get("probe"), "latency": seconds("latency"), "supernet": seconds("supernet"),
              "search": seconds("search"), "train": ran("train"), "qat": ran("export"),
              "reserve": sum(p for p in parts if p is not None) if any(p is not None for p in parts) else None,
              "total": total_s}
    return rows(plan, actual)
