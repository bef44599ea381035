"""Reference networks trained from scratch on CamVid at full length: float and QAT int8 test mIoU.

For every ``--arch``, the steps of `camvid_runs.train_export_evaluate` with one recipe
(`RECIPE`, on top of ``mobileseg.train``'s defaults): 360x480 crops (CamVid's own size)
after random scaling 0.5-2.0, flips and colour jitter, AdamW 2e-3 with a 5-epoch warm-up
and poly decay, OHEM weighted by ENet's class weights (``--class_weight enet``, chosen on val: best val
mIoU 61.1 against 58.7 without for mobilenetv3_small_lraspp at 120 epochs), batch 8, ``--epochs`` epochs, validation on CamVid val every 5
epochs (``model.keras`` is the best validated epoch: chosen on val, never on test); then
``--qat_epochs`` of quantization-aware fine-tuning to a full-integer file, and both models
evaluated on the 233 test images at 360x480. Networks train at the same time with
``--parallel`` (each then gets about one core). Every step resumes: run the same command
again after an interruption, or with a larger ``--epochs`` to train on.

With ``--teacher MODEL`` every network is distilled from that trained model (``mobileseg.train
--teacher``, weight ``--distill_weight``) on top of the same recipe: issue 13's test of
distillation compares such a run with the same network trained alone for the same epochs
(give the distilled runs their own ``--work_dir`` and ``--out``). ``--class_weight none`` is the recipe
as it was before (the committed 120- and 300-epoch results), likewise with its own folder and file;
``--ema DECAY`` adds weight EMA (``mobileseg.train --ema``: validated and shipped weights are the average);
``--train_split train,val`` trains on val too, once the recipe has been chosen on it (CamVid's protocol;
the best validated epoch is then chosen on images it trained on).

Writes ``benchmarks/results/train_references_camvid.json`` (``--out``): per network the epochs, timing,
best val mIoU, float and int8 test mIoU and per-class IoU, the commands, versions, machine
and load. Networks an earlier run wrote there with the same recipe and epochs are kept (`merged`),
so references trained one after the other gather in one file.

Example:
    python benchmarks/train_references_camvid.py --epochs 150 --parallel \\
        --arch search_space/references/seaformer_tiny.yaml \\
        --arch search_space/references/mobilenetv3_small_lraspp.yaml
    python benchmarks/train_references_camvid.py --epochs 120 \\
        --arch search_space/references/mobilenetv3_small_lraspp.yaml \\
        --teacher runs/train_references_camvid/seaformer_tiny/model.keras --distill_weight 1 \\
        --work_dir runs/distill_camvid --out benchmarks/results/distill_camvid.json
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

SIZE = "360x480"
RECIPE = ["--batch_size", "8", "--lr", "2e-3", "--weight_decay", "0.01", "--schedule", "poly",
          "--warmup_epochs", "5", "--scale_range", "0.5,2.0", "--val_every", "5", "--seed", "0", "--verbose", "2",
          "--class_weight", "enet"]


SAME_RUN = ("recipe", "size", "epochs", "qat_epochs")


def merged(out: Path, report: dict) -> dict:
    """``report`` with the rows of the other networks an earlier run wrote into ``out`` with the same recipe,
    size, epochs and QAT epochs (one file per setting gathers networks trained at different times); their
    commands are kept under ``earlier_commands``. A file of another setting is replaced.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "r.json"
        >>> same = {"recipe": [], "size": "8x8", "epochs": 2, "qat_epochs": 0}
        >>> _ = out.write_text(json.dumps({**same, "command": "a", "results": [{"network": "x"}, {"network": "y"}]}))
        >>> report = merged(out, {**same, "command": "b", "results": [{"network": "y", "new": 1}]})
        >>> report["results"], report["earlier_commands"]
        ([{'network': 'x'}, {'network': 'y', 'new': 1}], ['a'])
    """
    if not out.is_file():
        return report
    earlier = json.loads(out.read_text())
    if any(earlier.get(key) != report[key] for key in SAME_RUN):
        return report
    ours = {row["network"] for row in report["results"]}
    kept = [row for row in earlier["results"] if row["network"] not in ours]
    commands = [*earlier.get("earlier_commands", []), earlier["command"]]
    return {**report, "results": kept + report["results"],
            "earlier_commands": [c for c in dict.fromkeys(commands) if c != report["command"]]}


def recipe_of(args: argparse.Namespace) -> list[str]:
    """`RECIPE` with the flags' departures from it, as ``mobileseg.train`` arguments.

    Example:
        >>> args = argparse.Namespace(class_weight="none", teacher=None, distill_weight=1.0, ema=0.0,
        ...                           train_split="train", loss_stride=1)
        >>> recipe = recipe_of(args)
        >>> recipe[recipe.index("--class_weight") + 1], recipe[-2:]
        ('none', ['--loss_stride', '1'])
    """
    recipe = list(RECIPE)
    recipe[recipe.index("--class_weight") + 1] = args.class_weight
    if args.teacher is not None:
        recipe += ["--teacher", str(args.teacher), "--distill_weight", str(args.distill_weight)]
    if args.ema:
        recipe += ["--ema", str(args.ema)]
    if args.train_split != "train":
        recipe += ["--train_split", args.train_split]
    if args.loss_stride is not None:
        recipe += ["--loss_stride", str(args.loss_stride)]
    return recipe


def main() -> int:
    from mobileseg.data.class_balance import CLASS_WEIGHTS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", action="append", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--qat_epochs", type=int, default=2)
    parser.add_argument("--data", default=f"camvid:{CAMVID}")
    parser.add_argument("--work_dir", type=Path, default=ROOT / "runs" / "train_references_camvid")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train_references_camvid.json")
    parser.add_argument("--parallel", action="store_true", help="train the networks concurrently")
    parser.add_argument("--teacher", type=Path, help="distil every network from this trained .keras model")
    parser.add_argument("--distill_weight", type=float, default=1.0, help="weight of the distillation term")
    parser.add_argument("--class_weight", choices=CLASS_WEIGHTS, default="enet",
                        help="mobileseg.train --class_weight (the recipe's enet; none: the recipe before it)")
    parser.add_argument("--ema", type=float, default=0.0,
                        help="mobileseg.train --ema: weight EMA decay per step (0: off, the recipe)")
    parser.add_argument("--train_split", default="train",
                        help="mobileseg.train --train_split: train, or train,val once the recipe is chosen on val")
    parser.add_argument("--loss_stride", type=int,
                        help="mobileseg.train --loss_stride (default: its own, 2; 1: the loss on every pixel)")
    args = parser.parse_args()
    from mobileseg.atomic_write import write_atomic
    from mobileseg.deploy.export_run import environment

    if args.teacher is not None and not args.teacher.is_file():
        raise SystemExit(f"--teacher {args.teacher}: no such file")
    recipe = recipe_of(args)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    load_before, started = os.getloadavg(), time.time()
    with ThreadPoolExecutor(max_workers=len(args.arch) if args.parallel else 1) as pool:
        results = list(pool.map(lambda arch: train_export_evaluate(
            arch, SIZE, recipe, args.epochs, args.qat_epochs, args.work_dir, args.data), args.arch))
    report = {"command": " ".join(["python", "benchmarks/train_references_camvid.py", *sys.argv[1:]]),
              "recipe": recipe, "size": SIZE, "epochs": args.epochs, "qat_epochs": args.qat_epochs,
              "parallel": args.parallel, "environment": environment(), "versions": versions(),
              "load_average_before_after": [load_before, os.getloadavg()],
              "wall_seconds_this_run": round(time.time() - started), "results": results}
    write_atomic(args.out, json.dumps(merged(args.out, report), indent=2) + "\n")
    for r in results:
        print(f"{r['network']}: test mIoU float {100 * r['float_test_miou']:.1f}, int8 ({r['int8_method']}) "
              f"{100 * r['int8_test_miou']:.1f} after {r['epochs']} epochs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
