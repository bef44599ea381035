"""The plan of a run: every stage with its size, its estimated seconds, its share of the budget and deadline.

Printed before any work by ``search`` and ``pipeline`` given ``--time_budget`` or ``--dry_run``, and
written atomically to ``DIR/plan.json``. When the run starts (`TimePlan.start`), each stage's share of
the budget is its estimate scaled so that the shares fill the budget, and its deadline the start plus
the shares of the stages up to it: a stage that overruns eats into the next stages' time, which then
cut earlier, so the run as a whole keeps to the budget. The steps of the pipeline read their
deadline from the file (``--time_plan DIR/plan.json``, `stage_deadline`).

Example:
    >>> plan = TimePlan("search", 100.0, {"supernet_epochs": 2, "population": 4, "generations": 1},
    ...                 {"latency": 10.0, "supernet": 20.0, "search": 8.0, "reserve": 2.0},
    ...                 {"blocks_to_measure": 5, "blocks": 9, "block_s": 2.0, "steps_per_epoch": 3})
    >>> plan.start(1000.0)
    >>> [round(plan.deadline(stage).at) for stage in ("latency", "supernet", "search")]
    [1025, 1075, 1095]
    >>> print(plan.format())  # doctest: +NORMALIZE_WHITESPACE
    plan (time budget 1m40s):
      latency   5 of 9 blocks to measure, 2.0 s each   10.0s
      supernet  2 epochs of 3 steps                     20.0s
      search    NSGA-II, 4 x 1 networks                  8.0s
      reserve   outputs                                  2.0s
      total                                             40.0s
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from mobileseg.run.run_dir import RunDir
from mobileseg.timebudget.deadline import Deadline
from mobileseg.timebudget.duration import DurationError, format_duration, parse_duration

ORDER = ("probe", "latency", "supernet", "search", "train", "qat", "reserve")


class PlanError(Exception):
    """A ``plan.json`` that cannot be read, or lacks a stage; the message names the file."""


@dataclasses.dataclass
class TimePlan:
    """The stages of one run, their sizes and estimated seconds.

    Attributes:
        command: ``search`` or ``pipeline``.
        budget_s: the time budget (None: a plan at the flags' sizes, no deadlines).
        sizes: ``supernet_epochs``, ``population``, ``generations`` [, ``train_epochs``, ``qat_epochs``].
        estimates: seconds per stage (`ORDER`).
        facts: what the estimates come from (`mobileseg.search.cost_probe`) and the blocks to measure.
        started: `time.time` at the start of the run (None: not started, e.g. a dry run).
    """

    command: str
    budget_s: float | None
    sizes: dict
    estimates: dict
    facts: dict
    started: float | None = None

    @property
    def total_s(self) -> float:
        """The estimates' sum."""
        return sum(self.estimates.values())

    def shares(self) -> dict:
        """Each stage's seconds of the budget: its estimate scaled to fill the budget (no budget: the estimate)."""
        scale = self.budget_s / self.total_s if self.budget_s and self.total_s else 1.0
        return {stage: seconds * scale for stage, seconds in self.estimates.items()}

    def start(self, now: float) -> None:
        """The run starts at ``now`` (`time.time`): the deadlines count from it."""
        self.started = now

    def deadline(self, stage: str) -> Deadline:
        """The end of ``stage``'s share (a deadline of None without a budget or before `start`)."""
        if stage not in self.estimates:
            raise PlanError(f"the plan has no stage {stage!r} (it has {', '.join(self.estimates)})")
        if self.budget_s is None or self.started is None:
            return Deadline(stage, None)
        shares = self.shares()
        stages = [name for name in ORDER if name in shares]
        return Deadline(stage, self.started + sum(shares[name] for name in stages[:stages.index(stage) + 1]))

    def describe(self, stage: str) -> str:
        """What the stage does at its size, e.g. ``12 epochs of 45 steps``."""
        s, f = self.sizes, self.facts
        return {
            "probe": "a few steps of every stage, timed",
            "latency": f"{f.get('blocks_to_measure', 0)} of {f.get('blocks', 0)} blocks to measure, "
                       f"{f.get('block_s', 0.0):.1f} s each",
            "supernet": f"{s['supernet_epochs']} epochs of {f.get('steps_per_epoch', '?')} steps",
            "search": f"NSGA-II, {s['population']} x {s['generations']} networks",
            "train": f"{s.get('train_epochs')} epochs",
            "qat": f"{s.get('qat_epochs')} QAT epochs",
            "reserve": "outputs" + (", export, bench" if self.command == "pipeline" else ""),
        }[stage]

    def format(self) -> str:
        """The plan as the commands print it: one line per stage, then the total."""
        title = f"time budget {format_duration(self.budget_s)}" if self.budget_s else "no time budget"
        rows = [(stage, self.describe(stage), format_duration(self.estimates[stage]))
                for stage in ORDER if stage in self.estimates]
        rows.append(("total", "", format_duration(self.total_s)))
        widths = [max(len(row[i]) for row in rows) for i in range(2)]
        return "\n".join([f"plan ({title}):", *(f"  {a.ljust(widths[0])}  {b.ljust(widths[1])}  {c}"
                                                 for a, b, c in rows)])

    def to_json(self) -> dict:
        """What ``plan.json`` holds: the fields, the stages (size, estimate, share, deadline) in order."""
        shares = self.shares()
        stages = [{"stage": stage, "size": self.describe(stage), "estimate_s": round(self.estimates[stage], 1),
                   "share_s": round(shares[stage], 1), "deadline": self.deadline(stage).at}
                  for stage in ORDER if stage in self.estimates]
        return {**dataclasses.asdict(self), "total_s": round(self.total_s, 1), "stages": stages}


def write_plan(run_dir: Path, plan: TimePlan) -> Path:
    """Write ``DIR/plan.json`` atomically (the folder is created); its path."""
    from mobileseg.atomic_write import write_atomic

    Path(run_dir).mkdir(parents=True, exist_ok=True)
    return write_atomic(RunDir(run_dir).file(RunDir.PLAN), json.dumps(plan.to_json(), indent=2) + "\n")


def read_plan(path: Path) -> TimePlan:
    """The plan in ``path`` (a ``plan.json``).

    Raises:
        PlanError: missing, not JSON, or without the plan's fields.
    """
    try:
        data = json.loads(Path(path).read_text())
        fields = {field.name: data[field.name] for field in dataclasses.fields(TimePlan)}
    except OSError as error:
        raise PlanError(f"{path}: cannot read it ({error.strerror})") from None
    except (ValueError, KeyError, TypeError) as error:
        raise PlanError(f"{path}: not a plan written by --time_budget ({type(error).__name__}: {error})") from None
    return TimePlan(**fields)


def earlier_plan(run_dir: Path, budget_s: float | None, command: str) -> TimePlan | None:
    """The plan of a run ``command`` started in ``run_dir`` with this budget, or None (no plan, another budget,
    a dry run's, unreadable). The same command run again keeps its sizes, so the stages resume where they
    stopped (a study or supernet of other sizes would be refused), and counts its deadlines from then."""
    try:
        plan = read_plan(RunDir(run_dir).file(RunDir.PLAN))
    except PlanError:
        return None
    same = plan.started is not None and plan.budget_s == budget_s and plan.command == command
    return plan if same and budget_s is not None else None


def budget_and_kept_plan(time_budget: str | None, run_dir: Path, dry_run: bool, command: str,
                         log: Callable[[str], None]) -> tuple[float | None, TimePlan | None]:
    """``--time_budget`` in seconds (None: no budget) and the plan `earlier_plan` keeps for it (None: none, or
    ``dry_run``, which always plans afresh); a kept plan is announced through ``log``.

    Raises:
        mobileseg.run.exit_codes.BadInput: a malformed ``--time_budget`` (the flag is named).
    """
    from mobileseg.run.exit_codes import BadInput

    try:
        budget = parse_duration(time_budget) if time_budget else None
    except DurationError as error:
        raise BadInput(f"--time_budget {error}") from None
    kept = None if dry_run else earlier_plan(run_dir, budget, command)
    if kept is not None:
        log(f"plan: kept from the run started in {run_dir} with this budget; deadlines count from now")
    return budget, kept


def stage_deadline(path: str | None, stage: str) -> Deadline:
    """``stage``'s deadline from the plan file ``path`` (None: no plan, no deadline).

    Raises:
        PlanError: see `read_plan`; or the plan lacks the stage.
    """
    return Deadline(stage, None) if not path else read_plan(Path(path)).deadline(stage)


def planned_vs_actual(plan: TimePlan, actual: dict) -> list[dict]:
    """One row per planned stage, ``{"stage", "planned_s", "actual_s"}`` (``actual_s`` None when not run), then
    ``total`` (planned: the budget, or the estimates' sum without one)."""
    rows = [{"stage": stage, "planned_s": round(plan.estimates[stage], 1),
             "actual_s": None if actual.get(stage) is None else round(actual[stage], 1)}
            for stage in ORDER if stage in plan.estimates]
    ran = [row["actual_s"] for row in rows if row["actual_s"] is not None]
    rows.append({"stage": "total", "planned_s": round(plan.budget_s or plan.total_s, 1),
                 "actual_s": round(actual["total"], 1) if actual.get("total") is not None else round(sum(ran), 1)})
    return rows


def format_planned_vs_actual(rows: list[dict]) -> str:
    """``latency 1m00s / 55.0s, supernet ...``: planned / actual per stage."""
    return ", ".join(f"{row['stage']} {format_duration(row['planned_s'])} / "
                     f"{'-' if row['actual_s'] is None else format_duration(row['actual_s'])}" for row in rows)
