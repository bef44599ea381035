"""Benchmark (issue 19, item 3): does this CPU's latency ranking carry over to ARM code paths?

Emulated time means nothing, but the number of aarch64 instructions an inference executes in
LiteRT's aarch64 build (XNNPACK's NEON / dot-product / i8mm kernels) is deterministic and
carries information. ``--count`` networks are sampled (``--seed``) from ``--space`` (default
search_space/default.yaml), built at ``--size`` with random weights and converted as export
ships them (`mobileseg.deploy.packaging.convert`, int8, uint8 image in, logits out). For each:

- **x86**: LiteRT at 1 thread, the thread-CPU clock (`mobileseg.litert_measure`), XNNPACK: the
  whole network measured (not the block table's prediction, which is a sum of such measurements).
- **ARM**: instructions per inference, counted by a QEMU TCG plugin (``.ci/arm_icount.c``, built by
  ``.ci/arm_icount_plugin.sh`` for Debian's dynamic qemu-user 7.2: the static build has no plugin
  support) in the arm64 root (``make arm_root``), emulated CPU `mobileseg.arm.root.DEFAULT_CPU`.
  The guest marks the invokes with a ``getppid`` system call before and after each; one untimed
  invoke first (XNNPACK packs the weights then). The counts of the two marked invokes are
  recorded; they are the same to the instruction for nearly every network (the result says).

Reports Spearman's rho of the two over all networks and within each op family (the networks
containing that op; conv-only: those with no attention), and of MACs with each. Writes ``--out``
(default ``benchmarks/results/arm_instructions.json``) after every network (a rerun resumes).

Example:
    python benchmarks/arm_instructions.py --count 30 --size 96x128
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
NUM_CLASSES = 12
ATTENTION = ("efficient_attention", "gfa_attention", "mhsa", "sea_attention", "cross_attention")
FAMILIES = (*ATTENTION, "zoomed_conv")
MARKED_INVOKES = 2
GUEST = """
import os, sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter
interpreter = Interpreter(model_path=sys.argv[1], num_threads=1)
interpreter.allocate_tensors()
detail = interpreter.get_input_details()[0]
image = np.random.default_rng(0).integers(0, 256, size=detail["shape"]).astype(detail["dtype"])
interpreter.set_tensor(detail["index"], image)
interpreter.invoke()
for _ in range(int(sys.argv[2])):
    os.getppid(); interpreter.invoke(); os.getppid()
"""


def count_instructions(root, plugin: Path, model: Path, cpu: str) -> list[int]:
    """Instructions of each marked invoke of ``model`` in the arm64 root under qemu-user with the plugin."""
    with tempfile.TemporaryDirectory(prefix="arm_icount_") as folder:
        counts = Path(folder) / "marks.txt"
        command = root.python_command(["-c", GUEST, str(model), str(MARKED_INVOKES)], cpu)
        command[0:1] = ["qemu-aarch64", "-plugin", f"{plugin},out={counts}"]
        env = dict(root.environment(), OPENBLAS_NUM_THREADS="1", PYTHONHASHSEED="0")
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{model}: emulated run failed: {done.stderr.strip().splitlines()[-1:]}")
        marks = [int(line) for line in counts.read_text().split()]
    return [end - start for start, end in zip(marks[::2], marks[1::2], strict=True)]


def main() -> int:
    """Run the benchmark (see the module doc)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="search_space/default.yaml")
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--size", default="96x128")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "arm_instructions.json"))
    args = parser.parse_args()

    import keras
    from tqdm import tqdm

    from mobileseg.arch import complexity
    from mobileseg.arch.builder import build_model
    from mobileseg.arch.composition import branch_ops, composition
    from mobileseg.arch.space import SearchSpace
    from mobileseg.arm.root import DEFAULT_CPU, find_root
    from mobileseg.atomic_write import write_atomic
    from mobileseg.cli_flags import parse_size
    from mobileseg.deploy import packaging
    from mobileseg.litert_measure import measure_tflite
    from mobileseg.provenance import load_average, machine, versions
    from mobileseg.run.fingerprint import genotype_key
    from rank_stats import spearman_rho

    root = find_root()
    plugin = Path(subprocess.run(["bash", str(ROOT / ".ci" / "arm_icount_plugin.sh")], capture_output=True,
                                 text=True, check=True).stdout.strip())
    size = parse_size(args.size)
    space = SearchSpace.load(ROOT / args.space)
    rng = np.random.default_rng(args.seed)
    genotypes, keys = [], set()
    while len(genotypes) < args.count:
        genotype = space.sample(rng)
        if genotype_key(genotype) not in keys:
            keys.add(genotype_key(genotype))
            genotypes.append(genotype)
    out = Path(args.out)
    rows = {row["index"]: row for row in (json.loads(out.read_text())["rows"] if out.is_file() else [])}
    result = {"command": "python benchmarks/arm_instructions.py " + " ".join(sys.argv[1:]), "space": args.space,
              "size": list(size), "num_classes": NUM_CLASSES, "seed": args.seed, "cpu": DEFAULT_CPU,
              "qemu": subprocess.run(["qemu-aarch64", "--version"], capture_output=True,
                                     text=True).stdout.splitlines()[0],
              "versions": versions(), "machine": machine(), "load_average_before": load_average()}
    images = [np.random.default_rng(args.seed).uniform(0, 255, (1, *size, 3)).astype(np.float32) for _ in range(4)]
    started = time.time()
    for index, genotype in enumerate(tqdm(genotypes, desc="networks", unit="net")):
        if index in rows:
            continue
        keras.utils.set_random_seed(args.seed)
        model = build_model(genotype, NUM_CLASSES, size, batch_size=1)
        macs = complexity.total(complexity.layer_costs(model))[1]
        flatbuffer = packaging.convert(model, "int8", "logits", "uint8", lambda: ([image] for image in images))
        record = measure_tflite(flatbuffer, threads=1, clock="thread_cpu", max_seconds=10.0)
        with tempfile.TemporaryDirectory(prefix="arm_instructions_") as folder:
            path = Path(folder) / "model.tflite"
            path.write_bytes(flatbuffer)
            counts = count_instructions(root, plugin, path, DEFAULT_CPU)
        ops = {op.split(" x")[0] for part in branch_ops(genotype).values() for op in part.split(", ")}
        rows[index] = {"index": index, "composition": composition(genotype), "ops": sorted(ops - {"-"}),
                       "macs": macs, "x86_thread_cpu_ms": record.median_ms, "x86_partitions": record.xnnpack_partitions,
                       "arm_instructions": counts[0], "arm_instructions_each_invoke": counts,
                       "arm_instructions_repeatable": len(set(counts)) == 1}
        done = [rows[i] for i in sorted(rows)]
        correlations = {}
        for family in ("all", *FAMILIES, "conv_only"):
            members = [row for row in done if family == "all" or family in row["ops"]
                       or (family == "conv_only" and not set(row["ops"]) & set(ATTENTION))]
            if len(members) >= 4:
                ins, ms, macs_ = ([row[key] for row in members] for key in ("arm_instructions", "x86_thread_cpu_ms", "macs"))
                correlations[family] = {"networks": len(members),
                                        "spearman_instructions_vs_x86_ms": round(spearman_rho(ins, ms), 3),
                                        "spearman_macs_vs_x86_ms": round(spearman_rho(macs_, ms), 3),
                                        "spearman_macs_vs_instructions": round(spearman_rho(macs_, ins), 3)}
        result.update(correlations=correlations, rows=done, seconds_this_run=round(time.time() - started),
                      load_average_after=load_average())
        write_atomic(out, json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["correlations"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
