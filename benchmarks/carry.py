"""Carry a long benchmark's run folders from one session to the next.

Each working session here gets a new machine: what is not committed is gone in the next one,
and a session lasts at most 180 minutes, while a 300-epoch training or a search followed by
its front's trainings takes longer. ``save`` copies what a run folder needs to resume into
``benchmarks/carry/`` under its repository-relative path (committed with the session's work);
``restore``, in a new checkout, copies every saved folder back to its place (``--into`` another
checkout, such as a worktree of the commit the run started from), and the
benchmark's own command, run again, resumes from it (``mobileseg.train`` from ``last.keras``,
the search from its state files).

Everything in the folder is kept except TensorBoard logs, lock files, files larger than
``--max_mb`` (default 40: a run's ``last.keras`` of a mobile network is 5-45 MB) and files matching
``--leave_out`` patterns (a finished benchmark run needs no ``last.keras`` or ``model_qat.keras``:
its results, ``model.keras`` and exported files are what later steps read). ``restore``
leaves a folder alone when it already holds a ``last.keras`` or a search state newer than
the saved one (a run resumed in this checkout is never rolled back). Delete a carried folder
with ``git rm -r`` once its run has finished and its result is committed.

A session can end before its runs do, so ``save --every MINUTES`` saves again every so many
minutes until it is stopped, each round expanding the folder patterns anew (quote them, so that
a network folder a benchmark starts later is saved too); commit ``benchmarks/carry/`` before the
session ends.

Usage:
    python benchmarks/carry.py save runs/train_references_camvid/mobilenetv3_small_lraspp
    python benchmarks/carry.py save --every 20 'runs/camvid_full/*' &
    python benchmarks/carry.py save --leave_out last.keras,model_qat.keras runs/pareto_camvid/seaformer_tiny
    python benchmarks/carry.py restore [--into ../wt_long]
"""

from __future__ import annotations

import argparse
import glob
import json
import shutil
import sys
import time
from collections.abc import Sequence
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CARRY = ROOT / "benchmarks" / "carry"
MANIFEST = "carry.json"
LEFT_OUT = {"tensorboard", ".lock", "__pycache__"}


def kept_files(folder: Path, max_bytes: int, leave_out: Sequence[str] = ()) -> tuple[list[Path], list[Path]]:
    """The files of ``folder`` (recursively, relative to it) that ``save`` copies, and those too large;
    files whose name matches a ``leave_out`` pattern are neither.

    Example:
        >>> import tempfile
        >>> run = Path(tempfile.mkdtemp())
        >>> for name in ("last.keras", ".lock", "tensorboard/train/events", "export/big.tflite"):
        ...     (run / name).parent.mkdir(parents=True, exist_ok=True)
        ...     _ = (run / name).write_bytes(b"x" * (50 if "big" in name else 5))
        >>> kept, large = kept_files(run, max_bytes=10)
        >>> [str(p) for p in kept], [str(p) for p in large]
        (['last.keras'], ['export/big.tflite'])
        >>> kept_files(run, max_bytes=10, leave_out=["last.*", "*.tflite"])
        ([], [])
    """
    kept, large = [], []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or LEFT_OUT & set(relative.parts) or any(fnmatch(path.name, p) for p in leave_out):
            continue
        (large if path.stat().st_size > max_bytes else kept).append(relative)
    return kept, large


def checkout_of(folder: Path) -> Path:
    """The git checkout (main or a worktree: the first parent holding ``.git``) that ``folder`` is in."""
    for parent in folder.parents:
        if (parent / ".git").exists():
            return parent
    raise SystemExit(f"carry: {folder} is not inside a git checkout")


def save(folder: Path, max_mb: float, root: Path = ROOT, leave_out: Sequence[str] = ()) -> Path:
    """Copy ``folder`` to ``root``'s ``benchmarks/carry/<its path in its checkout>``, replacing an earlier copy.

    The folder may be in another checkout of the repository (a worktree that runs the benchmark).
    """
    folder = folder.resolve()
    if not folder.is_dir():
        raise SystemExit(f"carry: {folder} is not a folder")
    relative = folder.relative_to(checkout_of(folder))
    kept, large = kept_files(folder, int(max_mb * 2**20), leave_out)
    target = root / "benchmarks" / "carry" / relative
    staging = target.with_name(target.name + ".saving")
    shutil.rmtree(staging, ignore_errors=True)
    for name in kept:
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(folder / name, staging / name)
    manifest = {"folder": str(relative), "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "files": [str(p) for p in kept], "left_out_larger_than_max_mb": [str(p) for p in large]}
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def saved_folders(carry: Path) -> list[Path]:
    """The saved copies under ``carry`` (each holds a manifest)."""
    return sorted(path.parent for path in carry.rglob(MANIFEST))


def newest_state(folder: Path) -> float:
    """Modification time of the newest resume file in ``folder`` (0 when it has none)."""
    names = ("last.keras", "search_state.json", "train_state.json")
    return max((p.stat().st_mtime for p in folder.rglob("*") if p.name in names), default=0.0)


def restore(into: Path, root: Path = ROOT) -> list[str]:
    """Copy every folder saved in ``root`` back to its place in the checkout ``into``; one line per folder."""
    carry = root / "benchmarks" / "carry"
    lines = []
    for saved in saved_folders(carry):
        manifest = json.loads((saved / MANIFEST).read_text())
        target = into / manifest["folder"]
        if newest_state(target) > newest_state(saved):
            lines.append(f"{manifest['folder']}: left alone (it holds a newer run state than the copy of "
                         f"{manifest['saved']})")
            continue
        for name in manifest["files"]:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(saved / name, target / name)
        lines.append(f"{manifest['folder']}: restored {len(manifest['files'])} files saved {manifest['saved']}")
    return lines


def save_rounds(patterns: Sequence[str], max_mb: float, leave_out: Sequence[str], every_minutes: float,
                rounds: int | None = None, root: Path = ROOT) -> None:
    """Save the folders that ``patterns`` (paths or glob patterns) name, then, with ``every_minutes``,
    again every so many minutes, ``rounds`` times in all (None: until stopped); a line per folder and round."""
    done = 0
    while True:
        folders = sorted({Path(path) for pattern in patterns for path in (glob.glob(pattern) or [pattern])})
        for folder in folders:
            target = save(folder, max_mb, root=root, leave_out=leave_out)
            manifest = json.loads((target / MANIFEST).read_text())
            size = sum((target / name).stat().st_size for name in manifest["files"]) / 2**20
            left = manifest["left_out_larger_than_max_mb"]
            print(f"{manifest['saved']} {target.relative_to(root)}: {len(manifest['files'])} files, {size:.1f} MB"
                  + (f"; left out (over --max_mb): {', '.join(left)}" if left else ""), flush=True)
        done += 1
        if not every_minutes or (rounds is not None and done >= rounds):
            return
        time.sleep(60 * every_minutes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    save_command = commands.add_parser("save", help="copy run folders into benchmarks/carry")
    save_command.add_argument("folders", nargs="+", help="run folders, or glob patterns of them")
    save_command.add_argument("--max_mb", type=float, default=40.0, help="leave out larger files")
    save_command.add_argument("--leave_out", default="", help="comma-separated file name patterns to leave out")
    save_command.add_argument("--every", type=float, default=0.0,
                              help="minutes: save again every so many minutes until stopped")
    restore_command = commands.add_parser("restore", help="copy every saved folder back to its place")
    restore_command.add_argument("--into", type=Path, default=ROOT, help="the checkout to restore into")
    args = parser.parse_args(argv)
    if args.command == "save":
        save_rounds(args.folders, args.max_mb, [p for p in args.leave_out.split(",") if p], args.every)
    else:
        print("\n".join(restore(args.into.resolve())) or f"nothing saved under {CARRY.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
