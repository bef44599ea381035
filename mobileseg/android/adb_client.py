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
"""

from __future__ import annotations

import dataclasses
import os
import re
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

# adb's own messages (not the remote command's stderr) start like this.
_ADB_MESSAGE = re.compile(r"^(?:error:|adb: |adb:)", re.MULTILINE)
_TRANSIENT = ("error: closed", "protocol fault", "connection reset", "broken pipe",
              "failed to get feature set", "device still authorizing",
              "device still connecting", "cannot connect to daemon", "daemon not running")
_PROP_LINE = re.compile(r"^\[(.+?)\]: \[(.*)\]$")
_ATTR = re.compile(r"^(usb|product|model|device|transport_id|features):(.*)$")


@dataclasses.dataclass(frozen=True)
class DeviceEntry:
    """One line of ``adb devices -l``.

    Args:
        serial: the device serial (or ``host:port`` for adb over Wi-Fi).
        state: ``device`` when usable; else ``unauthorized``, ``offline``,
            ``no permissions``, ``recovery``, ...
        attrs: the ``key:value`` fields adb adds (``model``, ``product``, ``device``,
            ``usb``, ``transport_id``).

    Example:
        >>> DeviceEntry.parse("R58M1 device usb:1-1 product:dm1q model:SM_S911B device:dm1q")
        DeviceEntry(serial='R58M1', state='device', attrs={'usb': '1-1', 'product': 'dm1q', 'model': 'SM_S911B', 'device': 'dm1q'})
        >>> DeviceEntry.parse("0123 no permissions (user in plugdev group); see [http://x]").state
        'no permissions'
    """

    serial: str
    state: str
    attrs: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def parse(cls, line: str) -> "DeviceEntry":
        """Read one device line of ``adb devices -l``."""
        tokens = line.split()
        if len(tokens) < 2:
            raise ValueError(f"not a device line of `adb devices -l`: {line!r}")
        serial, rest = tokens[0], tokens[1:]
        if rest[0] == "no" and len(rest) > 1 and rest[1].startswith("permission"):
            state = "no permissions"
        else:
            state = rest[0]
        attrs = {}
        for token in rest[1:]:
            match = _ATTR.match(token)
            if match:
                attrs[match.group(1)] = match.group(2)
        return cls(serial, state, attrs)


@dataclasses.dataclass(frozen=True)
class ShellResult:
    """What one adb command returned.

    Args:
        stdout: standard output (for ``adb shell``, the remote command's output).
        stderr: standard error (adb's own messages, and the remote stderr).
        returncode: adb's exit status (for ``adb shell`` on Android 7+, the remote one).

    Example:
        >>> ShellResult("ok\\n", "", 0).ok
        True
    """

    stdout: str
    stderr: str
    returncode: int

    @property
    def ok(self) -> bool:
        """Whether the command exited with status 0."""
        return self.returncode == 0

    def adb_message(self) -> str:
        """adb's own error lines (``error: ...``, ``adb: ...``), "" when there are none.

        Example:
            >>> ShellResult("", "adb: device offline\\n", 1).adb_message()
            'adb: device offline'
            >>> ShellResult("", "stat: '/x': No such file or directory\\n", 1).adb_message()
            ''
        """
        text = self.stderr if _ADB_MESSAGE.search(self.stderr) else (
            self.stdout if self.returncode != 0 and _ADB_MESSAGE.search(self.stdout) else "")
        return "\n".join(line for line in text.splitlines() if _ADB_MESSAGE.match(line)
                         or line.lower().startswith(("this adb server", "try 'adb", "otherwise")))


def classify_message(message: str) -> str:
    """What kind of failure an adb error message reports.

    Args:
        message: adb's own error lines.

    Returns:
        One of ``unauthorized``, ``no_permission``, ``offline``, ``not_found``,
        ``no_device``, ``multiple``, ``transient`` (worth retrying) or ``failed``.

    Example:
        >>> classify_message("error: closed"), classify_message("adb: device 'X' not found")
        ('transient', 'not_found')
        >>> classify_message("adb: error: failed to copy 'a' to 'b': remote Read-only file system")
        'failed'
    """
    text = message.lower()
    if "unauthorized" in text:
        return "unauthorized"
    if "no permissions" in text or "insufficient permissions" in text:
        return "no_permission"
    if "offline" in text:
        return "offline"
    if "no devices/emulators found" in text or "no devices found" in text:
        return "no_device"
    if re.search(r"device '?[^']*'? not found", text):
        return "not_found"
    if "more than one device" in text:
        return "multiple"
    if any(marker in text for marker in _TRANSIENT):
        return "transient"
    return "failed"


def parse_getprop(text: str) -> dict[str, str]:
    """``adb shell getprop`` output as a dict.

    Args:
        text: lines like ``[ro.product.model]: [Pixel 7]``.

    Example:
        >>> parse_getprop("[ro.product.model]: [Pixel 7]\\n[ro.soc.model]: [GS201]\\n")
        {'ro.product.model': 'Pixel 7', 'ro.soc.model': 'GS201'}
    """
    props = {}
    for line in text.splitlines():
        match = _PROP_LINE.match(line.strip())
        if match:
            props[match.group(1)] = match.group(2)
    return props


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
