"""Conditional choice trees as Optuna parameters: every point found, walk order kept, both encodings."""

import numpy as np
import pytest

from mobileseg.arch.space import SearchSpace
from mobileseg.search.encoding import all_choice_points, suggest_decisions
from mobileseg.search.testing import DEMO_SPACE

DEFAULT_SPACE = DEMO_SPACE.parent / "default.yaml"


@pytest.fixture(scope="module", params=[DEMO_SPACE, DEFAULT_SPACE], ids=["demo", "default"])
def space(request):
    return SearchSpace.load(request.param)


def test_all_choice_points_are_exactly_those_samples_reach(space):
    points = all_choice_points(space)
    rng = np.random.default_rng(0)
    reached = {}
    for _ in range(2000):
        reached.update(space.choice_points(space.sample_decisions(rng)))
    assert reached == points  # same paths, same numbers of alternatives
    assert all_choice_points(space) == points and list(all_choice_points(space)) == list(points)


def test_active_encoding_suggests_in_the_space_walk_order(space):
    """Drawing each suggestion from a generator reproduces sample_decisions with that generator."""
    for seed in range(20):
        rng = np.random.default_rng(seed)
        asked = []

        def suggest(path, n):
            asked.append(path)
            return int(rng.integers(n))

        decisions = suggest_decisions(space, suggest, "active")
        assert decisions == space.sample_decisions(np.random.default_rng(seed))
        assert asked == list(decisions)  # each active choice asked once, in walk order


def test_full_encoding_asks_every_point_and_keeps_the_active_ones(space):
    points = all_choice_points(space)
    rng = np.random.default_rng(1)
    for _ in range(50):
        asked = []

        def suggest(path, n):
            asked.append(path)
            return int(rng.integers(n))

        decisions = suggest_decisions(space, suggest, "full", points)
        assert asked == list(points)
        assert set(decisions) == set(space.choice_points(decisions)) <= set(points)


def test_bad_suggestions_and_encodings_are_refused():
    space = SearchSpace.load(DEMO_SPACE)
    with pytest.raises(ValueError, match=r"suggested index 2 is not in 0\.\.1"):
        suggest_decisions(space, lambda path, n: n, "active")
    with pytest.raises(ValueError, match="suggested index True"):
        suggest_decisions(space, lambda path, n: True, "full")
    assert suggest_decisions(space, lambda path, n: np.int64(0), "full")  # numpy integers are fine
    with pytest.raises(ValueError, match="unknown encoding 'flat'; expected one of full, active"):
        suggest_decisions(space, lambda path, n: 0, "flat")
