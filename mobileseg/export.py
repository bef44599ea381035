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
times the ``.tflite`` files written there.

``--output mask`` (a uint8 class map at the input size: argmax at the logits' 1/8, then
nearest upsampling) or ``logits``; the input is uint8 pixels with the normalisation
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

import dataclasses
import json
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

FORMATS = ("fp32", "fp16", "int8", "onnx")


class ExportError(ValueError):
    """Bad input to the export (missing model, data, conflicting options); the message says what."""


@dataclasses.dataclass
class ExportSettings:
    """Everything one export needs (the CLI flags, resolved).

    Args:
        model_path: the trained float ``.keras`` model.
        out_dir: where the files go.
        formats: some of ``fp32``, ``fp16``, ``int8``, ``onnx``.
        input_size: export for images of this (height, width) instead of the model's own
            (the model is rebuilt at that size with the same weights).
        run_dir: the run folder, whose ``config.yaml`` gets an ``export`` section.
        output: ``logits`` or ``mask``.
        input_dtype: pixel type of the files: ``uint8`` (any file), ``int8`` (int8 only),
            ``float32`` (float files only).
        profile: the target profile (`mobileseg.deploy.profiles.Profile`) or None.
        data: the data set spec (``KIND:PATH``) or None.
        split: the split evaluated.
        qat_epochs: quantization-aware fine-tuning epochs (0: none).
        ptq: also export post-training int8.
        qat_model_path: where the quantization-aware model is written / read.
        calibration_images: training images for calibration.
        batch_size, learning_rate, steps_per_epoch, seed, distill_weight, ohem_thresh,
            ohem_min_kept: quantization-aware fine-tuning (`mobileseg.quant.finetune`); the OHEM
            settings come from the run's train step.
        eval_images: evaluate on the first N images only (None: the whole split).
        threads: LiteRT threads for the latency column.
        evaluate: compute mIoU (needs data).
        eager: run the fine-tuning steps eagerly (no tracing; for a few steps).
        labels, colors: class names and colours when there is no data set.
        tome: merge tokens at this ratio (`mobileseg.arch.tome`; 0: merging off), or None: the model as it is.
        command: the command line, recorded in the report.
    """

    model_path: Path
    out_dir: Path
    formats: tuple[str, ...] = ()
    input_size: tuple[int, int] | None = None
    run_dir: Path | None = None
    output: str = "logits"
    input_dtype: str = "uint8"
    profile: object = None
    data: str | None = None
    split: str = "val"
    qat_epochs: int = 0
    ptq: bool = False
    qat_model_path: Path | None = None
    calibration_images: int = 64
    batch_size: int = 8
    learning_rate: float = 2e-5
    steps_per_epoch: int | None = None
    distill_weight: float = 20.0
    ohem_thresh: float | None = None
    ohem_min_kept: int = 0
    seed: int = 0
    eval_images: int | None = None
    threads: int = 1
    evaluate: bool = True
    eager: bool = False
    labels: list | None = None
    colors: list | None = None
    tome: float | None = None
    command: str = ""


def load_keras_model(path: Path):
    """Load a mobileseg ``.keras`` model (float or quantization-aware), without its training setup."""
    import keras

    import mobileseg.arch.builder  # noqa: F401  registers the blocks
    import mobileseg.deploy.packaging  # noqa: F401  registers ClassMap
    import mobileseg.quant.finetune  # noqa: F401  registers the loss
    import mobileseg.quant.qat  # noqa: F401  registers the quantization layers

    if not path.is_file():
        raise ExportError(f"no such model file: {path}")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a bad archive
        raise ExportError(f"{path}: cannot load the Keras model: {error}") from None


def read_run_config(path: Path) -> dict:
    """The settings of a run's ``config.yaml`` this step uses, read defensively (bad or missing -> {}).

    ``python -m mobileseg.train`` writes one section per step (``train:``, ...); the data
    set, the OHEM settings the model was trained with (reused by quantization-aware
    fine-tuning) and class names and colours, if a step recorded them, are read from the
    ``train`` section, else from the top level. The input size is the model's own
    (``model.keras`` is saved at the train step's ``model_size``).

    Example:
        >>> import pathlib, tempfile
        >>> config = pathlib.Path(tempfile.mkdtemp()) / "config.yaml"
        >>> _ = config.write_text("train: {data: 'synthetic:40', input_size: [64, 96], epochs: 3}\\n")
        >>> read_run_config(config)
        {'data': 'synthetic:40'}
    """
    import yaml

    from mobileseg.text_files import TextFileError, read_text

    if not path.is_file():
        return {}
    try:
        raw = yaml.safe_load(read_text(path)) or {}
    except (TextFileError, yaml.YAMLError):
        return {}
    if not isinstance(raw, dict):
        return {}
    sections = [raw["train"]] if isinstance(raw.get("train"), dict) else []
    sections.append(raw)
    config = {}
    for section in reversed(sections):  # the train section wins
        data = section.get("data")
        if isinstance(data, str) and ":" in data:
            config["data"] = data
        if section.get("ohem") is True and isinstance(section.get("ohem_thresh"), (int, float)):
            config["ohem_thresh"] = float(section["ohem_thresh"])
            if isinstance(section.get("ohem_min_kept"), int):
                config["ohem_min_kept"] = section["ohem_min_kept"]
        for key in ("labels", "class_names"):
            if isinstance(section.get(key), list) and all(isinstance(v, str) for v in section[key]):
                config["labels"] = section[key]
        if isinstance(section.get("colors"), list):
            config["colors"] = section["colors"]
    return config


def environment() -> dict:
    """Versions and machine, recorded with every report."""
    import ai_edge_litert
    import keras
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__,
            "ai_edge_litert": getattr(ai_edge_litert, "__version__", "unknown"),
            "python": platform.python_version(), "machine": platform.machine(), "processor": _cpu_name(),
            "cpus": __import__("os").cpu_count()}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def export(settings: ExportSettings, log=print) -> dict:
    """Run one export: fine-tune (optional), convert, write sidecars, verify; returns the report.

    The report is also written to ``out_dir/report.json``. ``report["passed"]`` is False
    when a profile check or a conversion failed.

    Raises:
        ExportError: bad input (model, data, options), before anything is written.
        mobileseg.atomic_write.AtomicWriteError: a file could not be written (a full disk); it and every
            file written before are as they were.
    """
    import numpy as np

    from mobileseg.atomic_write import AtomicWriteError, write_atomic
    from mobileseg.training.callbacks import save_model_atomic
    from mobileseg.deploy import packaging, report
    from mobileseg.inference import default_palette

    started = time.time()
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    model = packaging.logits_model(load_keras_model(settings.model_path))
    if settings.input_size and tuple(settings.input_size) != tuple(model.inputs[0].shape[1:3]):
        from mobileseg.training.evaluation import resized_copy

        model = resized_copy(model, settings.input_size)
    height, width = model.inputs[0].shape[1:3]
    if height is None or width is None:
        raise ExportError(f"{settings.model_path}: the model has no fixed input size; build it with one")
    token_merging, float_path = None, settings.model_path
    if settings.tome is not None:
        model, token_merging = _merge_tokens(model, settings)
        float_path = Path(token_merging["model"])
        log(f"token merging at {settings.tome:g} in {len(token_merging['blocks'])} efficient-attention "
            f"block(s): {float_path}")
    input_size = (int(height), int(width))
    num_classes = int(model.outputs[0].shape[-1])
    source = _open_source(settings.data) if settings.data else None
    if source is not None and source.num_classes != num_classes:
        raise ExportError(f"{settings.model_path} predicts {num_classes} classes but {source.spec} has "
                          f"{source.num_classes}")
    labels, colors = _labels_and_colors(source, settings, num_classes, default_palette)
    wants_int8 = "int8" in settings.formats
    qat_model, qat_history, qat_note = None, {}, None
    calibration = None

    def calibration_images():
        nonlocal calibration
        if calibration is None:
            if source is None:
                raise ExportError("int8 conversion needs training images for calibration: give --data "
                                  "(or a run config with data)")
            from mobileseg.quant.ptq import representative_images

            calibration = representative_images(source, input_size, settings.calibration_images, seed=settings.seed)
        return calibration

    if wants_int8:
        method = getattr(settings.profile, "quantization", "auto") if settings.profile else None
        if settings.qat_epochs > 0:
            if source is None:
                raise ExportError("--qat_epochs needs training data: give --data (or a run config with data)")
            train_images = len(source.pairs("train"))
            if train_images < settings.batch_size:
                raise ExportError(f"--batch_size {settings.batch_size}: {source.spec} has only {train_images} "
                                  "training images; give a smaller --batch_size")
            from mobileseg.quant.finetune import quantization_aware_training

            log(f"quantization-aware fine-tuning for {settings.qat_epochs} epoch(s) on {source.spec}")
            qat_model, qat_history = quantization_aware_training(
                model, source, input_size=input_size, epochs=settings.qat_epochs, calibration=calibration_images(),
                batch_size=settings.batch_size, learning_rate=settings.learning_rate, seed=settings.seed,
                steps_per_epoch=settings.steps_per_epoch, ohem_thresh=settings.ohem_thresh,
                ohem_min_kept=settings.ohem_min_kept, distill_weight=settings.distill_weight, verbose=2,
                eager=settings.eager)
            save_model_atomic(qat_model, settings.qat_model_path)
            qat_note = f"fine-tuned {settings.qat_epochs} epoch(s), saved {settings.qat_model_path}"
        elif method != "ptq" and settings.qat_model_path and settings.qat_model_path.is_file():
            qat_model = load_keras_model(settings.qat_model_path)
            qat_note = f"reused {settings.qat_model_path}"
        if method == "qat" and qat_model is None:
            raise ExportError(f"{settings.profile.source} asks for quantization-aware int8 but there is no "
                              f"{settings.qat_model_path}; fine-tune one with --qat_epochs N")
        ptq = settings.ptq or method == "ptq" or (method == "auto" and qat_model is None)
        if qat_model is None and not ptq:
            raise ExportError("--int8 needs a quantization-aware model (--qat_epochs N, or an existing "
                              f"{settings.qat_model_path}) or --ptq for post-training quantization")
    else:
        ptq = False

    jobs = []  # (file name, kind, mode, method)
    if "fp32" in settings.formats:
        jobs.append(("model_fp32.tflite", "tflite", "fp32", None))
    if "fp16" in settings.formats:
        jobs.append(("model_fp16.tflite", "tflite", "fp16", None))
    if wants_int8 and qat_model is not None:
        jobs.append(("model_int8.tflite", "tflite", "int8", "qat"))
    if wants_int8 and ptq:
        name = "model_int8_ptq.tflite" if qat_model is not None else "model_int8.tflite"
        jobs.append((name, "tflite", "int8", "ptq"))
    if "onnx" in settings.formats:
        jobs.append(("model.onnx", "onnx", "fp32", None))

    normalization = packaging.normalization_of(model)
    entries, failures = [], []
    for name, kind, mode, method in jobs:
        path = settings.out_dir / name
        log(f"writing {path}")
        input_dtype = settings.input_dtype
        entry = {"file": str(path), "format": kind, "mode": mode, "method": method, "output": settings.output,
                 "input": input_dtype}
        try:
            if kind == "onnx":
                from mobileseg.deploy.onnx_export import onnx_parity, to_onnx

                packaged = to_onnx(model, path, settings.output, input_dtype)
                entry.update(report.describe_onnx(path))
                samples = calibration[:2] if calibration else [np.random.default_rng(settings.seed).uniform(
                    0, 255, (1, *input_size, 3)).astype(np.float32)]
                entry["parity"] = onnx_parity(path, packaged, samples)
            else:
                source_model = qat_model if method == "qat" else model
                representative = None
                if mode == "int8":
                    from mobileseg.quant.ptq import representative_dataset

                    representative = representative_dataset(calibration_images())
                flatbuffer = packaging.convert(source_model, mode, settings.output, input_dtype, representative)
                write_atomic(path, flatbuffer)
                entry.update(report.describe_tflite(path))
                if method == "qat":
                    entry["qat"] = {"note": qat_note, **report.qat_coverage(qat_model, flatbuffer)}
        except (ExportError, AtomicWriteError):  # bad input, a full disk: the export stops
            raise
        except Exception as error:  # a conversion that fails is reported, and the export goes on
            entry["error"] = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error) else ''}"
            failures.append(f"{name}: conversion failed: {entry['error']}")
            log(f"  conversion failed: {entry['error']}")
            entries.append(entry)
            continue
        output_quantization = _output_quantization(path) if kind == "tflite" and settings.output == "logits" else None
        packaging.write_sidecar(path, packaging.sidecar(
            labels=labels, colors=colors, input_size=input_size, input_dtype=input_dtype, mode=mode,
            output=settings.output, normalization=normalization, method=method,
            output_quantization=output_quantization, source=str(float_path)))
        entries.append(entry)

    tflite = [e for e in entries if e["format"] == "tflite" and "error" not in e]
    timing_paths = [e["file"] for e in tflite]
    fp32_reference = None
    checks = settings.profile.checks if settings.profile else None
    needs_fp32 = checks is not None and checks.min_speedup_vs_fp32 is not None
    if tflite and not any(e["mode"] == "fp32" for e in tflite) and needs_fp32:
        fp32_reference = settings.out_dir / ".fp32_reference.tflite"
        write_atomic(fp32_reference, packaging.convert(model, "fp32", settings.output, "uint8"))
        timing_paths.append(str(fp32_reference))
    log(f"timing {len(timing_paths)} file(s) at {settings.threads} thread(s)")
    timings = report.time_tflite(timing_paths, threads=settings.threads)
    fp32_ms = None
    for entry in tflite:
        entry.update({k: v for k, v in timings[entry["file"]].items() if k != "runs"})
        if entry["mode"] == "fp32":
            fp32_ms = entry["latency_ms"]
    if fp32_reference is not None:
        fp32_ms = timings[str(fp32_reference)]["latency_ms"]
        fp32_reference.unlink()
    for entry in tflite:
        if fp32_ms and entry.get("latency_ms"):
            entry["speedup_vs_fp32"] = round(fp32_ms / entry["latency_ms"], 3)

    float_entry = {"file": str(float_path)}
    if source is not None and settings.evaluate:
        log(f"evaluating on {source.spec} {settings.split}")
        float_entry.update(report.evaluate_file(float_path, source, settings.split, settings.eval_images))
        if qat_model is not None and settings.qat_model_path and settings.qat_model_path.is_file():
            qat_eval = report.evaluate_file(settings.qat_model_path, source, settings.split, settings.eval_images)
            float_entry["qat_keras_miou"] = qat_eval["miou"]
        for entry in entries:
            if "error" in entry:
                continue
            result = report.evaluate_file(entry["file"], source, settings.split, settings.eval_images)
            entry.update(miou=result["miou"], pixel_accuracy=result["pixel_accuracy"],
                         miou_drop=round(100.0 * (float_entry["miou"] - result["miou"]), 3))

    target = None
    if settings.profile is not None:
        target = _target_entry(entries, settings.profile)
        if target is None:
            failures.append(f"{settings.profile.name}: no {settings.profile.mode} file was exported")
        else:
            target["checks"] = report.apply_checks(target, settings.profile.checks, fp32_ms, float_entry.get("miou"))
            failures += [f"{Path(target['file']).name}: {c['check']}: {c['value']} (limit {c['limit']})"
                         + (f" - {c['note']}" if c.get("note") else "") for c in target["checks"] if not c["passed"]]
    result = {
        "command": settings.command, "model": str(settings.model_path), "out_dir": str(settings.out_dir),
        "data": source.spec if source is not None else None, "split": settings.split,
        "eval_images": settings.eval_images, "input_size": list(input_size), "num_classes": num_classes,
        "token_merging": token_merging,
        "profile": settings.profile.to_dict() if settings.profile else None,
        "qat": {"epochs": settings.qat_epochs, "learning_rate": settings.learning_rate,
                "distill_weight": settings.distill_weight, "ohem_thresh": settings.ohem_thresh,
                "ohem_min_kept": settings.ohem_min_kept, "history": qat_history, "model": str(settings.qat_model_path)
                if qat_model is not None else None, "note": qat_note},
        "float": float_entry, "files": entries, "environment": environment(),
        "passed": not failures, "failed_checks": failures, "seconds": round(time.time() - started, 1),
    }
    write_atomic(settings.out_dir / "report.json", json.dumps(result, indent=2) + "\n")
    if settings.run_dir is not None:
        from mobileseg.training.trainer import record_config

        record_config(settings.run_dir, "export", {
            "model": str(settings.model_path), "out_dir": str(settings.out_dir), "formats": list(settings.formats),
            "output": settings.output, "input": settings.input_dtype, "input_size": list(input_size),
            "target": settings.profile.source if settings.profile else None, "data": result["data"],
            "qat_epochs": settings.qat_epochs, "ptq": settings.ptq, "calibration_images": settings.calibration_images,
            "batch_size": settings.batch_size, "learning_rate": settings.learning_rate,
            "distill_weight": settings.distill_weight, "ohem_thresh": settings.ohem_thresh,
            "ohem_min_kept": settings.ohem_min_kept,
            "steps_per_epoch": settings.steps_per_epoch, "seed": settings.seed, "split": settings.split,
            "tome": settings.tome,
            "files": [Path(entry["file"]).name for entry in entries], "passed": result["passed"]})
    return result


def _merge_tokens(model, settings: ExportSettings):
    """The model with tokens merged at ``settings.tome``, saved next to the files, and what was merged where."""
    from mobileseg.arch.tome import TomeError, block_settings, with_token_merging
    from mobileseg.training.callbacks import save_model_atomic

    try:
        merged = with_token_merging(model, settings.tome, source=str(settings.model_path))
    except TomeError as error:
        raise ExportError(str(error)) from None
    path = settings.out_dir / f"model_tome{settings.tome:g}.keras"
    save_model_atomic(merged, path)
    return merged, {"ratio": settings.tome, "model": str(path), "blocks": block_settings(merged)}


def _open_source(spec: str):
    from mobileseg.data.problems import DataError
    from mobileseg.data.sources import open_source

    try:
        return open_source(spec)
    except DataError as error:
        raise ExportError(str(error)) from None


def _labels_and_colors(source, settings: ExportSettings, num_classes: int, default_palette):
    if source is not None:
        return list(source.class_names), source.colors.tolist()
    labels = settings.labels if settings.labels and len(settings.labels) == num_classes else None
    labels = labels or [f"class_{i}" for i in range(num_classes)]
    colors = settings.colors
    ok = (isinstance(colors, list) and len(colors) == num_classes
          and all(isinstance(c, list) and len(c) == 3 for c in colors))
    return labels, colors if ok else default_palette(num_classes).tolist()


def _output_quantization(path: Path):
    from mobileseg.litert_measure import new_interpreter

    runner = new_interpreter(model_path=str(path)).get_signature_runner()
    detail = next(iter(runner.get_output_details().values()))
    scale, zero_point = detail["quantization"]
    return (scale, zero_point) if scale else None


def _target_entry(entries: list[dict], profile) -> dict | None:
    for entry in entries:
        if entry["format"] == "tflite" and entry["mode"] == profile.mode and "error" not in entry:
            if profile.mode != "int8" or Path(entry["file"]).name == "model_int8.tflite":
                return entry
    return None


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
                      "(argmax at 1/8, nearest upsampling). Default: the profile's, else logits.", flag_values=fv)
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


def settings_from_flags(fv, argv: Sequence[str]) -> ExportSettings:
    """Resolve the flags, the run folder and the profile into `ExportSettings`.

    Raises:
        ExportError: conflicting or missing options.
        mobileseg.deploy.profiles.ProfileError: a bad profile (file and key named).
    """
    from mobileseg.deploy.profiles import load_profile

    from mobileseg.cli_flags import parse_size

    if len(argv) > 1:
        raise ExportError(f"unexpected arguments {list(argv[1:])}")
    try:
        input_size = parse_size(fv.input_size) if fv.input_size else None
    except ValueError as error:
        raise ExportError(f"--input_size: {error}") from None
    if not fv.run_dir and not fv.model:
        raise ExportError("give --run_dir DIR (with DIR/model.keras) or --model FILE.keras")
    tome = None
    if fv.tome is not None:
        from mobileseg.arch.tome import TomeError, check_ratio

        try:
            tome = check_ratio(fv.tome)
        except TomeError as error:
            raise ExportError(f"--tome: {error}") from None
    merged = "" if tome is None else f"_tome{tome:g}"
    run_dir = Path(fv.run_dir) if fv.run_dir else None
    model_path = Path(fv.model) if fv.model else run_dir / "model.keras"
    config = read_run_config(run_dir / "config.yaml") if run_dir else {}
    out_dir = Path(fv.out_dir) if fv.out_dir else (run_dir or model_path.parent) / f"export{merged}"
    qat_path = (run_dir / f"model_qat{merged}.keras" if run_dir
                else model_path.with_name(f"{model_path.stem}_qat{merged}.keras"))
    profile = load_profile(fv.target) if fv.target else None
    formats = [name for name in FORMATS if fv[name].value]
    if profile is not None and profile.mode not in formats:
        formats.append(profile.mode)
    if not formats:
        raise ExportError("nothing to export: give --int8, --fp16, --fp32, --onnx and/or --target PROFILE")
    output = fv.output or (profile.output if profile else "logits")
    input_dtype = fv.input or (profile.input if profile else "uint8")
    float_files = [f for f in formats if f != "int8"]
    if input_dtype == "int8" and float_files:
        raise ExportError(f"--input int8 is for int8 files only, not {', '.join(float_files)}")
    if input_dtype == "float32" and "int8" in formats:
        raise ExportError("--input float32 is for float files only; an int8 file takes uint8 or int8 pixels")
    return ExportSettings(
        model_path=model_path, out_dir=out_dir, formats=tuple(f for f in FORMATS if f in formats), output=output,
        input_size=input_size, run_dir=run_dir,
        input_dtype=input_dtype, profile=profile, data=fv.data or config.get("data"), split=fv.split,
        qat_epochs=fv.qat_epochs, ptq=fv.ptq, qat_model_path=qat_path, calibration_images=fv.calibration_images,
        batch_size=fv.batch_size, learning_rate=fv.learning_rate, steps_per_epoch=fv.steps_per_epoch, seed=fv.seed,
        distill_weight=fv.distill_weight, ohem_thresh=config.get("ohem_thresh"),
        ohem_min_kept=config.get("ohem_min_kept", 0),
        eval_images=fv.eval_images, threads=fv.threads, evaluate=fv.evaluate, labels=config.get("labels"),
        colors=config.get("colors"), tome=tome, command=" ".join(["python -m mobileseg.export", *sys.argv[1:]]))


def run(fv, argv: Sequence[str]) -> int:
    """Export as the parsed flags say; returns the exit code."""
    from mobileseg.atomic_write import AtomicWriteError
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
