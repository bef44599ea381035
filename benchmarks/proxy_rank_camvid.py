"""Benchmark: which accuracy estimate ranks networks of the space like training them? (issue 14, item 1)

Ground truth first, estimates after, both on CamVid at the search resolution (184x240):

1. **networks**: ``--pool`` seeded random networks of ``--space`` (plus its largest and
   smallest), of which ``--networks`` are picked evenly spread over their cost: the
   predicted int8 latency at the search size with ``--latency table:FILE`` (a
   `mobileseg.latency` table), else MACs. Their genotypes are committed to
   ``benchmarks/results/genotypes/proxy_rank_camvid/`` so that every later estimate scores
   exactly these networks.
2. **trained**: each network trained from scratch by ``python -m mobileseg.train`` with
   `RECIPE` (the full-length recipe of ``train_references_camvid.py`` at half size:
   crops and model 184x240 after scaling 0.25-1.0, AdamW 2e-3, warm-up, poly, OHEM,
   batch 8, ``--epochs`` epochs, the best validated epoch kept), then its test mIoU by
   ``python -m mobileseg.evaluate`` (images resized to 184x240, predictions back to
   360x480). One network at a time; every finished network is written at once to
   ``benchmarks/results/proxy_rank_camvid_trained.json``, which is what a later call (or
   session) resumes from: committed, it saves the hours already spent.

3. **estimate** (``--estimate``, repeatable): what a search could score each network with, on the
   validation split only, and its cost per network, into
   ``benchmarks/results/proxy_rank_camvid_estimates.json`` (resumed per network):
   ``short_train:K``, the best val mIoU of K epochs of `RECIPE` (multi-fidelity scoring, the
   low rung of successive halving); ``params`` and ``macs``, the network's parameter count and
   MACs at 184x240 (zero-cost: bigger is predicted better); ``supernet:E``, the proxy mIoU of the weight-sharing supernet
   (`mobileseg.supernet.accuracy.SupernetAccuracyModel`) trained E epochs at 184x240 with the
   sandwich rule and in-place distillation (BigNAS), batch norm recalibrated per network.
4. **report**: each estimate's Kendall tau-b, Spearman rho and one-sided permutation p-value
   against the trained networks' test mIoU, into ``benchmarks/results/proxy_rank_camvid.json``.
   The headline estimate is chosen by its tau against the trained networks' *validation* mIoU
   (never by test), and every estimate's figures are listed.

``--stage networks`` writes the choice only; ``--stage trained`` (the default) trains what
``proxy_rank_camvid_trained.json`` lacks; ``--stage repeat --repeat_seed S`` trains the same networks again
with training seed S (every third network first), which the report turns into the ground truth's own
repeatability: how well one training ranks the networks against another that differs only in its seed,
the ceiling any estimate can be judged against; ``--stage estimate`` runs the ``--estimate`` s;
``--stage report`` writes the report (``--latency table:FILE`` gives each network's predicted ms).

Example (hours on the 2-core CPU):
    python benchmarks/proxy_rank_camvid.py --latency table:runs/latency_184x240/latency_table.json
    python benchmarks/proxy_rank_camvid.py --stage estimate --estimate short_train:5 --estimate supernet:60
    python benchmarks/proxy_rank_camvid.py --stage report --latency table:runs/latency_184x240/latency_table.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from camvid_runs import CAMVID, ROOT, run, versions
from result_genotypes import keep

SIZE = "184x240"
RECIPE = ["--batch_size", "8", "--lr", "2e-3", "--weight_decay", "0.01", "--schedule", "poly",
          "--warmup_epochs", "3", "--scale_range", "0.25,1.0", "--val_every", "5", "--seed", "0", "--verbose", "2",
          "--class_weight", "none"]  # the ground truth was trained before class weights were the default
RESULTS = ROOT / "benchmarks" / "results"
TRAINED = RESULTS / "proxy_rank_camvid_trained.json"
ESTIMATES = RESULTS / "proxy_rank_camvid_estimates.json"
REPORT = RESULTS / "proxy_rank_camvid.json"
CEILING_SEEDS = (1, 2, 3, 4)  # trainings averaged per network in the truth the noise ceiling is computed for


def _size(text: str) -> tuple[int, int]:
    height, width = (int(v) for v in text.split("x"))
    return height, width


def choose_networks(space_file: str, num_classes: int, pool: int, count: int, latency: str, seed: int) -> list[dict]:
    """``count`` networks of a seeded random pool, evenly spread over their cost; genotypes written."""
    import numpy as np

    from mobileseg.arch import complexity
    from mobileseg.arch.builder import build_model
    from mobileseg.arch.space import SearchSpace
    from mobileseg.run.fingerprint import genotype_key

    space = SearchSpace.load(ROOT / space_file)
    size = _size(SIZE)
    rng = np.random.default_rng(seed)
    genotypes, keys = [], set()
    while len(genotypes) < pool:
        genotype = space.sample(rng)
        if genotype_key(genotype) not in keys:
            keys.add(genotype_key(genotype))
            genotypes.append(genotype)
    if latency:
        from mobileseg.latency.blocks import signatures_of
        from mobileseg.latency.predictor import latency_model_from_spec

        model = latency_model_from_spec(latency, lambda g: signatures_of(g, size, num_classes))
        costs, cost_name = [float(model.latency_ms(g)) for g in genotypes], "predicted_ms"
    else:
        costs = [complexity.total(complexity.layer_costs(build_model(g, num_classes, size)))[1] for g in genotypes]
        cost_name = f"macs_{SIZE}"
    order = sorted(range(pool), key=lambda i: costs[i])
    picks = sorted({order[round(k * (pool - 1) / (count - 1))] for k in range(count)}, key=lambda i: costs[i])
    return [{"name": f"net_{rank:02d}", **keep(genotypes[index], "proxy_rank_camvid", f"net_{rank:02d}"),
             cost_name: costs[index], "key": genotype_key(genotypes[index])} for rank, index in enumerate(picks)]


def seeded_recipe(seed: int) -> list[str]:
    """`RECIPE` with its training seed replaced."""
    recipe = list(RECIPE)
    recipe[recipe.index("--seed") + 1] = str(seed)
    return recipe


def train_and_test(network: dict, epochs: int, work_dir: Path, data: str, seed: int = 0) -> dict:
    """Train one network with `RECIPE` (training seed ``seed``), evaluate its best checkpoint on test; its row."""
    run_dir = work_dir / (network["name"] if seed == 0 else f"seed_{seed}/{network['name']}")
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "benchmark.log"
    train = [sys.executable, "-m", "mobileseg.train", "--arch", network["genotype"], "--data", data,
             "--run_dir", str(run_dir), "--input_size", SIZE, "--model_size", SIZE, "--val_size", SIZE,
             "--epochs", str(epochs), *seeded_recipe(seed)]
    test = [sys.executable, "-m", "mobileseg.evaluate", "--model", str(run_dir / "model.keras"), "--data", data,
            "--split", "test", "--out", str(run_dir / "test.json"), "--noprogress"]
    started = time.time()
    run(train, log)
    run(test, log)
    history = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    validated = [h["val_miou"] for h in history if h.get("val_miou") is not None]
    tested = json.loads((run_dir / "test.json").read_text())
    return {**network, "epochs": epochs, "seed": seed, "best_val_miou": max(validated), "trained_test_miou": tested["miou"],
            "epoch_seconds": history[-1].get("epoch_seconds"), "seconds": round(time.time() - started),
            "load_average_end": [round(v, 2) for v in os.getloadavg()],
            "commands": [" ".join(train[1:]), " ".join(test[1:])]}


def repeat_order(networks: list[dict]) -> list[dict]:
    """The networks in the order a repeat trains them: every third first, so that a part spans the latency range."""
    return [networks[i] for i in sorted(range(len(networks)), key=lambda i: (i % 3, i))]


def repeatability(report: dict) -> list[dict]:
    """Per repeat seed: how far the ground truth moves when only the training seed changes, and the
    tau a perfect estimate could expect against a truth of 1-4 seeds with that noise (`rank_stats.noise_ceiling`)."""
    import numpy as np
    from rank_stats import kendall_tau_b, noise_ceiling, spearman_rho

    first = {row["name"]: row for row in report["trained"]}
    out = []
    for seed in sorted({row["seed"] for row in report.get("repeats", [])}):
        again = {row["name"]: row for row in report["repeats"] if row["seed"] == seed and row["name"] in first}
        if len(again) < 3:
            continue
        names = sorted(again)
        a = np.array([first[n]["trained_test_miou"] for n in names])
        b = np.array([again[n]["trained_test_miou"] for n in names])
        seed_std, spread_std = float(np.std(a - b, ddof=1) / np.sqrt(2)), float(np.std(a, ddof=1))
        out.append({"seed": seed, "n_networks": len(names), "kendall_tau_between_seeds": kendall_tau_b(a, b),
                    "spearman_rho_between_seeds": spearman_rho(a, b),
                    "test_miou_mean_abs_difference": float(np.mean(np.abs(a - b))),
                    "test_miou_seed_std": seed_std, "test_miou_spread_std": spread_std,
                    "noise_ceiling": [noise_ceiling(spread_std, seed_std, len(names), seeds, np.random.default_rng(0))
                                      for seeds in CEILING_SEEDS],
                    "networks": [{"name": n, "test_miou_seed_0": first[n]["trained_test_miou"],
                                  f"test_miou_seed_{seed}": again[n]["trained_test_miou"]} for n in names]})
    return out


def seed_mean_truth(report: dict) -> dict[str, float]:
    """Each network's test mIoU averaged over the first training and every repeat seed, for the networks
    every seed has trained (a truth with less seed noise: its std is the one-seed std over sqrt(seeds)).

    Example:
        >>> seed_mean_truth({"trained": [{"name": "a", "trained_test_miou": 0.4}, {"name": "b", "trained_test_miou": 0.5}],
        ...                  "repeats": [{"name": "a", "seed": 1, "trained_test_miou": 0.44}]})
        {'a': 0.42}
    """
    runs = {0: {row["name"]: row["trained_test_miou"] for row in report["trained"]}}
    for row in report.get("repeats", []):
        runs.setdefault(row["seed"], {})[row["name"]] = row["trained_test_miou"]
    names = [name for name in runs[0] if all(name in rows for rows in runs.values())]
    return {name: round(sum(rows[name] for rows in runs.values()) / len(runs), 6) for name in names}


def short_recipe(epochs: int) -> list[str]:
    """`RECIPE` for a run of ``epochs`` epochs validated after every one: its warm-up a third of it, at most 3."""
    recipe = list(RECIPE)
    recipe[recipe.index("--warmup_epochs") + 1] = str(min(3, max(0, epochs // 3)))
    recipe[recipe.index("--val_every") + 1] = "1"
    return recipe


def short_train(network: dict, epochs: int, work_dir: Path, data: str) -> float:
    """Best val mIoU of ``epochs`` epochs of `short_recipe`."""
    run_dir = work_dir / f"short_train_{epochs}" / network["name"]
    run_dir.mkdir(parents=True, exist_ok=True)
    recipe = short_recipe(epochs)
    run([sys.executable, "-m", "mobileseg.train", "--arch", network["genotype"], "--data", data, "--run_dir",
         str(run_dir), "--input_size", SIZE, "--model_size", SIZE, "--val_size", SIZE, "--epochs", str(epochs),
         *recipe], run_dir / "benchmark.log")
    history = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    return max(h["val_miou"] for h in history if h.get("val_miou") is not None)


def supernet_scores(networks: list[dict], epochs: int, work_dir: Path, data: str, space_file: str) -> list[tuple]:
    """(proxy mIoU, seconds) per network from a supernet trained ``epochs`` epochs (resumable)."""
    import keras
    import numpy as np

    from mobileseg.arch import schema_io
    from mobileseg.arch.space import SearchSpace
    from mobileseg.data.sources import open_source
    from mobileseg.supernet.accuracy import SupernetAccuracyModel
    from mobileseg.supernet.model import Supernet
    from mobileseg.supernet.train_config import SupernetTrainConfig
    from mobileseg.supernet.trainer import SupernetTrainer

    source, size = open_source(data), _size(SIZE)
    keras.utils.set_random_seed(0)
    supernet = Supernet(SearchSpace.load(ROOT / space_file), source.num_classes, size)
    config = SupernetTrainConfig(epochs=epochs, batch_size=8, lr=2e-3, search_scale=0.5, seed=0, verbose=True)
    SupernetTrainer(supernet, config).fit(source, work_dir / f"supernet_{epochs}", np.random.default_rng(0))
    accuracy = SupernetAccuracyModel(supernet, source, source, size, calib_batches=16, batch_size=8,
                                     scale_range=config.train_config(size).scale_range, seed=0)
    values = accuracy.miou([schema_io.load(ROOT / n["genotype"]) for n in networks])
    return list(zip(values, accuracy.seconds[-len(networks):], strict=True))


ZERO_COST = ("params", "macs")


def zero_cost(kind: str, network: dict, num_classes: int) -> float:
    """A training-free estimate: the network's parameter count or its MACs at the search size."""
    from mobileseg.arch import complexity, schema_io
    from mobileseg.arch.builder import build_model

    model = build_model(schema_io.load(ROOT / network["genotype"]), num_classes, _size(SIZE))
    if kind == "params":
        return float(model.count_params())
    return float(complexity.total(complexity.layer_costs(model))[1])


def estimate(kinds: list[str], report: dict, work_dir: Path, data: str) -> None:
    """Run each estimate on every network it lacks, saving after each."""
    from mobileseg.atomic_write import write_atomic
    from mobileseg.data.sources import open_source

    found = json.loads(ESTIMATES.read_text()) if ESTIMATES.is_file() else {}
    for kind in kinds:
        name, _, value = kind.partition(":")
        if kind not in ZERO_COST and (name not in ("short_train", "supernet") or not value.isdigit()):
            raise SystemExit(f"--estimate {kind}: expected short_train:EPOCHS, supernet:EPOCHS, params or macs")
        rows = found.setdefault(kind, {})
        todo = [n for n in report["networks"] if n["name"] not in rows]
        if kind in ZERO_COST:
            for network in todo:
                started = time.time()
                rows[network["name"]] = {"estimate": zero_cost(kind, network, open_source(data).num_classes),
                                         "seconds": round(time.time() - started, 1)}
            write_atomic(ESTIMATES, json.dumps(found, indent=2) + "\n")
            continue
        if name == "supernet":
            if not todo:
                continue
            started = time.time()
            scores = supernet_scores(report["networks"], int(value), work_dir, data, report["space"])
            share = (time.time() - started) / len(scores)  # the supernet's training, shared by every network
            for network, (score, seconds) in zip(report["networks"], scores, strict=True):
                rows[network["name"]] = {"estimate": score, "seconds": round(share, 1),
                                         "scoring_seconds": round(seconds, 1)}
            write_atomic(ESTIMATES, json.dumps(found, indent=2) + "\n")
            continue
        for network in todo:
            started = time.time()
            score = short_train(network, int(value), work_dir, data)
            rows[network["name"]] = {"estimate": score, "seconds": round(time.time() - started, 1)}
            write_atomic(ESTIMATES, json.dumps(found, indent=2) + "\n")
            print(f"{kind} {network['name']}: {100 * score:.1f}", flush=True)


def write_report(report: dict, latency: str, num_classes: int) -> dict:
    """Every estimate's rank agreement with the trained networks; the headline chosen on val."""
    import numpy as np
    from rank_stats import kendall_tau_b, permutation_p, spearman_rho

    from mobileseg.arch import schema_io
    from mobileseg.atomic_write import write_atomic
    from mobileseg.deploy.export_run import environment

    trained = {row["name"]: row for row in report["trained"]}
    predicted = {}
    if latency:
        from mobileseg.latency.blocks import signatures_of
        from mobileseg.latency.predictor import latency_model_from_spec

        model = latency_model_from_spec(latency, lambda g: signatures_of(g, _size(SIZE), num_classes))
        predicted = {n["name"]: round(float(model.latency_ms(schema_io.load(ROOT / n["genotype"]))), 3)
                     for n in report["networks"]}
    found = json.loads(ESTIMATES.read_text()) if ESTIMATES.is_file() else {}
    mean_truth = seed_mean_truth(report)
    figures = []
    for kind, rows in found.items():
        names = [name for name in trained if name in rows]
        if len(names) < 3:
            continue
        values = [rows[name]["estimate"] for name in names]
        test = [trained[name]["trained_test_miou"] for name in names]
        val = [trained[name]["best_val_miou"] for name in names]
        averaged = [name for name in names if name in mean_truth]
        figures.append({"estimate": kind, "n_networks": len(names), "kendall_tau": kendall_tau_b(values, test),
                        "spearman_rho": spearman_rho(values, test),
                        "p_value": permutation_p(values, test, np.random.default_rng(0)),
                        "kendall_tau_seed_mean": kendall_tau_b([rows[n]["estimate"] for n in averaged],
                                                               [mean_truth[n] for n in averaged])
                        if len(averaged) >= 3 else None,
                        "n_networks_seed_mean": len(averaged),
                        "kendall_tau_val": kendall_tau_b(values, val),
                        "estimate_seconds_per_network": round(float(np.mean([rows[n]["seconds"] for n in names])), 1),
                        "networks": [{"name": name, "predicted_ms": predicted.get(name),
                                      "estimate": rows[name]["estimate"],
                                      "trained_test_miou": trained[name]["trained_test_miou"]} for name in names]})
    if not figures:
        raise SystemExit("no estimate covers 3 trained networks yet: run --stage trained and --stage estimate")
    best = max(figures, key=lambda f: (f["kendall_tau_val"], -f["estimate_seconds_per_network"]))
    out = {**{key: best[key] for key in ("kendall_tau", "spearman_rho", "p_value", "n_networks", "estimate",
                                         "estimate_seconds_per_network", "networks")},
           "chosen_by": "the highest Kendall tau against the trained networks' best validation mIoU",
           "all_estimates": [{key: f[key] for key in f if key != "networks"} for f in figures],
           "ground_truth": {"recipe": report["recipe"], "epochs": report["epochs"], "size": SIZE,
                            "metric": "CamVid test mIoU of the best validated epoch",
                            "kendall_tau_val_vs_test": kendall_tau_b(
                                [row["best_val_miou"] for row in report["trained"]],
                                [row["trained_test_miou"] for row in report["trained"]]),
                            "repeatability": repeatability(report)},
           "command": " ".join(["python", "benchmarks/proxy_rank_camvid.py", *sys.argv[1:]]),
           "versions": versions(), "machine": environment()}
    write_atomic(REPORT, json.dumps(out, indent=2) + "\n")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=("networks", "trained", "repeat", "estimate", "report"), default="trained")
    parser.add_argument("--repeat_seed", type=int, default=1, help="--stage repeat: the training seed of the repeat")
    parser.add_argument("--estimate", action="append", default=[], help="short_train:EPOCHS or supernet:EPOCHS")
    parser.add_argument("--space", default="search_space/default.yaml")
    parser.add_argument("--latency", default="", help="spread by predicted latency: table:FILE (else MACs)")
    parser.add_argument("--pool", type=int, default=100)
    parser.add_argument("--networks", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=f"camvid:{CAMVID}")
    parser.add_argument("--work_dir", type=Path, default=ROOT / "runs" / "proxy_rank_camvid")
    args = parser.parse_args()
    from mobileseg.atomic_write import write_atomic
    from mobileseg.data.sources import open_source
    from mobileseg.deploy.export_run import environment

    report = json.loads(TRAINED.read_text()) if TRAINED.is_file() else None
    if report is None:
        source = open_source(args.data)
        report = {"command": " ".join(["python", "benchmarks/proxy_rank_camvid.py", *sys.argv[1:]]),
                  "space": args.space, "size": SIZE, "recipe": RECIPE, "epochs": args.epochs, "seed": args.seed,
                  "networks": choose_networks(args.space, source.num_classes, args.pool, args.networks,
                                              args.latency, args.seed),
                  "trained": [], "environment": environment(), "versions": versions(),
                  "python": platform.python_version()}
        write_atomic(TRAINED, json.dumps(report, indent=2) + "\n")
    if args.stage == "networks":
        return 0
    if args.stage == "estimate":
        estimate(args.estimate, report, args.work_dir, args.data)
        return 0
    if args.stage == "report":
        out = write_report(report, args.latency, open_source(args.data).num_classes)
        print(f"{out['estimate']}: Kendall tau {out['kendall_tau']:.2f} (p {out['p_value']:.3f}) over "
              f"{out['n_networks']} networks, {out['estimate_seconds_per_network']:.0f} s per network -> {REPORT}")
        return 0
    rows = report["trained"] if args.stage == "trained" else report.setdefault("repeats", [])
    seed = 0 if args.stage == "trained" else args.repeat_seed
    done = {row["name"] for row in rows if row.get("seed", 0) == seed}
    for network in repeat_order(report["networks"]) if seed else report["networks"]:
        if network["name"] in done:
            continue
        row = train_and_test(network, report["epochs"], args.work_dir, args.data, seed)
        rows.append(row)
        write_atomic(TRAINED, json.dumps(report, indent=2) + "\n")
        print(f"{row['name']} (seed {seed}): test mIoU {100 * row['trained_test_miou']:.1f} after {row['epochs']} "
              f"epochs ({row['seconds']} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
