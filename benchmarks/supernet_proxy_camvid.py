"""Benchmark: does the supernet's proxy mIoU rank networks like training them from scratch? (issue 6, item 3)

On CamVid at the search resolution (half size, 180x240 by default):

1. trains the supernet of ``--space`` with the sandwich rule for ``--supernet_epochs``
   (resumable: ``WORK_DIR/supernet/``);
2. samples a pool of ``--pool`` networks (plus the largest and the smallest) and picks
   ``--subnets`` of them evenly spread over their cost: predicted latency with
   ``--latency table:FILE`` (a `mobileseg.latency` table), else MACs at ``--cost_size``;
3. scores each with `SupernetAccuracyModel` (inherited weights, BN recalibrated on
   ``--calib_batches`` training batches, mIoU on the validation split);
4. trains each from scratch with one short fixed recipe (`mobileseg.training.trainer.fit`,
   ``--subnet_epochs`` at the search resolution; resumable: ``WORK_DIR/subnets/<i>/``) and
   scores the result (its best checkpoint) with exactly the same validation protocol
   (image resized to the search resolution, logits resized to the full-resolution mask);
5. reports Kendall's tau-b (and Spearman's rho) between the two, with a permutation p-value,

and writes ``benchmarks/results/supernet_proxy_camvid.json`` (command, settings, versions,
machine, load averages, timings and one row per network). Every stage is kept in
``--work_dir``, so a killed run resumes when started again with the same flags.

Full run (hours on the 2-core CPU):
    python benchmarks/supernet_proxy_camvid.py

Tiny end-to-end check (minutes; the figures mean nothing):
    python benchmarks/supernet_proxy_camvid.py --space search_space/demo.yaml --supernet_epochs 1 \
        --supernet_steps 10 --pool 12 --subnets 6 --subnet_epochs 1 --calib_batches 2 --max_val_images 8 \
        --batch 4 --work_dir runs/supernet_proxy_tiny --out benchmarks/results/supernet_proxy_camvid_tiny.json
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

from absl import app, flags
from rank_stats import kendall_tau_b, permutation_p, spearman_rho

REPO = Path(__file__).resolve().parents[1]
FLAGS = flags.FLAGS

flags.DEFINE_string("data", f"camvid:{REPO.parent / 'shared' / 'datasets' / 'camvid'}", "Data set KIND:PATH.")
flags.DEFINE_string("space", "search_space/default.yaml", "Search space.")
flags.DEFINE_string("search_size", "180x240", "Search (and scoring) resolution HEIGHTxWIDTH: half of CamVid's.")
flags.DEFINE_float("search_scale", 0.5, "Search resolution over the data's: scales the random rescaling of "
                   "training and calibration crops (0.5: CamVid 360x480 searched at 180x240).")
flags.DEFINE_string("cost_size", "360x480", "Resolution the MACs that spread the networks are counted at.")
flags.DEFINE_string("latency", "", "Spread by predicted latency: table:FILE (else by MACs).")
flags.DEFINE_integer("batch", 8, "Images per step (supernet, scratch training, calibration).")
flags.DEFINE_integer("supernet_epochs", 100, "Budget: supernet epochs.")
flags.DEFINE_integer("supernet_steps", 0, "Budget: at most this many steps per supernet epoch (0: all).")
flags.DEFINE_float("supernet_lr", 1e-3, "Supernet peak learning rate.")
flags.DEFINE_integer("pool", 40, "Random networks to choose the scored ones from.")
flags.DEFINE_integer("subnets", 8, "Networks scored both ways (>= 6).")
flags.DEFINE_integer("subnet_epochs", 40, "Budget: from-scratch epochs per network.")
flags.DEFINE_float("subnet_lr", 1e-3, "From-scratch peak learning rate.")
flags.DEFINE_integer("calib_batches", 16, "BN recalibration batches per network.")
flags.DEFINE_integer("max_val_images", 0, "Score on at most this many validation images (0: all).")
flags.DEFINE_integer("seed", 0, "Seed of everything.")
flags.DEFINE_string("work_dir", "runs/supernet_proxy_camvid", "Supernet, subnets and stage results.")
flags.DEFINE_string("out", str(REPO / "benchmarks" / "results" / "supernet_proxy_camvid.json"), "Result file.")


def _size(text: str) -> tuple[int, int]:
    height, width = (int(v) for v in text.split("x"))
    return height, width


def _load_json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def main(argv: list[str]) -> int:
    del argv
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    sys.path.insert(0, str(REPO))
    import keras
    import numpy as np
    import tensorflow as tf

    from mobileseg.arch import complexity, schema_io
    from mobileseg.arch.builder import build_model
    from mobileseg.arch.space import SearchSpace
    from mobileseg.atomic_write import write_atomic
    from mobileseg.data.sources import open_source
    from mobileseg.provenance import machine
    from mobileseg.run.fingerprint import genotype_key
    from mobileseg.supernet.accuracy import SupernetAccuracyModel
    from mobileseg.supernet.model import Supernet
    from mobileseg.supernet.train_config import SupernetTrainConfig
    from mobileseg.supernet.trainer import SupernetTrainer
    from mobileseg.training.trainer import TrainConfig, fit

    if FLAGS.subnets < 2 or FLAGS.pool < FLAGS.subnets - 2:
        raise app.UsageError("need --subnets >= 2 and --pool >= --subnets - 2")
    started_all = time.perf_counter()
    load = [{"t_s": 0, "load": [round(v, 2) for v in os.getloadavg()]}]
    work = Path(FLAGS.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    size, cost_size = _size(FLAGS.search_size), _size(FLAGS.cost_size)
    scale_range = (0.5 * FLAGS.search_scale, 2.0 * FLAGS.search_scale)
    source = open_source(FLAGS.data)
    space = SearchSpace.load(REPO / FLAGS.space)
    timings = {}

    # 1. the supernet
    started = time.perf_counter()
    keras.utils.set_random_seed(FLAGS.seed)
    supernet = Supernet(space, source.num_classes, size)
    config = SupernetTrainConfig(epochs=FLAGS.supernet_epochs, batch_size=FLAGS.batch, lr=FLAGS.supernet_lr,
                                 steps_per_epoch=FLAGS.supernet_steps or None, search_scale=FLAGS.search_scale,
                                 seed=FLAGS.seed)
    trainer = SupernetTrainer(supernet, config)
    trained = trainer.fit(source, work, np.random.default_rng(FLAGS.seed))
    timings["supernet_s"] = round(time.perf_counter() - started, 1)
    load.append({"t_s": round(time.perf_counter() - started_all), "load": [round(v, 2) for v in os.getloadavg()]})

    # 2. networks spread over the cost range
    started = time.perf_counter()
    chosen_path = work / "chosen.json"
    chosen = _load_json(chosen_path)
    if chosen is None:
        rng = np.random.default_rng(FLAGS.seed + 1)
        pool, keys = [supernet.largest(), supernet.smallest()], set()
        while len(pool) < FLAGS.pool + 2:
            genotype = supernet.sample(rng)
            if genotype_key(genotype) not in keys | {genotype_key(g) for g in pool}:
                pool.append(genotype)
            keys.add(genotype_key(genotype))
        if FLAGS.latency:
            from mobileseg.latency.blocks import signatures_of
            from mobileseg.latency.predictor import latency_model_from_spec
            latency = latency_model_from_spec(FLAGS.latency, lambda g: signatures_of(g, cost_size, source.num_classes))
            costs = [float(latency.latency_ms(g)) for g in pool]
            cost_name = "latency_ms"
        else:
            costs = [complexity.total(complexity.layer_costs(build_model(g, source.num_classes, cost_size)))[1]
                     for g in pool]
            cost_name = f"macs_{FLAGS.cost_size}"
        order = sorted(range(len(pool)), key=lambda i: costs[i])
        picks = sorted({order[round(k * (len(order) - 1) / (FLAGS.subnets - 1))] for k in range(FLAGS.subnets)})
        chosen = {"cost": cost_name, "networks": [
            {"genotype": schema_io.to_dict(pool[i]), "cost": costs[i], "key": genotype_key(pool[i])}
            for i in sorted(picks, key=lambda i: costs[i])]}
        write_atomic(chosen_path, json.dumps(chosen, indent=2))
    genotypes = [schema_io.from_dict(n["genotype"]) for n in chosen["networks"]]
    timings["choose_s"] = round(time.perf_counter() - started, 1)

    # 3. proxy mIoU
    started = time.perf_counter()
    accuracy = SupernetAccuracyModel(supernet, source, source, size, calib_batches=FLAGS.calib_batches,
                                     batch_size=FLAGS.batch, max_val_images=FLAGS.max_val_images or None,
                                     scale_range=scale_range, seed=FLAGS.seed)
    proxy_path = work / "proxy.json"
    proxy = _load_json(proxy_path)
    if proxy is None or proxy.get("epoch") != trained.epoch or len(proxy["miou"]) != len(genotypes):
        values = accuracy.miou(genotypes)
        proxy = {"epoch": trained.epoch, "miou": values, "seconds": accuracy.seconds[-len(genotypes):]}
        write_atomic(proxy_path, json.dumps(proxy, indent=2))
    timings["proxy_s"] = round(time.perf_counter() - started, 1)
    load.append({"t_s": round(time.perf_counter() - started_all), "load": [round(v, 2) for v in os.getloadavg()]})

    # 4. from scratch
    started = time.perf_counter()
    rows = []
    for index, (genotype, network) in enumerate(zip(genotypes, chosen["networks"], strict=True)):
        run_dir = work / "subnets" / str(index)
        keras.utils.set_random_seed(FLAGS.seed + index)
        recipe = TrainConfig(epochs=FLAGS.subnet_epochs, batch_size=FLAGS.batch, input_size=size,
                             lr=FLAGS.subnet_lr, scale_range=scale_range, seed=FLAGS.seed, val_size=size,
                             verbose=0, tensorboard=False)
        net_started = time.perf_counter()
        result = fit(build_model(genotype, source.num_classes, size), source, run_dir, recipe)
        best = keras.saving.load_model(run_dir / "model.keras")
        rows.append({"index": index, "key": network["key"], chosen["cost"]: network["cost"],
                     "params": int(best.count_params()), "proxy_miou": proxy["miou"][index],
                     "proxy_seconds": round(proxy["seconds"][index], 2), "scratch_miou": accuracy.score_model(best),
                     "scratch_fit_best_val_miou": result.best_miou, "scratch_epochs": result.epoch,
                     "scratch_seconds_this_call": round(time.perf_counter() - net_started, 1),
                     "cells": {b.name: [c.OP for c in b.cells] for b in genotype.branches},
                     "head_width": genotype.head.width})
        print(json.dumps({k: rows[-1][k] for k in ("index", "proxy_miou", "scratch_miou")}), flush=True)
    timings["scratch_s"] = round(time.perf_counter() - started, 1)
    load.append({"t_s": round(time.perf_counter() - started_all), "load": [round(v, 2) for v in os.getloadavg()]})

    proxy_values = [r["proxy_miou"] for r in rows]
    scratch_values = [r["scratch_miou"] for r in rows]
    result = {
        "command": "python " + " ".join([f"benchmarks/{Path(__file__).name}", *sys.argv[1:]]),
        "data": FLAGS.data, "space": FLAGS.space, "search_size": list(size), "num_classes": source.num_classes,
        "budget": {"supernet_epochs": FLAGS.supernet_epochs, "supernet_steps_per_epoch": FLAGS.supernet_steps or None,
                   "supernet_steps_total": trainer.steps(), "subnet_epochs": FLAGS.subnet_epochs,
                   "calib_batches": FLAGS.calib_batches, "batch": FLAGS.batch,
                   "val_images": accuracy.val_images},
        "spread_by": chosen["cost"],
        "kendall_tau_b": kendall_tau_b(proxy_values, scratch_values),
        "spearman_rho": spearman_rho(proxy_values, scratch_values),
        "permutation_p_value": permutation_p(proxy_values, scratch_values, np.random.default_rng(FLAGS.seed)),
        "networks": rows,
        "supernet_log": trained.log,
        "timings_s": {**timings, "total_this_call": round(time.perf_counter() - started_all, 1)},
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "python": platform.python_version()},
        "machine": machine(),
        "load_average": load,
        "note": "Shared 2-core machine: other engineers' jobs may run at the same time (see load_average).",
    }
    out = Path(FLAGS.out)
    write_atomic(out, json.dumps(result, indent=2) + "\n")
    print(f"Kendall tau-b {result['kendall_tau_b']:.3f} over {len(rows)} networks -> {out}")
    return 0


if __name__ == "__main__":
    app.run(main)
