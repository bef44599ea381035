"""Benchmark: supernet sandwich steps/s against training the largest subnet alone (GitHub issue 6, item 1).

At the same batch, resolution and data (one fixed batch of synthetic scenes, so the
input pipeline is not measured), on this machine's CPU:

1. **sandwich**: `SupernetTrainer.sandwich_step` (largest + smallest + 2 random networks,
   in-place distillation, one AdamW update): steps/s;
2. **supernet, largest only**: one pass of the largest network through the supernet
   (`subnet_step` + update): the cost of masks and switches without the sandwich;
3. **fixed largest**: the largest network as a standalone `build_model` network, the same
   OHEM loss and AdamW, one compiled step: steps/s.

The three alternate in ``--rounds`` rounds of ``--steps`` steps (the machine is shared, so
load drift hits all three alike); the median round is reported, with every round.

Trace and first-call times are reported separately (the supernet's graph is traced
once for all networks). Writes ``benchmarks/results/supernet_speed_<space>_<HxW>_b<B>.json``
with the command, versions, machine and load averages.

Usage:
    python benchmarks/supernet_speed.py --space search_space/demo.yaml --input_size 128x128 --batch 8
    python benchmarks/supernet_speed.py --space search_space/default.yaml --input_size 180x240 --batch 4
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
FLAGS = flags.FLAGS

flags.DEFINE_string("space", "search_space/demo.yaml", "Search space.")
flags.DEFINE_string("input_size", "128x128", "Search resolution HEIGHTxWIDTH.")
flags.DEFINE_integer("batch", 8, "Images per step.")
flags.DEFINE_integer("num_classes", 12, "Classes.")
flags.DEFINE_integer("steps", 5, "Timed steps per round and measurement.")
flags.DEFINE_integer("rounds", 5, "Rounds; the three measurements alternate within each (load drift hits all).")
flags.DEFINE_integer("warmup", 2, "Untimed steps after the first (trace) step.")
flags.DEFINE_integer("seed", 0, "Seed.")
flags.DEFINE_string("out", "", "Result file (default: benchmarks/results/supernet_speed_<space>_<HxW>_b<B>.json).")


def _timed(step, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        step()
    return count / (time.perf_counter() - started)


def _summary(rates: list[float]) -> dict:
    ordered = sorted(rates)
    return {"median": round(ordered[len(ordered) // 2], 3), "best": round(ordered[-1], 3),
            "rounds": [round(r, 3) for r in rates]}


def main(argv: list[str]) -> int:
    del argv
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    sys.path.insert(0, str(REPO))
    import keras
    import numpy as np
    import tensorflow as tf

    from mobileseg.arch.space import SearchSpace
    from mobileseg.data.pipeline import Augmentation, train_dataset
    from mobileseg.data.synthetic import SyntheticSource
    from mobileseg.provenance import machine
    from mobileseg.supernet.model import Supernet
    from mobileseg.supernet.train_config import SupernetTrainConfig
    from mobileseg.supernet.trainer import SupernetTrainer
    from mobileseg.training.losses import OhemCrossEntropy

    height, width = (int(v) for v in FLAGS.input_size.split("x"))
    size = (height, width)
    load = {"start": [round(x, 2) for x in os.getloadavg()]}
    keras.utils.set_random_seed(FLAGS.seed)
    data = SyntheticSource(max(4 * FLAGS.batch, 16), size=size, seed=FLAGS.seed)
    images, labels = next(iter(train_dataset(data, augmentation=Augmentation(size, scale_range=(1.0, 1.0)),
                                             batch_size=FLAGS.batch, drop_remainder=True)))
    labels = tf.where(labels < FLAGS.num_classes, labels, 255)

    started = time.perf_counter()
    supernet = Supernet(SearchSpace.load(REPO / FLAGS.space), FLAGS.num_classes, size)
    trainer = SupernetTrainer(supernet, SupernetTrainConfig(epochs=1, batch_size=FLAGS.batch, verbose=False),
                              steps_per_epoch=1000)
    build_s = time.perf_counter() - started
    rng = np.random.default_rng(FLAGS.seed)

    started = time.perf_counter()
    trainer.sandwich_step(images, labels, rng)
    first_sandwich_s = time.perf_counter() - started
    for _ in range(FLAGS.warmup):
        trainer.sandwich_step(images, labels, rng)

    largest_arch = tf.constant(trainer._largest)
    zeros = trainer._zero_teacher(images)

    def largest_only():
        loss, _, _ = trainer.subnet_step(images, labels, largest_arch, zeros, trainer._no_distill)
        trainer.apply_step()
        return float(loss)

    largest_only()
    traces = trainer.subnet_tracing_count()

    largest = supernet.largest()
    model = supernet.extract(largest)
    optimizer = keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=0.01)
    loss_fn = OhemCrossEntropy(threshold=0.7, min_kept=height * width // 4)
    optimizer.build(model.trainable_variables)

    @tf.function
    def fixed_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    started = time.perf_counter()
    fixed_step(images, labels)
    first_fixed_s = time.perf_counter() - started
    for _ in range(FLAGS.warmup):
        fixed_step(images, labels)

    rates = {"sandwich": [], "supernet_largest_only": [], "fixed_largest": []}
    for _ in range(FLAGS.rounds):
        rates["sandwich"].append(_timed(lambda: trainer.sandwich_step(images, labels, rng), FLAGS.steps))
        rates["supernet_largest_only"].append(_timed(largest_only, FLAGS.steps))
        rates["fixed_largest"].append(_timed(lambda: float(fixed_step(images, labels)), FLAGS.steps))
    summary = {name: _summary(values) for name, values in rates.items()}
    sandwich, supernet_largest, fixed = (summary[k]["median"] for k in
                                         ("sandwich", "supernet_largest_only", "fixed_largest"))
    load["end"] = [round(x, 2) for x in os.getloadavg()]

    space_name = Path(FLAGS.space).stem
    default = RESULTS / f"supernet_speed_{space_name}_{height}x{width}_b{FLAGS.batch}.json"
    out = Path(FLAGS.out) if FLAGS.out else default
    result = {
        "command": "python " + " ".join([f"benchmarks/{Path(__file__).name}", *sys.argv[1:]]),
        "space": FLAGS.space, "input_size": [height, width], "batch": FLAGS.batch,
        "num_classes": FLAGS.num_classes, "timed_steps_per_round": FLAGS.steps, "rounds": FLAGS.rounds,
        "supernet": {"arch_vector": supernet.arch_size, "params": int(supernet.count_params()),
                     "build_and_rule_s": round(build_s, 2), "traces": traces},
        "largest": {"params": int(model.count_params()),
                    "cells": {b.name: [c.OP for c in b.cells] for b in largest.branches},
                    "head_width": largest.head.width},
        "steps_per_s": summary,
        "images_per_s": {"sandwich": round(sandwich * FLAGS.batch, 2),
                         "fixed_largest": round(fixed * FLAGS.batch, 2)},
        "ratios": {"fixed_over_sandwich": round(fixed / sandwich, 2),
                   "fixed_over_supernet_largest": round(fixed / supernet_largest, 2)},
        "first_step_s": {"sandwich_trace_and_run": round(first_sandwich_s, 1),
                         "fixed_trace_and_run": round(first_fixed_s, 1)},
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "python": platform.python_version()},
        "machine": machine(),
        "load_average": load,
        "note": "Shared 2-core machine: other engineers' jobs may run at the same time (see load_average).",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v["median"] for k, v in summary.items()}), json.dumps(result["first_step_s"]), "->", out)
    return 0


if __name__ == "__main__":
    app.run(main)
