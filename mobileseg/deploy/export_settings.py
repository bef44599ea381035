"""What one export does: `ExportSettings`, resolved from the flags, the run folder and the profile.

`settings_from_flags` turns ``python -m mobileseg.export``'s parsed flags into `ExportSettings`
(`read_run_config` gives the data set, OHEM settings, labels and colours the run's train step
recorded); `ExportError` is the export's bad input. `mobileseg.deploy.export_run` runs the export.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from mobileseg.run.run_dir import RunDir

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
        mask_upsample: for ``mask``: the logits' bilinear upsampling factor before the argmax
            (`mobileseg.deploy.packaging.ClassMap`); None: `mobileseg.deploy.packaging.MASK_UPSAMPLE`.
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
        tome_method: how (`mobileseg.arch.tome.METHODS`): ``bsm`` or ``grid``.
        command: the command line, recorded in the report.
    """

    model_path: Path
    out_dir: Path
    formats: tuple[str, ...] = ()
    input_size: tuple[int, int] | None = None
    run_dir: Path | None = None
    output: str = "logits"
    mask_upsample: int | None = None
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
    tome_method: str = "bsm"
    command: str = ""



def read_run_config(run_dir: Path) -> dict:
    """The settings of ``DIR/config.yaml`` this step uses ({} when it is missing or holds none of them).

    ``python -m mobileseg.train`` writes one section per step (``train:``, ...); the data
    set, the OHEM settings the model was trained with (reused by quantization-aware
    fine-tuning) and class names and colours, if a step recorded them, are read from the
    ``train`` section, else from the top level. The input size is the model's own
    (``model.keras`` is saved at the train step's ``model_size``).

    Raises:
        ExportError: the file cannot be read as step sections (`mobileseg.run.run_config.read_config`):
            refused before any work, since the export ends by writing its own section into it.

    Example:
        >>> import pathlib, tempfile
        >>> run_dir = pathlib.Path(tempfile.mkdtemp())
        >>> config = "train: {data: 'synthetic:40', input_size: [64, 96], epochs: 3}\\n"
        >>> _ = (run_dir / "config.yaml").write_text(config)
        >>> read_run_config(run_dir)
        {'data': 'synthetic:40'}
    """
    from mobileseg.run.run_config import read_config
    from mobileseg.text_files import TextFileError

    try:
        raw = read_config(run_dir)
    except TextFileError as error:
        raise ExportError(str(error)) from None
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
        from mobileseg.arch.tome import TomeError, check_setting, files_suffix

        try:
            tome = check_setting(fv.tome, fv.tome_method)
        except TomeError as error:
            raise ExportError(f"--tome: {error}") from None
    merged = "" if tome is None else files_suffix(tome, fv.tome_method)
    run_dir = Path(fv.run_dir) if fv.run_dir else None
    model_path = Path(fv.model) if fv.model else run_dir / RunDir.MODEL
    config = read_run_config(run_dir) if run_dir else {}
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
    if fv.mask_upsample is not None and output != "mask":
        raise ExportError(f"--mask_upsample {fv.mask_upsample} is for --output mask; this export writes {output}")
    input_dtype = fv.input or (profile.input if profile else "uint8")
    float_files = [f for f in formats if f != "int8"]
    if input_dtype == "int8" and float_files:
        raise ExportError(f"--input int8 is for int8 files only, not {', '.join(float_files)}")
    if input_dtype == "float32" and "int8" in formats:
        raise ExportError("--input float32 is for float files only; an int8 file takes uint8 or int8 pixels")
    return ExportSettings(
        model_path=model_path, out_dir=out_dir, formats=tuple(f for f in FORMATS if f in formats), output=output,
        mask_upsample=fv.mask_upsample, input_size=input_size, run_dir=run_dir,
        input_dtype=input_dtype, profile=profile, data=fv.data or config.get("data"), split=fv.split,
        qat_epochs=fv.qat_epochs, ptq=fv.ptq, qat_model_path=qat_path, calibration_images=fv.calibration_images,
        batch_size=fv.batch_size, learning_rate=fv.learning_rate, steps_per_epoch=fv.steps_per_epoch, seed=fv.seed,
        distill_weight=fv.distill_weight, ohem_thresh=config.get("ohem_thresh"),
        ohem_min_kept=config.get("ohem_min_kept", 0),
        eval_images=fv.eval_images, threads=fv.threads, evaluate=fv.evaluate, labels=config.get("labels"),
        colors=config.get("colors"), tome=tome, tome_method=fv.tome_method,
        command=" ".join(["python -m mobileseg.export", *sys.argv[1:]]))

