"""Deployment target profiles: ``export/NAME.yaml`` says how to convert and what the result must pass.

A profile is data (docs/architecture.md, section 3), validated strictly: an unknown or misspelt key,
a value of the wrong type or outside its choices is refused with one error naming the
file and the key path, e.g. ``export/cpu-int8.yaml: checks.max_partition: unknown key;
expected one of builtin_only, ...``. Example (``export/cpu-int8.yaml``)::

    name: cpu-int8
    description: Full-integer model for phone CPUs through XNNPACK.
    mode: int8            # fp32 | fp16 | int8
    quantization: auto    # int8: qat | ptq | auto (QAT when a quantization-aware model exists)
    output: mask          # logits | mask
    input: uint8          # uint8 | int8 (int8 files) | float32 (float files)
    checks:               # every check is optional; null or absent = not checked
      builtin_only: true
      max_partitions: 1
      gpu_compatible: false
      max_size_mb: 16
      min_speedup_vs_fp32: 1.8
      max_miou_drop: 0.5  # mIoU points below the float model (needs data)
      max_latency_ms: null
"""

from __future__ import annotations

import dataclasses

from mobileseg.bounded_yaml import read_yaml
from mobileseg.shipped_files import PROFILES as PROFILE_DIR
from mobileseg.shipped_files import shipped_names, shipped_path
from mobileseg.short_repr import short_repr

MODES = ("fp32", "fp16", "int8")
QUANTIZATION = ("qat", "ptq", "auto")
OUTPUTS = ("logits", "mask")
INPUTS = ("uint8", "int8", "float32")


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the file and the key."""


@dataclasses.dataclass(frozen=True)
class Checks:
    """What an exported file must pass; None leaves a check out.

    Args:
        builtin_only: only TFLite builtin ops (no Flex/TF Select, no custom ops).
        max_partitions: at most this many XNNPACK partitions (1: the whole graph in one).
        gpu_compatible: the GPU delegate takes every op (``tf.lite.experimental.Analyzer``);
            ``false`` is the same as not checking.
        max_size_mb: the file is at most this large.
        min_speedup_vs_fp32: median latency at 1 thread at least this many times lower
            than the fp32 file's, measured interleaved on this machine.
        max_miou_drop: mIoU at most this many points below the float model's (val split).
        max_latency_ms: median latency at 1 thread on this machine.
    """

    builtin_only: bool | None = None
    max_partitions: int | None = None
    gpu_compatible: bool | None = None
    max_size_mb: float | None = None
    min_speedup_vs_fp32: float | None = None
    max_miou_drop: float | None = None
    max_latency_ms: float | None = None


@dataclasses.dataclass(frozen=True)
class Profile:
    """One deployment target: conversion settings and the checks the file must pass.

    Example:
        >>> profile = Profile.from_dict({"name": "cpu-int8", "mode": "int8", "output": "mask",
        ...                              "checks": {"max_partitions": 1}}, "cpu-int8.yaml")
        >>> profile.mode, profile.quantization, profile.input, profile.checks.max_partitions
        ('int8', 'auto', 'uint8', 1)
        >>> Profile.from_dict({"name": "x", "mode": "int4"}, "x.yaml")
        Traceback (most recent call last):
        ...
        mobileseg.deploy.profiles.ProfileError: x.yaml: mode: 'int4' is not allowed; expected one of fp32, fp16, int8
    """

    name: str
    mode: str
    description: str = ""
    quantization: str = "auto"
    output: str = "logits"
    input: str = "uint8"
    checks: Checks = Checks()
    source: str = ""

    @classmethod
    def from_dict(cls, data, where: str) -> Profile:
        """Validate a parsed profile; ``where`` (the file) prefixes every error."""
        if not isinstance(data, dict):
            raise ProfileError(f"{where}: expected a mapping of profile keys, got {type(data).__name__}")
        fields = ("name", "description", "mode", "quantization", "output", "input", "checks")
        _no_unknown(data, fields, where, "")
        for key in ("name", "mode"):
            if key not in data:
                raise ProfileError(f"{where}: {key}: missing key")
        name = _typed(data, "name", str, where)
        description = _typed(data, "description", str, where, "")
        mode = _choice(data, "mode", MODES, where)
        quantization = _choice(data, "quantization", QUANTIZATION, where, "auto")
        output = _choice(data, "output", OUTPUTS, where, "logits")
        default_input = "uint8"
        input_dtype = _choice(data, "input", INPUTS, where, default_input)
        if mode == "int8" and input_dtype == "float32":
            raise ProfileError(f"{where}: input: an int8 file takes uint8 or int8 pixels, not float32")
        if mode != "int8" and input_dtype == "int8":
            raise ProfileError(f"{where}: input: a {mode} file takes uint8 or float32 pixels, not int8")
        if mode != "int8" and "quantization" in data and quantization != "auto":
            raise ProfileError(f"{where}: quantization: only an int8 profile is quantized (mode is {mode})")
        checks_data = data.get("checks") or {}
        if not isinstance(checks_data, dict):
            raise ProfileError(f"{where}: checks: expected a mapping, got {type(checks_data).__name__}")
        check_fields = [f.name for f in dataclasses.fields(Checks)]
        _no_unknown(checks_data, check_fields, where, "checks.")
        values = {}
        for key in check_fields:
            value = checks_data.get(key)
            if value is None:
                values[key] = None
            elif key in ("builtin_only", "gpu_compatible"):
                values[key] = _typed(checks_data, key, bool, where, prefix="checks.")
            elif key == "max_partitions":
                values[key] = _number(checks_data, key, where, integer=True, minimum=1)
            else:
                values[key] = _number(checks_data, key, where, integer=False, minimum=0.0)
        return cls(name=name, mode=mode, description=description, quantization=quantization, output=output,
                   input=input_dtype, checks=Checks(**values), source=where)

    def to_dict(self) -> dict:
        """The profile as plain data (for report.json)."""
        data = dataclasses.asdict(self)
        data["checks"] = {k: v for k, v in data["checks"].items() if v is not None}
        return data


def load_profile(name_or_path: str) -> Profile:
    """Read a profile: a YAML path, or the name of a shipped one (``export/``, `mobileseg.shipped_files`).

    Raises:
        ProfileError: no such profile (the known names are listed), a file that is unreadable, not
            UTF-8, not YAML or too large (`mobileseg.bounded_yaml`), or invalid contents (file and key named).
    """
    path = shipped_path(name_or_path, "profile")
    if not path.is_file():
        known = ", ".join(shipped_names("profile")) or "none"
        raise ProfileError(f"{name_or_path}: no such profile file (profiles in {PROFILE_DIR}: {known})")
    return Profile.from_dict(read_yaml(path, error=ProfileError), str(path))


def _no_unknown(data: dict, allowed, where: str, prefix: str) -> None:
    for key in data:
        if key not in allowed:
            raise ProfileError(f"{where}: {prefix}{key}: unknown key; expected one of {', '.join(allowed)}")


def _typed(data: dict, key: str, kind, where: str, default=None, prefix: str = ""):
    if key not in data:
        return default
    value = data[key]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ProfileError(f"{where}: {prefix}{key}: expected {kind.__name__}, got {short_repr(value)}")
    return value


def _choice(data: dict, key: str, choices, where: str, default=None):
    if key not in data:
        return default
    value = data[key]
    if value not in choices:
        raise ProfileError(f"{where}: {key}: {short_repr(value)} is not allowed; expected one of {', '.join(choices)}")
    return value


def _number(data: dict, key: str, where: str, *, integer: bool, minimum):
    value = data[key]
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if not ok or isinstance(value, bool) or value < minimum:
        kind = "an integer" if integer else "a number"
        raise ProfileError(f"{where}: checks.{key}: expected {kind} >= {minimum}, got {short_repr(value)}")
    return value
