"""Training speed side by side: main before the speed work, a plain ``keras.Model.fit``, and now.

For every ``--arch``, in one run on this machine, each variant trains ``--epochs`` epochs
of CamVid's train split at ``--input_size`` and batch ``--batch_size``; its speed is the
training images per second of the last epoch (the first one includes tracing), as
``train_log.jsonl`` reports it (the training steps only: validation, checkpoints and
logging are not counted; the ``details`` say how long whole epochs took). Variants:

- ``main_before``: ``python -m mobileseg.train`` of ``--before`` (a git worktree), defaults;
- ``plain_keras_fit``: the same network (today's builder) and data pipeline, compiled with
  Adam and Keras' sparse cross-entropy on the logits resized to the crop, ``Model.fit``;
- ``now``: ``python -m mobileseg.train`` of this checkout, defaults;
- levers, each ``now`` with one lever taken back: ``loss_stride_1`` (the loss on every
  pixel), ``no_image_cache`` (images decoded every epoch), ``keras_batchnorm`` (Keras'
  unfused batch normalization), ``exact_ohem`` (main's OHEM: a sort of every pixel and a
  gather), ``mixed_bfloat16`` (``now`` with ``--precision mixed_bfloat16``: float32
  weights, bfloat16 compute, issue 20).

Every ``mobileseg.train`` run validates at its last epoch, so each row also gives the val
mIoU after the same epochs (``val_miou``); ``--int8`` also exports each of them to int8
(post-training, ``mobileseg.export --target cpu-int8 --qat_epochs 0``) and scores that file on
the val split (``int8_val_miou``): the precision a network trained in must not change its int8
file. ``--section NAME`` writes the run under ``NAME`` in an existing results file (its rows,
details, command and load) and leaves the rest as it was: a later, smaller run (e.g. the
accuracy of two variants after more epochs, at another load) never replaces the figures of the
side-by-side run.

Variants run one at a time, in an order that alternates between networks, so that load
from elsewhere falls on all of them alike. Writes ``benchmarks/results/train_speed.json``.

Example:
    python benchmarks/train_speed.py --arch search_space/references/mobilenetv3_small_lraspp.yaml \\
        --arch search_space/references/seaformer_tiny.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CAMVID = ROOT.parent / "shared" / "datasets" / "camvid"
LEVERS = {
    "loss_stride_1": ["--loss_stride", "1"],
    "no_image_cache": ["--cache_images", "no"],
    "keras_batchnorm": [],
    "exact_ohem": [],
    "mixed_bfloat16": ["--precision", "mixed_bfloat16"],
}
PATCHES = {
    "keras_batchnorm": "import mobileseg.blocks.batch_norm as m; m.BatchNorm._fused = lambda *a: False",
    "exact_ohem": "import mobileseg.training.losses as m; m.ohem_cross_entropy = exact_ohem",
}
VARIANTS = ("main_before", "plain_keras_fit", "now", *LEVERS)


def exact_ohem(labels, logits, threshold=0.7, min_kept=0, ignore_index=255):
    """main's OHEM cross-entropy (before 2026-12-04): log-softmax, a gather, and a sort of every pixel."""
    from keras import ops

    num_classes = int(logits.shape[-1])
    batch = ops.shape(labels)[0]
    labels = ops.reshape(ops.cast(labels, "int32"), [-1])
    logits = ops.reshape(ops.cast(logits, "float32"), [-1, num_classes])
    valid = (labels >= 0) & (labels < num_classes) & (labels != ignore_index)
    log_probs = ops.log_softmax(logits, axis=-1)
    true_log_prob = ops.take_along_axis(log_probs, ops.where(valid, labels, 0)[:, None], axis=-1)[:, 0]
    keep = valid
    if threshold is not None:
        prob = ops.exp(ops.stop_gradient(true_log_prob))
        keep = valid & (prob < threshold)
        if min_kept > 0:
            wanted = ops.minimum(ops.cast(batch, "int32") * min_kept, ops.sum(ops.cast(valid, "int32")))
            kth = ops.take(ops.sort(ops.where(valid, prob, 2.0)), ops.maximum(wanted - 1, 0))
            keep = keep | (valid & (prob <= kth) & (wanted > 0))
    keep = ops.cast(keep, "float32")
    return -ops.sum(true_log_prob * keep) / ops.maximum(ops.sum(keep), 1.0)


def train_command(variant: str, arch: Path, run_dir: Path, args) -> list[str]:
    """The command line that trains one variant."""
    flags = ["--arch", str(arch), "--data", f"camvid:{CAMVID}", "--run_dir", str(run_dir),
             "--input_size", args.input_size, "--batch_size", str(args.batch_size), "--epochs", str(args.epochs),
             "--val_every", str(args.epochs), "--verbose", "0", "--notensorboard", *LEVERS.get(variant, [])]
    if variant == "plain_keras_fit":
        return [sys.executable, __file__, "--plain", str(arch), "--run_dir", str(run_dir),
                "--input_size", args.input_size, "--batch_size", str(args.batch_size), "--epochs", str(args.epochs)]
    if variant in PATCHES:
        code = (f"import sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); from train_speed import exact_ohem; "
                f"{PATCHES[variant]}; from mobileseg.train import main; main()")
        return [sys.executable, "-c", code, *flags]
    return [sys.executable, "-m", "mobileseg.train", *flags]


def last_epoch(run_dir: Path) -> dict:
    """The last line of a run's train log."""
    return json.loads((run_dir / "train_log.jsonl").read_text().splitlines()[-1])


def run_variant(variant: str, arch: Path, args) -> dict:
    """Train one variant in a fresh run folder; its speed row and details."""
    run_dir = args.runs / f"{arch.stem}_{variant}"
    shutil.rmtree(run_dir, ignore_errors=True)
    cwd, env = ROOT, dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    if variant == "main_before":
        cwd = args.runs / "main_before_worktree"
        env["PYTHONPATH"] = str(cwd)  # its mobileseg package, not this checkout's
    command = train_command(variant, arch, run_dir, args)
    started = time.time()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{variant} {arch.stem} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    entry = last_epoch(run_dir)
    row = {"arch": arch.stem, "input_size": args.input_size, "batch": args.batch_size, "variant": variant,
           "images_per_second": round(entry["images_per_second"], 2)}
    if entry.get("val_miou") is not None:
        row.update(epochs=entry["epoch"], val_miou=round(entry["val_miou"], 4))
        if args.int8:
            row["int8_val_miou"] = int8_val_miou(run_dir, cwd, env)
    detail = {**row, "epoch_seconds": entry.get("epoch_seconds"), "train_seconds": entry.get("train_seconds"),
              "val_seconds": entry.get("val_seconds"), "wall_seconds": round(time.time() - started, 1),
              "command": " ".join(command), "cwd": str(cwd.relative_to(ROOT))}
    print(f"{arch.stem:28s} {variant:16s} {row['images_per_second']:6.2f} images/s", flush=True)
    return {"row": row, "detail": detail}


def int8_val_miou(run_dir: Path, cwd: Path, env: dict) -> float:
    """Export a trained run to int8 (post-training) and score the file on the val split."""
    data = f"camvid:{CAMVID}"
    int8, scores = run_dir / "export" / "model_int8.tflite", run_dir / "val_int8.json"
    export = [sys.executable, "-m", "mobileseg.export", "--run_dir", str(run_dir), "--data", data,
              "--target", "cpu-int8", "--qat_epochs", "0", "--noevaluate", "--seed", "0"]
    evaluate = [sys.executable, "-m", "mobileseg.evaluate", "--model", str(int8), "--data", data,
                "--split", "val", "--out", str(scores), "--noprogress"]
    for command in (export, evaluate):
        result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
        if result.returncode and not (command is export and int8.is_file()):  # a failed profile check still writes
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return round(json.loads(scores.read_text())["miou"], 4)


def with_section(report: dict, out: Path, section: str) -> dict:
    """The results in ``out`` with ``report`` (this run) stored under ``section``."""
    old = json.loads(out.read_text())
    return {**old, section: report}


def plain_fit(arch: Path, run_dir: Path, input_size: str, batch_size: int, epochs: int) -> None:
    """``keras.Model.fit`` of the network with Keras' own loss; writes a train log like mobileseg.train's."""
    import keras

    from mobileseg.arch import builder, schema_io
    from mobileseg.cli_flags import parse_size
    from mobileseg.data.pipeline import Augmentation, train_dataset
    from mobileseg.data.sources import open_source

    size = parse_size(input_size)
    source = open_source(f"camvid:{CAMVID}")
    net = builder.build_model(schema_io.load(arch), source.num_classes, size)
    model = keras.Model(net.inputs, keras.layers.Resizing(*size, interpolation="bilinear")(net.outputs[0]))
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255))
    data = train_dataset(source, augmentation=Augmentation(size), batch_size=batch_size, drop_remainder=True)
    steps = len(source.pairs("train")) // batch_size
    run_dir.mkdir(parents=True)

    class Log(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.started
            with open(run_dir / "train_log.jsonl", "a") as log:
                log.write(json.dumps({"epoch": epoch + 1, "images_per_second": steps * batch_size / seconds,
                                      "epoch_seconds": round(seconds, 3)}) + "\n")

    model.fit(data.repeat(), epochs=epochs, steps_per_epoch=steps, callbacks=[Log()], verbose=0)


def versions() -> dict:
    """Versions of what the figures depend on."""
    from importlib.metadata import version

    return {"python": platform.python_version(),
            **{name: version(name) for name in ("tensorflow", "keras", "numpy")}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", action="append", type=Path)
    parser.add_argument("--variant", action="append", choices=VARIANTS, help="default: all")
    parser.add_argument("--input_size", default="360x480")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--before", default="4a8d0cc", help="the commit main_before runs")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "train_speed")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train_speed.json")
    parser.add_argument("--int8", action="store_true", help="also the int8 file's val mIoU of each run")
    parser.add_argument("--section", help="write this run under SECTION of the existing --out")
    parser.add_argument("--plain", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--run_dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        plain_fit(args.plain, args.run_dir, args.input_size, args.batch_size, args.epochs)
        return 0
    from mobileseg.atomic_write import write_atomic
    from mobileseg.provenance import machine

    args.runs = args.runs.resolve()
    variants = args.variant or list(VARIANTS)
    if "main_before" in variants and not (args.runs / "main_before_worktree").exists():
        args.runs.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(args.runs / "main_before_worktree"), args.before],
                       cwd=ROOT, check=True)
    load_before, started = os.getloadavg(), time.time()
    results = []
    for index, variant in enumerate(variants):
        archs = [a.resolve() for a in args.arch]
        for arch in archs if index % 2 == 0 else archs[::-1]:
            results.append(run_variant(variant, arch, args))
    report = {"rows": [r["row"] for r in results],
              "command": " ".join(["python", "benchmarks/train_speed.py", *sys.argv[1:]]),
              "versions": versions(), "machine": machine(),
              "load_average": {"before": [round(x, 2) for x in load_before],
                               "after": [round(x, 2) for x in os.getloadavg()]},
              "before_commit": args.before, "epochs": args.epochs, "wall_seconds": round(time.time() - started),
              "details": [r["detail"] for r in results]}
    if args.section and args.out.is_file():
        report = with_section(report, args.out, args.section)
    write_atomic(args.out, json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
