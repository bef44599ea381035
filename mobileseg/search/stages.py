"""The stages of a search, run on a checked `mobileseg.search.search_plan.Plan` (`execute`).

1. latency (`latency_stage`): the blocks of the space, then of the chosen references, into the table;
2. supernet (`supernet_stage`): the weight-sharing supernet trained with the sandwich rule;
3. search (`search_stage`): NSGA-II scored by the supernet and the latency model;
4. outputs (`outputs_stage`): the references on the same axes, ``pareto.json``, ``pareto.png``, ``arch.yaml``.

``--strategy differentiable`` replaces 2 and 3 by `differentiable_stage`, ``--strategy random`` 2 to 4 by
`random_stage` (with ``--random_score supernet``, 3 and 4: its networks are scored by the supernet of 2).
Each stage records itself in ``search_state.json`` (`mobileseg.search.run_state.RunState`).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

from mobileseg.run.latency_backend import parse_latency_backend
from mobileseg.search.run_state import RunState
from mobileseg.search.search_plan import Plan, evolutionary_search, proxy_mismatch


def say(message: str) -> None:
    """Print a progress line at once (the stages' output streams through the pipeline)."""
    print(message, flush=True)


class BuildInterrupted(Exception):
    """The phone went during a table build; the message says what is saved and what is left."""


def _measure(plan: Plan, signatures) -> int:
    """Measure the blocks the table lacks (a read-only table measures nothing); how many were measured."""
    from mobileseg.android.errors import DeviceLost
    from mobileseg.latency.device_lost import build_interrupted
    from mobileseg.latency.predictor import MeasuringLatencyModel

    model = plan.latency
    if not isinstance(model, MeasuringLatencyModel):
        return 0
    try:
        return len(model.table.build(signatures, model.make_model, model.measurer, progress=plan.flags.progress,
                                     conversions=model.conversions))
    except DeviceLost as error:
        raise BuildInterrupted(build_interrupted(error, model.table, signatures, model.conversions)) from error


def latency_stage(plan: Plan, state: RunState) -> list[Path]:
    """Stage 1: the space's blocks, then the chosen references' blocks; returns the reference files."""
    from mobileseg.arch import schema_io
    from mobileseg.latency.predictor import MeasuringLatencyModel
    from mobileseg.search.reference_choice import cheapest

    started = time.perf_counter()
    model, table = plan.latency, plan.latency.table
    height, width = plan.input_size
    todo = (len(table.to_measure(plan.signatures, model.conversions))
            if isinstance(model, MeasuringLatencyModel) else 0)
    say(f"latency: {len(plan.signatures)} blocks in {plan.space.source} at {height}x{width}; {table.path}: "
        f"{len(table)} entries, {todo} to measure ({_latency_source(plan)})")
    measured = _measure(plan, plan.signatures)
    choice = plan.references
    genotypes = {path: schema_io.load(path) for path in choice.files}
    blocks = {path: model.signatures_of(genotype) for path, genotype in genotypes.items()}
    files = list(choice.files)
    if choice.cheapest is not None:
        files = cheapest(files, lambda path: len(table.missing(blocks[path])), choice.cheapest)
    for path in files:
        try:
            measured += _measure(plan, blocks[path])
        except Exception as error:
            error.add_note(f"(while measuring the blocks of the reference {path} at {height}x{width}; "
                           "--references chooses others)")
            raise
    say(f"latency: measured {measured} blocks in {time.perf_counter() - started:.0f} s; {table.path} has "
        f"{len(table)} entries" + (f"; references: {', '.join(p.stem for p in files)}" if files else ""))
    state.done("latency", started, table=str(table.path), entries=len(table), measured=measured,
               space_blocks=len(plan.signatures), references=[str(path) for path in files])
    return files


def _latency_source(plan: Plan) -> str:
    """What the latencies are, for the plot and pareto.json: backend, device, threads, table."""
    fingerprint = plan.latency.table.fingerprint
    device = fingerprint.get("model") or fingerprint.get("cpu") or "unknown device"
    backend = parse_latency_backend(plan.flags.latency_backend).kind
    return (f"{backend}: {device}, {fingerprint.get('threads', '?')} thread(s), {plan.latency.table.quantization}, "
            f"{plan.latency_table}")


def supernet_stage(plan: Plan, state: RunState):
    """Stage 2 (or, for ``--stage search``, loading its weights): the supernet and its epoch."""
    import keras
    import numpy as np

    from mobileseg.supernet.model import Supernet
    from mobileseg.supernet.trainer import FOLDER, SupernetTrainer, load_supernet_weights
    from mobileseg.timebudget.time_plan import stage_deadline
    from mobileseg.training.train_config import dtype_policy

    started = time.perf_counter()
    keras.utils.set_random_seed(plan.flags.seed)
    if plan.flags.stage == "search":
        supernet = Supernet(plan.space, plan.source.num_classes, plan.input_size)
        return supernet, load_supernet_weights(supernet, plan.run_dir)
    with dtype_policy(plan.flags.precision):  # its layers compute in the policy's dtype
        supernet = Supernet(plan.space, plan.source.num_classes, plan.input_size)
    trainer = SupernetTrainer(supernet, plan.supernet_config())
    result = trainer.fit(plan.source, plan.run_dir, np.random.default_rng(plan.flags.seed),
                         deadline=stage_deadline(plan.flags.time_plan, "supernet"))
    if result.cut:
        say(result.cut)
    if supernet.compute_dtype != "float32":  # networks are scored in float32, as a --stage search run does
        supernet = Supernet(plan.space, plan.source.num_classes, plan.input_size)
        load_supernet_weights(supernet, plan.run_dir)
    trained = result.epoch - result.initial_epoch
    done = (f"trained {trained} epoch{'s' * (trained != 1)}" if trained else "already trained") + \
        f", {result.epoch} in all"
    say(f"supernet: {done} ({trainer.steps()} steps) in {time.perf_counter() - started:.0f} s -> "
        f"{plan.run_dir / FOLDER}")
    state.done("supernet", started, epoch=result.epoch, trained_now=trained, steps=trainer.steps(),
               last_epoch=result.log[-1] if result.log else None, cut=result.cut)
    return supernet, result.epoch


def _accuracy_model(plan: Plan, supernet):
    """The proxy mIoU every network of the search is scored with (`SupernetAccuracyModel`)."""
    from mobileseg.supernet.accuracy import SupernetAccuracyModel

    f = plan.flags
    return SupernetAccuracyModel(
        supernet, plan.source, plan.source, calib_batches=f.calib_batches, batch_size=f.batch_size,
        max_val_images=f.val_images, scale_range=plan.supernet_config().train_config(plan.input_size).scale_range,
        seed=f.seed)


def search_stage(plan: Plan, supernet, supernet_epoch: int, state: RunState):
    """Stage 3: NSGA-II scored by the supernet; returns the result and the accuracy model."""
    from mobileseg.search.nsga2 import SearchError
    from mobileseg.timebudget.time_plan import stage_deadline

    started = time.perf_counter()
    f = plan.flags
    accuracy = _accuracy_model(plan, supernet)
    search = evolutionary_search(plan, accuracy, plan.latency)
    study = search.study()
    stored, ours = study.user_attrs.get("proxy"), plan.proxy(supernet_epoch)
    if stored is None:
        study.set_user_attr("proxy", ours)
    elif mismatch := proxy_mismatch(plan, stored, ours):  # checked before; changed since by another worker
        raise SearchError(mismatch)
    result = search.run(progress=say, deadline=stage_deadline(f.time_plan, "search"))
    state.done("search", started, trials=len(result.candidates), new_trials=search.added, worker=f.worker,
               generations=result.generations, networks_scored=len(accuracy.seconds),
               val_images=accuracy.val_images, supernet_epoch=supernet_epoch)
    return result, accuracy


def differentiable_stage(plan: Plan, state: RunState):
    """Stages 2 and 3 of ``--strategy differentiable``: weights and architecture together; (result, accuracy)."""
    import keras
    import numpy as np

    from mobileseg.search.differentiable import DifferentiableConfig, DifferentiableSearch
    from mobileseg.supernet.model import Supernet
    from mobileseg.training.train_config import dtype_policy

    started = time.perf_counter()
    f = plan.flags
    keras.utils.set_random_seed(f.seed)
    with dtype_policy(f.precision):
        supernet = Supernet(plan.space, plan.source.num_classes, plan.input_size)
    config = DifferentiableConfig(plan.supernet_config(), gcn=f.gcn, target_latency_ms=f.target_latency_ms,
                                  calib_batches=f.calib_batches, val_images=f.val_images)
    search = DifferentiableSearch(supernet, plan.latency, config)
    done = search.fit(plan.source, plan.run_dir, np.random.default_rng(f.seed), progress=say)
    trained = done.epoch - done.initial_epoch
    say(f"differentiable: {'trained %d epoch%s' % (trained, 's' * (trained != 1)) if trained else 'already trained'}"
        f", {done.epoch} in all ({'GCN' if f.gcn else 'no GCN'}, warm-up {config.warmup}, lambda now "
        f"{search.latency_weight:.3g}) in {time.perf_counter() - started:.0f} s -> {done.folder}")
    state.done("differentiable", started, epoch=done.epoch, trained_now=trained, gcn=f.gcn,
               warmup_epochs=config.warmup, latency_weight=search.latency_weight,
               last_epoch=done.log[-1] if done.log else None)
    return done.result, done.accuracy


def random_stage(plan: Plan, references: list[Path], state: RunState, supernet=None, supernet_epoch: int = 0) -> str:
    """Stages 3 and 4 of ``--strategy random`` (with ``--random_score latency``, no ``supernet``, also 2):
    draw, predict, score with the supernet when given, write the outputs; the summary."""
    from mobileseg.search import random_search
    from mobileseg.search.objectives import evaluate_references

    started = time.perf_counter()
    f = plan.flags
    result = random_search.sample_networks(plan.space, plan.latency, f.target_latency_ms,
                                           f.population * f.generations, f.seed, progress=say,
                                           within_target=supernet is not None)
    accuracy = None
    if supernet is not None:
        accuracy = _accuracy_model(plan, supernet)
        result = random_search.score_networks(result, accuracy, plan.run_dir / random_search.SCORES_JSON,
                                              plan.proxy(supernet_epoch), progress=say)
    points = evaluate_references(references, plan.latency, accuracy, plan.space)
    _, summary = random_search.write_outputs(plan.run_dir, result, points, _latency_source(plan))
    chosen = result.chosen()
    state.done("random", started, networks=len(result.networks), within_target=len(result.feasible()),
               scored=len(result.scored()), networks_scored=len(accuracy.seconds) if accuracy else 0,
               chosen_trial=chosen.trial, chosen_latency_ms=chosen.latency_ms, chosen_miou=chosen.miou,
               **({"supernet_epoch": supernet_epoch} if supernet is not None else {}))
    return summary


def outputs_stage(plan: Plan, result, accuracy, references: list[Path], state: RunState):
    """Stage 4: the references on the same axes, then pareto.json, pareto.png and arch.yaml."""
    from mobileseg.arch.complexity import params_and_macs
    from mobileseg.search.objectives import evaluate_references
    from mobileseg.search.pareto import write_outputs

    started = time.perf_counter()
    points = evaluate_references(references, plan.latency, accuracy, plan.space)
    outputs = write_outputs(plan.run_dir, result, points, _latency_source(plan),
                            functools.partial(params_and_macs, num_classes=plan.source.num_classes,
                                              input_size=plan.input_size))
    state.done("outputs", started, chosen_trial=outputs.choice.candidate.trial, references=len(points))
    return outputs


def execute(plan: Plan) -> None:
    """Run the stages ``--stage`` asks for, into the run folder."""
    from mobileseg.run.run_config import record_config
    from mobileseg.training.errors import TrainingError

    plan.run_dir.mkdir(parents=True, exist_ok=True)
    record_config(plan.run_dir, "search", plan.record, error=TrainingError)
    state = RunState(plan.run_dir, plan.flags.stage)
    if plan.flags.strategy == "random" and plan.flags.random_score == "latency":
        say(random_stage(plan, latency_stage(plan, state), state))
        state.finish()
        say(f"stages: {state.timings()}; {state.data['seconds']:.0f} s in all -> {plan.run_dir}")
        return
    if plan.flags.strategy == "differentiable":
        references = latency_stage(plan, state)
        result, accuracy = differentiable_stage(plan, state)
        say(outputs_stage(plan, result, accuracy, references, state).summary)
        state.finish()
        say(f"stages: {state.timings()}; {state.data['seconds']:.0f} s in all -> {plan.run_dir}")
        return
    references = latency_stage(plan, state) if plan.flags.stage != "supernet" else []
    supernet, epoch = supernet_stage(plan, state)
    if plan.flags.stage != "supernet" and plan.flags.strategy == "random":
        say(random_stage(plan, references, state, supernet, epoch))
    elif plan.flags.stage != "supernet":
        result, accuracy = search_stage(plan, supernet, epoch, state)
        outputs = outputs_stage(plan, result, accuracy, references, state)
        say(outputs.summary)
    state.finish()
    say(f"stages: {state.timings()}; {state.data['seconds']:.0f} s in all -> {plan.run_dir}")
    if plan.flags.time_plan:
        say(f"time planned / actual: {_planned_vs_actual(Path(plan.flags.time_plan), state)}")


def _planned_vs_actual(path: Path, state: RunState) -> str:
    """The search's stages planned against what they took (``reserve``: the outputs stage)."""
    from mobileseg.timebudget.time_plan import format_planned_vs_actual, planned_vs_actual, read_plan

    time_plan = read_plan(path)
    stages = state.data["stages"]
    actual = {name: (stages.get(stage) or {}).get("seconds")
              for name, stage in (("latency", "latency"), ("supernet", "supernet"), ("search", "search"),
                                  ("reserve", "outputs"))}
    rows = planned_vs_actual(time_plan, {**actual, "probe": time_plan.estimates.get("probe")})
    return format_planned_vs_actual([row for row in rows if row["stage"] in (*actual, "probe")])
