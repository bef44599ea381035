"""The rank statistics of the proxy-ranking benchmark (benchmarks/rank_stats.py)."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from rank_stats import kendall_tau_b, noise_ceiling, permutation_p, spearman_rho  # noqa: E402


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


def test_the_noise_ceiling_falls_with_seed_noise_and_rises_with_averaged_seeds():
    rng = np.random.default_rng(0)
    assert noise_ceiling(0.02, 0.0, 12, 1, rng, draws=50)["expected_tau"] == 1.0
    one, three = (noise_ceiling(0.018, 0.011, 12, seeds, np.random.default_rng(0), draws=2000) for seeds in (1, 3))
    assert 0.45 < one["expected_tau"] < 0.7  # the CamVid ground truth's own noise: a perfect estimate's expectation
    assert three["expected_tau"] > one["expected_tau"] + 0.08
    assert three["probability_at_least_target"] > one["probability_at_least_target"]
    noisy = noise_ceiling(0.018, 0.0179, 12, 1, np.random.default_rng(0), draws=500)
    assert noisy["expected_tau"] < 0.3
