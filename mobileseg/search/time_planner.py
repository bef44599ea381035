"""The plan of a search or pipeline run: the blocks to measure, the probe, the split, in one call.

`make_plan` takes the search's checked settings (the ``Plan`` of ``python -m mobileseg.search``'s
``check_inputs``: flags resolved, space, data, input size, latency model, blocks) and returns the
`TimePlan`: with a budget, the stages sized by `mobileseg.timebudget.split.split_budget` (sizes
given explicitly on the command line win over the split's); without one, at the flags' sizes.
Nothing is written.
"""

from __future__ import annotations

import dataclasses

from mobileseg.search.cost_probe import ProbeSettings, probe_costs, seconds_per_block
from mobileseg.timebudget.split import split_budget, stage_estimates
from mobileseg.timebudget.time_plan import TimePlan


@dataclasses.dataclass(frozen=True)
class PipelineSizes:
    """What the pipeline adds to the search's plan.

    Attributes:
        train_epochs, qat_epochs: the flags' sizes (used without a budget, or when given explicitly).
        eval_split: the split the export evaluates.
    """

    train_epochs: int
    qat_epochs: int
    eval_split: str


def blocks_to_measure(search) -> tuple[list, int]:
    """(the blocks the latency stage will measure, the blocks it needs), the references' included."""
    from mobileseg.arch import schema_io
    from mobileseg.latency.predictor import MeasuringLatencyModel
    from mobileseg.search.reference_choice import cheapest

    model = search.latency
    choice = search.references
    blocks = {path: model.signatures_of(schema_io.load(path)) for path in choice.files}
    files = list(choice.files)
    if choice.cheapest is not None:
        files = cheapest(files, lambda path: len(model.table.missing(blocks[path])), choice.cheapest)
    needed = list({s.key: s for s in [*search.signatures, *(b for f in files for b in blocks[f])]}.values())
    if not isinstance(model, MeasuringLatencyModel):
        return [], len(needed)
    return model.table.to_measure(needed, model.conversions), len(needed)


def make_plan(search, budget_s: float | None, explicit: dict, pipeline: PipelineSizes | None = None) -> TimePlan:
    """Probe this machine on the search's data and size the stages (see the module docstring).

    Args:
        search: the search command's checked ``Plan``.
        budget_s: the time budget in seconds, or None (a plan at the flags' sizes).
        explicit: sizes given on the command line (``supernet_epochs``, ``population``, ``generations``,
            ``train_epochs``, ``qat_epochs``), which the budget does not change.
        pipeline: the pipeline's sizes, or None for the search alone.

    Raises:
        mobileseg.timebudget.split.BudgetTooSmall: the budget cannot hold the smallest run.
    """
    import time

    import keras

    from mobileseg.supernet.model import Supernet

    started = time.perf_counter()
    f = search.flags
    todo, needed = blocks_to_measure(search)
    model = search.latency
    block_s, block_source = seconds_per_block(model.table, todo, getattr(model, "make_model", None),
                                              getattr(model, "measurer", None), getattr(model, "convert", None))
    train_pairs = len(search.source.pairs("train"))
    steps_per_epoch = min(train_pairs // f.batch_size, f.steps_per_epoch or train_pairs)
    choice = search.references  # networks the outputs stage scores: the K cheapest, or every file given
    references = choice.cheapest if choice.cheapest is not None else len(choice.files)
    settings = ProbeSettings(batch_size=f.batch_size, steps_per_epoch=steps_per_epoch, calib_batches=f.calib_batches,
                             val_images=f.val_images, search_scale=f.search_scale, references=references, seed=f.seed)
    if pipeline is not None:
        splits = search.source.splits()
        settings = dataclasses.replace(
            settings, train_steps=train_pairs // f.batch_size, train_val_images=len(search.source.pairs("val")),
            test_images=len(search.source.pairs(pipeline.eval_split)) if pipeline.eval_split in splits else 0)
    keras.utils.set_random_seed(f.seed)
    building = time.perf_counter()
    supernet = Supernet(search.space, search.source.num_classes, search.input_size)
    costs, facts = probe_costs(supernet, search.source, settings, latency_s=len(todo) * block_s,
                               build_s=time.perf_counter() - building)
    sizes = {"supernet_epochs": f.supernet_epochs, "population": f.population, "generations": f.generations}
    if pipeline is not None:
        sizes.update(train_epochs=pipeline.train_epochs, qat_epochs=pipeline.qat_epochs)
    probe_s = time.perf_counter() - started
    if budget_s is not None:
        given = {name: value for name, value in explicit.items() if value is not None}
        sizes = {**split_budget(budget_s, costs, spent_s=probe_s).sizes, **given}
    facts.update(blocks_to_measure=len(todo), blocks=needed, block_s=round(block_s, 2), block_s_from=block_source,
                 steps_per_epoch=steps_per_epoch, costs={k: round(v, 2) for k, v in
                                                         dataclasses.asdict(costs).items() if v is not None})
    estimates = {"probe": round(probe_s, 1), **stage_estimates(sizes, costs)}
    return TimePlan("pipeline" if pipeline else "search", budget_s, sizes, estimates, facts)
