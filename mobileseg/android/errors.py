"""Everything that can go wrong when benchmarking on an Android phone, as one hierarchy.

Each error says what is wrong and what to do about it, so a CLI can print ``str(err)``
and stop. Two branches:

- `AdbError`: the host cannot reach the phone (no adb, no device, unauthorized,
  offline, several devices, a push that failed, a phone that disappeared);
- `BenchmarkError`: the phone was reached but ``benchmark_model`` did not give a
  result (missing, built for another ABI, failed, killed, output cut short).

`DeviceLost` is the one a long measurement loop catches: whatever was measured before
it is still valid, so the caller saves it and stops.
"""

from __future__ import annotations

from collections.abc import Sequence


class AndroidBenchError(RuntimeError):
    """Root of every Android benchmark error; ``str(err)`` is a complete, actionable message.

    Args:
        message: what is wrong and what to do.
        serial: the device concerned, or "" when the error is not about one device.

    Example:
        >>> err = AndroidBenchError("something broke", serial="R58M")
        >>> str(err), err.serial
        ('something broke', 'R58M')
    """

    def __init__(self, message: str, serial: str = ""):
        super().__init__(message)
        self.serial = serial


class AdbError(AndroidBenchError):
    """The host could not talk to a device through adb.

    Example:
        >>> issubclass(DeviceLost, AdbError), issubclass(AdbError, AndroidBenchError)
        (True, True)
    """


class AdbNotFoundError(AdbError):
    """No ``adb`` executable could be found.

    Args:
        adb: the name or path that was looked for.

    Example:
        >>> print(AdbNotFoundError("adb"))  # doctest: +ELLIPSIS
        adb executable 'adb' was not found on PATH: install Android platform-tools ...
    """

    def __init__(self, adb: str):
        super().__init__(
            f"adb executable {adb!r} was not found on PATH: install Android platform-tools "
            "(https://developer.android.com/tools/releases/platform-tools) and put its folder "
            "on PATH, or pass the full path of adb")
        self.adb = adb


class AdbCommandError(AdbError):
    """An adb command failed for a reason that retrying does not fix.

    Args:
        command: the adb arguments that failed.
        detail: what adb printed.
        serial: the device concerned.
        stdout: what the command printed before failing (a shell's partial output).

    Example:
        >>> print(AdbCommandError(["shell", "ls"], "boom", serial="S1"))
        adb -s S1 shell ls failed: boom
    """

    def __init__(self, command: Sequence[str], detail: str, serial: str = "", stdout: str = ""):
        where = f"-s {serial} " if serial else ""
        super().__init__(f"adb {where}{' '.join(command)} failed: {detail.strip()}", serial)
        self.command = list(command)
        self.detail = detail
        self.stdout = stdout


class AdbTimeoutError(AdbError):
    """An adb command did not finish in time (it was killed).

    Args:
        command: the adb arguments.
        timeout_s: the limit that was exceeded.
        serial: the device concerned.

    Example:
        >>> print(AdbTimeoutError(["shell", "sleep 99"], 5, serial="S1"))  # doctest: +ELLIPSIS
        adb -s S1 shell sleep 99 did not finish within 5 s: ...
    """

    def __init__(self, command: Sequence[str], timeout_s: float, serial: str = ""):
        where = f"-s {serial} " if serial else ""
        super().__init__(
            f"adb {where}{' '.join(command)} did not finish within {timeout_s:g} s: the phone may "
            "be hung or the model too slow; raise the timeout or reduce --num_runs", serial)
        self.timeout_s = timeout_s


class NoDeviceError(AdbError):
    """adb sees no device at all.

    Example:
        >>> print(NoDeviceError())  # doctest: +ELLIPSIS
        no Android device is connected: plug in a phone with USB debugging enabled ...
    """

    def __init__(self):
        super().__init__(
            "no Android device is connected: plug in a phone with USB debugging enabled "
            "(Settings > Developer options > USB debugging) and check that `adb devices` lists it")


class MultipleDevicesError(AdbError):
    """Several devices are connected and none was chosen.

    Args:
        serials: the connected devices.

    Example:
        >>> print(MultipleDevicesError(["A1", "B2"]))  # doctest: +ELLIPSIS
        2 devices are connected (A1, B2): pass --serial to choose one, ...
    """

    def __init__(self, serials: Sequence[str]):
        super().__init__(
            f"{len(serials)} devices are connected ({', '.join(serials)}): pass --serial to choose "
            "one, or repeat --serial to benchmark on each of them in parallel")
        self.serials = list(serials)


class DeviceNotFoundError(AdbError):
    """A requested serial is not among the connected devices.

    Args:
        serial: the device asked for.
        connected: the serials that are connected.

    Example:
        >>> print(DeviceNotFoundError("X9", ["A1"]))
        device X9 is not connected (connected: A1): check the serial with `adb devices`
    """

    def __init__(self, serial: str, connected: Sequence[str]):
        listed = ", ".join(connected) if connected else "none"
        super().__init__(
            f"device {serial} is not connected (connected: {listed}): check the serial with "
            "`adb devices`", serial)
        self.connected = list(connected)


class DeviceStateError(AdbError):
    """A device is connected but in a state where it cannot run commands.

    Args:
        serial: the device.
        state: the state adb reports for it.
        advice: what to do about it.

    Example:
        >>> print(DeviceStateError("S1", "recovery", "reboot it into Android"))
        device S1 is in state 'recovery': reboot it into Android
    """

    def __init__(self, serial: str, state: str, advice: str):
        super().__init__(f"device {serial} is in state {state!r}: {advice}", serial)
        self.state = state


class DeviceUnauthorizedError(DeviceStateError):
    """The phone has not accepted this computer's USB debugging key.

    Example:
        >>> print(DeviceUnauthorizedError("R58M"))  # doctest: +ELLIPSIS
        device R58M is unauthorized: accept the USB debugging prompt on the phone ...
    """

    def __init__(self, serial: str):
        AdbError.__init__(
            self,
            f"device {serial} is unauthorized: accept the USB debugging prompt on the phone "
            "(tick 'Always allow from this computer'); if no prompt shows, revoke USB debugging "
            "authorizations in Developer options and reconnect the cable", serial)
        self.state = "unauthorized"


class DeviceOfflineError(DeviceStateError):
    """The phone is listed but offline (and stayed offline through the retries).

    Example:
        >>> print(DeviceOfflineError("R58M"))  # doctest: +ELLIPSIS
        device R58M is offline: unplug and replug the cable, ...
    """

    def __init__(self, serial: str):
        AdbError.__init__(
            self,
            f"device {serial} is offline: unplug and replug the cable, unlock the phone, or run "
            "`adb reconnect offline`; if it stays offline, restart adb with `adb kill-server`",
            serial)
        self.state = "offline"


class DeviceNoPermissionError(DeviceStateError):
    """The host user may not open the USB device (Linux udev rules).

    Example:
        >>> print(DeviceNoPermissionError("R58M"))  # doctest: +ELLIPSIS
        device R58M is not accessible (no permissions): add a udev rule ...
    """

    def __init__(self, serial: str):
        AdbError.__init__(
            self,
            f"device {serial} is not accessible (no permissions): add a udev rule for the phone "
            "(see https://developer.android.com/studio/run/device) or put your user in the "
            "plugdev group, then reconnect the cable", serial)
        self.state = "no permissions"


class DeviceLost(AdbError):
    """The device disappeared while it was being used (unplugged, rebooted, crashed).

    Everything measured before this error is valid: save it, then stop or retry later.

    Args:
        serial: the device that disappeared.
        during: what was being done when it disappeared.

    Example:
        >>> print(DeviceLost("R58M", "running benchmark_model"))  # doctest: +ELLIPSIS
        device R58M disappeared while running benchmark_model: check the cable ...
    """

    def __init__(self, serial: str, during: str):
        super().__init__(
            f"device {serial} disappeared while {during}: check the cable and that the phone did "
            "not reboot; results measured before this point are kept", serial)
        self.during = during


class PushError(AdbError):
    """A file could not be copied to the device intact.

    Args:
        serial: the device.
        local: the host file.
        remote: where it was going.
        detail: what went wrong.

    Example:
        >>> print(PushError("S1", "m.tflite", "/data/local/tmp/m.tflite", "disk full"))
        ... # doctest: +ELLIPSIS
        could not push m.tflite to S1:/data/local/tmp/m.tflite: disk full; check ...
    """

    def __init__(self, serial: str, local: str, remote: str, detail: str):
        super().__init__(
            f"could not push {local} to {serial}:{remote}: {detail.strip()}; check free space "
            f"with `adb -s {serial} shell df -h /data/local/tmp` and that the folder is writable",
            serial)
        self.local = local
        self.remote = remote


class BenchmarkError(AndroidBenchError):
    """The device was reached but ``benchmark_model`` did not produce a result.

    Example:
        >>> issubclass(WrongAbiError, BenchmarkError)
        True
    """


class BenchmarkBinaryMissingError(BenchmarkError):
    """``benchmark_model`` is not on the device at the expected path.

    Args:
        serial: the device.
        path: where it was looked for.

    Example:
        >>> print(BenchmarkBinaryMissingError("S1", "/data/local/tmp/benchmark_model"))
        ... # doctest: +ELLIPSIS
        benchmark_model is missing on S1 (looked for /data/local/tmp/benchmark_model): ...
    """

    def __init__(self, serial: str, path: str):
        super().__init__(
            f"benchmark_model is missing on {serial} (looked for {path}): download the prebuilt "
            "android_aarch64_benchmark_model (see android_bench/README.md) and pass it with "
            "--benchmark_binary (it is pushed for you), or push it yourself to that path",
            serial)
        self.path = path


class WrongAbiError(BenchmarkError):
    """``benchmark_model`` on the device was built for an ABI the device cannot run.

    Args:
        serial: the device.
        binary_abi: what the binary was built for ("" when unknown).
        device_abis: what the device runs.

    Example:
        >>> print(WrongAbiError("S1", "x86_64", ["arm64-v8a"]))  # doctest: +ELLIPSIS
        benchmark_model on S1 is built for x86_64 but the device runs arm64-v8a: ...
    """

    def __init__(self, serial: str, binary_abi: str, device_abis: Sequence[str]):
        built = binary_abi or "another ABI"
        super().__init__(
            f"benchmark_model on {serial} is built for {built} but the device runs "
            f"{', '.join(device_abis)}: download the build for the device "
            "(android_aarch64_benchmark_model for arm64-v8a, android_arm_benchmark_model for "
            "armeabi-v7a; see android_bench/README.md)", serial)
        self.binary_abi = binary_abi
        self.device_abis = list(device_abis)


class BenchmarkFailedError(BenchmarkError):
    """``benchmark_model`` ran and exited with an error.

    Args:
        serial: the device.
        model: the model being measured.
        detail: the error lines it printed.

    Example:
        >>> print(BenchmarkFailedError("S1", "m.tflite", "Failed to apply GPU delegate."))
        ... # doctest: +ELLIPSIS
        benchmark_model failed on S1 for m.tflite: Failed to apply GPU delegate. ...
    """

    def __init__(self, serial: str, model: str, detail: str):
        super().__init__(
            f"benchmark_model failed on {serial} for {model}: {detail.strip()} (check that the "
            "model file is a valid .tflite and that the delegate supports its ops; run again "
            "with delegate 'xnnpack' to compare)", serial)
        self.model = model
        self.detail = detail


class BenchmarkKilledError(BenchmarkError):
    """``benchmark_model`` was killed by a signal before it finished.

    Args:
        serial: the device.
        model: the model being measured.
        signal: the signal number.

    Example:
        >>> print(BenchmarkKilledError("S1", "m.tflite", 9))  # doctest: +ELLIPSIS
        benchmark_model was killed by signal 9 (SIGKILL) on S1 for m.tflite: ...
    """

    _ADVICE = {
        9: ("SIGKILL", "usually Android's low-memory killer: close other apps, use a smaller "
                       "input size, or fewer threads"),
        6: ("SIGABRT", "the tool aborted, often an unsupported op or a bad flag; run it by hand "
                       "to see its last messages"),
        11: ("SIGSEGV", "the tool crashed: try another benchmark_model build or delegate"),
        15: ("SIGTERM", "something on the phone stopped it (a watchdog or a user)"),
    }

    def __init__(self, serial: str, model: str, signal: int):
        name, advice = self._ADVICE.get(signal, (f"signal {signal}", "see `adb logcat`"))
        super().__init__(
            f"benchmark_model was killed by signal {signal} ({name}) on {serial} for {model}: "
            f"{advice}", serial)
        self.model = model
        self.signal = signal


class BenchmarkOutputError(BenchmarkError, ValueError):
    """Text that should be ``benchmark_model`` output has no result in it.

    Args:
        message: what is missing.

    Example:
        >>> print(BenchmarkOutputError("no timings"))
        no timings
    """


class TruncatedOutputError(BenchmarkOutputError):
    """The output stops before the final timings: the run was cut short.

    Args:
        message: what is missing.
        tail: the last lines that did arrive.
        serial: the device, when known.

    Example:
        >>> err = TruncatedOutputError("output ends early", tail="count=3 first=1")
        >>> err.tail
        'count=3 first=1'
    """

    def __init__(self, message: str, tail: str = "", serial: str = ""):
        super().__init__(message, serial)
        self.tail = tail
