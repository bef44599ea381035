"""A small adb client: list devices, read their properties, push files, run shell commands.

Every call goes through the ``adb`` executable (``subprocess``), so it works with any
platform-tools version and with the fake ``adb`` the tests put on PATH. What the client
adds over raw adb:

- errors classified into `mobileseg.android.errors` with a message saying what to do;
- bounded retries with exponential backoff on transient failures (``error: closed``,
  ``device offline``, protocol faults), after which the device is looked up again so the
  caller learns whether it is offline (`DeviceOfflineError`) or gone (`DeviceLost`);
- a timeout on every command (`AdbTimeoutError`);
- pushes checked by comparing the size on the device with the size here.

Reading what adb prints (device lines, command results, properties, the kind of failure a
message reports) is `mobileseg.android.adb_output`'s.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence

from absl import logging

from mobileseg.android.errors import (AdbCommandError, AdbNotFoundError, AdbTimeoutError,
                                      DeviceLost, DeviceNoPermissionError, DeviceNotFoundError,
                                      DeviceOfflineError, DeviceStateError,
                                      DeviceUnauthorizedError, MultipleDevicesError,
                                      NoDeviceError, PushError)
from mobileseg.android.adb_output import DeviceEntry, ShellResult, classify_message, parse_getprop

class AdbClient:
    """Runs adb commands with classified errors, timeouts and bounded retries.

    Args:
        adb: the adb executable, a name on PATH or a path.
        retries: attempts for a command that fails transiently (at least 1).
        backoff_s: wait before the second attempt; doubled before each later one.
        timeout_s: default time limit of one command.
        sleep: the function that waits (tests pass a no-op).

    Raises:
        AdbNotFoundError: ``adb`` is not on PATH.

    Example:
        >>> AdbClient("surely-not-an-adb-binary")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        mobileseg.android.errors.AdbNotFoundError: adb executable 'surely-not-an-adb-binary' was not found on PATH: ...
    """

    def __init__(self, adb: str = "adb", retries: int = 3, backoff_s: float = 1.0,
                 timeout_s: float = 60.0, sleep: Callable[[float], None] = time.sleep):
        path = shutil.which(adb)
        if path is None:
            raise AdbNotFoundError(adb)
        self.adb = path
        self.retries = max(1, int(retries))
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self._sleep = sleep
        self._seen: set[str] = set()

    # --- raw -----------------------------------------------------------------------------
    def run(self, args: Sequence[str], serial: str | None = None,
            timeout_s: float | None = None) -> ShellResult:
        """Run ``adb [-s SERIAL] ARGS`` once, without retries or error classification.

        Args:
            args: the adb arguments, e.g. ``["devices", "-l"]``.
            serial: the device to address, or None.
            timeout_s: time limit; default the client's.

        Raises:
            AdbTimeoutError: the command did not finish in time (it is killed).
        """
        command = [self.adb] + (["-s", serial] if serial else []) + list(args)
        limit = self.timeout_s if timeout_s is None else timeout_s
        try:
            done = subprocess.run(command, capture_output=True, timeout=limit,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as err:
            raise AdbTimeoutError(args, limit, serial or "") from err
        return ShellResult(done.stdout.decode("utf-8", "replace"),
                           done.stderr.decode("utf-8", "replace"), done.returncode)

    # --- devices -------------------------------------------------------------------------
    def devices(self) -> list[DeviceEntry]:
        """The devices adb knows, in any state (``adb devices -l``)."""
        result = self.run(["devices", "-l"])
        if not result.ok:
            raise AdbCommandError(["devices", "-l"], result.stderr or result.stdout)
        entries = []
        for line in result.stdout.splitlines():
            line = line.strip()
            if not line or line.startswith(("List of devices", "*")):
                continue
            entries.append(DeviceEntry.parse(line))
        self._seen.update(entry.serial for entry in entries)
        return entries

    def _check_state(self, entry: DeviceEntry) -> None:
        if entry.state == "device":
            return
        if entry.state == "unauthorized":
            raise DeviceUnauthorizedError(entry.serial)
        if entry.state == "offline":
            raise DeviceOfflineError(entry.serial)
        if entry.state == "no permissions":
            raise DeviceNoPermissionError(entry.serial)
        if entry.state in ("authorizing", "connecting"):
            raise DeviceStateError(entry.serial, entry.state,
                                   "unlock the phone and wait a few seconds, then try again")
        raise DeviceStateError(entry.serial, entry.state,
                               f"reboot it into Android (`adb -s {entry.serial} reboot`)")

    def select_devices(self, serials: Sequence[str] | None = None) -> list[str]:
        """Check the requested devices are connected and usable, and return their serials.

        Devices that are offline or still authorizing are looked up again (with the
        client's retries and backoff) before giving up, since that state often passes.

        Args:
            serials: the devices wanted; None or empty means "the one connected device".

        Raises:
            NoDeviceError, MultipleDevicesError, DeviceNotFoundError,
            DeviceUnauthorizedError, DeviceOfflineError, DeviceNoPermissionError,
            DeviceStateError: as their names say.
        """
        for attempt in range(1, self.retries + 1):
            entries = {entry.serial: entry for entry in self.devices()}
            if not entries:
                raise NoDeviceError()
            if serials:
                missing = [s for s in serials if s not in entries]
                if missing:
                    raise DeviceNotFoundError(missing[0], list(entries))
                wanted = [entries[s] for s in dict.fromkeys(serials)]
            else:
                if len(entries) > 1:
                    raise MultipleDevicesError(list(entries))
                wanted = list(entries.values())
            passing = [e for e in wanted if e.state in ("offline", "authorizing", "connecting")]
            if not passing or attempt == self.retries:
                for entry in wanted:
                    self._check_state(entry)
                return [entry.serial for entry in wanted]
            logging.warning("device %s is %s; looking again (attempt %d of %d)",
                            passing[0].serial, passing[0].state, attempt, self.retries)
            self._sleep(self.backoff_s * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    # --- commands with retries -------------------------------------------------------------
    def _fail(self, serial: str, kind: str, args: Sequence[str], message: str,
              during: str, stdout: str = "") -> None:
        """Raise the error for a failed command, after looking the device up again."""
        if kind == "unauthorized":
            raise DeviceUnauthorizedError(serial)
        if kind == "no_permission":
            raise DeviceNoPermissionError(serial)
        if kind in ("not_found", "no_device", "offline", "transient"):
            try:
                present = {e.serial: e for e in self.devices()}
            except AdbCommandError:
                present = {}
            if serial not in present:
                if serial in self._seen:
                    raise DeviceLost(serial, during)
                raise DeviceNotFoundError(serial, list(present))
            if present[serial].state != "device":
                self._check_state(present[serial])
            if kind == "offline":
                raise DeviceOfflineError(serial)
        raise AdbCommandError(args, message, serial, stdout)

    def call(self, serial: str, args: Sequence[str], timeout_s: float | None = None,
             during: str = "") -> ShellResult:
        """Run ``adb -s SERIAL ARGS``, retrying transient failures.

        A result whose exit status is not 0 but carries no adb error (a remote command
        that failed on its own) is returned as is: the caller judges it.

        Args:
            serial: the device.
            args: adb arguments.
            timeout_s: time limit of each attempt.
            during: what this command does, for error messages ("pushing m.tflite").

        Raises:
            DeviceLost: the device disappeared.
            DeviceOfflineError: it stayed offline through the retries.
            AdbCommandError: adb failed for another reason.
            AdbTimeoutError: an attempt did not finish in time.
        """
        during = during or f"running adb {' '.join(args)}"
        for attempt in range(1, self.retries + 1):
            result = self.run(args, serial, timeout_s)
            message = result.adb_message() if not result.ok else ""
            if not message:
                self._seen.add(serial)  # it answered: if it vanishes later, it was lost
                return result
            kind = classify_message(message)
            if kind in ("transient", "offline") and attempt < self.retries:
                wait = self.backoff_s * 2 ** (attempt - 1)
                logging.warning("%s: %s (attempt %d of %d, retrying in %.1f s)", serial,
                                message.splitlines()[0], attempt, self.retries, wait)
                self._sleep(wait)
                continue
            self._fail(serial, kind, args, message, during, result.stdout)
        raise AssertionError("unreachable")

    def shell(self, serial: str, command: str | Sequence[str], timeout_s: float | None = None,
              during: str = "") -> ShellResult:
        """Run a command in the device shell (``adb -s SERIAL shell COMMAND``).

        Args:
            serial: the device.
            command: one shell string, or a list of words that are quoted for the device
                shell (so paths with spaces stay one argument).
            timeout_s: time limit of each attempt.
            during: what this command does, for error messages.
        """
        if not isinstance(command, str):
            command = " ".join(shlex.quote(str(word)) for word in command)
        return self.call(serial, ["shell", command], timeout_s, during or f"running {command!r}")

    def getprop(self, serial: str) -> dict[str, str]:
        """All system properties of a device (``adb shell getprop``)."""
        result = self.shell(serial, "getprop", during="reading its properties")
        if not result.ok:
            raise AdbCommandError(["shell", "getprop"], result.stderr or result.stdout, serial)
        return parse_getprop(result.stdout)

    def file_size(self, serial: str, remote: str) -> int | None:
        """Size in bytes of a file on the device, None when it does not exist."""
        result = self.shell(serial, ["stat", "-c", "%s", remote], during=f"checking {remote}")
        text = result.stdout.strip()
        return int(text) if result.ok and text.isdigit() else None

    def push(self, serial: str, local: str | os.PathLike, remote: str,
             timeout_s: float | None = None) -> int:
        """Copy a file to the device and check it arrived whole.

        Args:
            serial: the device.
            local: the file here.
            remote: its path on the device.
            timeout_s: time limit of each attempt.

        Returns:
            The number of bytes pushed.

        Raises:
            PushError: adb could not copy it, or the size on the device differs.
        """
        local = os.fspath(local)
        size = os.path.getsize(local)
        try:
            result = self.call(serial, ["push", local, remote], timeout_s,
                               during=f"pushing {os.path.basename(local)}")
        except AdbCommandError as err:
            raise PushError(serial, local, remote, err.detail) from err
        if not result.ok:
            raise PushError(serial, local, remote, result.stderr or result.stdout)
        on_device = self.file_size(serial, remote)
        if on_device != size:
            got = "no file" if on_device is None else f"{on_device} bytes"
            raise PushError(serial, local, remote,
                            f"size check failed: {size} bytes here, {got} on the device")
        return size
