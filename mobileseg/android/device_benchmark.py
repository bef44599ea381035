"""One adb-connected Android phone measuring .tflite models with ``benchmark_model``.

- `AndroidDevice`: one phone, prepared once (script pushed, ``benchmark_model`` checked,
  big-core mask chosen), then `AndroidDevice.measure` for each model and setting. A
  latency table measures hundreds of blocks through one `AndroidDevice`; when the phone
  is unplugged it raises `DeviceLost` and every record returned before stays valid.
- `measure_on_device`: one model on one phone, the phone prepared for that call.

Several models x thread counts on several phones in parallel (the report behind
``python -m mobileseg.bench --adb``) are `mobileseg.android.multi_device`'s.

On the phone, ``android_bench/run_benchmark.sh`` waits for the thermal zones to cool, pins
``benchmark_model`` to the big cores with ``taskset`` and marks its output with
``MOBILESEG_*`` lines (read by `mobileseg.android.script_output`).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Sequence
from pathlib import Path

from absl import logging

from mobileseg.android.adb_client import AdbClient
from mobileseg.android.adb_output import classify_message
from mobileseg.android.benchmark_output import BenchmarkOutput
from mobileseg.android.device_profiles import (SocProfile, android_bench_dir, find_profile,
                                               load_profiles)
from mobileseg.android.errors import AdbCommandError, AndroidBenchError, BenchmarkError, TruncatedOutputError
from mobileseg.android.script_output import ScriptOutput, benchmark_result, int_or_none, raise_script_error
from mobileseg.run.fingerprint import file_digest

__all__ = ["DELEGATES", "AndroidDevice", "measure_on_device"]

DELEGATES = ("xnnpack", "gpu", "nnapi", "none")
DEVICE_DIR = "/data/local/tmp/mobileseg"
DEFAULT_BINARY = "/data/local/tmp/benchmark_model"
SCRIPT_NAME = "run_benchmark.sh"
BENCHMARK_BINARY_ENV = "MOBILESEG_BENCHMARK_MODEL"


def _content_name(path: Path) -> str:
    """``name-<sha1 prefix>.tflite``: distinct for distinct contents, stable across runs."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", path.stem)
    return f"{safe}-{file_digest(path, 'sha1', 10)}{path.suffix or '.tflite'}"


class AndroidDevice:
    """One phone, ready to run ``benchmark_model`` on .tflite files.

    `prepare` (called by the first `measure`) reads the phone's properties, pushes the
    device script (and ``benchmark_model`` when ``binary_local`` is given), checks the
    binary's ABI and chooses the big-core mask: devices.yaml first, else derived on the
    phone from cpufreq.

    Args:
        client: the `AdbClient` to talk through.
        serial: the phone.
        binary_local: a ``benchmark_model`` on this machine to push, or None to use the one
            already at ``binary_remote``.
        binary_remote: where ``benchmark_model`` lives on the phone.
        device_dir: working folder on the phone.
        max_temp_c: wait before each run until every thermal zone is at or below this
            (0 disables the wait).
        cool_timeout_s: longest wait for cooling; the run then goes ahead with a warning.
        cool_poll_s: seconds between temperature reads.
        timeout_s: time limit of one benchmark_model run (on top of the cooling wait).
        profiles: known phones (default: android_bench/devices.yaml).
        bench_dir: where run_benchmark.sh is (default: android_bench/).
        keep_models: leave each model on the phone after measuring it (a later run of the
            same file skips the push); False deletes it, for thousands of one-off blocks.

    Example:
        >>> device = AndroidDevice(client=None, serial="R58M")  # nothing runs before prepare()
        >>> device.script_remote, device.fingerprint
        ('/data/local/tmp/mobileseg/run_benchmark.sh', {'id': 'R58M', 'kind': 'android'})
    """

    def __init__(self, client: AdbClient, serial: str, binary_local: str | None = None,
                 binary_remote: str = DEFAULT_BINARY, device_dir: str = DEVICE_DIR,
                 max_temp_c: int = 45, cool_timeout_s: int = 180, cool_poll_s: int = 5,
                 timeout_s: float = 900.0, profiles: list[SocProfile] | None = None,
                 bench_dir: str | Path | None = None, keep_models: bool = True):
        self.client = client
        self.serial = serial
        self.binary_local = binary_local
        self.binary_remote = binary_remote
        self.device_dir = device_dir
        self.max_temp_c = int(max_temp_c)
        self.cool_timeout_s = int(cool_timeout_s)
        self.cool_poll_s = int(cool_poll_s)
        self.timeout_s = timeout_s
        self.profiles = profiles
        self.bench_dir = Path(bench_dir) if bench_dir is not None else android_bench_dir()
        self.fingerprint: dict = {"id": serial, "kind": "android"}
        self.props: dict[str, str] = {}
        self.keep_models = keep_models
        self._prepared = False
        self._pushed: set[str] = set()

    @classmethod
    def connect(cls, serial: str | None = None, adb: str = "adb", retries: int = 3,
                backoff_s: float = 1.0, **kwargs) -> "AndroidDevice":
        """Select one connected phone (``serial``, or the only one) and prepare it.

        Args:
            serial: the phone, or None when exactly one is connected.
            adb: the adb executable.
            retries, backoff_s: retry policy of the `AdbClient`.
            **kwargs: the other `AndroidDevice` arguments.

        Example:
            >>> AndroidDevice.connect(adb="/no/such/adb")  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            mobileseg.android.errors.AdbNotFoundError: adb executable '/no/such/adb' was not found ...
        """
        client = AdbClient(adb, retries=retries, backoff_s=backoff_s)
        chosen = client.select_devices([serial] if serial else None)[0]
        device = cls(client, chosen, **kwargs)
        device.prepare()
        return device

    @property
    def script_remote(self) -> str:
        """Path of run_benchmark.sh on the phone."""
        return posixpath.join(self.device_dir, SCRIPT_NAME)

    @property
    def abilist(self) -> list[str]:
        """The ABIs the phone runs, preferred first."""
        listed = self.props.get("ro.product.cpu.abilist", "")
        abis = [abi for abi in listed.split(",") if abi]
        primary = self.props.get("ro.product.cpu.abi", "")
        return abis or ([primary] if primary else [])

    def _script(self, args: Sequence[str], during: str, timeout_s: float | None = None
                ) -> ScriptOutput:
        result = self.client.shell(self.serial, ["sh", self.script_remote, *args],
                                   timeout_s=timeout_s, during=during)
        return ScriptOutput.parse(result.stdout + (("\n" + result.stderr) if result.stderr
                                                   else ""))

    def prepare(self) -> dict:
        """Push the script (and binary), check the binary, choose the mask; idempotent.

        Returns:
            The device fingerprint: ``id``, ``kind``, ``model``, ``manufacturer``, ``soc``,
            ``abi``, ``android_version``, ``sdk``, ``build``, ``runtime``, ``big_core_mask``
            (None when the phone could not be pinned), ``big_core_mask_source``
            (``devices.yaml``, ``cpufreq`` or ``none``), ``cpu_max_freq_khz``.

        Raises:
            BenchmarkBinaryMissingError, WrongAbiError: ``benchmark_model`` is unusable.
            PushError, DeviceLost, AdbError: the phone could not be reached or written.
        """
        if self._prepared:
            return self.fingerprint
        props = self.client.getprop(self.serial)
        self.props = props
        self.fingerprint = {
            "id": self.serial, "kind": "android",
            "model": props.get("ro.product.model", ""),
            "manufacturer": props.get("ro.product.manufacturer", ""),
            "soc": props.get("ro.soc.model") or props.get("ro.board.platform", ""),
            "abi": props.get("ro.product.cpu.abi", ""),
            "android_version": props.get("ro.build.version.release", ""),
            "sdk": props.get("ro.build.version.sdk", ""),
            "build": props.get("ro.build.fingerprint", ""),
            "runtime": "benchmark_model",
            "big_core_mask": None, "big_core_mask_source": "none", "cpu_max_freq_khz": {},
        }
        script = self.bench_dir / SCRIPT_NAME
        if not script.is_file():
            raise AndroidBenchError(
                f"the device script {script} is missing: reinstall mobileseg (it ships android_bench/) "
                "or set $MOBILESEG_ANDROID_BENCH_DIR to the android_bench folder")
        self.client.shell(self.serial, ["mkdir", "-p", posixpath.join(self.device_dir, "models")],
                          during="creating its work folder")
        self.client.push(self.serial, script, self.script_remote)
        if self.binary_local:
            self.client.push(self.serial, self.binary_local, self.binary_remote)
            self.client.shell(self.serial, ["chmod", "755", self.binary_remote],
                              during="making benchmark_model executable")
        detected = self._script(["--detect", "--check_binary", "--binary", self.binary_remote,
                                 "--abilist", ",".join(self.abilist)],
                                "checking benchmark_model and its CPUs")
        raise_script_error(detected, self.serial, self.binary_remote, self.abilist)
        if detected.first("BINARY") is None:
            raise BenchmarkError(
                f"run_benchmark.sh did not run on {self.serial}: "
                f"{detected.body.strip()[-300:]!r}", self.serial)
        freqs = {}
        for marker, text in detected.markers:
            if marker == "CPU":
                fields = dict(word.split("=", 1) for word in text.split() if "=" in word)
                freqs[int(fields["cpu"])] = int(fields["max_freq_khz"])
        derived = (detected.first("MASK") or "none").split()[0]
        profile = find_profile(props, self.profiles if self.profiles is not None
                               else load_profiles(self.bench_dir / "devices.yaml"))
        if profile is not None:
            mask, source = profile.big_core_mask, "devices.yaml"
            if derived != "none" and int(derived, 16) != int(mask, 16):
                logging.warning("[%s] devices.yaml gives big-core mask %s for %s but its cpufreq "
                                "suggests %s; using %s", self.serial, mask, profile.name,
                                derived, mask)
        elif derived != "none":
            mask, source = derived, "cpufreq"
        else:
            mask, source = None, "none"
            logging.warning("[%s] no cpufreq information and not in devices.yaml: benchmarks "
                            "run unpinned", self.serial)
        self.fingerprint.update(big_core_mask=mask, big_core_mask_source=source,
                                cpu_max_freq_khz={str(k): v for k, v in sorted(freqs.items())})
        logging.info("[%s] %s %s (%s, %s, Android %s): big cores %s from %s", self.serial,
                     self.fingerprint["manufacturer"], self.fingerprint["model"],
                     self.fingerprint["soc"], self.fingerprint["abi"],
                     self.fingerprint["android_version"], mask or "-", source)
        self._prepared = True
        return self.fingerprint

    def push_model(self, model: str | os.PathLike) -> str:
        """Copy a model to the phone, named by its content, unless that copy is there.

        The name carries a hash of the content, so a file rewritten in place (one temporary
        file per block of a latency table) is pushed again, and an unchanged file is not.

        Args:
            model: the .tflite file here.

        Returns:
            Its path on the phone.
        """
        path = Path(model)
        remote = posixpath.join(self.device_dir, "models", _content_name(path))
        if remote not in self._pushed:
            if self.client.file_size(self.serial, remote) != path.stat().st_size:
                self.client.push(self.serial, path, remote)
            self._pushed.add(remote)
        return remote

    def remove_model(self, remote: str) -> None:
        """Delete a pushed model from the phone (see ``keep_models``)."""
        self.client.shell(self.serial, ["rm", "-f", remote], during=f"removing {remote}")
        self._pushed.discard(remote)

    def measure(self, model: str | os.PathLike, threads: int = 4, delegate: str = "xnnpack",
                op_profile: bool = False, warmup_runs: int = 5, num_runs: int = 50) -> dict:
        """Run ``benchmark_model`` once on one model with one setting.

        Args:
            model: the .tflite file on this machine.
            threads: ``--num_threads``.
            delegate: ``xnnpack``, ``gpu``, ``nnapi`` or ``none`` (reference CPU kernels).
            op_profile: also collect the per-op profile (slows the run a little).
            warmup_runs: ``--warmup_runs``.
            num_runs: ``--num_runs`` (the tool may run more to fill one second).

        Returns:
            A JSON-serialisable record: ``model``, ``model_name``, ``serial``, ``threads``,
            ``delegate``, ``avg_ms``, ``std_ms``, ``min_ms``, ``max_ms``, ``median_ms``,
            ``p5_ms``, ``p95_ms`` (None when the tool's format lacks them), ``init_ms``,
            ``first_ms``, ``warmup_ms``, ``runs``, ``peak_mb``, ``mem_overall_mb``,
            ``op_profile`` and ``op_types`` (None without ``op_profile``), ``delegation``,
            ``big_core_mask``, ``temp_c_start``, ``temp_c``, ``cooldown_s``,
            ``thermal_warning``, ``output_format``, ``warmup_runs``, ``num_runs``.

        Raises:
            DeviceLost: the phone disappeared (records returned before remain valid).
            BenchmarkFailedError, BenchmarkKilledError, TruncatedOutputError,
            BenchmarkBinaryMissingError, WrongAbiError: ``benchmark_model`` gave no result.
            ValueError: an unknown delegate or fewer than one thread (checked first).

        Example:
            >>> AndroidDevice(client=None, serial="R58M").measure("m.tflite", delegate="tpu")
            Traceback (most recent call last):
            ...
            ValueError: delegate must be one of xnnpack, gpu, nnapi, none, got 'tpu'
        """
        if delegate not in DELEGATES:
            raise ValueError(f"delegate must be one of {', '.join(DELEGATES)}, got {delegate!r}")
        if int(threads) < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.prepare()
        name = Path(model).name
        remote = self.push_model(model)
        args = ["--binary", self.binary_remote, "--graph", remote, "--num_threads", str(threads),
                "--delegate", delegate, "--warmup_runs", str(warmup_runs),
                "--num_runs", str(num_runs),
                "--cpu_mask", self.fingerprint["big_core_mask"] or "none",
                "--max_temp_c", str(self.max_temp_c), "--cool_timeout_s", str(self.cool_timeout_s),
                "--cool_poll_s", str(self.cool_poll_s), "--abilist", ",".join(self.abilist)]
        if op_profile:
            args.append("--op_profile")
        try:
            out = self._script(args, f"benchmarking {name}",
                               timeout_s=self.timeout_s + self.cool_timeout_s)
            if not self.keep_models:
                self.remove_model(remote)
        except AdbCommandError as err:
            if classify_message(err.detail) != "transient":
                raise
            tail = "\n".join(ScriptOutput.parse(err.stdout).body.strip().splitlines()[-3:])
            raise TruncatedOutputError(
                f"the output of benchmark_model on {self.serial} for {name} was cut off on every "
                f"attempt ({self.client.retries}; adb said {err.detail.strip()!r}): the USB link "
                "is unstable; try another cable or port, without a hub", tail=tail,
                serial=self.serial) from err
        parsed = self._interpret(out, name)
        thermal = out.fields("THERMAL")
        record = {"model": os.fspath(model), "model_name": name, "serial": self.serial,
                  "threads": int(threads), "delegate": delegate}
        record.update(parsed.summary_ms())
        record.update(
            op_profile=parsed.op_profile_records(), op_types=parsed.op_type_records(),
            delegation=[dict(d) for d in parsed.delegation],
            big_core_mask=self.fingerprint["big_core_mask"],
            temp_c_start=int_or_none(thermal.get("start_c")),
            temp_c=int_or_none(thermal.get("end_c")),
            cooldown_s=int_or_none(thermal.get("waited_s")),
            thermal_warning=out.first("WARNING"), output_format=parsed.format,
            warmup_runs=int(warmup_runs), num_runs=int(num_runs))
        return record

    def _interpret(self, out: ScriptOutput, name: str) -> BenchmarkOutput:
        """The parsed benchmark output, or the error that explains why there is none."""
        return benchmark_result(out, name, self.serial, self.binary_remote, self.abilist,
                                lambda: self.serial in {entry.serial for entry in self.client.devices()})

def measure_on_device(model: str | os.PathLike, serial: str | None = None, threads: int = 4,
                      delegate: str = "xnnpack", op_profile: bool = False,
                      warmup_runs: int = 5, num_runs: int = 50, adb: str = "adb",
                      **device_kwargs) -> dict:
    """Measure ONE .tflite file on one phone with one setting and return one record.

    For many files, keep one `AndroidDevice` (``AndroidDevice.connect``) and call its
    ``measure``: this function prepares the phone on every call.

    Args:
        model: the .tflite file.
        serial: the phone, or None when exactly one is connected.
        threads, delegate, op_profile, warmup_runs, num_runs: see `AndroidDevice.measure`.
        adb: the adb executable.
        **device_kwargs: `AndroidDevice` arguments (``binary_local``, ``max_temp_c``, ...)
            and ``retries`` / ``backoff_s``.

    Returns:
        The record of `AndroidDevice.measure`, with the device fingerprint under
        ``"device"``.

    Raises:
        DeviceLost: the phone disappeared; the caller saves what it has and stops.
        AdbError, BenchmarkError: see `mobileseg.android.errors`.

    Example:
        >>> measure_on_device("m.tflite", adb="/no/such/adb")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        mobileseg.android.errors.AdbNotFoundError: adb executable '/no/such/adb' was not found ...
    """
    device = AndroidDevice.connect(serial, adb=adb, **device_kwargs)
    record = device.measure(model, threads, delegate, op_profile, warmup_runs, num_runs)
    record["device"] = dict(device.fingerprint)
    return record
