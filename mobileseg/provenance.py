"""Where a result was produced: package versions, the commit, the machine and its load.

Result files (``benchmarks/results/*.json``, ``validation.json``, a search's
``search_state.json``) record these so that a figure can be traced to the code and the
machine it came from, and read against how loaded that machine was.

Example:
    >>> sorted(versions())[:3], machine()["cores"] > 0, len(load_average())
    (['ai-edge-litert', 'keras', 'mobileseg_commit'], True, 3)
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

PACKAGES = ("tensorflow", "keras", "ai-edge-litert", "numpy", "optuna")


def versions() -> dict:
    """Python's and `PACKAGES`' versions (None when absent), and the mobileseg commit.

    The commit is ``git rev-parse HEAD`` of the checkout, with ``+uncommitted`` when tracked
    files differ from it; None outside a git checkout.
    """
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    try:
        root = Path(__file__).resolve().parents[1]
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        found["mobileseg_commit"] = (commit + ("+uncommitted" if dirty else "")) or None
    except (OSError, subprocess.SubprocessError):
        found["mobileseg_commit"] = None
    return found


def _cpuinfo(path: str) -> dict[str, str]:
    """The first value of every field of cpuinfo at ``path``, by lower-case name (empty when unreadable)."""
    fields = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                name, sep, value = line.partition(":")
                if sep:
                    fields.setdefault(name.strip().lower(), value.strip())
    except OSError:
        pass
    return fields


def cpu_model(cpuinfo_path: str = "/proc/cpuinfo") -> str:
    """The CPU model name: ``model name`` (x86) or ``Hardware``/``Processor`` (ARM) of cpuinfo.

    Args:
        cpuinfo_path: where to read it; falls back to `platform.processor()`.

    Example:
        >>> isinstance(cpu_model(), str) and len(cpu_model()) > 0
        True
    """
    fields = _cpuinfo(cpuinfo_path)
    for name in ("model name", "hardware", "processor", "cpu model"):
        value = fields.get(name, "")
        if value and not value.isdigit():  # ARM "processor : 0" is an index, not a name
            return value
    return platform.processor() or platform.machine() or "unknown"


# The instruction-set extensions that change what int8 and bfloat16 kernels can do (x86 and ARM names).
SIMD_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_int8",
              "amx_bf16", "asimddp", "i8mm", "bf16", "sve", "sve2", "sme")
# The cpuinfo fields that tell one microarchitecture from another (x86; ARM), whatever the model name says.
CORE_FIELDS = (("vendor_id", "cpu family", "model", "stepping"),
               ("cpu implementer", "cpu architecture", "cpu variant", "cpu part", "cpu revision"))


def cpu_id(cpuinfo_path: str = "/proc/cpuinfo", cache_dir: str = "/sys/devices/system/cpu/cpu0/cache") -> str:
    """The microarchitecture behind the model name: cpuinfo's vendor, family, model and stepping (x86)
    or implementer, architecture, variant, part and revision (ARM), the first core's cache sizes and
    its `SIMD_FLAGS`.

    A virtual machine's model name can be generic ("Intel(R) Xeon(R) Processor" for several
    generations of Xeon), and two hosts that share it can run the same int8 file at different
    speeds; this string tells them apart. Fields that cannot be read are left out.

    Example:
        >>> isinstance(cpu_id(), str)
        True
    """
    fields = _cpuinfo(cpuinfo_path)
    flags = set(fields.get("flags", fields.get("features", "")).split())  # the first core's, as the caches
    core = next(([fields[name] if name == "vendor_id" else f"{name.removeprefix('cpu ')} {fields[name]}"
                  for name in names if name in fields] for names in CORE_FIELDS
                 if any(name in fields for name in names)), [])
    caches = []
    for index in sorted(Path(cache_dir).glob("index*")):
        try:
            level, kind, size = ((index / name).read_text().strip() for name in ("level", "type", "size"))
        except OSError:
            continue
        caches.append(f"L{level}{'d' if kind == 'Data' else 'i' if kind == 'Instruction' else ''} {size}")
    return "; ".join(part for part in (" ".join(core), " ".join(caches),
                                       " ".join(flag for flag in SIMD_FLAGS if flag in flags)) if part)


def machine() -> dict:
    """The CPU model and identity (`cpu_id`), core count, memory, architecture and system of this machine."""
    try:
        memory_gb = round(int(Path("/proc/meminfo").read_text().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        memory_gb = None
    return {"cpu": cpu_model(), "cpu_id": cpu_id(), "cores": os.cpu_count(), "memory_gb": memory_gb,
            "machine": platform.machine(), "system": platform.system()}


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded to 0.01."""
    return [round(value, 2) for value in os.getloadavg()]
