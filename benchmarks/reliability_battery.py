"""Benchmark: a battery of bad inputs and kills against the real commands (issue 16).

Each case builds its bad input in a fresh folder (a small copy of CamVid, a genotype, a run
folder, a model file), runs the command as a user would (``python -m mobileseg.X``, a new
process), and records: the exit code, whether a Python traceback reached the console,
whether the message names the file (or flag) at fault, and whether every file that existed
before is byte for byte the same afterwards. A case passes when the command refuses
clearly (the expected exit code, no traceback, the culprit named, nothing lost) or, for
the kills, when the same command run again finishes the work.

Writes ``benchmarks/results/reliability_battery.json``: ``{"rows": [{"case", "command",
"exit_code", "expected_exit", "traceback", "names_the_culprit", "files_intact", "verdict"}],
"counts", ...}``.

Usage:
    python benchmarks/reliability_battery.py
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from camvid_runs import CAMVID, ROOT, versions

PY = sys.executable
TINY_ARCH = """name: tiny
branches:
  - name: main
    source: null
    cells:
      - {op: conv, width: 8, stride: 2}
      - {op: mbconv, width: 16, stride: 2, expansion: 2.0}
      - {op: conv, width: 16, stride: 2}
head: {op: light, inputs: [{branch: main}], width: 16}
"""
TRAIN = ["-m", "mobileseg.train", "--epochs", "2", "--batch_size", "2", "--input_size", "64x80",
         "--model_size", "64x80", "--val_size", "64x80", "--verbose", "0"]


@dataclasses.dataclass
class Case:
    """A bad input: ``make(folder) -> (arguments after python, culprit named in the message)``."""

    name: str
    make: Callable[[Path], tuple[list[str], str]]
    expected_exit: int = 2
    rerun_succeeds: bool = False  # a kill: the same command again must finish (exit 0)


def small_camvid(folder: Path, per_split: int = 4) -> Path:
    """A CamVid copy with ``per_split`` pairs per split (real images, the same layout)."""
    data = folder / "camvid"
    for split in ("train", "val", "test"):
        (data / split).mkdir(parents=True)
        (data / f"{split}annot").mkdir()
        lines = (CAMVID / f"{split}.txt").read_text().splitlines()[:per_split]
        for line in lines:
            image, label = (Path(part).name for part in line.split())
            shutil.copy(CAMVID / split / image, data / split / image)
            shutil.copy(CAMVID / f"{split}annot" / label, data / f"{split}annot" / label)
        (data / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return data


def first_image(data: Path, annot: bool = False) -> Path:
    return sorted((data / ("trainannot" if annot else "train")).iterdir())[0]


def arch(folder: Path, text: str = TINY_ARCH, name: str = "arch.yaml") -> Path:
    path = folder / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def trained_run(folder: Path) -> tuple[Path, str]:
    """A tiny trained run folder on the small CamVid copy (for the cases that need one)."""
    data = small_camvid(folder)
    run_dir = folder / "run"
    subprocess.run([PY, *TRAIN, "--arch", str(arch(folder)), "--data", f"camvid:{data}", "--run_dir", str(run_dir)],
                   cwd=ROOT, check=True, capture_output=True)
    return run_dir, f"camvid:{data}"


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def data_cases() -> list[Case]:
    """``python -m mobileseg.data check``: exit 1 when it finds bad files (each named), 2 for a bad --data."""
    def check(data: Path) -> list[str]:
        return ["-m", "mobileseg.data", "check", "--data", f"camvid:{data}"]

    def truncated_image(f):
        data = small_camvid(f)
        _truncate(first_image(data))
        return check(data), first_image(data).name

    def label_of_other_size(f):
        data = small_camvid(f)
        from PIL import Image
        label = first_image(data, annot=True)
        Image.open(label).resize((100, 80)).save(label)
        return check(data), label.name

    def label_ids_beyond_classes(f):
        import numpy as np
        from PIL import Image
        data = small_camvid(f)
        label = first_image(data, annot=True)
        Image.fromarray(np.full((360, 480), 200, np.uint8)).save(label)
        return check(data), label.name

    def listing_not_utf8(f):
        data = small_camvid(f)
        (data / "train.txt").write_bytes((data / "train.txt").read_bytes() + "caf\xe9.png x.png\n".encode("latin-1"))
        return check(data), "train.txt"

    def listed_file_missing(f):
        data = small_camvid(f)
        first_image(data).unlink()
        return check(data), "0001TP_006690.png"

    return [
        Case("data: the folder does not exist", lambda f: (check(f / "nowhere"), "nowhere")),
        Case("data: an empty folder", lambda f: (check(f), str(f))),
        Case("data: a truncated PNG image", truncated_image, 1),
        Case("data: a label of another size than its image", label_of_other_size, 1),
        Case("data: a label with class ids beyond the classes", label_ids_beyond_classes, 1),
        Case("data: a listing file that is not UTF-8", listing_not_utf8, 1),
        Case("data: a listed image missing", listed_file_missing, 1),
    ]


def genotype_cases() -> list[Case]:
    def summary(path: Path) -> list[str]:
        return ["-m", "mobileseg.summary", str(path), "--num_classes", "11", "--input_size", "64x80"]

    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8)) + TINY_ARCH
    return [
        Case("genotype: not UTF-8", lambda f: (summary(arch(f, TINY_ARCH.replace("tiny", "r\xe9seau")
                                                                 .encode("latin-1"))), "arch.yaml")),
        Case("genotype: an unknown key", lambda f: (summary(arch(f, TINY_ARCH.replace("stride: 2}", "strides: 2}", 1))),
                                                    "arch.yaml")),
        Case("genotype: a width of 10**9", lambda f: (summary(arch(f, TINY_ARCH.replace("width: 8,", "width: 1000000000,"))),
                                                      "arch.yaml")),
        Case("genotype: a YAML alias bomb", lambda f: (summary(arch(f, bomb)), "arch.yaml")),
        Case("genotype: a 10 MB string value", lambda f: (summary(arch(f, TINY_ARCH.replace("name: tiny", "name: " + "x" * 10_000_000))),
                                                          "arch.yaml")),
        Case("genotype: an empty file", lambda f: (summary(arch(f, "")), "arch.yaml")),
        Case("genotype: the path is a folder", lambda f: (summary(f), str(f))),
        Case("genotype: a head reading a missing branch", lambda f: (summary(arch(f, TINY_ARCH.replace("{branch: main}", "{branch: low}"))),
                                                                    "arch.yaml")),
    ]


def run_folder_cases() -> list[Case]:
    def train_args(f, data=None, run="run"):
        data = data or small_camvid(f)
        return [*TRAIN, "--arch", str(arch(f)), "--data", f"camvid:{data}", "--run_dir", str(f / run)]

    def truncated_state(f):
        run_dir, data = trained_run(f)
        _truncate(run_dir / "train_state.json")
        return [*TRAIN, "--arch", str(f / "arch.yaml"), "--data", data, "--run_dir", str(run_dir), "--epochs", "3"], \
            "train_state.json"

    def locked(f):
        args = train_args(f)
        holder = f / "hold.py"
        holder.write_text("import sys, time\nfrom mobileseg.run_lock import hold\n"
                          "with hold(sys.argv[1], 'another command'):\n    time.sleep(120)\n")
        (f / "run").mkdir()
        process = subprocess.Popen([PY, str(holder), str(f / "run")], cwd=ROOT)
        time.sleep(3)
        locked.processes.append(process)
        return args, "another command"
    locked.processes = []

    def export_without_model(f):
        (f / "run").mkdir()
        return ["-m", "mobileseg.export", "--run_dir", str(f / "run"), "--int8"], "model.keras"

    def evaluate_truncated_keras(f):
        run_dir, data = trained_run(f)
        _truncate(run_dir / "model.keras")
        return ["-m", "mobileseg.evaluate", "--model", str(run_dir / "model.keras"), "--data", data], "model.keras"

    def tflite_of_random_bytes(f):
        (f / "m.tflite").write_bytes(os.urandom(4096))
        return ["-m", "mobileseg.evaluate", "--model", str(f / "m.tflite"), "--data", f"camvid:{small_camvid(f)}"], \
            "m.tflite"

    def bench_text_file(f):
        (f / "notes.tflite").write_text("not a model\n")
        return ["-m", "mobileseg.bench", "--model", str(f / "notes.tflite")], "notes.tflite"

    def predict_not_an_image(f):
        run_dir, _ = trained_run(f)
        (f / "photo.png").write_text("not an image")
        return ["-m", "mobileseg.predict", "--model", str(run_dir / "model.keras"), "--input", str(f / "photo.png"),
                "--out", str(f / "out")], "photo.png"

    def search_bad_size(f):
        return ["-m", "mobileseg.search", "--space", str(ROOT / "search_space/demo.yaml"), "--data",
                f"camvid:{small_camvid(f)}", "--run_dir", str(f / "s"), "--input_size", "100x100", "--batch_size", "2"], \
            "--input_size"

    def search_corrupt_table(f):
        (f / "t.json").write_text('{"schema_version": 1, "entries": ')
        return ["-m", "mobileseg.search", "--space", str(ROOT / "search_space/demo.yaml"), "--data",
                f"camvid:{small_camvid(f)}", "--run_dir", str(f / "s"), "--latency_backend", f"table:{f / 't.json'}",
                "--batch_size", "2"], "t.json"

    return [
        Case("train: the --arch file is missing",
             lambda f: ([*TRAIN, "--arch", str(f / "none.yaml"), "--data", f"camvid:{small_camvid(f)}", "--run_dir",
                         str(f / "run")], "none.yaml")),
        Case("train: an input size that is not a multiple of the output stride",
             lambda f: ([*train_args(f), "--input_size", "66x80"], "--input_size")),
        Case("train: a truncated train_state.json", truncated_state),
        Case("train: a run folder another command holds", locked),
        Case("export: a run folder without model.keras", export_without_model),
        Case("evaluate: a truncated model.keras", evaluate_truncated_keras),
        Case("evaluate: a .tflite of random bytes", tflite_of_random_bytes),
        Case("bench: a text file named .tflite", bench_text_file),
        Case("predict: an input that is not an image (exit 1: the others are still written)", predict_not_an_image, 1),
        Case("search: an input size that is not a multiple of the output stride", search_bad_size),
        Case("search: a truncated latency table", search_corrupt_table),
    ], locked.processes


def kill_cases() -> list[Case]:
    def kill_train(f):
        data = small_camvid(f, per_split=8)
        args = [*TRAIN, "--arch", str(arch(f)), "--data", f"camvid:{data}", "--run_dir", str(f / "run"),
                "--epochs", "6"]
        process = subprocess.Popen([PY, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log = f / "run" / "train_log.jsonl"
        deadline = time.time() + 600
        while time.time() < deadline and not (log.is_file() and len(log.read_text().splitlines()) >= 2):
            time.sleep(0.5)
        time.sleep(1.0)  # in the middle of the third epoch
        process.send_signal(signal.SIGKILL)
        process.wait()
        return args, "run"

    def kill_search(f):
        args = ["-m", "mobileseg.search", "--space", str(ROOT / "search_space/demo.yaml"), "--data",
                f"camvid:{small_camvid(f, per_split=8)}", "--run_dir", str(f / "s"), "--input_size", "64x80",
                "--supernet_epochs", "3", "--population", "4", "--generations", "2", "--references", "none",
                "--batch_size", "2", "--calib_batches", "1", "--noprogress", "--latency_cache", "off"]
        process = subprocess.Popen([PY, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        state = f / "s" / "supernet" / "state.json"
        deadline = time.time() + 900
        while time.time() < deadline and not state.is_file():
            time.sleep(0.5)
        process.send_signal(signal.SIGKILL)
        process.wait()
        return args, "s"

    return [Case("train: kill -9 in the third epoch, then the same command", kill_train, 0, True),
            Case("search: kill -9 after the first supernet epoch, then the same command", kill_search, 0, True)]


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def run_case(case: Case) -> dict:
    with tempfile.TemporaryDirectory(prefix="mobileseg_battery_") as tmp:
        folder = Path(tmp)
        args, culprit = case.make(folder)
        before = snapshot(folder)
        started = time.time()
        result = subprocess.run([PY, *args], cwd=ROOT, capture_output=True, text=True, timeout=1800)
        after = snapshot(folder)
        console = result.stdout + result.stderr
        changed = [name for name, digest in before.items() if after.get(name) != digest]
        row = {"case": case.name, "command": "python " + " ".join(a if len(a) < 200 else a[:40] + "..." for a in args)
               .replace(tmp, "TMP"), "exit_code": result.returncode, "expected_exit": case.expected_exit,
               "traceback": "Traceback (most recent call last)" in console,
               "names_the_culprit": culprit in console or case.rerun_succeeds,
               "files_intact": not changed or case.rerun_succeeds, "changed_files": changed if not case.rerun_succeeds
               else [], "seconds": round(time.time() - started, 1),
               "message": ([line for line in (result.stderr + result.stdout).splitlines() if line.strip()] or [""])[-1]
               .replace(tmp, "TMP")[:300]}
        row["verdict"] = ("survived" if case.rerun_succeeds and result.returncode == 0 else
                          "refused clearly" if (result.returncode == case.expected_exit and not row["traceback"]
                                                and row["names_the_culprit"] and row["files_intact"]) else "FAILED")
        return row


def main() -> int:
    from mobileseg.atomic_write import write_atomic
    from mobileseg.deploy.export_run import environment

    started, load = time.time(), [os.getloadavg()]
    folder_cases, holders = run_folder_cases()
    rows = []
    try:
        for case in [*data_cases(), *genotype_cases(), *folder_cases, *kill_cases()]:
            rows.append(run_case(case))
            print(f"{rows[-1]['verdict']:>15}  exit {rows[-1]['exit_code']}  {case.name}: {rows[-1]['message'][:120]}",
                  flush=True)
    finally:
        for process in holders:
            process.kill()
    counts = {verdict: sum(r["verdict"] == verdict for r in rows) for verdict in ("refused clearly", "survived",
                                                                                 "FAILED")}
    load.append(os.getloadavg())
    write_atomic(ROOT / "benchmarks" / "results" / "reliability_battery.json", json.dumps({
        "rows": rows, "counts": {"cases": len(rows), **counts},
        "command": "python benchmarks/reliability_battery.py", "versions": versions(), "machine": environment(),
        "load_average_start_end": load, "seconds": round(time.time() - started)}, indent=2) + "\n")
    print(f"{len(rows)} cases: {counts}")
    return 0 if not counts["FAILED"] else 1


if __name__ == "__main__":
    sys.exit(main())
