"""``--time_budget``, ``--dry_run`` and ``--time_plan`` of the search: the plan its stages keep to."""

from __future__ import annotations

from pathlib import Path

from mobileseg.run.exit_codes import BadInput
from mobileseg.run.run_dir import RunDir
from mobileseg.search.search_flags import SIZE_FLAGS
from mobileseg.search.search_plan import Plan, check_inputs
from mobileseg.search.stages import say


def with_time_plan(fv, plan: Plan, started: float) -> Plan | None:
    """``--time_budget``/``--dry_run``: probe, size, print and write ``DIR/plan.json``; the plan to run (None:
    a dry run, done). ``--time_plan`` alone: checked, kept to by the stages. ``started``: `time.time` at the
    command's start, which the deadlines count from.

    Raises:
        BadInput: a bad duration, or a budget for what it cannot size (another strategy or stage).
        mobileseg.timebudget.split.BudgetTooSmall, mobileseg.timebudget.time_plan.PlanError.
    """
    from mobileseg.search.time_planner import make_plan
    from mobileseg.timebudget.time_plan import budget_and_kept_plan, read_plan, write_plan

    if fv.time_plan and (fv.time_budget or fv.dry_run):
        raise BadInput("--time_plan: not with --time_budget or --dry_run (which make the plan)")
    if fv.time_plan:
        read_plan(Path(fv.time_plan))
        return plan
    if fv.strategy != "evolutionary" or fv.stage != "all":
        raise BadInput(f"--time_budget, --dry_run: for --strategy evolutionary --stage all only (not --strategy "
                       f"{fv.strategy} --stage {fv.stage})")
    budget, time_plan = budget_and_kept_plan(fv.time_budget, plan.run_dir, fv.dry_run, "search", say)
    time_plan = time_plan or make_plan(plan, budget, {name: fv[name].value for name in SIZE_FLAGS})
    say(time_plan.format())
    if fv.dry_run:
        say(f"dry run: nothing else done; the plan is in {write_plan(plan.run_dir, time_plan)}")
        return None
    for name in SIZE_FLAGS:
        fv[name].value = time_plan.sizes[name]
    time_plan.start(started)
    fv.time_plan = str(RunDir(plan.run_dir).file(RunDir.PLAN))
    plan = check_inputs(fv)  # again, at the sizes chosen
    write_plan(plan.run_dir, time_plan)
    return plan
