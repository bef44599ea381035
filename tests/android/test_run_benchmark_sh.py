"""android_bench/run_benchmark.sh, run here under each POSIX shell at hand (mksh is the shell
of Android; dash and bash stand in where it is missing) with a fake sysfs, a fake
benchmark_model, and the fake phone's taskset and sleep."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mobileseg.android.script_output import ScriptOutput
from mobileseg.android.device_profiles import android_bench_dir
from tests.android.fake_phone import SLEEP, TASKSET, elf_stub

SCRIPT = android_bench_dir() / "run_benchmark.sh"
SHELLS = [pytest.param(name, marks=pytest.mark.skipif(shutil.which(name) is None,
                                                      reason=f"{name} is not installed"))
          for name in ("dash", "bash", "mksh")]

FAKE_BINARY = """#!/bin/sh
# Stand-in benchmark_model: one ARG line per argument, on stderr like the real tool.
for arg in "$@"; do echo "ARG $arg" >&2; done
if [ -n "$FAKE_KILL" ]; then kill -9 $$; fi
echo "INFO: Inference timings in us: Init: 10, First inference: 20, Warmup (avg): 15, Inference (avg): 12.5" >&2
exit "${FAKE_EXIT:-0}"
"""


class Phone:
    """A fake device file system in a folder: sysfs, bin (taskset, sleep), the binary."""

    def __init__(self, root: Path, cpu_khz: list[int], temps: list[str] | None = None,
                 schedule: list[int] | None = None):
        self.root = root
        for index, khz in enumerate(cpu_khz):
            freq = root / "sys" / "devices" / "system" / "cpu" / f"cpu{index}" / "cpufreq"
            freq.mkdir(parents=True)
            (freq / "cpuinfo_max_freq").write_text(f"{khz}\n")
        for index, temp in enumerate(temps or ["35000"]):
            zone = root / "sys" / "class" / "thermal" / f"thermal_zone{index}"
            zone.mkdir(parents=True)
            (zone / "temp").write_text(temp + "\n")
        if schedule:
            (root / "thermal_schedule").write_text("".join(f"{t}\n" for t in schedule))
        self.bin = root / "bin"
        self.bin.mkdir()
        for name, text in (("taskset", TASKSET.format(root=root, ncpu=len(cpu_khz))),
                           ("sleep", SLEEP.format(root=root))):
            (self.bin / name).write_text(text)
            (self.bin / name).chmod(0o755)
        self.binary = root / "benchmark_model"
        self.binary.write_text(FAKE_BINARY)
        self.binary.chmod(0o755)

    def run(self, shell: str, *args: str, env: dict | None = None) -> tuple[int, ScriptOutput]:
        environment = dict(os.environ, MOBILESEG_SYSFS=str(self.root / "sys"),
                           PATH=f"{self.bin}{os.pathsep}{os.environ['PATH']}", **(env or {}))
        done = subprocess.run([shell, str(SCRIPT), *args], env=environment, capture_output=True,
                              text=True, timeout=30)
        # Everything goes to stdout (2>&1), but for the shell's own note on a killed child.
        assert all("Killed" in line for line in done.stderr.splitlines()), done.stderr
        return done.returncode, ScriptOutput.parse(done.stdout)

    def log(self, name: str) -> list[str]:
        path = self.root / name
        return path.read_text().split() if path.exists() else []


def args_of(out: ScriptOutput) -> list[str]:
    return [line[4:] for line in out.body.splitlines() if line.startswith("ARG ")]


PIXEL7 = [1803000] * 4 + [2348000] * 2 + [2850000] * 2


@pytest.mark.parametrize("shell", SHELLS)
def test_syntax(shell):
    assert subprocess.run([shell, "-n", str(SCRIPT)]).returncode == 0


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("cpu_khz, mask", [
    (PIXEL7, "f0"),  # Tensor G2: 4 LITTLE, 2 mid, 2 big
    ([2016000] * 3 + [2803200] * 4 + [3360000], "f8"),  # Snapdragon 8 Gen 2: 3 + 4 + 1
    ([1704000] * 4 + [2367000] * 4 + [2910000], "1f0"),  # Tensor G3: 9 cores
    ([1800000] * 4, "f"),  # every core alike: use them all
])
def test_detect_derives_big_cores_from_cpufreq(tmp_path, shell, cpu_khz, mask):
    code, out = Phone(tmp_path, cpu_khz).run(shell, "--detect")
    assert code == 0
    assert out.first("MASK") == f"{mask} source=cpufreq"
    cpus = [text for name, text in out.markers if name == "CPU"]
    assert cpus[0] == f"cpu=0 max_freq_khz={cpu_khz[0]}" and len(cpus) == len(cpu_khz)


def test_detect_without_cpufreq(tmp_path):
    code, out = Phone(tmp_path, []).run("bash", "--detect")
    assert code == 0 and out.first("MASK") == "none source=none"


@pytest.mark.parametrize("shell", SHELLS)
def test_check_binary(tmp_path, shell):
    phone = Phone(tmp_path, PIXEL7)
    code, out = phone.run(shell, "--check_binary", "--binary", str(phone.binary),
                          "--abilist", "arm64-v8a")
    assert code == 0 and out.fields("BINARY")["abi"] == "unknown"  # a script, not ELF

    phone.binary.write_bytes(elf_stub("arm64-v8a"))
    code, out = phone.run(shell, "--check_binary", "--binary", str(phone.binary),
                          "--abilist", "arm64-v8a,armeabi-v7a")
    assert code == 0 and out.fields("BINARY")["abi"] == "arm64-v8a"

    code, out = phone.run(shell, "--check_binary", "--binary", str(phone.binary),
                          "--abilist", "armeabi-v7a,armeabi")
    assert code == 4
    assert out.first("ERROR") == "wrong_abi binary=arm64-v8a device=armeabi-v7a,armeabi"

    code, out = phone.run(shell, "--check_binary", "--binary", str(tmp_path / "absent"))
    assert code == 3 and out.first("ERROR") == f"binary_missing path={tmp_path / 'absent'}"


def test_binary_without_exec_bit_is_made_executable(tmp_path):
    phone = Phone(tmp_path, PIXEL7)
    phone.binary.chmod(0o644)
    code, out = phone.run("bash", "--check_binary", "--binary", str(phone.binary))
    assert code == 0 and out.first("BINARY") is not None
    assert os.access(phone.binary, os.X_OK)


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("delegate, flags", [
    ("xnnpack", ["--use_xnnpack=true", "--use_gpu=false", "--use_nnapi=false"]),
    ("gpu", ["--use_gpu=true", "--use_xnnpack=false", "--use_nnapi=false"]),
    ("nnapi", ["--use_nnapi=true", "--use_xnnpack=false", "--use_gpu=false"]),
    ("none", ["--use_xnnpack=false", "--use_gpu=false", "--use_nnapi=false"]),
])
def test_run_passes_benchmark_model_flags_pinned_to_big_cores(tmp_path, shell, delegate, flags):
    phone = Phone(tmp_path, PIXEL7)
    graph = tmp_path / "my model.tflite"  # a space: must stay one argument
    code, out = phone.run(shell, "--binary", str(phone.binary), "--graph", str(graph),
                          "--num_threads", "2", "--delegate", delegate, "--warmup_runs", "3",
                          "--num_runs", "20", "--op_profile", "--max_temp_c", "0")
    assert code == 0 and out.exit_status == 0
    assert args_of(out) == [f"--graph={graph}", "--num_threads=2", "--warmup_runs=3",
                            "--num_runs=20", *flags, "--enable_op_profiling=true",
                            "--report_peak_memory_footprint=true"]
    # The mask (auto: from cpufreq) is tried on `true` first, then used for the run.
    assert phone.log("taskset.log") == ["f0=true", "f0=benchmark_model"]
    assert out.fields("BEGIN")["mask"] == "f0" and out.fields("BEGIN")["delegate"] == delegate
    assert "Inference (avg): 12.5" in out.body


def test_explicit_mask_and_refused_mask(tmp_path):
    phone = Phone(tmp_path, PIXEL7)
    base = ["--binary", str(phone.binary), "--graph", "g.tflite", "--max_temp_c", "0"]
    code, out = phone.run("bash", *base, "--cpu_mask", "c0")
    assert code == 0 and phone.log("taskset.log") == ["c0=true", "c0=benchmark_model"]
    code, out = phone.run("bash", *base, "--cpu_mask", "1f0")  # cpu8 does not exist here
    assert code == 0 and "taskset refused mask 1f0" in out.first("WARNING")
    assert out.fields("BEGIN")["mask"] == "none" and len(phone.log("taskset.log")) == 2
    code, out = phone.run("bash", *base, "--cpu_mask", "none")
    assert code == 0 and out.fields("BEGIN")["mask"] == "none"


@pytest.mark.parametrize("shell", SHELLS)
def test_waits_for_the_phone_to_cool(tmp_path, shell):
    phone = Phone(tmp_path, PIXEL7, temps=["55000", "-273000", "41"],
                  schedule=[52000, 47000, 44000, 30000])
    code, out = phone.run(shell, "--binary", str(phone.binary), "--graph", "g.tflite",
                          "--max_temp_c", "45", "--cool_poll_s", "2")
    assert code == 0
    assert out.fields("THERMAL") == {"start_c": "55", "end_c": "44", "waited_s": "6",
                                     "limit_c": "45"}
    assert phone.log("sleep.log") == ["2", "2", "2"] and out.first("WARNING") is None
    # The wait comes before the benchmark starts.
    names = [name for name, _ in out.markers]
    assert names.index("THERMAL") < names.index("BEGIN") < names.index("EXIT")


def test_cooling_timeout_runs_anyway_with_a_warning(tmp_path):
    phone = Phone(tmp_path, PIXEL7, temps=["61000"], schedule=[60000] * 10)
    code, out = phone.run("bash", "--binary", str(phone.binary), "--graph", "g.tflite",
                          "--max_temp_c", "45", "--cool_poll_s", "1", "--cool_timeout_s", "3")
    assert code == 0 and out.exit_status == 0
    assert out.fields("THERMAL")["waited_s"] == "3" and out.fields("THERMAL")["end_c"] == "60"
    assert out.first("WARNING").startswith("still 60C after 3s")


@pytest.mark.parametrize("shell", SHELLS)
def test_exit_status_and_kill_are_reported(tmp_path, shell):
    phone = Phone(tmp_path, PIXEL7)
    base = ["--binary", str(phone.binary), "--graph", "g.tflite", "--max_temp_c", "0"]
    code, out = phone.run(shell, *base, env={"FAKE_EXIT": "3"})
    assert code == 3 and out.exit_status == 3
    code, out = phone.run(shell, *base, env={"FAKE_KILL": "1"})
    assert out.exit_status == 137 and "Inference timings" not in out.body


def test_binary_for_another_abi_that_passes_the_check_cannot_run(tmp_path):
    phone = Phone(tmp_path, PIXEL7)
    phone.binary.write_bytes(elf_stub("arm64-v8a"))  # right for the "phone", not for this CPU
    code, out = phone.run("bash", "--binary", str(phone.binary), "--graph", "g.tflite",
                          "--abilist", "arm64-v8a", "--max_temp_c", "0", "--cpu_mask", "none")
    assert out.exit_status == 126 and "Exec format error" in out.body


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "unknown option --bogus"),
    (["--num_runs"], "option --num_runs needs a value"),
    (["--num_runs", "many"], "num_runs must be a whole number, got 'many'"),
    (["--delegate", "cuda", "--graph", "g"], "--delegate must be xnnpack, gpu, nnapi or none"),
    (["--cpu_mask", "0xzz", "--graph", "g"], "--cpu_mask must be hexadecimal"),
    ([], "--graph is required"),
])
def test_usage_errors(tmp_path, args, message):
    phone = Phone(tmp_path, PIXEL7)
    code, out = phone.run("bash", "--binary", str(phone.binary), "--max_temp_c", "0", *args)
    assert code == 2 and message in out.first("ERROR")


def test_detect_and_check_in_one_call(tmp_path):
    phone = Phone(tmp_path, PIXEL7)
    code, out = phone.run("dash", "--detect", "--check_binary", "--binary", str(phone.binary))
    assert code == 0
    assert out.first("MASK") == "f0 source=cpufreq" and out.first("BINARY").startswith("ok ")
    assert [name for name, _ in out.markers][-2:] == ["MASK", "BINARY"]
