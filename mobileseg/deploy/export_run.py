"""One export run: fine-tune (optional), convert, write sidecars, verify and report (`export`).

`export` takes `mobileseg.deploy.export_settings.ExportSettings`, writes the files, their
sidecars and ``report.json`` into its ``out_dir`` (every file atomically) and records an
``export`` section in the run's ``config.yaml``; ``python -m mobileseg.export`` is its command.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from pathlib import Path

from mobileseg.deploy.export_settings import ExportError, ExportSettings
from mobileseg.provenance import cpu_id, cpu_model


def load_keras_model(path: Path):
    """Load a mobileseg ``.keras`` model (float or quantization-aware), without its training setup."""
    import mobileseg.deploy.packaging  # noqa: F401  registers ClassMap
    from mobileseg.keras_file import load_keras_model as load

    if not path.is_file():
        raise ExportError(f"no such model file: {path}")
    try:
        return load(path)
    except Exception as error:  # Keras raises many types for a bad archive
        raise ExportError(f"{path}: cannot load the Keras model: {error}") from None


def environment() -> dict:
    """Versions and machine, recorded with every report."""
    import ai_edge_litert
    import keras
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__,
            "ai_edge_litert": getattr(ai_edge_litert, "__version__", "unknown"),
            "python": platform.python_version(), "machine": platform.machine(), "processor": cpu_model(),
            "cpu_id": cpu_id(), "cpus": os.cpu_count()}


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
    from mobileseg.deploy import packaging, report
    from mobileseg.inference import default_palette

    started = time.time()
    if settings.mask_upsample is None:
        settings = dataclasses.replace(settings, mask_upsample=packaging.MASK_UPSAMPLE)
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
    calibration = _Calibration(source, input_size, settings)
    qat_model, qat_history, qat_note, ptq = None, {}, None, False
    if wants_int8:
        qat_model, qat_history, qat_note, ptq = _quantization(model, source, input_size, settings, calibration, log)

    jobs = _jobs(settings.formats, qat=wants_int8 and qat_model is not None, ptq=wants_int8 and ptq)
    normalization = packaging.normalization_of(model)
    entries, failures = [], []
    for name, kind, mode, method in jobs:
        path = settings.out_dir / name
        log(f"writing {path}")
        input_dtype = settings.input_dtype
        entry = {"file": str(path), "format": kind, "mode": mode, "method": method, "output": settings.output,
                 "input": input_dtype}
        if settings.output == "mask":
            entry["mask_upsample"] = settings.mask_upsample
        try:
            if kind == "onnx":
                from mobileseg.deploy.onnx_export import onnx_parity, to_onnx

                packaged = to_onnx(model, path, settings.output, input_dtype, settings.mask_upsample)
                entry.update(report.describe_onnx(path))
                samples = calibration.images[:2] if calibration.images else [
                    np.random.default_rng(settings.seed).uniform(0, 255, (1, *input_size, 3)).astype(np.float32)]
                entry["parity"] = onnx_parity(path, packaged, samples)
            else:
                source_model = qat_model if method == "qat" else model
                representative = None
                if mode == "int8":
                    from mobileseg.quant.ptq import representative_dataset

                    representative = representative_dataset(calibration())
                flatbuffer = packaging.convert(source_model, mode, settings.output, input_dtype, representative,
                                               settings.mask_upsample)
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

    fp32_ms, op_profile = _time_files(entries, model, settings, log)
    float_entry = {"file": str(float_path)}
    if source is not None and settings.evaluate:
        _evaluate(entries, float_entry, source, settings, qat_model is not None, log)

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
        "float": float_entry, "files": entries, "op_profile": op_profile, "environment": environment(),
        "passed": not failures, "failed_checks": failures, "seconds": round(time.time() - started, 1),
    }
    write_atomic(settings.out_dir / "report.json", json.dumps(result, indent=2) + "\n")
    if settings.run_dir is not None:
        _record(settings, result, input_size, entries)
    return result


class _Calibration:
    """Training images for int8 calibration, chosen when first needed (``images``: None until then)."""

    def __init__(self, source, input_size: tuple[int, int], settings: ExportSettings):
        self.source, self.input_size, self.settings, self.images = source, input_size, settings, None

    def __call__(self) -> list:
        """The images (chosen now if they were not yet).

        Raises:
            ExportError: there is no data set to take them from.
        """
        if self.images is None:
            if self.source is None:
                raise ExportError("int8 conversion needs training images for calibration: give --data "
                                  "(or a run config with data)")
            from mobileseg.quant.ptq import representative_images

            self.images = representative_images(self.source, self.input_size, self.settings.calibration_images,
                                                seed=self.settings.seed)
        return self.images


def _quantization(model, source, input_size: tuple[int, int], settings: ExportSettings, calibration: _Calibration,
                  log) -> tuple:
    """How the int8 file is made: ``(quantization-aware model or None, its history, its note, ptq)``.

    Fine-tunes a quantization-aware model (``--qat_epochs N``, saved to ``qat_model_path``) or reuses the one
    there, unless the profile asks for post-training quantization.

    Raises:
        ExportError: no data for fine-tuning, too few images for the batch, or neither kind of int8 possible.
    """
    from mobileseg.training.callbacks import save_model_atomic

    qat_model, qat_history, qat_note = None, {}, None
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
            model, source, input_size=input_size, epochs=settings.qat_epochs, calibration=calibration(),
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
    return qat_model, qat_history, qat_note, ptq


def _jobs(formats: tuple[str, ...], qat: bool, ptq: bool) -> list[tuple]:
    """The files to write, as ``(file name, kind, mode, method)``.

    Example:
        >>> [job[0] for job in _jobs(("fp32", "int8"), qat=True, ptq=True)]
        ['model_fp32.tflite', 'model_int8.tflite', 'model_int8_ptq.tflite']
    """
    jobs = []
    if "fp32" in formats:
        jobs.append(("model_fp32.tflite", "tflite", "fp32", None))
    if "fp16" in formats:
        jobs.append(("model_fp16.tflite", "tflite", "fp16", None))
    if qat:
        jobs.append(("model_int8.tflite", "tflite", "int8", "qat"))
    if ptq:
        jobs.append(("model_int8_ptq.tflite" if qat else "model_int8.tflite", "tflite", "int8", "ptq"))
    if "onnx" in formats:
        jobs.append(("model.onnx", "onnx", "fp32", None))
    return jobs


def _time_files(entries: list[dict], model, settings: ExportSettings, log) -> tuple[float | None, dict | None]:
    """Time every written ``.tflite`` file (and speed-ups against fp32) into its entry, and profile the int8
    file against the fp32 one op type by op type; returns the fp32 ms and that profile.

    Without an fp32 file among them, a temporary fp32 file is converted, timed, profiled and deleted when an
    int8 file was written or a profile checks the speed-up against fp32.
    """
    from mobileseg.atomic_write import write_atomic
    from mobileseg.deploy import packaging, report

    tflite = [e for e in entries if e["format"] == "tflite" and "error" not in e]
    timing_paths = [e["file"] for e in tflite]
    fp32_path = next((e["file"] for e in tflite if e["mode"] == "fp32"), None)
    int8_entry = _shipped_int8(tflite)
    fp32_reference = None
    checks = settings.profile.checks if settings.profile else None
    needs_fp32 = int8_entry is not None or (checks is not None and checks.min_speedup_vs_fp32 is not None)
    reference_error = None
    if tflite and fp32_path is None and needs_fp32:
        log("converting an fp32 file to compare the int8 file with")
        try:
            flatbuffer = packaging.convert(model, "fp32", settings.output, "uint8",
                                           mask_upsample=settings.mask_upsample)
        except Exception as error:  # the int8 file is what was asked for: report the failure, go on
            reference_error = f"fp32 conversion failed: {type(error).__name__}: {str(error).strip()[:200]}"
            log(f"  {reference_error}")
        else:
            fp32_reference = settings.out_dir / ".fp32_reference.tflite"
            write_atomic(fp32_reference, flatbuffer)
            fp32_path = str(fp32_reference)
            timing_paths.append(fp32_path)
    log(f"timing {len(timing_paths)} file(s) at {settings.threads} thread(s)")
    timings = report.time_tflite(timing_paths, threads=settings.threads)
    for entry in tflite:
        entry.update({k: v for k, v in timings[entry["file"]].items() if k != "runs"})
    fp32_ms = timings[fp32_path]["latency_ms"] if fp32_path else None
    for entry in tflite:
        if fp32_ms and entry.get("latency_ms"):
            entry["speedup_vs_fp32"] = round(fp32_ms / entry["latency_ms"], 3)
    op_profile = {"error": reference_error} if reference_error else None
    if int8_entry is not None and fp32_path is not None:
        from mobileseg.deploy.op_profile import export_profile

        log("profiling the fp32 and int8 files op by op (1 thread)")
        one_thread = settings.threads == 1  # else the files' times are wall clock at other threads: not compared
        op_profile = export_profile(fp32_path, int8_entry["file"], fp32_ms if one_thread else None,
                                    int8_entry["latency_ms"] if one_thread else None, seed=settings.seed)
    if fp32_reference is not None:
        fp32_reference.unlink()
    return fp32_ms, op_profile


def _shipped_int8(entries: list[dict]) -> dict | None:
    """The int8 file that ships (``model_int8.tflite``: quantization-aware when there is one), if written."""
    return next((e for e in entries if e["mode"] == "int8" and Path(e["file"]).name == "model_int8.tflite"), None)


def _evaluate(entries: list[dict], float_entry: dict, source, settings: ExportSettings, has_qat: bool, log) -> None:
    """mIoU of the float model (and of the quantization-aware Keras model) and of every written file, in place."""
    from mobileseg.deploy import report

    log(f"evaluating on {source.spec} {settings.split}")
    float_entry.update(report.evaluate_file(float_entry["file"], source, settings.split, settings.eval_images))
    if has_qat and settings.qat_model_path and settings.qat_model_path.is_file():
        qat_eval = report.evaluate_file(settings.qat_model_path, source, settings.split, settings.eval_images)
        float_entry["qat_keras_miou"] = qat_eval["miou"]
    for entry in entries:
        if "error" in entry:
            continue
        result = report.evaluate_file(entry["file"], source, settings.split, settings.eval_images)
        entry.update(miou=result["miou"], pixel_accuracy=result["pixel_accuracy"],
                     miou_drop=round(100.0 * (float_entry["miou"] - result["miou"]), 3))


def _record(settings: ExportSettings, result: dict, input_size: tuple[int, int], entries: list[dict]) -> None:
    """Write the ``export`` section of the run's ``config.yaml``."""
    from mobileseg.run.run_config import record_config

    record_config(settings.run_dir, "export", {
        "model": str(settings.model_path), "out_dir": str(settings.out_dir), "formats": list(settings.formats),
        "output": settings.output, "input": settings.input_dtype, "input_size": list(input_size),
        "target": settings.profile.source if settings.profile else None, "data": result["data"],
        "qat_epochs": settings.qat_epochs, "ptq": settings.ptq, "calibration_images": settings.calibration_images,
        "batch_size": settings.batch_size, "learning_rate": settings.learning_rate,
        "distill_weight": settings.distill_weight, "ohem_thresh": settings.ohem_thresh,
        "ohem_min_kept": settings.ohem_min_kept,
        "steps_per_epoch": settings.steps_per_epoch, "seed": settings.seed, "split": settings.split,
        "tome": settings.tome, "tome_method": settings.tome_method,
        "files": [Path(entry["file"]).name for entry in entries], "passed": result["passed"]}, error=ExportError)


def _merge_tokens(model, settings: ExportSettings):
    """The model with tokens merged at ``settings.tome``, saved next to the files, and what was merged where."""
    from mobileseg.arch.tome import TomeError, block_settings, files_suffix, with_token_merging
    from mobileseg.training.callbacks import save_model_atomic

    try:
        merged = with_token_merging(model, settings.tome, source=str(settings.model_path),
                                    method=settings.tome_method)
    except TomeError as error:
        raise ExportError(str(error)) from None
    path = settings.out_dir / f"model{files_suffix(settings.tome, settings.tome_method)}.keras"
    save_model_atomic(merged, path)
    return merged, {"ratio": settings.tome, "method": settings.tome_method, "model": str(path),
                    "blocks": block_settings(merged)}


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

