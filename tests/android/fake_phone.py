"""Build fake Android phones for fake_adb.py: their state file and file-system folders.

A `FakeAdb` owns one folder: ``state.json`` (read by fake_adb.py and
fake_benchmark_model.py on every call), ``host_bin/adb`` (the wrapper the tests put first
on PATH) and one folder per phone standing for its file system (``data/local/tmp``,
``sys/devices/system/cpu/cpu*/cpufreq``, ``sys/class/thermal``, and ``bin`` with the
phone's ``taskset`` and ``sleep``).

The presets describe real phones: their getprop values, core layout (cpuinfo_max_freq)
and ABIs.
"""

from __future__ import annotations

import copy
import json
import os
import stat
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"

PRESETS = {
    "pixel7": {
        "serial": "28241FDH3001AB",
        "props": {
            "ro.product.model": "Pixel 7", "ro.product.manufacturer": "Google",
            "ro.product.name": "panther", "ro.product.device": "panther",
            "ro.soc.model": "GS201", "ro.soc.manufacturer": "Google",
            "ro.board.platform": "gs201", "ro.product.cpu.abi": "arm64-v8a",
            "ro.product.cpu.abilist": "arm64-v8a", "ro.build.version.release": "14",
            "ro.build.version.sdk": "34",
            "ro.build.fingerprint":
                "google/panther/panther:14/UQ1A.240205.004/11269751:user/release-keys"},
        "cpu_khz": [1803000] * 4 + [2348000] * 2 + [2850000] * 2,
    },
    "galaxy_s23": {
        "serial": "R5CW20ABCDE",
        "props": {
            "ro.product.model": "SM-S911B", "ro.product.manufacturer": "samsung",
            "ro.product.name": "dm1qxxx", "ro.product.device": "dm1q",
            "ro.soc.model": "SM8550", "ro.soc.manufacturer": "QTI",
            "ro.board.platform": "kalama", "ro.product.cpu.abi": "arm64-v8a",
            "ro.product.cpu.abilist": "arm64-v8a,armeabi-v7a,armeabi",
            "ro.build.version.release": "14", "ro.build.version.sdk": "34",
            "ro.build.fingerprint":
                "samsung/dm1qxxx/dm1q:14/UP1A.231005.007/S911BXXS3CXA1:user/release-keys"},
        "cpu_khz": [2016000] * 3 + [2803200] * 4 + [3360000],
    },
    "redmi_k50": {  # Dimensity 8100 (MT6895): not in devices.yaml, mask from cpufreq
        "serial": "9a3f51c2",
        "props": {
            "ro.product.model": "22021211RC", "ro.product.manufacturer": "Xiaomi",
            "ro.product.name": "rubens", "ro.product.device": "rubens",
            "ro.soc.model": "MT6895", "ro.soc.manufacturer": "Mediatek",
            "ro.board.platform": "mt6895", "ro.product.cpu.abi": "arm64-v8a",
            "ro.product.cpu.abilist": "arm64-v8a,armeabi-v7a,armeabi",
            "ro.build.version.release": "13", "ro.build.version.sdk": "33",
            "ro.build.fingerprint":
                "Redmi/rubens/rubens:13/TP1A.220624.014/V14.0.3.0.TLNCNXM:user/release-keys"},
        "cpu_khz": [2000000] * 4 + [2850000] * 4,
    },
    "galaxy_a10": {  # 32-bit only: Exynos 7884, armeabi-v7a userspace
        "serial": "R58M12QWERT",
        "props": {
            "ro.product.model": "SM-A105F", "ro.product.manufacturer": "samsung",
            "ro.product.name": "a10dd", "ro.product.device": "a10",
            "ro.board.platform": "exynos5", "ro.product.cpu.abi": "armeabi-v7a",
            "ro.product.cpu.abilist": "armeabi-v7a,armeabi",
            "ro.build.version.release": "11", "ro.build.version.sdk": "30",
            "ro.build.fingerprint":
                "samsung/a10dd/a10:11/RP1A.200720.012/A105FDDU9CVC1:user/release-keys"},
        "cpu_khz": [1352000] * 6 + [1560000] * 2,
    },
}

ELF_MACHINE = {"arm64-v8a": (2, 0xB7), "armeabi-v7a": (1, 0x28), "x86_64": (2, 0x3E),
               "x86": (1, 0x03)}

TASKSET = """#!/bin/sh
# The phone's taskset (toybox style: taskset MASK COMMAND...): refuses masks naming cores the
# phone does not have, records MASK=COMMAND in taskset.log, runs the command.
mask=$1
shift
case "$mask" in ''|*[!0-9a-fA-F]*) echo "taskset: bad mask '$mask'" >&2; exit 1 ;; esac
if [ $((0x$mask >> {ncpu})) -ne 0 ] || [ $((0x$mask)) -eq 0 ]; then
  echo "taskset: sched_setaffinity: Invalid argument" >&2
  exit 1
fi
echo "$mask=${{1##*/}}" >> "{root}/taskset.log"
exec "$@"
"""

SLEEP = """#!/bin/sh
# The phone cools while run_benchmark.sh sleeps: each call takes the next temperature of
# thermal_schedule (millidegrees) and writes it to every thermal zone; no real waiting.
echo "$1" >> "{root}/sleep.log"
sched="{root}/thermal_schedule"
if [ -s "$sched" ]; then
  t=$(head -n 1 "$sched")
  tail -n +2 "$sched" > "$sched.tmp"
  mv "$sched.tmp" "$sched"
  for zone in "{root}"/sys/class/thermal/thermal_zone*/temp; do
    echo "$t" > "$zone"
  done
fi
"""


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def benchmark_wrapper() -> str:
    """An executable text that runs fake_benchmark_model.py (what is pushed or installed)."""
    return (f"#!/bin/sh\nexec \"{sys.executable}\" -S \"{HERE / 'fake_benchmark_model.py'}\" "
            "\"$@\"\n")


def elf_stub(abi: str) -> bytes:
    """The first 64 bytes of an ELF executable built for `abi` (not runnable here)."""
    elf_class, machine = ELF_MACHINE[abi]
    ident = bytes([0x7F, 0x45, 0x4C, 0x46, elf_class, 1, 1, 0]) + bytes(8)
    return ident + (2).to_bytes(2, "little") + machine.to_bytes(2, "little") + bytes(44)


class FakeAdb:
    """Fake phones behind a fake adb.

    Args:
        root: an empty folder to build everything in.
        messages: "new" (``adb: ...`` errors) or "old" (``error: ...``).
    """

    def __init__(self, root: Path, messages: str = "new"):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.state_path = self.root / "state.json"
        self.host_bin = self.root / "host_bin"
        self.host_bin.mkdir(exist_ok=True)
        _executable(self.host_bin / "adb",
                    f"#!/bin/sh\nexec \"{sys.executable}\" -S \"{HERE / 'fake_adb.py'}\" \"$@\"\n")
        self.devices: list[dict] = []
        self.messages = messages
        self.write()

    def write(self) -> None:
        """Save the state (call after changing a phone's faults by hand)."""
        state = {"root": str(self.root), "fixtures": str(FIXTURES), "messages": self.messages,
                 "devices": self.devices}
        self.state_path.write_text(json.dumps(state, indent=1))

    def phone_dir(self, serial: str) -> Path:
        """The folder standing for a phone's file system."""
        return self.root / serial

    def add_phone(self, preset: str = "pixel7", serial: str | None = None,
                  state: str = "device", binary: str = "ok", outputs: dict | None = None,
                  faults: dict | None = None, temps_mc: list[int] | None = None,
                  cool_schedule_mc: list[int] | None = None,
                  props: dict | None = None) -> dict:
        """Plug in a phone.

        Args:
            preset: a key of PRESETS.
            serial: overrides the preset's serial.
            state: what ``adb devices`` shows: device, unauthorized, offline, ...
            binary: "ok" (a working benchmark_model), "missing", or an ABI name for an
                ELF stub built for that ABI.
            outputs: fixture choice (``default``, ``op_profile``, ``by_model``).
            faults: see fake_adb.py and fake_benchmark_model.py.
            temps_mc: thermal zone readings in millidegrees C.
            cool_schedule_mc: readings the zones take at each ``sleep`` of the script.
            props: getprop values overriding the preset's.
        """
        spec = copy.deepcopy(PRESETS[preset])
        serial = serial or spec["serial"]
        folder = self.phone_dir(serial)
        tmp = folder / "data" / "local" / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        cpus = spec["cpu_khz"]
        for index, khz in enumerate(cpus):
            freq = folder / "sys" / "devices" / "system" / "cpu" / f"cpu{index}" / "cpufreq"
            freq.mkdir(parents=True, exist_ok=True)
            (freq / "cpuinfo_max_freq").write_text(f"{khz}\n")
        for index, temp in enumerate(temps_mc or [36000, 33500, 31000]):
            zone = folder / "sys" / "class" / "thermal" / f"thermal_zone{index}"
            zone.mkdir(parents=True, exist_ok=True)
            (zone / "temp").write_text(f"{temp}\n")
            (zone / "type").write_text(["cpu-1-0", "soc", "battery"][index % 3] + "\n")
        if cool_schedule_mc:
            (folder / "thermal_schedule").write_text(
                "".join(f"{t}\n" for t in cool_schedule_mc))
        bin_dir = folder / "bin"
        bin_dir.mkdir(exist_ok=True)
        _executable(bin_dir / "taskset", TASKSET.format(root=folder, ncpu=len(cpus)))
        _executable(bin_dir / "sleep", SLEEP.format(root=folder))
        binary_path = tmp / "benchmark_model"
        if binary == "ok":
            _executable(binary_path, benchmark_wrapper())
        elif binary != "missing":
            binary_path.write_bytes(elf_stub(binary))
            binary_path.chmod(0o755)
        device = {"serial": serial, "state": state,
                  "props": {**spec["props"], **(props or {})},
                  "outputs": outputs or {"default": "v2022_info_prefix_memory_delta.txt",
                                         "op_profile": "v2024_percentiles_op_profile.txt"},
                  "faults": faults or {}}
        self.devices.append(device)
        self.write()
        return device

    def device(self, serial: str) -> dict:
        """A phone's entry in the state (change it, then call `write`)."""
        return next(d for d in self.devices if d["serial"] == serial)

    def adb_calls(self) -> list[list[str]]:
        """Every adb command line run so far."""
        path = self.root / "adb_calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if \
            path.exists() else []

    def benchmark_calls(self, serial: str) -> list[dict]:
        """Every benchmark_model run on a phone: ``{"argv", "flags"}``."""
        path = self.phone_dir(serial) / "benchmark_calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if \
            path.exists() else []

    def log_lines(self, serial: str, name: str) -> list[str]:
        """Lines of a phone's ``taskset.log`` or ``sleep.log``."""
        path = self.phone_dir(serial) / name
        return path.read_text().split() if path.exists() else []

    def env(self) -> dict[str, str]:
        """Environment that puts the fake adb first on PATH."""
        return {"PATH": str(self.host_bin) + os.pathsep + os.environ.get("PATH", ""),
                "FAKE_ADB_STATE": str(self.state_path)}
