"""``python -m mobileseg.evaluate --model PATH --data KIND:PATH [--split test] [--json]``.

Full-resolution mIoU, pixel accuracy and per-class IoU of a ``.keras`` or ``.tflite``
model on one split of a data set (`mobileseg.split_evaluation.evaluate`). Both kinds of model go through the same code: the
split's pairs are checked (`mobileseg.data.checks.verified_pairs`), read at full
resolution by `mobileseg.data.pipeline.eval_dataset`, segmented by
`mobileseg.inference.Segmenter.predict` (images resized to the model's input size,
predictions resized back to each image's own size) and counted in one
`mobileseg.training.miou.ConfusionMatrix`. Void pixels (the ignore index) do not count.

A model is evaluated the way it ships: at its fixed input size. A ``.keras`` model
whose input size differs from the images' sees them resized, exactly as its ``.tflite``
does, so the two agree. (The trainer's validation, `mobileseg.training.evaluation`,
runs a copy of the network rebuilt for each image size instead; both give the same
numbers when the model's input size is the images' size, e.g. 360x480 for CamVid.)

The model must predict as many classes as the data set has. Prints a per-class
table, or with ``--json`` one JSON object (``miou``, ``pixel_accuracy``,
``per_class_iou`` by class name (null for a class absent from both ground truth and
predictions), ``confusion_matrix``, timings, ...); ``--out FILE`` also writes that
object to a file, atomically. ``--max_images N`` evaluates the first N good pairs
only (the whole split is still checked); ``--skip_bad`` leaves bad pairs out (listed
in ``skipped``) instead of stopping at the first.

``--tome RATIO`` evaluates a ``.keras`` network with tokens merged at that ratio in every
efficient-attention block, with no retraining (Segformer++, `mobileseg.arch.tome`), by
``--tome_method`` (``bsm``, or ``grid`` with ``RATIO = 1 - 1/s**2``, the merge whose int8
file XNNPACK runs whole); the result gets a ``token_merging`` entry. A ``.tflite`` file is
fixed: export it with ``python -m mobileseg.export --tome RATIO`` and evaluate that file.

Exit codes: 0 done, 2 bad input (missing or unloadable model, wrong suffix, bad data
set, class count mismatch, a ``--tome`` ratio out of [0, 1) or not ``1 - 1/s**2`` for
``grid``, or a network without efficient-attention blocks).

Example:
    python -m mobileseg.evaluate --model runs/camvid/model.keras --data camvid:../shared/datasets/camvid
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence


def merge_tokens(segmenter, ratio: float, method: str = "bsm") -> dict:
    """Rewrite a Keras segmenter's network to merge tokens at ``ratio`` by ``method`` (`mobileseg.arch.tome`), in place.

    Returns:
        The ``token_merging`` entry of a result: the ratio, the method and each block's settings.

    Raises:
        mobileseg.inference.ModelError: a LiteRT model, a ratio out of range or a network
            without efficient-attention blocks (named).
    """
    from mobileseg.arch.tome import TomeError, block_settings, with_token_merging
    from mobileseg.inference import ModelError

    if segmenter.backend != "keras":
        raise ModelError(f"{segmenter.path}: --tome rewrites a .keras network; a {segmenter.path.suffix} file is "
                         "fixed: export one with python -m mobileseg.export --tome RATIO and evaluate that")
    try:
        segmenter.model = with_token_merging(segmenter.model, ratio, source=str(segmenter.path), method=method)
    except TomeError as error:
        raise ModelError(str(error)) from None
    return {"ratio": ratio, "method": method, "blocks": block_settings(segmenter.model)}


def format_report(result: dict) -> str:
    """A per-class IoU table (in percent) with the totals.

    Example:
        >>> print(format_report({"model": "m.tflite", "backend": "litert", "input_size": [360, 480],
        ...     "data": "camvid:/d", "split": "test", "images": 2, "skipped": [],
        ...     "per_class_iou": {"Sky": 0.5, "Road": None}, "miou": 0.5, "pixel_accuracy": 0.75,
        ...     "pixels": 1000, "wall_seconds": 1.5, "model_ms_per_image": 20.0}))
        m.tflite (litert, input 360x480) on camvid:/d test: 2 images, 1,000 pixels
        class   IoU %
        Sky     50.00
        Road        -
        mIoU 50.00 %, pixel accuracy 75.00 %
        20.0 ms per image in the model (resizing included), 1.5 s in all
    """
    size = "x".join(map(str, result["input_size"])) if result.get("input_size") else "any size"
    merging = result.get("token_merging")
    merged = f", tokens merged at {merging['ratio']:g} by {merging.get('method', 'bsm')}" if merging else ""
    lines = [f"{result['model']} ({result['backend']}, input {size}{merged}) on {result['data']} {result['split']}: "
             f"{result['images']} images, {result['pixels']:,} pixels"]
    width = max([len("class"), *map(len, result["per_class_iou"])])
    lines.append(f"{'class':<{width}}   IoU %")
    for name, iou in result["per_class_iou"].items():
        lines.append(f"{name:<{width}} {'-' if iou is None else f'{100 * iou:.2f}':>7}")
    lines.append(f"mIoU {100 * result['miou']:.2f} %, pixel accuracy {100 * result['pixel_accuracy']:.2f} %")
    lines.append(f"{result['model_ms_per_image']:.1f} ms per image in the model (resizing included), "
                 f"{result['wall_seconds']:.1f} s in all")
    if result["skipped"]:
        lines.append(f"skipped {len(result['skipped'])} bad pair(s):")
        lines.extend(f"  {problem}" for problem in result["skipped"])
    return "\n".join(lines)


def define_flags(flag_values=None) -> None:
    """Declare the flags (at start-up only, so importing this module declares nothing)."""
    from absl import flags

    from mobileseg.data.sources import DATA_FLAG_HELP

    flag_values = flags.FLAGS if flag_values is None else flag_values
    flags.DEFINE_string("model", None, "The model: a .keras or .tflite file.", flag_values=flag_values)
    flags.DEFINE_string("data", None, DATA_FLAG_HELP, flag_values=flag_values)
    flags.DEFINE_string("split", "test", "The split to evaluate.", flag_values=flag_values)
    flags.DEFINE_bool("json", False, "Print one JSON object instead of the table.", flag_values=flag_values)
    flags.DEFINE_string("out", None, "Also write the JSON result to this file (atomic).", flag_values=flag_values)
    flags.DEFINE_integer("max_images", None, "Evaluate only the first N pairs (quick runs).", lower_bound=1,
                         flag_values=flag_values)
    flags.DEFINE_bool("skip_bad", False, "Leave bad pairs out (listed) instead of stopping at the first.",
                      flag_values=flag_values)
    flags.DEFINE_integer("threads", None, "LiteRT threads (default: every core).", lower_bound=1,
                         flag_values=flag_values)
    flags.DEFINE_bool("progress", True, "Show a progress bar on stderr.", flag_values=flag_values)
    flags.DEFINE_float("tome", None, "Merge tokens in every efficient-attention block of a .keras network at this "
                       "ratio, 0 <= RATIO < 1 (Segformer++, no retraining; 0: merging off).", flag_values=flag_values)
    flags.DEFINE_enum("tome_method", "bsm", ["bsm", "grid"], "How --tome merges: bsm (Segformer++ bipartite soft "
                      "matching) or grid (on a fixed s x s grid, RATIO = 1 - 1/s**2: 0.75, 0.9375).",
                      flag_values=flag_values)


def run(flag_values, argv: Sequence[str]) -> int:
    """Evaluate as the parsed flags say; returns the exit code."""
    from mobileseg.arch.tome import TomeError, check_setting
    from mobileseg.atomic_write import write_atomic
    from mobileseg.data.problems import DataError
    from mobileseg.data.sources import open_source
    from mobileseg.inference import ModelError, Segmenter
    from mobileseg.split_evaluation import evaluate

    if len(argv) > 1:
        print(f"mobileseg.evaluate: error: unexpected arguments {list(argv[1:])}", file=sys.stderr)
        return 2
    missing = [f"--{name}" for name in ("model", "data") if not flag_values[name].value]
    if missing:
        print(f"mobileseg.evaluate: error: {' and '.join(missing)} required", file=sys.stderr)
        return 2
    try:
        if flag_values.tome is not None:
            check_setting(flag_values.tome, flag_values.tome_method)
        source = open_source(flag_values.data)
        segmenter = Segmenter.load(flag_values.model, num_threads=flag_values.threads)
        token_merging = (None if flag_values.tome is None
                         else merge_tokens(segmenter, flag_values.tome, flag_values.tome_method))
        result = evaluate(segmenter, source, flag_values.split, max_images=flag_values.max_images,
                          skip_bad=flag_values.skip_bad, progress=flag_values.progress)
    except (ModelError, DataError, TomeError) as error:
        print(f"mobileseg.evaluate: error: {'--tome: ' if isinstance(error, TomeError) else ''}{error}",
              file=sys.stderr)
        return 2
    if token_merging is not None:
        result["token_merging"] = token_merging
    for warning in result["warnings"]:
        print(f"mobileseg.evaluate: warning: {warning}", file=sys.stderr)
    document = json.dumps(result)
    if flag_values.out:
        write_atomic(flag_values.out, document + "\n")
    print(document if flag_values.json else format_report(result))
    return 0


def main() -> None:
    """Entry point of ``python -m mobileseg.evaluate``."""
    from mobileseg.cli_flags import absl_main

    absl_main(define_flags, run)


if __name__ == "__main__":
    main()
