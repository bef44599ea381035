"""Predicted against measured latency of whole networks: overhead calibration and validation.

Both steps build seeded random networks of a space with the builder, convert them to
TFLite exactly as export ships them (`mobileseg.latency.shipped.network_flatbuffer`: packaged,
a uint8 image in, int8 calibrated on images in [0, 255]), time each end to end on the table's
device and compare with the table's prediction:

- **calibration** fits the table's overhead (`mobileseg.latency.overhead`) on a few
  networks chosen to span the predicted range (the quantiles of many candidates), drawn
  with their own seed and never equal to a validation sample;
- **validation** reports, over N networks, the share predicted within +-10 %, the RMSE,
  the MAPE, Spearman's rho and a predicted-vs-measured scatter plot.

Every network is kept as one JSON file and its TFLite file in a folder (`NetworkStore`), each written
atomically as soon as it is converted, then as soon as it is timed, so a killed run resumes where it
stopped, and a rerun after the table changed (or with more samples) measures only networks it has not.
Networks are all converted first, then timed together in rounds (`measure_networks`), so that the
machine's drift over the minutes a validation takes is shared by all of them rather than being
mistaken for a difference between them; on this CPU, in a fresh process without the TensorFlow that
converted them.

Example:
    >>> spearman_rho([1.0, 2.0, 3.0, 4.0], [10.0, 30.0, 20.0, 40.0])
    0.8
    >>> summary = summarize([10.0, 20.0], [10.5, 25.0])
    >>> summary["within_10pct"], round(summary["rmse_ms"], 3)
    (0.5, 3.553)
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from mobileseg.atomic_write import write_atomic
from mobileseg.run.fingerprint import genotype_key, genotype_text, text_digest
from mobileseg.text_files import read_text

BAND = 0.10
TARGET_WITHIN, TARGET_RHO = 0.95, 0.98  # issue 22: share within +-10% and Spearman rho
TARGET = f"within_10pct >= {TARGET_WITHIN} and spearman_rho >= {TARGET_RHO}"
# nn-Meter (Zhang et al., MobiSys 2021), Table 5: TFLite on a Cortex-A76 CPU.
ANCHOR = "nn-Meter reports 99.0% of networks within +-10% for TFLite on a Cortex-A76 CPU"


# ---- statistics ------------------------------------------------------------------------

def average_ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, ties sharing their average rank (as ``scipy.stats.rankdata``).

    Example:
        >>> average_ranks([3.0, 1.0, 3.0]).tolist()
        [2.5, 1.0, 2.5]
    """
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        stop = start
        while stop + 1 < len(values) and sorted_values[stop + 1] == sorted_values[start]:
            stop += 1
        ranks[order[start:stop + 1]] = (start + stop) / 2.0 + 1.0
        start = stop + 1
    return ranks


def spearman_rho(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the average ranks."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"spearman_rho needs two equal-length lists of 2+ values, got {len(a)}, {len(b)}")
    ra, rb = average_ranks(a), average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = float(np.sqrt((ra ** 2).sum() * (rb ** 2).sum()))
    return float((ra * rb).sum() / denominator) if denominator else float("nan")


def error_pct(predicted: float | None, measured: float | None) -> float | None:
    """A prediction's signed error against its measurement, in % of the measurement (> 0: predicted too slow).

    Example:
        >>> error_pct(2.5, 2.0), error_pct(1.5, 2.0), error_pct(None, 2.0)
        (25.0, -25.0, None)
    """
    if predicted is None or measured is None or measured <= 0:
        return None
    return round(100 * (predicted - measured) / measured, 2)


def summarize(predicted: Sequence[float], measured: Sequence[float], band: float = BAND) -> dict:
    """Agreement of predictions with measurements.

    Returns:
        ``samples``, ``within_10pct`` (share with ``|predicted - measured| <= band *
        measured``), ``within_5pct`` (the same at half the band), ``rmse_ms``, ``mape_pct``,
        ``mean_error_pct`` (signed: > 0 predicts too slow), ``max_abs_error_pct``, ``spearman_rho``
        (None for fewer than 2 samples).
    """
    p = np.asarray(predicted, dtype=np.float64)
    m = np.asarray(measured, dtype=np.float64)
    relative = (p - m) / m
    return {
        "samples": int(p.size),
        "within_10pct": float(np.mean(np.abs(relative) <= band)),
        "within_5pct": float(np.mean(np.abs(relative) <= band / 2)),
        "rmse_ms": float(np.sqrt(np.mean((p - m) ** 2))),
        "mape_pct": float(100 * np.mean(np.abs(relative))),
        "mean_error_pct": float(100 * np.mean(relative)),
        "max_abs_error_pct": float(100 * np.max(np.abs(relative))),
        "spearman_rho": spearman_rho(p, m) if p.size >= 2 else None,
    }


def rounds_spearman_rho(round_ms: Sequence[Sequence[float]]) -> float | None:
    """How well the measurement repeats its own ranking: the lowest Spearman rho between two of its rounds.

    ``round_ms`` holds, per network, its timing in each round. The prediction is ranked against
    the median of the rounds, whose noise is smaller than one round's; still, when two rounds of the
    same files rank them with rho 0.9, a predictor's rho of 0.96 says more about the machine's load
    than about the predictor. None with fewer than two rounds or two networks.

    Example:
        >>> rounds_spearman_rho([[1.0, 1.1], [2.0, 1.9], [3.0, 3.2], [4.0, 2.9]])
        0.8
    """
    rounds = min((len(r) for r in round_ms), default=0)
    if rounds < 2 or len(round_ms) < 2:
        return None
    columns = np.asarray([list(r[:rounds]) for r in round_ms], np.float64).T
    return min(spearman_rho(columns[i], columns[j]) for i in range(rounds) for j in range(i + 1, rounds))


def meets_target(summary: dict) -> bool:
    """Whether a `summarize` result meets `TARGET`.

    Example:
        >>> meets_target({"within_10pct": 0.96, "spearman_rho": 0.985}), meets_target({"within_10pct": 1.0})
        (True, False)
    """
    return bool(summary["within_10pct"] >= TARGET_WITHIN and (summary.get("spearman_rho") or 0) >= TARGET_RHO)


def scatter_png(path: str | os.PathLike, predicted: Sequence[float], measured: Sequence[float],
                title: str, band: float = BAND) -> Path:
    """Predicted (x) against measured (y) latency with the y = x line and the region where the
    prediction is within ``band`` of the measurement."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    p = np.asarray(predicted, dtype=np.float64)
    m = np.asarray(measured, dtype=np.float64)
    inside = np.abs(p - m) <= band * m
    low, high = 0.9 * min(p.min(), m.min()), 1.1 * max(p.max(), m.max())
    line = np.linspace(low, high, 50)
    figure, axes = pyplot.subplots(figsize=(6, 6), dpi=110)
    # |predicted - measured| <= band * measured  <=>  predicted / (1 + band) <= measured <= predicted / (1 - band)
    axes.fill_between(line, line / (1 + band), line / (1 - band), color="tab:green", alpha=0.15,
                      label=f"prediction within +-{band:.0%} of measured")
    axes.plot(line, line, color="tab:green", linewidth=1)
    axes.scatter(p[inside], m[inside], s=14, color="tab:blue", label=f"inside ({inside.sum()})")
    axes.scatter(p[~inside], m[~inside], s=14, color="tab:red", label=f"outside ({(~inside).sum()})")
    axes.set_xlim(low, high)
    axes.set_ylim(low, high)
    axes.set_xlabel("predicted latency (ms): table sum + overhead")
    axes.set_ylabel("measured latency (ms): whole network end to end")
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    pyplot.close(figure)
    return path


# ---- networks --------------------------------------------------------------------------

class NetworkStore:
    """Measured networks, one JSON file each in ``folder``, named by what was measured.

    The file name is a hash of the record's key (the genotype and the settings that change
    its measurement), so a rerun finds every network it measured before, whatever order or
    selection it now asks them in, and never mistakes one network for another.

    Example:
        >>> import tempfile
        >>> store = NetworkStore(tempfile.mkdtemp())
        >>> store.put("net-a", {"measured_ms": 1.5})
        >>> store.get("net-a")["measured_ms"], store.get("net-b")
        (1.5, None)
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        """The file of the record stored under ``key``."""
        return self.folder / f"network_{text_digest(key, 'sha1', 16)}.json"

    def get(self, key: str) -> dict | None:
        """The record stored under ``key``; None when that network was not measured yet or its file is damaged.

        A damaged file (not UTF-8, not JSON) counts as not measured: the network is measured again
        and the file rewritten.
        """
        path = self.path(key)
        if not path.exists():
            return None
        try:
            record = json.loads(read_text(path))
        except ValueError:  # a TextFileError or a JSONDecodeError
            return None
        return record if isinstance(record, dict) and record.get("key") == key else None  # (a hash collision)

    def flatbuffer_path(self, key: str) -> Path:
        """The TFLite file of the network stored under ``key`` (kept, so it can be timed again)."""
        return self.path(key).with_suffix(".tflite")

    def put(self, key: str, record: dict) -> None:
        """Store a record atomically under ``key``."""
        write_atomic(self.path(key), json.dumps({**record, "key": key}, indent=1, sort_keys=True) + "\n")


def measure_networks(genotypes: Sequence, store: NetworkStore, flatbuffer_of: Callable[[object], bytes],
                     measurer: Callable[[bytes], object], desc: str, names: Sequence[str],
                     progress: bool = True, context: dict | None = None, rounds: int = 3,
                     fresh_process: bool = False) -> list[dict]:
    """Measure every network not in the store yet; all records, in order.

    The networks not measured yet are first all converted (each flatbuffer kept in the store as it is
    written, so a killed run converts only the rest), then timed together in ``rounds`` rounds, every
    network once per round, each round in its own seeded random order, and each keeps the median of its
    rounds: the machine's state drifts over minutes (load, a neighbour's cache use), so networks timed one
    after another at different moments would differ by that drift, not by what they are, and networks
    timed next to each other in one round are not next to each other in the next.

    Args:
        genotypes: the networks.
        store: where records are kept.
        flatbuffer_of: genotype -> the shipped TFLite bytes (`mobileseg.latency.shipped.network_flatbuffer`).
        measurer: bytes -> `LatencyRecord` or record dict on the table's device.
        desc: the progress bars' label.
        names: one name per network.
        progress: show tqdm bars.
        context: extra fields that must match for a stored record to be reused
            (input size, classes, quantization...).
        rounds: timings of each network (>= 1); its ``measured_ms`` is their median, ``round_ms`` lists them.
        fresh_process: time them in a new Python process (``spawn``: LiteRT only; ``measurer`` must pickle),
            not in this one, whose TensorFlow converted them. At 184x240 on a 2-core machine at load ~10, a
            fresh process timed the same files 0.86x as long as the converting process (median over 108
            networks), and more repeatably (benchmarks/results/latency_predictor_184x240_s2026_fresh_process.json).
    """
    from tqdm.auto import tqdm

    from mobileseg.arch import schema_io
    from mobileseg.latency.table_entry import TableEntry

    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    context = dict(context or {})
    keys = [json.dumps({"genotype": genotype_text(g), **context}, sort_keys=True) for g in genotypes]
    records = {key: store.get(key) for key in keys}
    todo = list(dict.fromkeys(key for key in keys if records[key] is None or "measured_ms" not in records[key]))
    by_key = dict(zip(keys, genotypes, strict=True))
    for key in tqdm(todo, desc=f"{desc}: converting", unit="net", disable=not progress, file=sys.stderr,
                    dynamic_ncols=True):
        if records[key] is not None and store.flatbuffer_path(key).is_file():
            continue
        started = time.perf_counter()
        flatbuffer = flatbuffer_of(by_key[key])
        write_atomic(store.flatbuffer_path(key), flatbuffer)
        records[key] = {"genotype": schema_io.to_dict(by_key[key]), "tflite_bytes": len(flatbuffer),
                        "build_convert_s": round(time.perf_counter() - started, 3)}
        store.put(key, records[key])  # converted, not timed yet
        _clear_keras_session()
    paths = [str(store.flatbuffer_path(key)) for key in todo]
    if fresh_process and todo:
        import multiprocessing

        # a spawned interpreter imports this module and LiteRT, not TensorFlow (see the docstring)
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            timed, seconds = pool.apply(time_rounds, (measurer, paths, rounds, f"{desc}: timing", progress))
    else:
        timed, seconds = time_rounds(measurer, paths, rounds, f"{desc}: timing", progress)
    timed = {key: [TableEntry.from_record(r) for r in timed[i]] for i, key in enumerate(todo)}
    seconds = dict(zip(todo, seconds, strict=True))
    for key in todo:
        entries = sorted(timed[key], key=lambda entry: entry.median_ms)
        middle = entries[(len(entries) - 1) // 2]  # the round of median latency (the lower one of an even count)
        records[key] = {**records[key], "measured_ms": middle.median_ms, "measurement": middle.to_dict(),
                        "round_ms": [entry.median_ms for entry in timed[key]], "measure_s": round(seconds[key], 3)}
        store.put(key, records[key])
    return [{**records[key], "key": key, "index": index, "name": name}
            for index, (key, name) in enumerate(zip(keys, names, strict=True))]


def time_rounds(measurer: Callable[[bytes], object], paths: Sequence[str], rounds: int, desc: str = "timing",
                progress: bool = True) -> tuple[list[list], list[float]]:
    """Each TFLite file timed once per round, each round in its own seeded random order.

    Returns:
        (per file, its ``rounds`` records in round order; per file, the seconds its timings took).
    """
    from tqdm.auto import tqdm

    timed: list[list] = [[] for _ in paths]
    seconds = [0.0] * len(paths)
    with tqdm(total=len(paths) * rounds, desc=desc, unit="net", disable=not progress, file=sys.stderr,
              dynamic_ncols=True) as bar:
        for index in range(rounds):
            for i in np.random.default_rng(index).permutation(len(paths)):
                started = time.perf_counter()
                timed[i].append(measurer(Path(paths[i]).read_bytes()))
                seconds[i] += time.perf_counter() - started
                bar.update()
    return timed, seconds


def draw_networks(space, count: int, seed: int, input_size: tuple[int, int], num_classes: int,
                  exclude: set[str] = frozenset()) -> tuple[list, int]:
    """``count`` seeded buildable samples not in ``exclude`` (genotype keys), and how many
    unbuildable draws were skipped (see `mobileseg.latency.block_model.head_builds`)."""
    from mobileseg.latency.block_model import sample_buildable

    rng = np.random.default_rng(seed)
    genotypes, skipped, guard = [], 0, 0
    while len(genotypes) < count:
        genotype, unbuildable = sample_buildable(space, rng, input_size, num_classes)
        skipped += unbuildable
        guard += 1
        if guard > 100 * count + 1000:
            raise RuntimeError(f"{space.source}: could not draw {count} distinct new networks")
        if genotype_key(genotype) not in exclude:
            genotypes.append(genotype)
    return genotypes, skipped


def calibration_networks(space, model, count: int, seed: int, input_size: tuple[int, int],
                         num_classes: int, exclude: set[str], candidates: int = 8) -> list:
    """``count`` networks spanning the predicted range: the quantiles of ``count * candidates``
    seeded samples, ranked by their sum of block latencies in the table."""
    pool, _ = draw_networks(space, count * candidates, seed, input_size, num_classes, exclude)
    unique = list({genotype_key(g): g for g in pool}.values())
    ranked = sorted(unique, key=model.blocks_ms)
    picks = sorted(set(np.linspace(0, len(ranked) - 1, min(count, len(ranked))).round().astype(int)))
    return [ranked[i] for i in picks]


def _clear_keras_session() -> None:
    keras = sys.modules.get("keras")
    if keras is not None:
        keras.backend.clear_session()
