"""What goes wrong with a latency table (`mobileseg.latency.table.LatencyTable`): a bad file, another device, a missing block."""

from __future__ import annotations


class TableFormatError(ValueError):
    """A latency table file that is not valid JSON, has another schema version, or bad fields."""


class DeviceMismatchError(ValueError):
    """A table measured on another device/runtime/thread count than the one about to add to it."""


class MissingBlockError(KeyError):
    """A block signature with no entry in the table; the message names the block and the file."""

    def __init__(self, key: str, path: str | None):
        self.key = key
        self.path = path
        super().__init__(
            f"block {key} has no entry in the latency table {path or '(not saved to a file)'}; "
            "build the table for this search space and input size (LatencyTable.build), "
            "or use the 'local' latency backend to measure missing blocks on this machine")

    def __str__(self) -> str:
        return self.args[0]
