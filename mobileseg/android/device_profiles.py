"""Known phones' big-core masks, read from ``android_bench/devices.yaml``.

The mask pins ``benchmark_model`` to the performance cores with ``taskset``. A phone that
matches no entry gets the mask the device script derives from cpufreq instead.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path

from mobileseg.bounded_yaml import read_yaml
from mobileseg.shipped_files import ANDROID_BENCH

ANDROID_BENCH_DIR_ENV = "MOBILESEG_ANDROID_BENCH_DIR"


def android_bench_dir() -> Path:
    """The ``android_bench/`` folder (device script, devices.yaml, README).

    It is shipped inside the package (`mobileseg.shipped_files.ANDROID_BENCH`; a checkout links
    ``android_bench`` at its root to it); ``$MOBILESEG_ANDROID_BENCH_DIR`` overrides it.

    Example:
        >>> (android_bench_dir() / "run_benchmark.sh").is_file()
        True
    """
    override = os.environ.get(ANDROID_BENCH_DIR_ENV)
    if override:
        return Path(override)
    return ANDROID_BENCH


@dataclasses.dataclass(frozen=True)
class SocProfile:
    """One entry of devices.yaml: how to recognise a SoC (or phone) and its big cores.

    Args:
        name: human name, e.g. "Google Tensor G2".
        big_core_mask: hexadecimal affinity mask without ``0x``, e.g. "f0".
        soc_model: values of ``ro.soc.model`` that identify it.
        board_platform: values of ``ro.board.platform`` that identify it.
        model: values of ``ro.product.model`` that identify it.
        cores: the core layout, for people.

    Example:
        >>> p = SocProfile("Tensor G2", "f0", soc_model=("GS201",))
        >>> p.matches({"ro.soc.model": "gs201"}), p.matches({"ro.board.platform": "kalama"})
        (True, False)
    """

    name: str
    big_core_mask: str
    soc_model: tuple[str, ...] = ()
    board_platform: tuple[str, ...] = ()
    model: tuple[str, ...] = ()
    cores: str = ""

    def matches(self, props: Mapping[str, str]) -> bool:
        """Whether a device with these getprop values is this entry.

        Args:
            props: ``getprop`` output as a dict.
        """
        model = props.get("ro.product.model", "")
        soc = props.get("ro.soc.model", "").lower()
        board = props.get("ro.board.platform", "").lower()
        return (model in self.model
                or (soc != "" and soc in {s.lower() for s in self.soc_model})
                or (board != "" and board in {b.lower() for b in self.board_platform}))


_MASK = re.compile(r"^[0-9a-f]+$")
_KEYS = {"name", "big_core_mask", "soc_model", "board_platform", "model", "cores", "devices"}


def load_profiles(path: str | Path | None = None) -> list[SocProfile]:
    """Read and check devices.yaml.

    Args:
        path: the YAML file; default ``android_bench/devices.yaml``.

    Returns:
        The entries in file order (the first match wins).

    Raises:
        ValueError: the file is unreadable, not UTF-8 or not YAML, an entry has unknown keys, no way
            to match, or a mask that is not hex.

    Example:
        >>> profiles = load_profiles()
        >>> next(p.big_core_mask for p in profiles if "GS201" in p.soc_model)
        'f0'
    """
    path = Path(path) if path is not None else android_bench_dir() / "devices.yaml"
    data = read_yaml(path, error=ValueError)
    if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(
            data.get("socs"), list):
        raise ValueError(f"{path}: expected 'version: 1' and a 'socs' list")
    profiles = []
    for index, entry in enumerate(data["socs"]):
        where = f"{path}: socs[{index}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} is not a mapping")
        unknown = set(entry) - _KEYS
        if unknown:
            raise ValueError(f"{where} has unknown keys {sorted(unknown)}; allowed: "
                             f"{sorted(_KEYS)}")
        mask = str(entry.get("big_core_mask", "")).lower().removeprefix("0x")
        if not _MASK.match(mask) or int(mask, 16) == 0:
            raise ValueError(f"{where}: big_core_mask {entry.get('big_core_mask')!r} is not a "
                             "non-zero hexadecimal mask like f0")
        keys = {k: tuple(str(v) for v in entry.get(k) or ()) for k in
                ("soc_model", "board_platform", "model")}
        if not any(keys.values()):
            raise ValueError(f"{where} has none of soc_model, board_platform, model to match")
        profiles.append(SocProfile(name=str(entry.get("name", f"entry {index}")),
                                   big_core_mask=mask, cores=str(entry.get("cores", "")),
                                   **keys))
    return profiles


def find_profile(props: Mapping[str, str], profiles: list[SocProfile]) -> SocProfile | None:
    """The first profile matching a device, or None.

    Args:
        props: the device's ``getprop`` values.
        profiles: from `load_profiles`.

    Example:
        >>> find_profile({"ro.board.platform": "kalama"}, load_profiles()).big_core_mask
        'f8'
        >>> find_profile({"ro.product.model": "Unknown Phone"}, load_profiles()) is None
        True
    """
    return next((p for p in profiles if p.matches(props)), None)
