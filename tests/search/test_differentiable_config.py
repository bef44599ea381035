"""The differentiable search's settings: lambda's schedule and the split of the training data."""

import pytest

from mobileseg.search.differentiable_config import adapted_latency_weight, split_halves


def test_lambda_moves_towards_the_target():
    assert adapted_latency_weight(0.1, 15.0, 10.0) == pytest.approx(0.15)  # too slow: more pressure
    assert adapted_latency_weight(0.1, 8.0, 10.0) == pytest.approx(0.08)  # fast enough: less
    assert adapted_latency_weight(0.1, 100.0, 10.0) == pytest.approx(0.2)  # at most x2 an epoch (FasterSeg)
    assert adapted_latency_weight(0.1, 1.0, 10.0) == pytest.approx(0.05)
    assert adapted_latency_weight(0.1, 100.0, None) == 0.1  # no target: fixed


def test_the_halves_are_disjoint_fixed_by_the_seed_and_cover_the_pairs():
    first, second = split_halves(list(range(11)), seed=3)
    assert sorted(first + second) == list(range(11)) and len(first) == 5
    assert split_halves(list(range(11)), seed=3) == (first, second) != split_halves(list(range(11)), seed=4)
