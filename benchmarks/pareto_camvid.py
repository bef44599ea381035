"""Benchmark (issue 8, items 3-4): searched networks against the seed papers' on CamVid, int8.

Every network, the searched ones (each member of a search's Pareto front, ``--front
pareto.json``) and the references (``--arch``), goes through the same steps with one
recipe and one budget:

1. ``python -m mobileseg.train`` for ``--epochs`` epochs (`RECIPE`: crops and model at
   ``--size``, the size the search measured latency at; random rescaling around the
   test-time scale, since test images are resized from 360x480 to the model's size);
2. ``python -m mobileseg.export --target cpu-int8 --qat_epochs Q`` (quantization-aware
   fine-tuning with distillation from the float model, full-integer file, uint8 image in,
   uint8 class map out);
3. ``python -m mobileseg.evaluate`` of the float ``model.keras`` and of ``model_int8.tflite``
   on the CamVid test split at full resolution;
4. in one process at the end, every int8 file timed with LiteRT at 1 thread, the models
   alternately (`mobileseg.litert_measure.measure_interleaved`, the invoking thread's CPU
   clock: this 2-core machine is shared and the clock leaves the neighbours out).

Networks train two at a time (``--parallel``), each step skipped when its output exists, so
a killed run continues where it stopped. Writes ``benchmarks/results/pareto_camvid.json``
(commands, recipe, versions, machine, load, per network the figures and files) and
``pareto_camvid.png`` (int8 latency against int8 test mIoU), and checks the issue's target:
a searched network dominates a reference when it is no slower and has a higher mIoU.

``--recipe full`` trains with the full-length recipe of ``train_references_camvid.py`` at 360x480
(issue 13, item 4); with that script's ``--work_dir`` the references it trained for as many epochs are
reused, not trained again. ``rows`` holds every network in issue 13's ``camvid_full.json`` layout.

Examples (the front of benchmarks/search_camvid.py):
    python benchmarks/pareto_camvid.py --front runs/search_camvid_benchmark/pareto.json \\
        --arch search_space/references/segformer_b0.yaml --arch search_space/references/seaformer_tiny.yaml
    python benchmarks/pareto_camvid.py --recipe full --epochs 120 --qat_epochs 2 --parallel 1 \\
        --work_dir runs/train_references_camvid --out benchmarks/results/camvid_full.json \\
        --front runs/search_camvid/pareto.json --arch search_space/references/segformer_b0.yaml ...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from camvid_runs import CAMVID, ROOT, train_export_evaluate, versions
from result_genotypes import keep
from train_references_camvid import RECIPE as FULL_RECIPE
from train_references_camvid import SIZE as FULL_SIZE

RECIPE = ["--batch_size", "8", "--lr", "2e-3", "--weight_decay", "0.01", "--schedule", "poly",
          "--warmup_epochs", "1", "--scale_range", "0.25,1.0", "--seed", "0", "--verbose", "2",
          "--class_weight", "none"]  # issue 8's recipe, from before class weights were the default
RECIPES = {"short": (RECIPE, "184x240"), "full": (FULL_RECIPE, FULL_SIZE)}


def front_archs(pareto: Path, result: str = "pareto_camvid") -> list[Path]:
    """Each Pareto-front member of a search's ``pareto.json`` as a committed genotype file
    (`result_genotypes.keep`: ``benchmarks/results/genotypes/RESULT/searched_trialN.yaml``, RESULT the
    result file's name: ``pareto_camvid`` or ``camvid_full``)."""
    return [ROOT / keep(member["genotype"], result, f"searched_trial{member['trial']}")["genotype"]
            for member in json.loads(pareto.read_text())["front"]]


def arch_and_size(value: str, default_size: str) -> tuple[Path, str]:
    """``FILE`` or ``FILE@HxW`` (a network that needs another input size, e.g. square-only keras-hub MiT)."""
    path, _, size = value.partition("@")
    return Path(path), size or default_size


def time_int8(results: list[dict], max_seconds: float) -> None:
    """Step 4: time every int8 file alternately in this process; adds ``int8_latency`` to each."""
    from dataclasses import asdict

    from mobileseg.litert_measure import measure_interleaved

    records = measure_interleaved([r["int8_file"] for r in results], threads=1,
                                  names=[r["network"] for r in results], clock="thread_cpu",
                                  min_runs=50, max_runs=400, max_seconds=max_seconds)
    for result, record in zip(results, records, strict=True):
        result["int8_latency"] = asdict(record)
        result["int8_ms"] = record.median_ms


def dominance(results: list[dict]) -> list[dict]:
    """For each reference: the searched networks no slower with a higher int8 mIoU, if any."""
    searched = [r for r in results if r["searched"]]
    rows = []
    for ref in (r for r in results if not r["searched"]):
        winners = [s["network"] for s in searched
                   if s["int8_ms"] <= ref["int8_ms"] and s["int8_test_miou"] > ref["int8_test_miou"]]
        rows.append({"reference": ref["network"], "int8_ms": ref["int8_ms"], "int8_test_miou": ref["int8_test_miou"],
                     "dominated_by": winners})
    return rows


def camvid_rows(results: list[dict]) -> list[dict]:
    """The networks in issue 13's ``camvid_full.json`` layout (mIoU in percent).

    Example:
        >>> camvid_rows([{"network": "a", "searched": False, "epochs": 2, "size": "8x8", "float_test_miou": 0.5,
        ...               "int8_test_miou": 0.25, "int8_ms": 1.5, "int8_latency": {"xnnpack_partitions": 1}}])
        [{'network': 'a', 'kind': 'reference', 'epochs': 2, 'input_size': '8x8', 'float_test_miou': 50.0, \
'int8_test_miou': 25.0, 'int8_ms': 1.5, 'partitions': 1}]
    """
    return [{"network": r["network"], "kind": "searched" if r["searched"] else "reference", "epochs": r["epochs"],
             "input_size": r["size"], "float_test_miou": round(100 * r["float_test_miou"], 2),
             "int8_test_miou": round(100 * r["int8_test_miou"], 2), "int8_ms": r["int8_ms"],
             "partitions": r["int8_latency"]["xnnpack_partitions"]} for r in results]


def plot(results: list[dict], path: Path, title: str, size: str) -> None:
    """int8 latency against int8 CamVid test mIoU; searched networks joined as a front."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    searched = sorted((r for r in results if r["searched"]), key=lambda r: r["int8_ms"])
    if searched:
        ax.plot([r["int8_ms"] for r in searched], [100 * r["int8_test_miou"] for r in searched], "o-",
                color="tab:red", label="searched (mobileseg)")
    for r in results:
        if not r["searched"]:
            ax.plot(r["int8_ms"], 100 * r["int8_test_miou"], "s", color="tab:blue")
        label = r["network"].replace("searched_", "") + ("" if r["size"] == size else f" @{r['size']}")
        ax.annotate(label, (r["int8_ms"], 100 * r["int8_test_miou"]),
                    textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.plot([], [], "s", color="tab:blue", label="references")
    ax.set_xlabel("int8 latency, ms (LiteRT, 1 thread, XNNPACK, thread CPU clock)")
    ax.set_ylabel("CamVid test mIoU, int8 (%)")
    ax.set_title(title, fontsize=9)
    ax.margins(x=0.2)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--front", type=Path, action="append", default=[],
                        help="a search's pareto.json: every front member is trained (repeatable)")
    parser.add_argument("--arch", action="append", default=[],
                        help="a reference genotype, FILE or FILE@HxW for another input size (repeatable)")
    parser.add_argument("--data", default=f"camvid:{CAMVID}")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="short",
                        help="short: the issue-8 recipe at the search size (184x240); full: the full-length "
                             "recipe of train_references_camvid.py at 360x480 (issue 13's camvid_full.json)")
    parser.add_argument("--size", help="training crop and model input size, HxW (default: the recipe's)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--qat_epochs", type=int, default=1)
    parser.add_argument("--parallel", type=int, default=2, help="networks trained at once")
    parser.add_argument("--timing_seconds", type=float, default=600.0, help="cap on the interleaved timing")
    parser.add_argument("--work_dir", type=Path, default=ROOT / "runs" / "pareto_camvid")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "pareto_camvid.json")
    args = parser.parse_args()
    if not args.front and not args.arch:
        parser.error("give --front and/or --arch")

    from mobileseg.atomic_write import write_atomic
    from mobileseg.deploy.export_run import environment

    recipe, default_size = RECIPES[args.recipe]
    args.size = args.size or default_size
    args.work_dir.mkdir(parents=True, exist_ok=True)
    # the searched networks first (the point of the comparison), then the references in the order given
    archs = [(path, args.size) for pareto in args.front for path in front_archs(pareto, args.out.stem)]
    archs += [arch_and_size(value, args.size) for value in args.arch]
    load_before, started = os.getloadavg(), time.time()
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        results = list(pool.map(lambda item: train_export_evaluate(*item, recipe, args.epochs, args.qat_epochs,
                                                                   args.work_dir, args.data), archs))
    time_int8(results, args.timing_seconds)
    budget = (f"{args.epochs} epochs + {args.qat_epochs} QAT epoch(s) each, crops and model {args.size}, "
              f"batch 8, seed 0")
    result = {"command": " ".join(["python", "benchmarks/pareto_camvid.py", *sys.argv[1:]]),
              "recipe": recipe, "budget": budget, "settings": {k: str(v) for k, v in vars(args).items()},
              "environment": environment(), "versions": versions(),
              "load_average_before_after": [load_before, os.getloadavg()],
              "wall_seconds_this_run": round(time.time() - started), "rows": camvid_rows(results),
              "results": results, "dominance": dominance(results)}
    write_atomic(args.out, json.dumps(result, indent=2) + "\n")
    plot(results, args.out.with_suffix(".png"), f"CamVid test, {budget}", args.size)
    for r in sorted(results, key=lambda r: r["int8_ms"]):
        print(f"{r['network']:32s} int8 {r['int8_ms']:7.3f} ms  mIoU int8 {100 * r['int8_test_miou']:5.2f}  "
              f"float {100 * r['float_test_miou']:5.2f}")
    for row in result["dominance"]:
        print(f"{row['reference']}: dominated by {row['dominated_by'] or 'no searched network'}")
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
