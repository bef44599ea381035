"""Benchmark: what starting a searched network from the supernet's weights saves on CamVid (issue 18, item 4).

One network of the default space (``--arch``, by default ``net_03`` of the proxy-ranking
benchmark) is trained at 184x240 with the proxy-ranking recipe for short runs
(`proxy_rank_camvid.short_recipe`: validated after every epoch, the warm-up a third of ``--epochs``)
for ``--epochs`` epochs, once from random weights and once per ``--supernet DIR`` from the
weights it inherits from that supernet (``python -m mobileseg.train --init supernet:DIR``). The
figures: for each supernet start, the first epoch whose validation mIoU reaches the from-scratch
run's final validation mIoU (the epochs saved against the whole from-scratch run, and against
the first epoch the from-scratch run itself reached that value, which a noisy curve can make
earlier than its last), the same for its best validation mIoU, and both runs' final and best. Validation split only: the
test split is not used.

A supernet folder is one that ``python -m mobileseg.search --stage supernet`` trained, e.g.
(about 10 minutes an epoch at 184x240 on the shared 2-core machine)::

    python -m mobileseg.search --stage supernet --space search_space/default.yaml \\
        --data camvid:../shared/datasets/camvid --run_dir runs/init_supernet --input_size 184x240 \\
        --supernet_epochs 8 --noprogress

and a copy of its ``supernet/`` taken after an epoch is a supernet of that many epochs.
Each training run is resumed when the benchmark is started again (finished ones are kept).

Example:
    python benchmarks/init_from_supernet_camvid.py --supernet runs/init_from_supernet_camvid/supernet_e2 \\
        --supernet runs/init_supernet
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from camvid_runs import CAMVID, ROOT, repository_path, run, versions
from proxy_rank_camvid import SIZE, short_recipe

RESULT = ROOT / "benchmarks" / "results" / "init_from_supernet_camvid.json"


def train(arch: str, run_dir: Path, epochs: int, data: str, init: str | None) -> dict:
    """Train (or resume) one run; its per-epoch validation mIoU and timing."""
    run_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "mobileseg.train", "--arch", arch, "--data", data, "--run_dir", str(run_dir),
               "--input_size", SIZE, "--model_size", SIZE, "--val_size", SIZE, "--epochs", str(epochs),
               *short_recipe(epochs), *(["--init", init] if init else [])]
    started = time.time()
    run(command, run_dir / "benchmark.log")
    history = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    row = {"init": init, "val_miou": [round(h["val_miou"], 4) for h in history],
           "epoch_seconds": [round(h["epoch_seconds"], 1) for h in history if h.get("epoch_seconds")],
           "seconds_this_call": round(time.time() - started),
           "command": " ".join(["python", *command[1:]]).replace(f"{ROOT}/", "")}
    report = run_dir / "init_report.json"
    if report.is_file():
        found = json.loads(report.read_text())
        row["init_matched"] = {"weights": len(found["matched"]), "of": len(found["matched"]) + len(found["missing"])
                               + len(found["shape_mismatch"]), "notes": found["notes"]}
    return row


def first_epoch_reaching(curve: list[float], target: float) -> int | None:
    """The first epoch (1-based) whose value is at least ``target``, or None.

    Example:
        >>> first_epoch_reaching([0.1, 0.3, 0.2, 0.4], 0.3)
        2
    """
    return next((epoch for epoch, value in enumerate(curve, start=1) if value >= target), None)


def supernet_info(folder: Path) -> dict:
    """Where a supernet was in its training: epochs done of planned, and each epoch's seconds."""
    from mobileseg.state_files import read_checkpoint

    state = json.loads((folder / "supernet" / "state.json").read_text())
    meta, _ = read_checkpoint(folder / "supernet" / "checkpoint.npz", "train the supernet again")
    return {"dir": repository_path(folder), "epoch": state["epoch"], "epochs_planned": state["epochs"],
            "space": state["fixed"]["space"], "input_size": state["fixed"]["input_size"],
            "epoch_seconds": [round(entry["seconds"]) for entry in meta["log"]]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="benchmarks/results/genotypes/proxy_rank_camvid/net_03.yaml")
    parser.add_argument("--supernet", action="append", type=Path, required=True,
                        help="a folder holding a trained supernet/ (repeatable)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--data", default=f"camvid:{CAMVID}")
    parser.add_argument("--work_dir", type=Path, default=ROOT / "runs" / "init_from_supernet_camvid")
    parser.add_argument("--note", default="", help="how the runs were made, kept in the result")
    args = parser.parse_args()
    from mobileseg.atomic_write import write_atomic
    from mobileseg.deploy.export_run import environment

    load_start = [round(v, 2) for v in os.getloadavg()]
    scratch = train(args.arch, args.work_dir / "scratch", args.epochs, args.data, None)
    final, best = scratch["val_miou"][-1], max(scratch["val_miou"])
    starts = []
    for folder in args.supernet:
        info = supernet_info(folder)
        row = train(args.arch, args.work_dir / f"from_supernet_e{info['epoch']}", args.epochs, args.data,
                    f"supernet:{folder}")
        reached = {}
        for name, target in (("final", final), ("best", best)):
            ours, theirs = (first_epoch_reaching(curve, target) for curve in (row["val_miou"], scratch["val_miou"]))
            reached[name] = {"val_miou": target, "epoch": ours, "scratch_first_epoch": theirs,
                             "epochs_saved_vs_scratch_first": None if ours is None else theirs - ours}
        reached["final"]["epochs_saved_vs_scratch_run"] = (None if reached["final"]["epoch"] is None
                                                           else args.epochs - reached["final"]["epoch"])
        starts.append({"supernet": info, **row, "reaches_scratch": reached,
                       "final_val_miou": row["val_miou"][-1], "best_val_miou": max(row["val_miou"])})
    out = {"arch": args.arch, "data": args.data, "size": SIZE, "epochs": args.epochs,
           "recipe": short_recipe(args.epochs),
           "metric": "validation mIoU after every epoch (the test split is not used)",
           "scratch": {**scratch, "final_val_miou": final, "best_val_miou": best,
                       "best_epoch": scratch["val_miou"].index(best) + 1},
           "from_supernet": starts,
           "command": " ".join(["python", "benchmarks/init_from_supernet_camvid.py", *sys.argv[1:]]),
           "versions": versions(), "machine": environment(),
           "load_average": {"start": load_start, "end": [round(v, 2) for v in os.getloadavg()]},
           "note": "Shared 2-core machine: other engineers' jobs ran at the same time (see load_average, of this "
                   "call; a call that finds the runs finished only reports); epoch counts do not depend on the "
                   "load, seconds do." + (f" {args.note}" if args.note else "")}
    write_atomic(RESULT, json.dumps(out, indent=2) + "\n")
    for start in starts:
        print(f"from the supernet after {start['supernet']['epoch']} epochs: val mIoU "
              f"{' '.join(f'{v:.3f}' for v in start['val_miou'])}; reaches scratch's final {final:.3f} at epoch "
              f"{start['reaches_scratch']['final']['epoch']} of {args.epochs} (scratch first reached it at epoch "
              f"{start['reaches_scratch']['final']['scratch_first_epoch']})")
    print(f"from scratch: val mIoU {' '.join(f'{v:.3f}' for v in scratch['val_miou'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
