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
