"""``--strategy random``: the baseline every search must beat (Li and Talwalkar, UAI 2019; Yang et
al., "NAS evaluation is frustratingly hard", ICLR 2020).

Seeded random networks of the space, in two forms (``--random_score``):

- ``latency`` (the default): scored by nothing but their predicted latency. The search's trial
  budget (``--population`` x ``--generations``) of distinct networks drawn with
  ``SearchSpace.sample``, each given the latency the other strategies would predict, and the
  network chosen is the one within ``--target_latency_ms`` with the highest predicted latency:
  without an accuracy signal, the network that uses the latency budget fully is the best guess
  (more capacity within the same target). No supernet is trained, so its cost is the latency
  stage alone, and the same seed gives the same networks: a rerun is the resume.
- ``supernet``: random search with weight sharing (Li and Talwalkar, section 4), the baseline at
  the evolutionary search's cost. The same supernet is trained, then ``--population`` x
  ``--generations`` distinct random networks *within the target* are drawn (NSGA-II scores about
  as many) and each is given the proxy mIoU NSGA-II would give it (`score_networks`); the network
  chosen is the best proxy mIoU. Scores are kept in ``random_scores.json`` after every network, so
  a killed run goes on where it stopped; scores of another supernet or proxy are refused
  (`stored_scores`).

Its outputs are the other strategies' files: ``pareto.json`` (``"strategy": "random"``; every
network within the target, its ``miou`` the proxy's or null), ``pareto.png`` (the networks'
predicted latencies, or latency against proxy mIoU when scored, the target and the chosen one)
and ``arch.yaml``.

Example:
    >>> from mobileseg.arch.space import SearchSpace
    >>> from mobileseg.search.testing import WidthLatencyModel
    >>> space = SearchSpace.from_text('''
    ... name: demo
    ... branches:
    ...   - name: main
    ...     source: null
    ...     cells:
    ...       - {op: conv, width: {choice: [8, 16, 24, 32]}, stride: 2}
    ...       - {op: conv, width: 8}
    ... head: {op: light, inputs: [{branch: main}], width: 8}
    ... ''')
    >>> result = sample_networks(space, WidthLatencyModel(), target_latency_ms=0.45, trials=10, seed=0)
    >>> len(result.networks), sorted(n.latency_ms for n in result.feasible()), result.chosen().latency_ms
    (4, [0.24, 0.32, 0.4], 0.4)
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from mobileseg.arch import schema_io
from mobileseg.arch.composition import composition
from mobileseg.arch.genotype import Genotype
from mobileseg.atomic_write import write_atomic
from mobileseg.run.fingerprint import genotype_key
from mobileseg.search.objectives import ReferencePoint
from mobileseg.search.pareto import ARCH_YAML, PARETO_JSON, PARETO_PNG
from mobileseg.state_files import StateFileError, read_json

MAX_REPEATS = 500
"""Draws in a row that give only networks already drawn before a small space is taken as exhausted."""
MAX_DRAWS_PER_TRIAL = 100
"""With ``within_target``, draws per network wanted before a target few networks meet is taken as exhausted."""
SCORES_JSON = "random_scores.json"


@dataclasses.dataclass(frozen=True)
class RandomNetwork:
    """One drawn network: its draw number, genotype, key, predicted latency and proxy mIoU (None: unscored)."""

    trial: int
    genotype: Genotype
    key: str
    latency_ms: float
    miou: float | None = None


@dataclasses.dataclass(frozen=True)
class RandomResult:
    """The networks drawn (distinct, in draw order), the target, the seed and the wall time."""

    networks: tuple[RandomNetwork, ...]
    target_latency_ms: float
    seed: int
    seconds: float = 0.0

    def feasible(self) -> list[RandomNetwork]:
        """The networks within the target."""
        return [n for n in self.networks if n.latency_ms <= self.target_latency_ms]

    def scored(self) -> list[RandomNetwork]:
        """The networks within the target that have a proxy mIoU."""
        return [n for n in self.feasible() if n.miou is not None]

    def chosen(self) -> RandomNetwork:
        """The best proxy mIoU within the target (ties: the faster); unscored, the network within the
        target with the highest predicted latency; else the fastest."""
        if scored := self.scored():
            return max(scored, key=lambda n: (n.miou, -n.latency_ms, -n.trial))
        within = self.feasible()
        if within:
            return max(within, key=lambda n: (n.latency_ms, -n.trial))
        return min(self.networks, key=lambda n: (n.latency_ms, n.trial))

    def reason(self) -> str:
        if scored := self.scored():
            return (f"the best proxy mIoU of the {len(scored)} random networks within the "
                    f"{self.target_latency_ms:g} ms target (scored by the supernet)")
        if self.feasible():
            return (f"the highest predicted latency within the {self.target_latency_ms:g} ms target "
                    f"({len(self.feasible())} of {len(self.networks)} random networks within it; none scored)")
        return (f"the fastest random network: none of {len(self.networks)} is within the "
                f"{self.target_latency_ms:g} ms target")


def sample_networks(space, latency_model, target_latency_ms: float, trials: int, seed: int,
                    progress=None, within_target: bool = False) -> RandomResult:
    """Draw up to ``trials`` distinct seeded random networks of ``space`` and predict their latency.

    Args:
        space: a `SearchSpace`.
        latency_model: the search's `LatencyModel` (``latency_ms(genotype)``).
        target_latency_ms: the latency target.
        trials: networks wanted; a space with fewer distinct networks gives all it has.
        seed: seeds the draws (the same seed, the same networks).
        progress: called with a line every 10% of the networks wanted, when given.
        within_target: ``trials`` counts the networks within the target only (the ones
            `score_networks` scores), drawing at most `MAX_DRAWS_PER_TRIAL` x ``trials`` networks.
    """
    import time

    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    networks: list[RandomNetwork] = []
    keys: set[str] = set()
    repeats = within = 0
    wanted = (lambda: within) if within_target else (lambda: len(networks))
    while wanted() < trials and repeats < MAX_REPEATS and len(keys) < MAX_DRAWS_PER_TRIAL * trials:
        genotype = space.sample(rng)
        key = genotype_key(genotype)
        if key in keys:
            repeats += 1
            continue
        keys.add(key)
        repeats = 0
        networks.append(RandomNetwork(len(networks), genotype, key, float(latency_model.latency_ms(genotype))))
        within += networks[-1].latency_ms <= target_latency_ms
        counted = not within_target or networks[-1].latency_ms <= target_latency_ms
        if progress is not None and counted and wanted() % max(1, trials // 10) == 0:
            progress(f"random: {len(networks)}/{trials} networks, {within} within {target_latency_ms:g} ms")
    return RandomResult(tuple(networks), target_latency_ms, seed, time.perf_counter() - started)


def stored_scores(path: str | os.PathLike, proxy: dict) -> dict[str, float]:
    """The proxy mIoU by network key kept in ``path`` (`SCORES_JSON`), empty when there is none.

    Raises:
        StateFileError: the file is damaged, or holds scores of another supernet or proxy setting.
    """
    advice = "delete it to score the random networks again"
    data = read_json(path, advice, ("proxy", "scores"))
    if data is None:
        return {}
    if data["proxy"] != proxy:
        changed = [f"{key} {data['proxy'].get(key)!r} -> {value!r}" for key, value in proxy.items()
                   if data["proxy"].get(key) != value]
        raise StateFileError(Path(path), f"scores of another supernet or proxy ({'; '.join(changed)})",
                             f"{advice}, or use a new --run_dir")
    return {str(key): float(value) for key, value in data["scores"].items()}


def score_networks(result: RandomResult, accuracy_model, path: str | os.PathLike, proxy: dict,
                   progress=None) -> RandomResult:
    """``result`` with every network within the target given its proxy mIoU (``accuracy_model.miou``).

    Scores already in ``path`` (`stored_scores`, the same ``proxy``) are taken, every new one is written
    there at once, so a killed run loses at most the network being scored. The wall time of the scoring
    is added to the result's.
    """
    import time

    started = time.perf_counter()
    scores = stored_scores(path, proxy)
    todo = [n for n in result.feasible() if n.key not in scores]
    for done, network in enumerate(todo, 1):
        scores[network.key] = float(accuracy_model.miou([network.genotype])[0])
        write_atomic(Path(path), json.dumps({"proxy": proxy, "scores": scores}, indent=1) + "\n")
        if progress is not None:
            progress(f"random: scored {done}/{len(todo)} networks (proxy mIoU {100 * scores[network.key]:.1f})")
    networks = tuple(dataclasses.replace(n, miou=scores.get(n.key)) for n in result.networks)
    return dataclasses.replace(result, networks=networks, seconds=result.seconds + time.perf_counter() - started)


def _network_dict(network: RandomNetwork, target: float) -> dict:
    return {"trial": network.trial, "generation": 0, "latency_ms": network.latency_ms, "miou": network.miou,
            "feasible": network.latency_ms <= target, "key": network.key,
            "composition": composition(network.genotype), "genotype": schema_io.to_dict(network.genotype)}


def write_outputs(run_dir: str | os.PathLike, result: RandomResult, references: Sequence[ReferencePoint] = (),
                  latency_source: str = "") -> tuple[Path, str]:
    """Write ``pareto.json``, ``pareto.png`` and ``arch.yaml``; returns (arch path, summary)."""
    run_dir = Path(run_dir)
    chosen = result.chosen()
    arch_path = run_dir / ARCH_YAML
    schema_io.dump(dataclasses.replace(chosen.genotype, name=f"{chosen.genotype.name}_random{chosen.trial}"),
                   arch_path)
    target = result.target_latency_ms
    report = {
        "schema_version": 1,
        "strategy": "random",
        "objectives": {"miou": ("proxy mIoU from the supernet, a fraction in [0, 1] (maximised)" if result.scored()
                                else "none: random search scores no network (null)"),
                       "latency_ms": "predicted by the LatencyModel, milliseconds"},
        "latency_source": latency_source,
        "study": {"name": "random", "seed": result.seed, "trials": len(result.networks),
                  "distinct_networks": len(result.networks), "within_target": len(result.feasible()),
                  "scored": len(result.scored()), "seconds": round(result.seconds, 1)},
        "target_latency_ms": target,
        "chosen": {"trial": chosen.trial, "reason": result.reason(), "arch": ARCH_YAML,
                   "latency_ms": chosen.latency_ms, "miou": chosen.miou, "composition": composition(chosen.genotype)},
        "front": [_network_dict(n, target) for n in sorted(result.feasible(), key=lambda n: n.latency_ms)],
        "references": [r.as_dict() for r in references],
    }
    write_atomic(run_dir / PARETO_JSON, json.dumps(report, indent=2) + "\n")
    write_atomic(run_dir / PARETO_PNG, plot(result, references, latency_source))
    lines = [f"random search (seed {result.seed}): {len(result.networks)} networks, {len(result.feasible())} "
             f"within the {target:g} ms target, predicted {min(n.latency_ms for n in result.networks):.3f}-"
             f"{max(n.latency_ms for n in result.networks):.3f} ms"]
    lines += [f"reference {r.name}: {r.latency_ms:.3f} ms" for r in references if r.latency_ms is not None]
    score = f", proxy mIoU {100 * chosen.miou:.1f}" if chosen.miou is not None else ""
    lines.append(f"chosen: network {chosen.trial}, {chosen.latency_ms:.3f} ms{score}, {result.reason()} -> {arch_path}")
    lines.append(f"  {composition(chosen.genotype)}")
    return arch_path, "\n".join(lines)


def plot(result: RandomResult, references: Sequence[ReferencePoint] = (), latency_source: str = "") -> bytes:
    """``pareto.png`` of a random search: the predicted latency of every network (against the proxy mIoU of
    those scored), the target and the choice."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 4.5), dpi=110)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    latencies = [n.latency_ms for n in result.networks]
    chosen, scored = result.chosen(), result.scored()
    if scored:
        ax.scatter([n.latency_ms for n in scored], [100 * n.miou for n in scored], s=14, color="0.55",
                   label=f"scored networks ({len(scored)})")
        ax.scatter([chosen.latency_ms], [100 * chosen.miou], marker="*", s=160, color="tab:blue", zorder=3,
                   label=f"arch.yaml (network {chosen.trial})")
        ax.set_ylabel("proxy mIoU, %")
        scoring = "scored by the supernet"
    else:
        ax.hist(latencies, bins=min(40, max(5, len(latencies) // 4)), color="0.72",
                label=f"random networks ({len(latencies)})")
        ax.axvline(chosen.latency_ms, color="tab:blue", lw=2, label=f"arch.yaml (network {chosen.trial})")
        ax.set_ylabel("networks")
        scoring = "no network is scored"
    ax.axvline(result.target_latency_ms, color="tab:red", ls="--", lw=1, label=f"target {result.target_latency_ms:g} ms")
    for r in references:
        if r.latency_ms is not None:
            ax.axvline(r.latency_ms, color="tab:green", lw=0.8, ls=":")
            ax.annotate(r.name, (r.latency_ms, 0.98), xycoords=("data", "axes fraction"), rotation=90, fontsize=7,
                        color="tab:green", ha="right", va="top")
    ax.set_xlabel(f"predicted latency, ms{f' ({latency_source})' if latency_source else ''}")
    ax.set_title(f"random search, seed {result.seed}: {len(result.feasible())} of {len(latencies)} within the "
                 f"target; {scoring}", fontsize=10)
    ax.legend(fontsize=7)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
