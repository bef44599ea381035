"""The Pareto front of a search, the network to pick from it, and the run folder outputs.

Objectives: proxy mIoU (maximised) and predicted latency (minimised).

- `pareto_mask` / `non_dominated_sort`: non-dominated sorting (NSGA-II, Deb et al.
  2002) of points to minimise; `front_of` applies it to candidates.
- `hypervolume_2d`: the area a front dominates up to a reference point (how much
  of the trade-off a search has covered; grows as the search improves).
- `knee_point`: the front point farthest above the line between the front's
  extremes in normalised objectives (the best trade-off without a target).
- `choose_arch`: the best proxy mIoU within the latency target, else the knee.
- `write_outputs`: ``pareto.json``, ``pareto.png``, ``arch.yaml`` and a summary table.

Example:
    >>> costs = [[1, 5], [2, 3], [3, 4], [4, 1]]
    >>> pareto_mask(costs).tolist()
    [True, True, False, True]
    >>> [front.tolist() for front in non_dominated_sort(costs)]
    [[0, 1, 3], [2]]
    >>> hypervolume_2d(latency=[1, 2], miou=[0.5, 0.7], reference=(3, 0.0))  # 1 x 0.5 + 1 x 0.7
    1.2
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mobileseg.arch import schema_io
from mobileseg.arch.composition import composition
from mobileseg.atomic_write import write_atomic
from mobileseg.run.run_dir import RunDir

if TYPE_CHECKING:
    from mobileseg.arch.genotype import Genotype
    from mobileseg.search.objectives import ReferencePoint
    from mobileseg.search.results import Candidate, SearchResult

Describe = Callable[["Genotype"], dict]
"""genotype -> extra facts for its ``pareto.json`` entry (`write_outputs`)."""
PARETO_JSON, PARETO_PNG, ARCH_YAML = RunDir.PARETO_JSON, RunDir.PARETO_PNG, RunDir.ARCH
_CHUNK = 512


# -- non-dominated sorting -------------------------------------------------------------------
def pareto_mask(costs) -> np.ndarray:
    """Which points no other point dominates (every objective minimised).

    ``a`` dominates ``b`` when ``a <= b`` in every objective and ``a < b`` in one; equal
    points do not dominate each other, so duplicates are all kept. Memory stays
    ``O(512 * n)`` for ``n`` points.

    Args:
        costs: ``[n, k]`` values to minimise (negate objectives to maximise).

    Returns:
        Boolean ``[n]``.
    """
    costs = np.asarray(costs, dtype=float)
    if costs.ndim != 2:
        raise ValueError(f"costs must be [points, objectives], got shape {costs.shape}")
    mask = np.ones(len(costs), dtype=bool)
    for start in range(0, len(costs), _CHUNK):
        block = costs[start:start + _CHUNK, None, :]          # [b, 1, k]: the points tested
        weakly = (costs[None, :, :] <= block).all(-1)        # [b, n]: j is <= i everywhere
        strictly = (costs[None, :, :] < block).any(-1)       # [b, n]: j is < i somewhere
        mask[start:start + _CHUNK] = ~(weakly & strictly).any(-1)
    return mask


def non_dominated_sort(costs) -> list[np.ndarray]:
    """Indices of the successive non-dominated fronts (rank 0 first), each ascending."""
    costs = np.asarray(costs, dtype=float)
    remaining = np.arange(len(costs))
    fronts = []
    while len(remaining):
        mask = pareto_mask(costs[remaining])
        fronts.append(remaining[mask])
        remaining = remaining[~mask]
    return fronts


def _costs(candidates: Sequence) -> np.ndarray:
    return np.array([[-c.miou, c.latency_ms] for c in candidates], dtype=float).reshape(-1, 2)


def front_of(candidates: Sequence[Candidate]) -> list[Candidate]:
    """The non-dominated candidates (max ``miou``, min ``latency_ms``), fastest first."""
    mask = pareto_mask(_costs(candidates))
    front = [c for c, keep in zip(candidates, mask, strict=True) if keep]
    return sorted(front, key=lambda c: (c.latency_ms, -c.miou))


def hypervolume_2d(latency, miou, reference: tuple[float, float]) -> float:
    """Area dominated by the points, bounded by ``reference = (latency, miou)``.

    Points slower than the reference latency or below its mIoU add nothing.

    Args:
        latency: to minimise.
        miou: to maximise.
        reference: the worst corner (a latency above and an mIoU below every point of interest).
    """
    ref_latency, ref_miou = reference
    points = np.array([(l, m) for l, m in zip(latency, miou, strict=True) if l < ref_latency and m > ref_miou],
                      dtype=float).reshape(-1, 2)
    if not len(points):
        return 0.0
    points = points[pareto_mask(np.stack([points[:, 0], -points[:, 1]], axis=1))]
    points = points[np.lexsort((-points[:, 1], points[:, 0]))]
    edges = np.append(points[1:, 0], ref_latency)
    return float(np.sum((edges - points[:, 0]) * (points[:, 1] - ref_miou)))


# -- picking one network ---------------------------------------------------------------------
def knee_point(front: Sequence[Candidate]) -> Candidate:
    """The front point farthest above the line joining its fastest and most accurate points.

    Both objectives are scaled to [0, 1] over the front; ties (and fronts of one or two
    points, which have no interior) go to the higher mIoU.

    Raises:
        ValueError: an empty front.
    """
    if not front:
        raise ValueError("the Pareto front is empty: no network was evaluated")
    latency = np.array([c.latency_ms for c in front], dtype=float)
    miou = np.array([c.miou for c in front], dtype=float)
    x = (latency - latency.min()) / max(np.ptp(latency), 1e-12)
    y = (miou - miou.min()) / max(np.ptp(miou), 1e-12)
    order = np.lexsort((-miou, -(y - x).round(12)))  # the line is y = x on a normalised front
    return front[int(order[0])]


@dataclasses.dataclass(frozen=True)
class Choice:
    """The network picked from the front and why (a sentence for the summary)."""

    candidate: Candidate
    reason: str


def choose_arch(front: Sequence[Candidate], target_latency_ms: float | None) -> Choice:
    """The best proxy mIoU within the latency target (ties: the faster), else the knee.

    Example:
        >>> from types import SimpleNamespace as C
        >>> front = [C(latency_ms=2.0, miou=0.30), C(latency_ms=4.0, miou=0.50),
        ...          C(latency_ms=8.0, miou=0.55), C(latency_ms=16.0, miou=0.56)]
        >>> choose_arch(front, 10.0).candidate.latency_ms, choose_arch(front, None).candidate.latency_ms
        (8.0, 4.0)
        >>> choose_arch(front, 1.0).reason
        'the knee of the front: no network is within the 1 ms target (fastest 2 ms)'
    """
    if not front:
        raise ValueError("the Pareto front is empty: no network was evaluated")
    if target_latency_ms is None:
        return Choice(knee_point(front), "the knee of the front (no latency target)")
    within = [c for c in front if c.latency_ms <= target_latency_ms]
    if within:
        best = max(within, key=lambda c: (c.miou, -c.latency_ms))
        return Choice(best, f"the best proxy mIoU within the {target_latency_ms:g} ms target")
    fastest = min(c.latency_ms for c in front)
    return Choice(knee_point(front), f"the knee of the front: no network is within the "
                                     f"{target_latency_ms:g} ms target (fastest {fastest:.3g} ms)")


# -- outputs ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Outputs:
    """What `write_outputs` wrote, the choice, and the summary to print."""

    pareto_json: Path
    pareto_png: Path
    arch_yaml: Path
    choice: Choice
    summary: str


def _candidate_dict(c: Candidate, target: float | None, describe: Describe | None) -> dict:
    return {"trial": c.trial, "generation": c.generation, "latency_ms": c.latency_ms, "miou": c.miou,
            "feasible": c.feasible(target), "key": c.key, "composition": composition(c.genotype),
            **(describe(c.genotype) if describe else {}), "decisions": dict(c.decisions),
            "genotype": schema_io.to_dict(c.genotype)}


def write_outputs(run_dir: str | os.PathLike, result: SearchResult,
                  references: Sequence[ReferencePoint] = (), latency_source: str = "",
                  describe: Describe | None = None) -> Outputs:
    """Write the search's outputs into the run folder.

    - ``pareto.json`` (atomically): the front (genotype, decisions, predicted latency,
      proxy mIoU, feasibility), the chosen network and why, the references, and the
      study (name, storage without password, population, generations, trials, invalid).
    - ``pareto.png``: every network evaluated (grey), the front, the target, the chosen
      network, and the references (see `plot`).
    - ``arch.yaml``: the chosen genotype (`choose_arch`), named ``<space>_trial<N>``.

    Args:
        run_dir: the run folder (created if missing).
        result: the search's result (`EvolutionarySearch.run` or ``.result``).
        references: `evaluate_references` output, measured with the search's models.
        latency_source: what the latency model is (e.g. ``table:runs/x/latency_table.json``),
            written into ``pareto.json`` and the plot's axis label.
        describe: genotype -> more facts for its ``pareto.json`` entry (e.g. ``params`` and
            ``macs`` at the search size); every entry already has its ``composition``.

    Returns:
        `Outputs`; print ``.summary`` for the user.

    Raises:
        ValueError: the study has no completed trial.
    """
    run_dir = Path(run_dir)
    front = result.front()
    choice = choose_arch(front, result.target_latency_ms)
    chosen = choice.candidate
    arch = dataclasses.replace(chosen.genotype, name=f"{chosen.genotype.name}_trial{chosen.trial}")
    arch_path = run_dir / ARCH_YAML
    schema_io.dump(arch, arch_path)
    target = result.target_latency_ms
    report = {
        "schema_version": 1,
        "objectives": {"miou": "proxy mIoU from the AccuracyModel, a fraction in [0, 1] (maximised)",
                       "latency_ms": "predicted by the LatencyModel, milliseconds (minimised)"},
        "latency_source": latency_source,
        "study": {"name": result.study_name, "storage": result.storage, "population": result.population,
                  "generations": result.generations, "trials": len(result.candidates),
                  "distinct_networks": len(result.unique()), "invalid_pruned": result.invalid},
        "target_latency_ms": target,
        "chosen": {"trial": chosen.trial, "reason": choice.reason, "arch": ARCH_YAML,
                   "latency_ms": chosen.latency_ms, "miou": chosen.miou, "composition": composition(chosen.genotype)},
        "front": [_candidate_dict(c, target, describe) for c in front],
        "references": [r.as_dict() for r in references],
    }
    json_path = write_atomic(run_dir / PARETO_JSON, json.dumps(report, indent=2) + "\n")
    png_path = write_atomic(run_dir / PARETO_PNG, plot(result, choice, references, latency_source))
    return Outputs(json_path, png_path, arch_path, choice, summary(result, choice, references, arch_path))


def plot(result: SearchResult, choice: Choice, references: Sequence[ReferencePoint] = (),
         latency_source: str = "") -> bytes:
    """``pareto.png`` as bytes: all networks grey, the front, the target, the choice, references.

    References inside the search space are starred at (latency, proxy mIoU). References
    outside it have no proxy mIoU (the accuracy model only scores networks of the
    space): they are drawn as triangles on the x axis at their latency, and the
    legend says so. A latency axis spanning more than 20x is logarithmic.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator

    figure = Figure(figsize=(9, 6), dpi=110)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    figure.subplots_adjust(left=0.08, right=0.97, bottom=0.2, top=0.94)
    everyone = result.unique()
    front = result.front()
    ax.scatter([c.latency_ms for c in everyone], [100 * c.miou for c in everyone], s=10, color="0.72",
               label=f"all networks evaluated ({len(everyone)})", zorder=1)
    ax.plot([c.latency_ms for c in front], [100 * c.miou for c in front], "o-", color="tab:blue", ms=5,
            lw=1.2, label=f"Pareto front ({len(front)})", zorder=3)
    chosen = choice.candidate
    ax.scatter([chosen.latency_ms], [100 * chosen.miou], s=150, facecolors="none", edgecolors="tab:red",
               linewidths=2, label=f"arch.yaml (trial {chosen.trial})", zorder=4)
    if result.target_latency_ms is not None:
        ax.axvline(result.target_latency_ms, color="tab:red", ls="--", lw=1,
                   label=f"target {result.target_latency_ms:g} ms")
    placed = [r for r in references if r.latency_ms is not None]
    inside = [r for r in placed if r.miou is not None]
    outside = [r for r in placed if r.miou is None]
    if inside:
        ax.scatter([r.latency_ms for r in inside], [100 * r.miou for r in inside], marker="*", s=140,
                   color="tab:green", label="references in the space", zorder=5)
        for r in inside:
            ax.annotate(r.name, (r.latency_ms, 100 * r.miou), xytext=(4, 4), textcoords="offset points",
                        fontsize=7, color="tab:green")
    latencies = [c.latency_ms for c in everyone] + [r.latency_ms for r in placed]
    if result.target_latency_ms is not None:
        latencies.append(result.target_latency_ms)
    log = bool(latencies) and min(latencies) > 0 and max(latencies) / min(latencies) > 20
    if latencies:
        low, high = min(latencies), max(latencies)
        if log:
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            ax.xaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))
            ax.set_xlim(low / 1.25, high * 1.25)
        else:
            pad = max(high - low, abs(high) * 0.1, 1e-3) * 0.06
            ax.set_xlim(low - pad, high + pad)
    if outside:
        _mark_on_x_axis(ax, sorted(outside, key=lambda r: r.latency_ms), log)
    source = f" ({latency_source})" if latency_source else ""
    ax.set_xlabel(f"predicted latency, ms{source}")
    ax.set_ylabel("proxy mIoU, %")
    ax.set_title(f"{result.study_name}: {len(result.candidates)} trials, {result.generations} generations "
                 f"of {result.population}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _mark_on_x_axis(ax, references: Sequence[ReferencePoint], log: bool) -> None:
    """Triangles on the x axis at the references' latencies, names written upwards, nudged apart."""
    axis = ax.get_xaxis_transform()  # x in data, y in axes fraction: 0 is the x axis
    ax.scatter([r.latency_ms for r in references], [0.0] * len(references), marker="^", s=60,
               color="tab:purple", transform=axis, clip_on=False, zorder=5,
               label="references outside the space (latency only, on the x axis)")
    low, high = ax.get_xlim()
    scale = np.log10 if log else (lambda v: v)
    width_points = ax.get_position().width * ax.figure.get_figwidth() * 72
    last = -np.inf
    for r in references:
        x = (scale(r.latency_ms) - scale(low)) / (scale(high) - scale(low)) * width_points
        shift = max(0.0, last + 9.0 - x)  # 9 points between names written upwards
        last = x + shift
        ax.annotate(r.name, (r.latency_ms, 0.0), xycoords=axis, xytext=(shift, 10), textcoords="offset points",
                    rotation=90, fontsize=7, color="tab:purple", ha="center", va="bottom")


def summary(result: SearchResult, choice: Choice, references: Sequence[ReferencePoint] = (),
            arch_path: str | os.PathLike = ARCH_YAML) -> str:
    """A short text report: the study, the front as a table, the references, the choice."""
    target = result.target_latency_ms
    front = result.front()
    knee = knee_point(front)
    lines = [f"study {result.study_name}: {len(result.candidates)} trials in {result.generations} generations "
             f"of {result.population} ({len(result.unique())} distinct networks, "
             f"{result.invalid} invalid proposals pruned)"
             + (f", {result.seconds:.0f} s" if result.seconds else ""),
             f"Pareto front: {len(front)} networks" + (f", target {target:g} ms" if target is not None else ""),
             "", "| trial | gen | latency ms | proxy mIoU % | composition | |", "|---:|---:|---:|---:|---|---|"]
    for c in front:
        notes = [note for note, on in (("chosen", c is choice.candidate), ("knee", c is knee),
                                       ("over target", not c.feasible(target))) if on]
        lines.append(f"| {c.trial} | {c.generation} | {c.latency_ms:.3f} | {100 * c.miou:.1f} | "
                     f"{composition(c.genotype)} | {', '.join(notes)} |")
    if references:
        lines += ["", "references (same latency model; proxy mIoU only for networks in the space):", "",
                  "| network | latency ms | proxy mIoU % | |", "|---|---:|---:|---|"]
        for r in references:
            latency = "-" if r.latency_ms is None else f"{r.latency_ms:.3f}"
            miou = "-" if r.miou is None else f"{100 * r.miou:.1f}"
            lines.append(f"| {r.name} | {latency} | {miou} | {r.note} |")
    c = choice.candidate
    lines += ["", f"chosen: trial {c.trial}, {c.latency_ms:.3f} ms, proxy mIoU {100 * c.miou:.1f}% "
                  f"({choice.reason}) -> {arch_path}"]
    return "\n".join(lines)
