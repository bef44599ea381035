"""The split of a time budget: the sizes chosen fit with the reserve and margin, the rule's order, the minimum."""

import pytest

from mobileseg.timebudget.split import (MARGIN, MAXIMUM, BudgetTooSmall, StageCosts, minimum_seconds,
                                        population_and_generations, split_budget, stage_estimates)

PIPELINE = StageCosts(latency_s=120, supernet_epoch_s=60, trial_s=3, train_epoch_s=40, qat_epoch_s=80, reserve_s=200)
SEARCH = StageCosts(latency_s=120, supernet_epoch_s=60, trial_s=3, reserve_s=20)


@pytest.mark.parametrize("costs", [PIPELINE, SEARCH])
@pytest.mark.parametrize("budget", [900, 2700, 3600, 4 * 3600, 8 * 3600])
def test_the_sizes_fit_the_budget_with_the_reserve_and_the_margin(costs, budget):
    allocation = split_budget(budget, costs)
    assert allocation.estimates == stage_estimates(allocation.sizes, costs)
    assert allocation.estimates["reserve"] == costs.reserve_s and allocation.estimates["latency"] == costs.latency_s
    assert sum(allocation.estimates.values()) <= budget * (1 - MARGIN) + 1e-6
    assert ("train_epochs" in allocation.sizes) == (costs is PIPELINE)
    assert all(value >= 1 for value in allocation.sizes.values())


def test_training_gets_the_largest_share_and_a_larger_budget_never_shrinks_a_stage():
    hour = split_budget(3600, PIPELINE)
    assert hour.estimates["train"] > max(hour.estimates[stage] for stage in ("supernet", "search", "qat"))
    previous = None
    for budget in (1800, 3600, 7200, 4 * 3600):
        sizes = split_budget(budget, PIPELINE).sizes
        if previous:
            assert all(sizes[name] >= previous[name] for name in ("supernet_epochs", "train_epochs", "qat_epochs"))
            assert sizes["population"] * sizes["generations"] >= previous["population"] * previous["generations"]
        previous = sizes


def test_what_a_capped_stage_leaves_goes_to_the_others_and_a_huge_budget_reaches_every_maximum():
    cheap_training = StageCosts(latency_s=0, supernet_epoch_s=60, trial_s=3, train_epoch_s=1, qat_epoch_s=1,
                                reserve_s=0)
    sizes = split_budget(3600, cheap_training).sizes
    assert sizes["train_epochs"] == MAXIMUM["train_epochs"]
    # training's weight alone would buy ~0.25 * 3400 / 60 = 14 supernet epochs; what training left adds more
    assert sizes["supernet_epochs"] > 20
    huge = split_budget(10 ** 7, PIPELINE).sizes
    assert huge == {"supernet_epochs": 100, "population": 32, "generations": 20, "train_epochs": 100,
                    "qat_epochs": 3}


def test_a_budget_below_the_smallest_run_is_refused_naming_the_minimum():
    smallest = minimum_seconds(PIPELINE) / (1 - MARGIN)  # 120 + 200 + 60 + 12 + 40 + 80 = 512 s, plus the margin
    with pytest.raises(BudgetTooSmall, match=r"--time_budget 8m00s: too small; the smallest run on this machine "
                                             r"\(latency 2m00s, 1 supernet epoch, 4 networks, 1 training epoch, "
                                             r"1 QAT epoch, reserve 3m20s, 5% margin\) needs about 8m59s"):
        split_budget(480, PIPELINE)
    assert split_budget(smallest + 1, PIPELINE).sizes == {"supernet_epochs": 1, "population": 4, "generations": 1,
                                                         "train_epochs": 1, "qat_epochs": 1}
    with pytest.raises(BudgetTooSmall, match=r"probe 1m00s, latency.* needs about 10m02s"):
        split_budget(smallest + 1, PIPELINE, spent_s=60)


@pytest.mark.parametrize("trials, expected", [(4, (4, 1)), (10, (4, 2)), (100, (13, 7)), (640, (32, 20)),
                                              (5000, (32, 20))])
def test_trials_become_population_times_generations_never_more(trials, expected):
    population, generations = population_and_generations(trials)
    assert (population, generations) == expected
    assert population * generations <= max(trials, 4)


def test_one_off_costs_are_kept_before_the_stages_are_sized():
    from mobileseg.timebudget.split import StageCosts, minimum_seconds, split_budget, stage_estimates

    plain = StageCosts(latency_s=60, supernet_epoch_s=30, trial_s=2, train_epoch_s=20, qat_epoch_s=40, reserve_s=60)
    setup = StageCosts(**{**plain.__dict__, "supernet_setup_s": 300.0, "train_setup_s": 100.0})
    assert minimum_seconds(setup) == minimum_seconds(plain) + 400.0
    sized, unsized = split_budget(3600, setup), split_budget(3600, plain)
    assert sum(sized.estimates.values()) <= 3600 * 0.95 and sized.sizes["train_epochs"] < unsized.sizes["train_epochs"]
    estimates = stage_estimates(sized.sizes, setup)
    assert estimates["supernet"] == 300.0 + 30 * sized.sizes["supernet_epochs"]
    assert estimates["train"] == 100.0 + 20 * sized.sizes["train_epochs"]
    search_only = StageCosts(latency_s=60, supernet_epoch_s=30, trial_s=2, reserve_s=60, train_setup_s=100.0)
    assert search_only.setup_s() == 0.0  # no training planned, none of its cost
