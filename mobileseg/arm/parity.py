"""Does a ``.tflite`` file give the same output on aarch64 LiteRT (emulated) as on this CPU?

Each file runs twice on the same images (`mobileseg.arm.runner.run_model`): here, in this
process, and in the arm64 root's python under qemu-user (`mobileseg.arm.root`), XNNPACK on both.
The raw first outputs are compared:

- ``class_map_agreement``: the share of output pixels whose class (argmax of the logits, or the
  class map itself) is the same on both; 1.0 is identical.
- ``max_logit_diff_steps``: the largest logit difference in int8 steps: for int8 logits the
  integer difference itself; for float logits the difference over the step an int8 tensor
  spanning this CPU's output range would have, ``(max - min) / 255``; None for a class map.
- ``agrees``: class maps identical, or logits within one int8 step (argmax may flip between two
  logits one step apart, which is rounding, not a different computation).

With the XNNPACK partition counts on both (``x86_partitions``, ``arm_partitions``): a file that
XNNPACK delegates whole here but splits on ARM would be slower there than any table from this CPU
says. Emulated time says nothing about a phone's latency and is not reported as one.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mobileseg.arm import runner
from mobileseg.arm.root import DEFAULT_CPU, ArmRoot

MAX_STEPS = 1.0  # logits within one int8 step agree


class ArmRunError(RuntimeError):
    """The emulated run of a file failed; the message names the file and the runner's last line."""


def scene_images(count: int, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """``count`` seeded synthetic street scenes (`mobileseg.data.synthetic.render_scene`) at ``size``,
    as float32 [count, H, W, 3] in [0, 255].

    Example:
        >>> scene_images(2, (24, 32)).shape
        (2, 24, 32, 3)
    """
    from mobileseg.data.synthetic import render_scene

    rng = np.random.default_rng(seed)
    return np.stack([render_scene(rng, *size)[0] for _ in range(count)]).astype(np.float32)


def run_emulated(root: ArmRoot, model: str | Path, images: np.ndarray, *, cpu: str = DEFAULT_CPU,
                 threads: int = 1) -> tuple[np.ndarray, dict]:
    """`mobileseg.arm.runner.run_model` in the arm64 root's python under qemu-user.

    Raises:
        ArmRunError: the emulated run failed (the runner's last stderr line, e.g. a file LiteRT's
            aarch64 build cannot load).
    """
    with tempfile.TemporaryDirectory(prefix="mobileseg-arm-") as folder:
        _emulate(root, model, images, Path(folder), cpu, ["--threads", str(threads)])
        report = json.loads((Path(folder) / runner.REPORT).read_text(encoding="utf-8"))
        return np.load(Path(folder) / runner.OUTPUTS), report


def run_emulated_tensors(root: ArmRoot, model: str | Path, image: np.ndarray, *,
                         cpu: str = DEFAULT_CPU) -> dict[str, np.ndarray]:
    """`mobileseg.arm.runner.run_every_output` on one image [H, W, 3] in the arm64 root's python under qemu-user.

    Raises:
        ArmRunError: the emulated run failed.
    """
    with tempfile.TemporaryDirectory(prefix="mobileseg-arm-") as folder:
        _emulate(root, model, np.asarray(image)[None], Path(folder), cpu, ["--every_output"])
        with np.load(Path(folder) / runner.TENSORS) as tensors:
            return dict(tensors)


def _emulate(root: ArmRoot, model: str | Path, images: np.ndarray, folder: Path, cpu: str, options: list[str]) -> None:
    """``python -m mobileseg.arm MODEL IMAGES OUT_DIR OPTIONS`` in the root, writing into ``folder``."""
    inputs = folder / "images.npy"
    np.save(inputs, np.asarray(images, np.float32))
    command = root.python_command(["-m", "mobileseg.arm", str(Path(model).resolve()), str(inputs), str(folder),
                                   *options], cpu)
    done = subprocess.run(command, env=root.environment(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise ArmRunError(f"{model}: the emulated aarch64 run failed: {last}")


def _classes(outputs: np.ndarray, kind: str) -> np.ndarray:
    return np.argmax(outputs, axis=-1) if kind == "logits" else outputs.reshape(outputs.shape[:3])


def compare_outputs(x86: np.ndarray, arm: np.ndarray, kind: str) -> dict:
    """``class_map_agreement``, ``max_logit_diff_steps`` and ``agrees`` of two raw outputs (module doc).

    Args:
        x86, arm: the same output tensor from both runs, [N, h, w, C] logits or [N, h, w(, 1)] ids.
        kind: ``logits`` or ``classes``.

    Example:
        >>> x86 = np.array([[[[3, 1], [0, 2]]]], np.int8)
        >>> compare_outputs(x86, x86 + np.int8(1), "logits")
        {'class_map_agreement': 1.0, 'max_logit_diff_steps': 1.0, 'agrees': True}
        >>> compare_outputs(x86, np.array([[[[1, 3], [0, 2]]]], np.int8), "logits")
        {'class_map_agreement': 0.5, 'max_logit_diff_steps': 2.0, 'agrees': False}
    """
    if x86.shape != arm.shape or x86.dtype != arm.dtype:
        raise ValueError(f"outputs differ in shape or type: {x86.shape} {x86.dtype} here, "
                         f"{arm.shape} {arm.dtype} on ARM")
    agreement = float(np.mean(_classes(x86, kind) == _classes(arm, kind)))
    steps = None
    if kind == "logits":
        difference = np.abs(x86.astype(np.float64) - arm.astype(np.float64)).max()
        if np.issubdtype(x86.dtype, np.floating):
            span = float(x86.max()) - float(x86.min())
            difference = difference / (span / 255.0) if span > 0 else (0.0 if difference == 0 else np.inf)
        steps = round(float(difference), 3)
    agrees = agreement == 1.0 or (steps is not None and steps <= MAX_STEPS)
    return {"class_map_agreement": round(agreement, 6), "max_logit_diff_steps": steps, "agrees": agrees}


def check_file(root: ArmRoot, model: str | Path, images: np.ndarray, *, cpu: str = DEFAULT_CPU,
               threads: int = 1) -> dict:
    """One file here and under emulation on the same images: a parity row.

    Returns:
        ``{"model", "x86_partitions", "arm_partitions", "x86_fallback_ops", "arm_fallback_ops",
        "class_map_agreement", "max_logit_diff_steps", "agrees", "output_kind", "arm_cpu",
        "arm_seconds"}`` (``arm_seconds``: the emulated invokes' wall time, not a latency).
    """
    x86, here = runner.run_model(model, images, threads)
    arm, there = run_emulated(root, model, images, cpu=cpu, threads=threads)
    return {"model": str(model), "x86_partitions": here["xnnpack_partitions"],
            "arm_partitions": there["xnnpack_partitions"], "x86_fallback_ops": here["fallback_ops"],
            "arm_fallback_ops": there["fallback_ops"], **compare_outputs(x86, arm, here["output_kind"]),
            "output_kind": here["output_kind"], "arm_cpu": there["cpu"], "arm_seconds": there["seconds"]}


def check_files(root: ArmRoot, models: Sequence[str | Path], *, cpu: str = DEFAULT_CPU, scenes: int = 1,
                seed: int = 0, threads: int = 1) -> dict:
    """`check_file` for each file on ``scenes`` seeded synthetic scenes at its input size.

    Raises:
        ValueError: an unknown ``cpu``, ``scenes`` < 1, or a file that is not a one-image segmentation model.
        ArmRunError: a file's emulated run failed.

    Returns:
        ``{"rows": [row per file], "qemu": version, "cpu": cpu, "scenes": scenes, "seed": seed}``.
    """
    from tqdm import tqdm

    from mobileseg.inference import LiteRTSegmenter

    root.python_command([], cpu)  # an unknown CPU fails here, before any run
    if scenes < 1:
        raise ValueError(f"scenes must be at least 1, got {scenes}")
    rows = []
    for model in tqdm(models, desc="ARM parity (emulated)", unit="file", leave=False):
        size = LiteRTSegmenter(Path(model)).input_size
        rows.append(check_file(root, model, scene_images(scenes, size, seed), cpu=cpu, threads=threads))
    return {"rows": rows, "qemu": root.qemu_version(), "cpu": cpu, "scenes": scenes, "seed": seed}


def format_table(result: dict) -> str:
    """The rows of `check_files` as a plain-text table.

    Example:
        >>> row = {"model": "a.tflite", "x86_partitions": 1, "arm_partitions": 1, "class_map_agreement": 1.0,
        ...        "max_logit_diff_steps": 0.0, "agrees": True, "arm_seconds": 2.5}
        >>> print(format_table({"rows": [row], "qemu": "qemu-aarch64 version 7.2", "cpu": "max,sme=off"}))
        aarch64 LiteRT under qemu-aarch64 version 7.2, -cpu max,sme=off, vs this CPU
        model     partitions x86/arm  class map agreement  max logit diff (int8 steps)  agrees
        a.tflite  1/1                 1.000000             0.0                          yes
    """
    header = ["model", "partitions x86/arm", "class map agreement", "max logit diff (int8 steps)", "agrees"]
    rows = [header] + [[row["model"], f"{row['x86_partitions']}/{row['arm_partitions']}",
                        f"{row['class_map_agreement']:.6f}",
                        "-" if row["max_logit_diff_steps"] is None else str(row["max_logit_diff_steps"]),
                        "yes" if row["agrees"] else "NO"] for row in result["rows"]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join([f"aarch64 LiteRT under {result['qemu']}, -cpu {result['cpu']}, vs this CPU", *lines])
