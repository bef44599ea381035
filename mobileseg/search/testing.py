"""Fast, deterministic stand-ins for the search's two models (tests, docstring examples, dry runs).

Neither builds a Keras model: both read the genotype's cell widths, so a whole
search over ``search_space/demo.yaml`` runs in seconds. They pull in opposite
directions (wider and deeper networks score higher and run slower), so the search
has a real trade-off to find.

Example:
    >>> from mobileseg.arch.space import SearchSpace
    >>> import numpy as np
    >>> space = SearchSpace.load(DEMO_SPACE)
    >>> g = space.sample(np.random.default_rng(0))
    >>> accuracy = CapacityAccuracyModel()
    >>> accuracy.miou([g]) == accuracy.miou([g]), 0 < accuracy.miou([g])[0] < 1
    (True, True)
    >>> WidthLatencyModel().latency_ms(g) > 0
    True
"""

from __future__ import annotations

import math

from mobileseg.arch.genotype import Genotype
from mobileseg.arch.ops.registry import ATTENTION_OPS
from mobileseg.run.fingerprint import genotype_key
from mobileseg.shipped_files import SPACES

DEMO_SPACE = SPACES / "demo.yaml"


def cell_widths(genotype: Genotype) -> list[tuple[str, int]]:
    """``(op, output channels)`` of every cell that is not a ``skip``, and ``("head", width)``."""
    shapes = genotype.cell_shapes((64, 64))
    out = [(branch.cells[index].OP, shapes[(branch.name, index)].output[2])
           for branch in genotype.branches for index in range(len(branch.cells))
           if branch.cells[index].OP != "skip"]
    return out + [("head", genotype.head.width)]


class WidthLatencyModel:
    """A `LatencyModel`: ``ms_per_channel`` times the sum of the cells' and the head's widths.

    Args:
        ms_per_channel: milliseconds per output channel.
    """

    def __init__(self, ms_per_channel: float = 0.01):
        self.ms_per_channel = ms_per_channel

    def latency_ms(self, genotype: Genotype) -> float:
        """The sum of widths, in milliseconds."""
        return round(self.ms_per_channel * sum(width for _, width in cell_widths(genotype)), 9)


class CapacityAccuracyModel:
    """An `AccuracyModel`: a saturating function of the network's capacity, plus fixed noise.

    ``capacity`` is the sum of the non-skip cells' widths, attention cells counting
    ``attention_bonus`` times; ``miou = 0.25 + 0.5 * (1 - exp(-capacity / scale)) + noise``
    where the noise, up to ``noise`` either way, is drawn from the genotype's digest (the
    same network always scores the same, in any process).

    Attributes:
        batches: the size of every batch asked for, in order.
        evaluated: the `mobileseg.run.fingerprint.genotype_key` of every network scored, in order.
    """

    def __init__(self, scale: float = 150.0, attention_bonus: float = 1.5, noise: float = 0.02):
        self.scale = scale
        self.attention_bonus = attention_bonus
        self.noise = noise
        self.batches: list[int] = []
        self.evaluated: list[str] = []

    def score(self, genotype: Genotype) -> float:
        """The proxy mIoU of one network."""
        capacity = sum(width * (self.attention_bonus if op in ATTENTION_OPS else 1.0)
                       for op, width in cell_widths(genotype)[:-1])
        key = genotype_key(genotype)
        jitter = (int(key[:8], 16) / 0xFFFFFFFF * 2.0 - 1.0) * self.noise
        return min(1.0, max(0.0, 0.25 + 0.5 * (1.0 - math.exp(-capacity / self.scale)) + jitter))

    def miou(self, genotypes: list[Genotype]) -> list[float]:
        """One score per genotype; records the batch."""
        self.batches.append(len(genotypes))
        self.evaluated.extend(genotype_key(g) for g in genotypes)
        return [self.score(g) for g in genotypes]
