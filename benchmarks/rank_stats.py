"""Rank agreement between an estimate and the truth: Kendall's tau-b, Spearman's rho, a permutation p-value."""

from __future__ import annotations

import itertools
import math


def kendall_tau_b(x, y) -> float:
    """Kendall's tau-b (ties counted as in scipy.stats.kendalltau).

    Example:
        >>> kendall_tau_b([1, 2, 3, 4], [1, 3, 2, 4]), kendall_tau_b([1, 2, 3], [3, 2, 1])
        (0.6666666666666666, -1.0)
        >>> import numpy as np
        >>> kendall_tau_b(np.array([0.1, 0.2, 0.3]), np.array([0.3, 0.1, 0.2]))  # numpy scalars compare to numpy bools
        -0.3333333333333333
    """
    concordant = discordant = ties_x = ties_y = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        dx, dy = int(x[i] > x[j]) - int(x[i] < x[j]), int(y[i] > y[j]) - int(y[i] < y[j])
        if dx == 0 and dy == 0:
            continue
        if dx == 0:
            ties_x += 1
        elif dy == 0:
            ties_y += 1
        elif dx == dy:
            concordant += 1
        else:
            discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return (concordant - discordant) / denominator if denominator else float("nan")


def spearman_rho(x, y) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    import numpy as np

    def ranks(values):
        values = np.asarray(values, float)
        order = values.argsort()
        out = np.empty(len(values))
        out[order] = np.arange(len(values))
        for value in np.unique(values):
            out[values == value] = out[values == value].mean()
        return out

    return float(np.corrcoef(ranks(x), ranks(y))[0, 1])


def permutation_p(x, y, rng, samples: int = 20000) -> float:
    """One-sided p-value of tau-b >= observed under random pairings (exact when n! <= samples)."""
    observed = kendall_tau_b(x, y)
    if math.factorial(len(y)) <= samples:
        pairings = list(itertools.permutations(y))
    else:
        pairings = [list(rng.permutation(y)) for _ in range(samples)]
    return sum(kendall_tau_b(x, p) >= observed - 1e-12 for p in pairings) / len(pairings)


def noise_ceiling(spread_std: float, seed_std: float, n: int, seeds: int, rng, draws: int = 4000,
                  target: float = 0.6) -> dict:
    """The Kendall tau a perfect estimate would reach against a truth that is noisy itself.

    Each of ``n`` networks has an expected test mIoU (spread with standard deviation
    ``sqrt(spread_std**2 - seed_std**2)``: the spread one training shows, less its seed noise) and
    is observed as the mean of ``seeds`` trainings, each off by seed noise of ``seed_std``. The
    estimate that knows every expected value exactly is ranked against those observations in
    ``draws`` simulated draws (normal noise), so no estimate can be expected to do better.

    Example:
        >>> import numpy as np
        >>> noise_ceiling(0.02, 0.0, 12, 1, np.random.default_rng(0), draws=10)["expected_tau"]  # no noise
        1.0
        >>> noise_ceiling(0.01, 0.01, 12, 1, np.random.default_rng(0), draws=10)["expected_tau"] is None  # all noise
        True
    """
    import numpy as np

    signal_std = math.sqrt(max(spread_std ** 2 - seed_std ** 2, 0.0))
    if signal_std == 0.0:
        return {"seeds": seeds, "expected_tau": None, "probability_at_least_target": None, "target": target}
    taus = []
    for _ in range(draws):
        expected = rng.normal(0.0, signal_std, n)
        observed = expected + rng.normal(0.0, seed_std / math.sqrt(seeds), n)
        taus.append(kendall_tau_b(expected, observed))
    taus = np.array(taus)
    return {"seeds": seeds, "expected_tau": round(float(taus.mean()), 3),
            "probability_at_least_target": round(float(np.mean(taus >= target - 1e-12)), 3), "target": target}
