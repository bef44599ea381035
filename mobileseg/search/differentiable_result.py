"""What a differentiable search returns and says per epoch: its result, its candidates as a `SearchResult`.

The search is `mobileseg.search.differentiable`; every epoch's most likely network is one candidate
(one trial per epoch), so `mobileseg.search.pareto.write_outputs` treats it as an NSGA-II result.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mobileseg.arch import schema_io
from mobileseg.run.fingerprint import genotype_key
from mobileseg.search.differentiable_config import DifferentiableConfig
from mobileseg.search.differentiable_folder import FOLDER
from mobileseg.search.results import Candidate, SearchResult
from mobileseg.supernet.accuracy import SupernetAccuracyModel


@dataclasses.dataclass
class DifferentiableResult:
    """What `DifferentiableSearch.fit` did.

    Attributes:
        folder: ``RUN/differentiable``.
        initial_epoch: the epoch this call started at (> 0 when resumed).
        epoch: epochs completed.
        log: one dict per completed epoch.
        result: every epoch's most likely network as a `SearchResult` (one trial per epoch).
        accuracy: the proxy-mIoU model (to score references on the same axes).
    """

    folder: Path
    initial_epoch: int
    epoch: int
    log: list[dict]
    result: SearchResult
    accuracy: SupernetAccuracyModel


def epochs_result(candidates: list[dict], config: DifferentiableConfig, seconds: float,
                  checkpoint: Path) -> SearchResult:
    """Every epoch's most likely network as a `SearchResult` (trial and generation: the epoch, from 0)."""
    found = []
    for entry in candidates:
        genotype = schema_io.from_dict(entry["genotype"], str(checkpoint))
        found.append(Candidate(trial=entry["epoch"] - 1, generation=entry["epoch"] - 1, genotype=genotype,
                               decisions=dict(entry["decisions"]), latency_ms=entry["latency_ms"],
                               miou=entry["miou"], key=genotype_key(genotype)))
    name = f"{FOLDER} ({'GCN' if config.gcn else 'no GCN'})"
    return SearchResult(candidates=tuple(found), generations=len(found), population=1,
                        target_latency_ms=config.target_latency_ms,
                        invalid=sum(1 for entry in candidates if entry["fixups"]), study_name=name,
                        storage=str(checkpoint), seconds=seconds)


def epoch_line(entry: dict, epochs: int) -> str:
    """The progress line of one epoch's ``log`` entry."""
    search = (f"ce {entry['ce']:.3f}, E[latency] {entry['expected_ms']:.2f} ms, lambda {entry['latency_weight']:.3g}"
              f" -> {entry['next_latency_weight']:.3g}" if entry["architecture"] else "weights only (warm-up)")
    return (f"epoch {entry['epoch']}/{epochs}: weight ce {entry['weight_ce']:.3f}; {search}; most likely network "
            f"{entry['latency_ms']:.2f} ms, proxy mIoU {100 * entry['miou']:.1f}% ({entry['seconds']:.0f} s)")

