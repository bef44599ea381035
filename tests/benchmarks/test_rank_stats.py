"""The rank statistics of the proxy-ranking benchmark (benchmarks/rank_stats.py)."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from rank_stats import kendall_tau_b, permutation_p, spearman_rho  # noqa: E402


def test_kendall_and_spearman_on_known_orders():
    assert kendall_tau_b([1, 2, 3, 4], [1, 3, 2, 4]) == 2 / 3
    assert kendall_tau_b([1, 2, 3], [3, 2, 1]) == -1.0
    assert abs(spearman_rho([1, 2, 3, 4], [1, 3, 2, 4]) - 0.8) < 1e-12


def test_sampled_permutations_of_numpy_values():
    """Nine networks: 9! pairings are too many, so they are sampled as numpy arrays (once a TypeError)."""
    rng = np.random.default_rng(0)
    truth = rng.uniform(0.4, 0.45, 9)
    assert permutation_p(truth, truth, np.random.default_rng(1), samples=2000) < 0.01  # perfect agreement
    p = permutation_p(rng.uniform(size=9), truth, np.random.default_rng(1), samples=2000)
    assert 0.0 < p <= 1.0
