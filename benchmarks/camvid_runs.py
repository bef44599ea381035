"""The steps every CamVid benchmark runs for one network: train, QAT int8 export, test evaluation.

Shared by ``train_references_camvid.py`` (the full-length recipe) and ``pareto_camvid.py``
(searched networks against the references). Each step is the project's own command run as
a subprocess, its output appended to the run folder's ``benchmark.log``, and skipped when
its output is already there, so a killed benchmark continues where it stopped.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CAMVID = ROOT.parent / "shared" / "datasets" / "camvid"


def run(command: list[str], log: Path, cwd: Path = ROOT) -> None:
    """Run a command in ``cwd`` (another checkout runs its own code), appending its output to ``log``; raise with
    the log's tail on failure."""
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        result = subprocess.run(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode:
        tail = log.read_text().splitlines()[-20:]
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n" + "\n".join(tail))


def repository_path(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (as results name files), else as given."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def versions() -> dict:
    """Versions of what the numbers depend on."""
    from importlib.metadata import version

    return {name: version(name) for name in ("tensorflow", "keras", "ai-edge-litert", "numpy")}


def export_int8(command: list[str], log: Path, int8: Path) -> None:
    """Run an export; a failed profile check (exit 1) still writes the file, which is what is measured."""
    try:
        run(command, log)
    except RuntimeError:
        if not int8.is_file():
            raise


def train_float(arch: Path, size: str, recipe: list[str], epochs: int, run_dir: Path, data: str, log: Path) -> list[str]:
    """Train ``arch`` in ``run_dir`` (crops, model and validation at ``size``) unless it has ``epochs``
    epochs already; returns the command."""
    command = [sys.executable, "-m", "mobileseg.train", "--arch", str(arch), "--data", data,
               "--run_dir", str(run_dir), "--input_size", size, "--model_size", size, "--val_size", size,
               "--epochs", str(epochs), *recipe]
    state = run_dir / "train_state.json"
    if not (state.is_file() and json.loads(state.read_text()).get("epoch", 0) >= epochs):
        run(command, log)
    return command


def evaluate_command(model: Path, data: str, out: Path, split: str = "test") -> list[str]:
    """The command evaluating ``model`` (``.keras`` or ``.tflite``) on ``split`` into ``out`` (JSON)."""
    return [sys.executable, "-m", "mobileseg.evaluate", "--model", str(model), "--data", data,
            "--split", split, "--out", str(out), "--noprogress"]


def train_export_evaluate(arch: Path, size: str, recipe: list[str], epochs: int, qat_epochs: int, work_dir: Path,
                          data: str) -> dict:
    """Train (crops, model and validation at ``size``), export int8 with QAT, evaluate both on test.

    Returns the network's figures: epochs, timing, best validation mIoU, float and int8
    test mIoU with per-class IoU, the int8 method (``qat``, or ``ptq`` when QAT diverged),
    the int8 file and the commands.
    """
    run_dir = work_dir / arch.stem
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "benchmark.log"
    started = time.time()
    train = train_float(arch, size, recipe, epochs, run_dir, data, log)
    train_s = time.time() - started
    export = [sys.executable, "-m", "mobileseg.export", "--run_dir", str(run_dir), "--data", data,
              "--target", "cpu-int8", "--qat_epochs", str(qat_epochs), "--distill_weight", "20",
              "--noevaluate", "--seed", "0"]
    int8 = run_dir / "export" / "model_int8.tflite"
    evaluations = {name: evaluate_command(model, data, run_dir / f"test_{name}.json")
                   for name, model in (("float", run_dir / "model.keras"), ("int8", int8))}
    if not int8.is_file():
        try:
            export_int8(export, log, int8)
        except RuntimeError:  # QAT diverged, nothing written: post-training int8, recorded as the method
            (run_dir / "model_qat.keras").unlink(missing_ok=True)
            export[export.index("--qat_epochs") + 1] = "0"
            export_int8(export, log, int8)
    report = json.loads((run_dir / "export" / "report.json").read_text())
    method = next(f.get("method") for f in report["files"] if Path(f["file"]).name == int8.name)
    for name, command in evaluations.items():
        if not (run_dir / f"test_{name}.json").is_file():
            run(command, log)
    history = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    tests = {name: json.loads((run_dir / f"test_{name}.json").read_text()) for name in evaluations}
    validated = [h["val_miou"] for h in history if h.get("val_miou") is not None]
    from mobileseg.arch import schema_io
    from mobileseg.arch.composition import composition

    return {"network": arch.stem, "arch": repository_path(arch), "composition": composition(schema_io.load(arch)),
            "size": size, "searched": arch.stem.startswith("searched_"),
            "epochs": epochs, "epoch_seconds": history[-1].get("epoch_seconds"),
            "train_seconds_this_run": round(train_s), "best_val_miou": max(validated, default=None),
            "float_test_miou": tests["float"]["miou"], "int8_test_miou": tests["int8"]["miou"],
            "int8_method": method, "export_failed_checks": report.get("failed_checks"),
            "float_per_class_iou": tests["float"]["per_class_iou"],
            "int8_per_class_iou": tests["int8"]["per_class_iou"], "int8_file": str(int8),
            "int8_size_mb": round(int8.stat().st_size / 2**20, 3),
            "commands": [" ".join(train), " ".join(export), *(" ".join(c) for c in evaluations.values())]}
