"""What a search returns: every evaluated network (`Candidate`) and the study's state (`SearchResult`).

Both are read back from the Optuna study (each trial stores its genotype,
decisions, latency and proxy mIoU as user attributes), so a result can be
rebuilt from ``study.db`` alone, by the search that wrote it or by a report later.
"""

from __future__ import annotations

import dataclasses

from mobileseg.arch.genotype import Genotype
from mobileseg.search import pareto


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One evaluated network.

    Attributes:
        trial: the Optuna trial number.
        generation: the generation it was asked in (0-based).
        genotype: the network.
        decisions: the search-space decisions that give it (``{choice path: index}``).
        latency_ms: predicted by the search's `LatencyModel`.
        miou: proxy mIoU in [0, 1] from the search's `AccuracyModel`.
        key: `mobileseg.run.fingerprint.genotype_key` of the network (the same network asked twice has one key).
    """

    trial: int
    generation: int
    genotype: Genotype
    decisions: dict[str, int]
    latency_ms: float
    miou: float
    key: str

    def feasible(self, target_latency_ms: float | None) -> bool:
        """Within the latency target (always, without one)."""
        return target_latency_ms is None or self.latency_ms <= target_latency_ms


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """The state of a search study.

    Attributes:
        candidates: every completed trial, in trial order (a network the sampler asked
            for again appears again, scored from the cache).
        generations: generations completed in the study (``len(candidates) // population``).
        population: trials per generation.
        target_latency_ms: the latency constraint, or None.
        invalid: proposals pruned because their decisions do not connect into a network.
        study_name: the Optuna study.
        storage: the study's storage URL, password hidden.
        seconds: wall time of the run that produced this result (0 when only read).
    """

    candidates: tuple[Candidate, ...]
    generations: int
    population: int
    target_latency_ms: float | None
    invalid: int
    study_name: str
    storage: str
    seconds: float = 0.0

    def unique(self) -> list[Candidate]:
        """Candidates with repeated networks dropped (first occurrence kept)."""
        seen: set[str] = set()
        out = []
        for candidate in self.candidates:
            if candidate.key not in seen:
                seen.add(candidate.key)
                out.append(candidate)
        return out

    def front(self) -> list[Candidate]:
        """The Pareto front of all distinct networks (max mIoU, min latency), fastest first."""
        return pareto.front_of(self.unique())

    def feasible(self) -> list[Candidate]:
        """Distinct networks within the latency target."""
        return [c for c in self.unique() if c.feasible(self.target_latency_ms)]
