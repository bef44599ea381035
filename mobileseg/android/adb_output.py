"""What adb prints, read: ``adb devices -l`` lines, a command's result, ``getprop``, the kind of failure.

The client that runs adb is `mobileseg.android.adb_client`.
"""

from __future__ import annotations

import dataclasses
import re

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
