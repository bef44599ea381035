"""The pipeline's time budget (``--time_budget``, ``--dry_run``): the plan before any step, and planned vs actual.

`plan_pipeline` checks the search step exactly as it will run (its own ``check_inputs`` on the command
line the pipeline would give it), probes this machine (`mobileseg.search.time_planner.make_plan`), prints
the plan and writes ``DIR/plan.json``; with a budget the returned settings carry the sizes it chose
(supernet epochs, population, generations, training and QAT epochs; flags given on the command line
win), and the search and training steps get ``--time_plan DIR/plan.json`` so each of their stages keeps
to its deadline. QAT is sized, not cut (a few epochs, minutes). The same command run again on the
folder keeps the plan's sizes (the steps resume where they stopped) and counts the deadlines from then.

`fit_training`, run just before the training step, sizes the training to the network the search chose:
it times a few training steps and a validation pass of that network on the run's data now, and gives
the training as many epochs as end by the plan's ``train`` deadline (at most the ``default`` budget's),
unless ``--train_epochs`` was given or the training has started; ``plan.json``'s size follows. (The
plan's estimate came from a random network of the space, before the search, on the load of then, and
its validation at the proxy's pace: 1.8 s on CamVid's 101 validation images at 184x240, where the
trainer's own took 2.8-5.3 s.)

`planned_vs_actual` lines the plan's stages up with what the run took: the search's stages from
``search_state.json``, training from its step, ``qat`` the export step (QAT, conversion, evaluation) and
``reserve`` the search's outputs and the bench step; ``total`` is the budget against the whole run's
wall time.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from mobileseg.run.run_dir import RunDir
from mobileseg.timebudget.time_plan import TimePlan

PROBE_STEPS = 3
"""Training steps of the chosen network `fit_training` times (after one that traces)."""
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


def fit_training(settings, explicit: Mapping[str, int | None], log: Callable[[str], None] = print,
                 clock: Callable[[], float] = time.time):
    """The settings with ``train_epochs`` sized to the chosen network and the train deadline (see the module
    docstring); unchanged without a budget, with ``--train_epochs`` given, or once training has started."""
    run = RunDir(settings.run_dir)
    if not settings.time_budget or explicit.get("train_epochs") is not None or run.file(RunDir.TRAIN_STATE).exists():
        return settings
    from mobileseg.timebudget.split import MAXIMUM, MINIMUM
    from mobileseg.timebudget.time_plan import read_plan, write_plan

    plan = read_plan(run.file(RunDir.PLAN))
    step_s, first_s, steps, val_s = _chosen_training_step(settings)
    epoch_s = steps * step_s + val_s + 2 * plan.facts["model_save_s"]
    left_s = plan.deadline("train").at - clock() - first_s
    epochs = int(min(MAXIMUM["train_epochs"], max(MINIMUM["train_epochs"], left_s // epoch_s)))
    log(f"train: {epochs} epochs of {epoch_s:.1f} s end by the train deadline (the chosen network's training step "
        f"{step_s:.3f} s, timed now; the plan's {plan.sizes['train_epochs']} epochs were for a step of "
        f"{plan.facts['train_step_s']:.3f} s)")
    plan.sizes["train_epochs"] = epochs
    plan.facts["chosen_train_step_s"] = round(step_s, 3)
    write_plan(settings.run_dir, plan)
    return dataclasses.replace(settings, train_epochs=epochs)


def _chosen_training_step(settings) -> tuple[float, float, int, float]:
    """(seconds of a training step of ``DIR/arch.yaml`` as the train step will run it, seconds of the first,
    which traces, training steps per epoch, seconds of one validation as the trainer's), timed on the run's
    data: a few training batches, the validation split twice (the first traces)."""
    from mobileseg.arch import schema_io
    from mobileseg.arch.builder import build_model
    from mobileseg.data.checks import verified_pairs
    from mobileseg.data.sources import open_source
    from mobileseg.pipeline_steps import searched_size
    from mobileseg.search.cost_probe import training_step_seconds
    from mobileseg.training.evaluation import Evaluator, output_stride
    from mobileseg.training.factories import epoch_batches
    from mobileseg.training.train_config import TrainConfig

    size, scale = searched_size(settings.run_dir)
    crop = settings.input_size or size
    source = open_source(settings.data)
    config = TrainConfig(batch_size=settings.batch_size, input_size=tuple(crop), seed=settings.seed,
                         scale_range=(0.5 * scale, 2 * scale))
    pairs, _ = verified_pairs(source, "train")
    batches = list(epoch_batches(source, pairs, config, 0).repeat().take(PROBE_STEPS + 1))
    network = build_model(schema_io.load(RunDir(settings.run_dir).file(RunDir.ARCH)), source.num_classes, tuple(crop))
    step_s, first_s = training_step_seconds(network, config, batches)
    evaluator = Evaluator(source, "val", pad_to_multiple=output_stride(network), batch_size=config.val_batch_size,
                          size=tuple(size))
    evaluator(network)
    started = time.perf_counter()
    evaluator(network)
    return step_s, first_s, len(pairs) // settings.batch_size, time.perf_counter() - started


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
