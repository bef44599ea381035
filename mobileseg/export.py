"""``python -m mobileseg.export --run_dir DIR [--int8] [--fp16] [--fp32] [--onnx] [--target PROFILE] [--tome RATIO]``.

Exports a trained model for phones and verifies what it wrote. The model is
``DIR/model.keras`` (or ``--model FILE.keras``); ``DIR/config.yaml`` gives the data set
and the OHEM settings of its ``train`` section (flags override), and gets an ``export``
section recording this step. Files go to ``DIR/export/`` (``--out_dir``):

- ``model_int8.tflite``: full-integer. Quantization-aware when ``--qat_epochs N``
  fine-tunes one now (`mobileseg.quant.finetune`: the training objective plus
  distillation from the float model; written to ``DIR/model_qat.keras``) or one exists already;
  post-training (calibrated on training images) with ``--ptq`` or a profile whose
  quantization is ``ptq``/``auto``. With both, the post-training file is the baseline
  ``model_int8_ptq.tflite``.
- ``model_fp32.tflite``, ``model_fp16.tflite``, ``model.onnx`` (tf2onnx, checked with onnxruntime).
- ``NAME.json`` next to each: labels, colours, input size and type, normalisation, output.
- ``report.json``: per file its size, ops, builtin-only, XNNPACK partitions and the ops
  left out, GPU-delegate compatibility, latency at 1 thread, mIoU on the val split
  next to the float model's (`mobileseg.deploy.report`); printed as a table.

``--tome RATIO`` merges tokens in every efficient-attention block of the network at that
ratio with no retraining (Segformer++, `mobileseg.arch.tome`): the rewritten float model is
saved as ``model_tome{RATIO}.keras`` with the files, which go to ``DIR/export_tome{RATIO}/``
by default, and quantization-aware int8 uses ``DIR/model_qat_tome{RATIO}.keras`` (fine-tuned
from the rewritten model), so a run's own export is left alone. ``python -m mobileseg.bench``
times the ``.tflite`` files written there. ``--tome_method grid`` merges on a fixed grid
instead (RATIO 0.75 or 0.9375; XNNPACK runs the files whole); its names carry
``_tome_grid{RATIO}``.

``--output mask`` (a uint8 class map at the input size: the logits resized bilinearly by
``--mask_upsample K``, 2 by default, the argmax there, then nearest upsampling; K 1 takes the
argmax at the logits' 1/8, which costs about a mIoU point: `mobileseg.deploy.packaging`)
or ``logits``; the input is uint8 pixels with the normalisation
folded in (``--input``). ``--target NAME`` (``export/NAME.yaml``, or a path) sets the
mode, output and input and adds its checks; an export that fails them exits 1 and says
which check failed, keeping the files for inspection.

Every file is written atomically (`mobileseg.atomic_write`): a full disk stops the export with
exit 1 and leaves the file it was writing, and every file before it, as they were. The export
holds the run folder's lock (`mobileseg.run_lock`; the output folder's without ``--run_dir``).

Exit codes: 0 done (and every check passed), 1 a check or a conversion failed, quantization-aware
fine-tuning diverged (nothing written; try ``--qat_epochs 0``), or a file could not be written (a
full disk), 2 bad input (or a folder another command is running in).

Example:
    python -m mobileseg.export --run_dir runs/camvid --target cpu-int8 --qat_epochs 3 --ptq
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from mobileseg.deploy.export_settings import ExportError, settings_from_flags


def define_flags(flag_values=None) -> None:
    """Declare the flags (at start-up only, so importing this module declares nothing)."""
    from absl import flags

    from mobileseg.data.sources import DATA_FLAG_HELP

    fv = flags.FLAGS if flag_values is None else flag_values
    flags.DEFINE_string("run_dir", None, "Run folder: reads model.keras and config.yaml, writes export/.",
                        flag_values=fv)
    flags.DEFINE_string("model", None, "A trained float .keras model (instead of RUN_DIR/model.keras).",
                        flag_values=fv)
    flags.DEFINE_string("out_dir", None, "Where the files go (default RUN_DIR/export, or next to --model).",
                        flag_values=fv)
    flags.DEFINE_string("data", None, DATA_FLAG_HELP + " Default: the run config's data.", flag_values=fv)
    flags.DEFINE_string("split", "val", "The split the report evaluates.", flag_values=fv)
    flags.DEFINE_string("input_size", None, "Export for HEIGHTxWIDTH images (the model is rebuilt at that size "
                        "with its weights). Default: the model's own size.", flag_values=fv)
    flags.DEFINE_bool("int8", False, "Write model_int8.tflite (full integer).", flag_values=fv)
    flags.DEFINE_bool("fp16", False, "Write model_fp16.tflite (float16 weights).", flag_values=fv)
    flags.DEFINE_bool("fp32", False, "Write model_fp32.tflite.", flag_values=fv)
    flags.DEFINE_bool("onnx", False, "Write model.onnx (tf2onnx, checked with onnxruntime).", flag_values=fv)
    flags.DEFINE_string("target", None, "A profile: export/NAME.yaml or its NAME (cpu-int8, gpu-fp16, cpu-fp32). "
                        "Sets the mode, output and input, and the checks the file must pass.", flag_values=fv)
    flags.DEFINE_enum("output", None, ["logits", "mask"], "logits, or a uint8 class map at the input size "
                      "(see --mask_upsample). Default: the profile's, else logits.", flag_values=fv)
    flags.DEFINE_integer("mask_upsample", None, "With --output mask: upsample the logits bilinearly by this factor "
                         "(capped at the input size) before the argmax (1: argmax at 1/8). Default: 2 "
                         "(mobileseg.deploy.packaging.MASK_UPSAMPLE).", lower_bound=1, flag_values=fv)
    flags.DEFINE_enum("input", None, ["uint8", "int8", "float32"], "Pixel type of the files (normalisation is "
                      "folded in). Default: the profile's, else uint8.", flag_values=fv)
    flags.DEFINE_integer("qat_epochs", 0, "Quantization-aware fine-tuning epochs before the int8 export "
                         "(0: none; an existing model_qat.keras is reused).", lower_bound=0, flag_values=fv)
    flags.DEFINE_bool("ptq", False, "Also export post-training int8 (the baseline when QAT is used).",
                      flag_values=fv)
    flags.DEFINE_integer("calibration_images", 64, "Training images for calibration.", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_integer("batch_size", 8, "QAT batch size.", lower_bound=1, flag_values=fv)
    flags.DEFINE_float("learning_rate", 2e-5, "QAT peak learning rate (AdamW, cosine decay).", flag_values=fv)
    flags.DEFINE_float("distill_weight", 20.0, "QAT: weight of the distillation from the float model (0: none; "
                       "20 closed the int8 gap on CamVid, see mobileseg.quant.finetune).",
                       lower_bound=0.0, flag_values=fv)
    flags.DEFINE_integer("steps_per_epoch", None, "Cut QAT epochs short (quick runs).", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seeds calibration choice, augmentation and shuffling.", flag_values=fv)
    flags.DEFINE_integer("eval_images", None, "Evaluate on the first N images only.", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_bool("evaluate", True, "Compute mIoU of every file (needs data).", flag_values=fv)
    flags.DEFINE_integer("threads", 1, "LiteRT threads for the latency column.", lower_bound=1, flag_values=fv)
    flags.DEFINE_float("tome", None, "Merge tokens in every efficient-attention block at this ratio, 0 <= RATIO < 1 "
                       "(Segformer++, no retraining; 0: merging off). Files go to RUN_DIR/export_tomeRATIO/. "
                       "Default: the network as trained.", flag_values=fv)
    flags.DEFINE_enum("tome_method", "bsm", ["bsm", "grid"], "How --tome merges: bsm (Segformer++ bipartite soft "
                      "matching) or grid (keys/values or queries merged on a fixed s x s grid, RATIO = 1 - 1/s**2: "
                      "0.75, 0.9375; XNNPACK runs the files whole). grid files go to "
                      "RUN_DIR/export_tome_gridRATIO/.", flag_values=fv)



def run(fv, argv: Sequence[str]) -> int:
    """Export as the parsed flags say; returns the exit code."""
    from mobileseg.atomic_write import AtomicWriteError
    from mobileseg.deploy.export_run import export
    from mobileseg.deploy.profiles import ProfileError
    from mobileseg.deploy.report import format_table
    from mobileseg.quant.finetune import QatDiverged
    from mobileseg.run_lock import RunLockError, hold

    try:
        settings = settings_from_flags(fv, argv)
        with hold(settings.run_dir or settings.out_dir, "mobileseg.export"):
            result = export(settings, log=lambda text: print(text, file=sys.stderr))
    except (ExportError, ProfileError, RunLockError) as error:
        print(f"mobileseg.export: error: {error}", file=sys.stderr)
        return 2
    except QatDiverged as error:
        print(f"mobileseg.export: error: {error}", file=sys.stderr)
        return 1
    except AtomicWriteError as error:
        print(f"mobileseg.export: error: {error}; the files written before it are kept", file=sys.stderr)
        return 1
    print(format_table(result))
    print(f"report: {settings.out_dir / 'report.json'}")
    if not result["passed"]:
        what = f"the {settings.profile.name} profile" if settings.profile else "the export"
        print(f"mobileseg.export: FAILED {what} ({len(result['failed_checks'])} problem(s)); "
              f"files kept in {settings.out_dir}:", file=sys.stderr)
        for failure in result["failed_checks"]:
            print(f"  {failure}", file=sys.stderr)
        return 1
    return 0


def main() -> None:
    """Entry point of ``python -m mobileseg.export``."""
    from absl import app, flags

    from mobileseg.console import quiet_native_logs, run_command

    quiet_native_logs()
    define_flags(flags.FLAGS)
    app.run(lambda argv: sys.exit(run_command(run, flags.FLAGS, argv)))


if __name__ == "__main__":
    main()
