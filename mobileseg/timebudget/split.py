"""Sizing a run's stages to a time budget: the rule, and the smallest run a budget must hold.

The rule (`split_budget`), for ``--time_budget B`` seconds:

1. **Fixed costs first.** The latency stage is not sized: the search needs every block of the
   space, and blocks the persistent cache holds cost nothing, so it costs what the blocks left
   to measure cost. The reserve (the search's outputs, export and bench for the pipeline) and
   the one-off start of the supernet and of training (building, tracing: `StageCosts.setup_s`) are
   kept whole, and a margin of `MARGIN` of the budget is kept for the steps' start-up and what
   the estimates miss.
2. **The smallest run next.** Every sized stage gets its minimum (`MINIMUM`: 1 supernet epoch,
   one generation of 4 networks, 1 training epoch, 1 QAT epoch). A budget that cannot hold
   the fixed costs and these is refused (`BudgetTooSmall` names the minimum).
3. **The rest by weight** (`WEIGHTS`), in whole epochs and trials, each stage at most its
   ``default`` budget (`MAXIMUM`: 100 supernet epochs, 32 x 20 networks, 100 training epochs,
   3 QAT epochs). Training gets the most: on CamVid, mIoU rose from about 31 after 20 epochs to
   45-50 after 120 (README, ``benchmarks/results/train_speed.json`` and
   ``proxy_rank_camvid_trained.json``), while a supernet trained 450 steps did not rank networks
   (Kendall tau -0.07, ``supernet_proxy_camvid.json``) and 5 short epochs did not either
   (``proxy_rank_camvid.json``): the search only needs to find a network of the right cost,
   and the hours are better spent training it. So: training 55 %, supernet 25 %, NSGA-II 15 %,
   QAT 5 % (for ``search`` alone: supernet 65 %, NSGA-II 35 %).
4. **What a stage cannot use** (its maximum reached) goes to the others, training first, then
   the supernet, then the NSGA-II trials.

The trials ``T`` become ``population x generations`` with ``population`` about
``sqrt(1.6 T)`` (the ``default`` budget's 32 x 20 shape), 4 to 32, and at most 20 generations.
The supernet's resolution is not sized: it is the size latency is predicted at and the model
ships at, which the user chooses (``--search_input_size``).

Example:
    >>> costs = StageCosts(latency_s=60, supernet_epoch_s=30, trial_s=2, train_epoch_s=20, qat_epoch_s=40,
    ...                    reserve_s=60)
    >>> allocation = split_budget(3600, costs)
    >>> allocation.sizes
    {'supernet_epochs': 27, 'population': 20, 'generations': 12, 'train_epochs': 94, 'qat_epochs': 3}
    >>> sum(allocation.estimates.values()) <= 3600 * (1 - MARGIN)
    True
"""

from __future__ import annotations

import dataclasses
import math

from mobileseg.timebudget.duration import format_duration

MARGIN = 0.05
"""The share of the budget kept for the steps' start-up (imports, building models) and estimate errors."""

MINIMUM = {"supernet_epochs": 1, "trials": 4, "train_epochs": 1, "qat_epochs": 1}
MAXIMUM = {"supernet_epochs": 100, "trials": 32 * 20, "train_epochs": 100, "qat_epochs": 3}
WEIGHTS = {"train_epochs": 0.55, "supernet_epochs": 0.25, "trials": 0.15, "qat_epochs": 0.05}
SEARCH_WEIGHTS = {"supernet_epochs": 0.65, "trials": 0.35}
PRIORITY = ("train_epochs", "supernet_epochs", "trials", "qat_epochs")
"""Who gets what a capped stage leaves, first to last."""

MIN_POPULATION, MAX_POPULATION, MAX_GENERATIONS = 4, 32, 20


class BudgetTooSmall(ValueError):
    """The budget cannot hold the fixed costs and the smallest run; the message says how much it needs."""


@dataclasses.dataclass(frozen=True)
class StageCosts:
    """Seconds of one unit of every stage on this machine (from `mobileseg.search.cost_probe`).

    Attributes:
        latency_s: the whole latency stage (the blocks left to measure times the seconds of one).
        supernet_epoch_s: one supernet epoch.
        trial_s: scoring one network in the NSGA-II search.
        train_epoch_s: one training epoch of the chosen network, validation included; None: not planned
            (``search`` alone).
        qat_epoch_s: one quantization-aware epoch; None: not planned.
        reserve_s: what is kept whole: the search's outputs, and for the pipeline export and bench.
        supernet_setup_s, train_setup_s: what the supernet and training stages cost once, before their
            first epoch (building the network, tracing its step).
    """

    latency_s: float
    supernet_epoch_s: float
    trial_s: float
    train_epoch_s: float | None = None
    qat_epoch_s: float | None = None
    reserve_s: float = 0.0
    supernet_setup_s: float = 0.0
    train_setup_s: float = 0.0

    def setup_s(self) -> float:
        """The stages' one-off costs (training's only when it is planned)."""
        return self.supernet_setup_s + (self.train_setup_s if self.train_epoch_s is not None else 0.0)

    def unit(self, name: str) -> float | None:
        """Seconds of one unit of a sized quantity (``supernet_epochs``, ``trials``, ``train_epochs``...)."""
        return {"supernet_epochs": self.supernet_epoch_s, "trials": self.trial_s,
                "train_epochs": self.train_epoch_s, "qat_epochs": self.qat_epoch_s}[name]


@dataclasses.dataclass(frozen=True)
class Allocation:
    """The stages' sizes and their estimated seconds.

    Attributes:
        sizes: ``supernet_epochs``, ``population``, ``generations`` and, for the pipeline,
            ``train_epochs`` and ``qat_epochs``.
        estimates: seconds per stage: ``latency``, ``supernet``, ``search``, [``train``, ``qat``], ``reserve``.
        budget_s: the budget.
    """

    sizes: dict
    estimates: dict
    budget_s: float


def population_and_generations(trials: int) -> tuple[int, int]:
    """``(population, generations)`` for about ``trials`` networks, never more.

    Example:
        >>> population_and_generations(96), population_and_generations(4), population_and_generations(640)
        ((12, 8), (4, 1), (32, 20))
    """
    population = min(MAX_POPULATION, max(MIN_POPULATION, round(math.sqrt(1.6 * trials))))
    return population, min(MAX_GENERATIONS, max(1, trials // population))


def minimum_seconds(costs: StageCosts, budget_s: float = 0.0) -> float:
    """Seconds of the smallest run: the fixed costs (margin of ``budget_s`` included) and every stage's minimum."""
    units = [name for name in MINIMUM if costs.unit(name) is not None]
    return (costs.latency_s + costs.reserve_s + costs.setup_s() + MARGIN * budget_s
            + sum(MINIMUM[name] * costs.unit(name) for name in units))


def split_budget(budget_s: float, costs: StageCosts, spent_s: float = 0.0) -> Allocation:
    """Size every stage to fit ``budget_s`` seconds by the rule of this module's docstring.

    Args:
        budget_s: the time budget.
        costs: the seconds of every stage's unit.
        spent_s: seconds of the budget already spent (the probe that measured ``costs``).

    Raises:
        BudgetTooSmall: the budget is below `minimum_seconds` plus ``spent_s``.
    """
    names = [name for name in PRIORITY if costs.unit(name) is not None]
    weights = WEIGHTS if "train_epochs" in names else SEARCH_WEIGHTS
    needed = minimum_seconds(costs, budget_s) + spent_s
    if budget_s < needed:
        smallest = (minimum_seconds(costs) + spent_s) / (1 - MARGIN)
        raise BudgetTooSmall(
            f"--time_budget {format_duration(budget_s)}: too small; the smallest run on this machine "
            f"({_smallest(costs, names, spent_s)}) needs about {format_duration(smallest)}")
    units = dict(MINIMUM)
    left = budget_s - needed
    for name in names:  # the rest by weight, in whole units, each capped
        extra = min(MAXIMUM[name] - units[name], int(weights[name] * (budget_s - needed) / costs.unit(name)))
        units[name] += extra
        left -= extra * costs.unit(name)
    for name in names:  # what capped stages left, in priority order
        extra = min(MAXIMUM[name] - units[name], int(left / costs.unit(name)))
        units[name] += extra
        left -= extra * costs.unit(name)
    population, generations = population_and_generations(units["trials"])
    sizes = {"supernet_epochs": units["supernet_epochs"], "population": population, "generations": generations}
    if "train_epochs" in names:
        sizes.update(train_epochs=units["train_epochs"], qat_epochs=units["qat_epochs"])
    return Allocation(sizes, stage_estimates(sizes, costs), budget_s)


def stage_estimates(sizes: dict, costs: StageCosts) -> dict:
    """Seconds per stage of a run of these sizes: ``latency``, ``supernet``, ``search``, [``train``, ``qat``],
    ``reserve`` (train and QAT when ``sizes`` has ``train_epochs``)."""
    estimates = {"latency": costs.latency_s,
                 "supernet": costs.supernet_setup_s + sizes["supernet_epochs"] * costs.supernet_epoch_s,
                 "search": sizes["population"] * sizes["generations"] * costs.trial_s}
    if "train_epochs" in sizes:
        estimates.update(train=costs.train_setup_s + sizes["train_epochs"] * costs.train_epoch_s,
                         qat=sizes["qat_epochs"] * costs.qat_epoch_s)
    estimates["reserve"] = costs.reserve_s
    return {name: round(seconds, 1) for name, seconds in estimates.items()}


def _smallest(costs: StageCosts, names, spent_s: float) -> str:
    parts = [f"probe {format_duration(spent_s)}"] * (spent_s > 0)
    parts += [f"latency {format_duration(costs.latency_s)}", "1 supernet epoch", "4 networks"]
    if "train_epochs" in names:
        parts += ["1 training epoch", "1 QAT epoch"]
    return ", ".join(parts + [f"reserve {format_duration(costs.reserve_s)}", f"{MARGIN:.0%} margin"])
