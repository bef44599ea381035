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

``--stage networks`` writes the choice only; ``--stage trained`` (the default) trains
what ``proxy_rank_camvid_trained.json`` lacks.

Example (hours on the 2-core CPU):
    python benchmarks/proxy_rank_camvid.py --latency table:runs/latency_184x240/latency_table.json
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
          "--warmup_epochs", "3", "--scale_range", "0.25,1.0", "--val_every", "5", "--seed", "0", "--verbose", "2"]
TRAINED = ROOT / "benchmarks" / "results" / "proxy_rank_camvid_trained.json"


def _size(text: str) -> tuple[int, int]:
    height, width = (int(v) for v in text.split("x"))
    return height, width


def choose_networks(space_file: str, num_classes: int, pool: int, count: int, latency: str, seed: int) -> list[dict]:
    """``count`` networks of a seeded random pool, evenly spread over their cost; genotypes written."""
    import numpy as np

    from mobileseg.arch import complexity
    from mobileseg.arch.builder import build_model
    from mobileseg.arch.space import SearchSpace
    from mobileseg.search.objectives import genotype_key

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


def train_and_test(network: dict, epochs: int, work_dir: Path, data: str) -> dict:
    """Train one network with `RECIPE`, evaluate its best checkpoint on test; its row."""
    run_dir = work_dir / network["name"]
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "benchmark.log"
    train = [sys.executable, "-m", "mobileseg.train", "--arch", network["genotype"], "--data", data,
             "--run_dir", str(run_dir), "--input_size", SIZE, "--model_size", SIZE, "--val_size", SIZE,
             "--epochs", str(epochs), *RECIPE]
    test = [sys.executable, "-m", "mobileseg.evaluate", "--model", str(run_dir / "model.keras"), "--data", data,
            "--split", "test", "--out", str(run_dir / "test.json"), "--noprogress"]
    started = time.time()
    run(train, log)
    run(test, log)
    history = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    validated = [h["val_miou"] for h in history if h.get("val_miou") is not None]
    tested = json.loads((run_dir / "test.json").read_text())
    return {**network, "epochs": epochs, "best_val_miou": max(validated), "trained_test_miou": tested["miou"],
            "epoch_seconds": history[-1].get("epoch_seconds"), "seconds": round(time.time() - started),
            "load_average_end": [round(v, 2) for v in os.getloadavg()],
            "commands": [" ".join(train[1:]), " ".join(test[1:])]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=("networks", "trained"), default="trained")
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
    from mobileseg.export import environment

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
    done = {row["name"] for row in report["trained"]}
    for network in report["networks"]:
        if network["name"] in done:
            continue
        row = train_and_test(network, report["epochs"], args.work_dir, args.data)
        report["trained"].append(row)
        write_atomic(TRAINED, json.dumps(report, indent=2) + "\n")
        print(f"{row['name']}: test mIoU {100 * row['trained_test_miou']:.1f} after {row['epochs']} epochs "
              f"({row['seconds']} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
