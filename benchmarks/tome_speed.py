"""Benchmark (issues 9 and 15): token merging without retraining, LiteRT latency and mIoU.

Kienzle et al., "Segformer++: Efficient Token-Merging Strategies for High-Resolution Semantic
Segmentation", IEEE MIPR 2024, report 1.61x at -0.08 mIoU (82.39 -> 82.31) on Cityscapes
with MiT-B5 and no retraining (their "HQ" preset, PyTorch on a GPU). This measures what the
same idea gives here: `mobileseg.arch.tome` rewrites every efficient-attention block of a
SegFormer-B0-style network (``search_space/references/segformer_b0.yaml``) at one ratio, by
one of two methods (``--methods``): ``bsm``, Segformer++'s bipartite soft matching (keys/values
merged where they are reduced by 4 or 8, queries below, as its presets; at ``--ratios``), and
``grid`` (issue 15), the same placement on a fixed ``s x s`` grid in ops XNNPACK runs whole
(`mobileseg.arch.tome.merge_settings`; at ``--grid_ratios``, ``1 - 1/s**2``).

1. **Latency** at each ``--sizes`` (1024x2048: Cityscapes, 19 classes; 360x480: CamVid, 11
   classes), random weights (latency does not depend on them): for each ratio the network is
   rewritten and converted as export ships it (`mobileseg.deploy.packaging.convert`: uint8
   image in, logits out; int8 post-training quantized on random images), then every method and
   ratio of one mode (fp32, int8) is timed interleaved in LiteRT at 1 thread with the thread-CPU clock
   (`mobileseg.litert_measure`: the latency on an idle core, robust to the shared machine's
   load, which is recorded before and after). The XNNPACK partitions and the ops left to
   LiteRT's own kernels are recorded with each file.
2. **mIoU** with ``--model runs/.../model.keras`` (a CamVid-trained segformer_b0): for each
   method and ratio one ``python -m mobileseg.export --tome RATIO --tome_method METHOD --fp32
   --int8 --ptq`` of a copy of the model in ``--work_dir``, which evaluates the rewritten Keras
   network and both files on ``--split`` and times the files (thread CPU, 1 thread). Without a
   trained model only the latency is measured, and the result says so.

Writes ``--out`` (default ``benchmarks/results/tome_speed.json``): the command, settings,
versions, machine, load averages, the anchor, and the figures.

Example (the full benchmark; the 1024x2048 fp32 files need several GB of memory):
    python benchmarks/tome_speed.py --model runs/train_references_camvid/segformer_b0/model.keras
A quick check (a few minutes):
    python benchmarks/tome_speed.py --sizes 360x480 --ratios 0.5 --grid_ratios 0.75 --out /tmp/tome_speed_check.json
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GENOTYPE = ROOT / "search_space" / "references" / "segformer_b0.yaml"
CLASSES = {(1024, 2048): 19, (360, 480): 11}  # Cityscapes, CamVid
ANCHOR = {
    "paper": "Kienzle, Kantonis, Schoen, Lienhart, Segformer++: Efficient Token-Merging Strategies for "
             "High-Resolution Semantic Segmentation, IEEE MIPR 2024",
    "setting": "Cityscapes val, MiT-B5, no retraining, Segformer++ HQ preset (PyTorch, GPU)",
    "speedup": 1.61, "miou": 82.31, "baseline_miou": 82.39, "miou_change_points": -0.08,
}


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"360x480,1024x2048"`` -> ``[(360, 480), (1024, 2048)]``."""
    from mobileseg.cli_flags import parse_size

    return [tuple(parse_size(part.strip())) for part in text.split(",") if part.strip()]


def fallback_summary(ops) -> dict:
    """LiteRT-kernel ops of a file, counted."""
    return dict(collections.Counter(ops))


def variant_key(method: str, ratio: float) -> str:
    """A variant's key in ``blocks``: the ratio for ``bsm`` and no merging (as before issue 15), ``grid:RATIO``."""
    return str(ratio) if method in ("bsm", "none") else f"{method}:{ratio}"


def tome_method(method: str) -> str:
    """The `mobileseg.arch.tome` method of a variant (no merging is ratio 0 of any: ``bsm``)."""
    return "bsm" if method == "none" else method


def latency_at(size: tuple[int, int], variants: list[tuple[str, float]], modes: list[str], args) -> dict:
    """Convert the B0 network for each (method, ratio) and mode and time each mode's files interleaved."""
    import keras

    from mobileseg.arch import builder, schema_io
    from mobileseg.arch.tome import block_settings, with_token_merging
    from mobileseg.deploy import packaging
    from mobileseg.litert_measure import measure_interleaved
    from mobileseg.provenance import load_average
    from mobileseg.quant.ptq import representative_dataset

    num_classes = CLASSES.get(tuple(size), 19)
    keras.utils.set_random_seed(args.seed)
    model = builder.build_model(schema_io.load(GENOTYPE), num_classes, size)
    rng = np.random.default_rng(args.seed)
    calibration = [rng.uniform(0, 255, (1, *size, 3)).astype(np.float32) for _ in range(args.calibration_images)]
    blocks, files = {}, {mode: [] for mode in modes}
    for method, ratio in variants:
        merged = with_token_merging(model, ratio, source=GENOTYPE.name, method=tome_method(method))
        blocks[variant_key(method, ratio)] = block_settings(merged)
        for mode in modes:
            started = time.time()
            representative = representative_dataset(calibration) if mode == "int8" else None
            flatbuffer = packaging.convert(merged, mode, "logits", "uint8", representative)
            files[mode].append({"method": method, "ratio": ratio, "flatbuffer": flatbuffer,
                                "convert_seconds": round(time.time() - started, 1)})
            print(f"{size[0]}x{size[1]} {mode} {method} ratio {ratio}: converted in {time.time() - started:.0f} s",
                  flush=True)
        del merged
    rows = []
    for mode in modes:
        before = load_average()
        records = measure_interleaved(
            [f["flatbuffer"] for f in files[mode]], threads=1,
            names=[f"{mode}@{f['method']}:{f['ratio']}" for f in files[mode]],
            clock="thread_cpu", warmup=args.warmup, min_runs=args.min_runs, max_runs=args.max_runs,
            stable_rel=args.stable_rel, max_seconds=args.max_seconds, seed=args.seed)
        after = load_average()
        base = records[0].median_ms if files[mode][0]["ratio"] == 0 else None
        for file, record in zip(files[mode], records, strict=True):
            rows.append({
                "mode": mode, "method": file["method"], "ratio": file["ratio"], "median_ms": record.median_ms,
                "min_ms": record.min_ms,
                "p90_ms": record.p90_ms, "std_ms": record.std_ms, "runs": record.runs, "peak_mb": record.peak_mb,
                "speedup_vs_ratio_0": round(base / record.median_ms, 3) if base else None,
                "xnnpack_partitions": record.xnnpack_partitions,
                "fallback_ops": fallback_summary(record.fallback_ops),
                "size_mb": round(len(file["flatbuffer"]) / 2 ** 20, 3), "convert_seconds": file["convert_seconds"],
                "load_average_before_after": [before, after]})
            print(f"{size[0]}x{size[1]} {mode} {file['method']} ratio {file['ratio']}: {record.median_ms:.1f} ms "
                  f"(x{rows[-1]['speedup_vs_ratio_0']}), {record.xnnpack_partitions} partitions, load {after}",
                  flush=True)
    return {"size": list(size), "num_classes": num_classes, "network": f"{GENOTYPE.relative_to(ROOT)}, "
            f"random weights (seed {args.seed})", "parameters": model.count_params(), "blocks": blocks,
            "rows": rows}


def export_command(model: Path, method: str, ratio: float, modes: list[str], out_dir: Path, args) -> list[str]:
    """The ``mobileseg.export`` command for one method and ratio of the trained model."""
    command = [sys.executable, "-m", "mobileseg.export", "--model", str(model), "--tome", str(ratio),
               "--tome_method", tome_method(method),
               "--out_dir", str(out_dir), "--data", args.data, "--split", args.split,
               "--calibration_images", str(args.calibration_images_trained), "--threads", "1", "--seed", str(args.seed)]
    command += [f"--{mode}" for mode in modes] + (["--ptq"] if "int8" in modes else [])
    if args.eval_images:
        command += ["--eval_images", str(args.eval_images)]
    return command


def trained_at_ratios(model_path: Path, variants: list[tuple[str, float]], modes: list[str], args) -> dict:
    """Export, evaluate and time the trained model for each (method, ratio) (one export each)."""
    from mobileseg.arch.tome import files_suffix
    from mobileseg.provenance import load_average

    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    model = work / "model.keras"  # a copy: no quantization-aware model or export of the run is touched
    shutil.copy2(model_path, model)
    rows = []
    for method, ratio in variants:
        out_dir = work / files_suffix(ratio, tome_method(method)).lstrip("_")  # tome0.5, tome_grid0.75
        command = export_command(model, method, ratio, modes, out_dir, args)
        before, started = load_average(), time.time()
        out_dir.mkdir(parents=True, exist_ok=True)
        with (out_dir / "export.log").open("w") as log:
            log.write(f"$ {' '.join(command)}\n")
            log.flush()
            code = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT).returncode
        report_path = out_dir / "report.json"
        if code != 0 or not report_path.is_file():
            tail = "\n".join((out_dir / "export.log").read_text().splitlines()[-15:])
            raise RuntimeError(f"{' '.join(command)} failed ({code}):\n{tail}")
        report = json.loads(report_path.read_text())
        files = {entry["mode"]: entry for entry in report["files"] if entry.get("method") in (None, "ptq")}
        row = {"method": method, "ratio": ratio, "command": " ".join(command),
               "keras_miou": report["float"].get("miou"),
               "wall_seconds": round(time.time() - started), "load_average_before_after": [before, load_average()]}
        for mode in modes:
            entry = files.get(mode, {})
            row[mode] = {key: entry.get(key) for key in ("miou", "latency_ms", "clock", "xnnpack_partitions",
                                                          "builtin_only", "size_mb", "error")}
            row[mode]["fallback_ops"] = fallback_summary(entry.get("fallback_ops") or [])
        rows.append(row)
        print(f"trained, {method} ratio {ratio}: Keras mIoU {row['keras_miou']}, "
              + ", ".join(f"{m} mIoU {row[m]['miou']} {row[m]['latency_ms']} ms" for m in modes), flush=True)
    base = rows[0] if rows and rows[0]["ratio"] == 0 else None
    if base:
        for row in rows:
            for mode in modes:
                if base[mode].get("latency_ms") and row[mode].get("latency_ms"):
                    row[mode]["speedup_vs_ratio_0"] = round(base[mode]["latency_ms"] / row[mode]["latency_ms"], 3)
                if base[mode].get("miou") is not None and row[mode].get("miou") is not None:
                    row[mode]["miou_change_points"] = round(100 * (row[mode]["miou"] - base[mode]["miou"]), 3)
    return {"model": str(model_path), "data": args.data, "split": args.split, "eval_images": args.eval_images,
            "rows": rows}


def variants_of(methods: list[str], ratio_lists: dict[str, str]) -> list[tuple[str, float]]:
    """``(method, ratio)`` pairs to measure: no merging (``("none", 0.0)``) first, then each method's ratios above 0.

    Raises:
        mobileseg.arch.tome.TomeError: a ratio out of [0, 1), or a grid ratio that is not ``1 - 1/s**2``.
    """
    from mobileseg.arch.tome import check_setting

    variants = [("none", 0.0)]
    for method in methods:
        for part in ratio_lists[method].split(","):
            if part.strip() and check_setting(float(part), method) > 0:
                variants.append((method, float(part)))
    return variants


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="360x480,1024x2048", help="HxW list for the latency part")
    parser.add_argument("--ratios", default="0.5,0.75,0.9", help="bsm merging ratios (no merging, ratio 0, "
                        "is always measured first: the baseline of every method)")
    parser.add_argument("--grid_ratios", default="0.75,0.9375", help="grid merging ratios (1 - 1/s**2)")
    parser.add_argument("--methods", default="bsm,grid", help="bsm and/or grid (mobileseg.arch.tome.METHODS)")
    parser.add_argument("--modes", default="fp32,int8", help="fp32 and/or int8")
    parser.add_argument("--model", type=Path, default=None, help="a CamVid-trained segformer_b0 model.keras")
    parser.add_argument("--data", default=f"camvid:{ROOT.parent / 'shared' / 'datasets' / 'camvid'}")
    parser.add_argument("--split", default="test")
    parser.add_argument("--eval_images", type=int, default=0, help="0: the whole split")
    parser.add_argument("--calibration_images", type=int, default=4, help="random images (latency part)")
    parser.add_argument("--calibration_images_trained", type=int, default=64, help="training images (mIoU part)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--min_runs", type=int, default=10)
    parser.add_argument("--max_runs", type=int, default=200)
    parser.add_argument("--stable_rel", type=float, default=0.02)
    parser.add_argument("--max_seconds", type=float, default=None, help="cap on each mode's interleaved timing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work_dir", type=Path, default=ROOT / "runs" / "tome_speed")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "tome_speed.json")
    args = parser.parse_args()

    from mobileseg.arch.tome import METHODS, TomeError
    from mobileseg.atomic_write import write_atomic
    from mobileseg.provenance import load_average, machine, versions

    sizes = parse_sizes(args.sizes)
    methods = [part.strip() for part in args.methods.split(",") if part.strip()]
    if not set(methods) <= set(METHODS) or not methods:
        parser.error(f"--methods: expected {' and/or '.join(METHODS)}, got {args.methods!r}")
    try:
        variants = variants_of(methods, {"bsm": args.ratios, "grid": args.grid_ratios})
    except (TomeError, ValueError) as error:
        parser.error(f"--ratios/--grid_ratios: {error}")
    modes = [part.strip() for part in args.modes.split(",") if part.strip()]
    if not set(modes) <= {"fp32", "int8"} or not modes:
        parser.error(f"--modes: expected fp32 and/or int8, got {args.modes!r}")
    if args.model is not None and not args.model.is_file():
        parser.error(f"--model: no such file {args.model}")
    start_load, started = load_average(), time.time()
    latency = [latency_at(size, variants, modes, args) for size in sizes]
    trained = trained_at_ratios(args.model.resolve(), variants, modes, args) if args.model else None
    result = {
        "command": " ".join(["python", "benchmarks/tome_speed.py", *sys.argv[1:]]),
        "settings": {key: str(value) for key, value in vars(args).items()},
        "versions": versions(), "machine": machine(), "load_average_start_end": [start_load, load_average()],
        "wall_seconds": round(time.time() - started), "anchor": ANCHOR,
        "latency": latency, "trained": trained,
        "note": None if trained else "no trained model given (--model): latency only, no mIoU",
    }
    write_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
