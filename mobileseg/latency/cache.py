"""The persistent latency cache: a block measured once on a device is never measured again there.

Every block a `LatencyTable` measures is also stored in one SQLite file in the user's cache
folder, keyed by the device's identity (the measurement fields of its fingerprint,
`mobileseg.latency.device.MEASUREMENT_FIELDS` and ``PHONE_FIELDS``: CPU or phone model, the CPU's
family, model, stepping, caches and SIMD extensions (a virtual machine's generic model name can
hide another host), cores,
runtime and its version, converter version, threads, delegate, clock), the digest of the code
that builds and converts a block (`code_digest`: the block layers, the builder, the flattening
and freezing export applies, the converter and its XNNPACK rewrites) and the block's signature key
(which ends in its quantization). A later table of the same device, in any run folder (a search,
``python -m mobileseg.latency build``, validation), takes its blocks from the cache before measuring
anything; an upgrade of LiteRT or TensorFlow, or a change to how blocks are built or converted, changes
the identity, so nothing measured before it is reused.

Where: ``--latency_cache DIR`` (search, pipeline, latency), else the environment variable
``MOBILESEG_LATENCY_CACHE``, else ``$XDG_CACHE_HOME/mobileseg`` (``~/.cache/mobileseg``); the
value ``off`` turns the cache off. The file is ``DIR/latency_cache.db``. Two processes may
write it at once (SQLite's own locking, write-ahead log, a 60-second busy timeout; each entry
is one transaction). A cache that cannot be opened (a read-only folder, a damaged file) is
reported once and the work goes on without it: it only ever saves time.

``python -m mobileseg.latency cache list`` lists its devices and entry counts,
``cache clear`` empties it (``--device ID`` one device only).

Example:
    >>> import pathlib, tempfile
    >>> from mobileseg.latency.device import local_fingerprint
    >>> from mobileseg.latency.table_entry import TableEntry
    >>> cache = LatencyCache(pathlib.Path(tempfile.mkdtemp()))
    >>> entry = TableEntry(1.0, 1.2, 0.1, 0.9, 50, 1, (), "2025-01-01T00:00:00+00:00")
    >>> cache.put(local_fingerprint(threads=1), "conv|...|q=int8", entry)
    >>> cache.get(local_fingerprint(threads=1), ["conv|...|q=int8"]) == {"conv|...|q=int8": entry}
    True
    >>> cache.get(local_fingerprint(threads=2), ["conv|...|q=int8"])
    {}
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import sqlite3
import sys
from collections.abc import Iterable
from pathlib import Path

from mobileseg.latency.device import IMPLIED, MEASUREMENT_FIELDS, PHONE_FIELDS, UNKNOWN_BEFORE
from mobileseg.latency.table_entry import TableEntry
from mobileseg.run.fingerprint import json_digest, text_digest

CACHE_ENV = "MOBILESEG_LATENCY_CACHE"
OFF = "off"
FILE_NAME = "latency_cache.db"
BUSY_TIMEOUT_S = 60.0
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS devices (device TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, first_seen TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS blocks (device TEXT NOT NULL, key TEXT NOT NULL, entry TEXT NOT NULL, "
    "stored_at TEXT NOT NULL, PRIMARY KEY (device, key))",
)
_warned: set[str] = set()


class CacheError(RuntimeError):
    """The cache file cannot be opened or read; the message names it and says what to do."""


CODE = ("blocks", "arch/builder.py", "arch/ops", "latency/blocks.py", "latency/block_model.py",
        "latency/shipped.py", "quant/flatten.py", "quant/folded.py", "quant/wide_depthwise.py",
        "deploy/packaging.py", "deploy/tflite_convert.py", "deploy/xnnpack_int8.py")
"""What a block's measured latency depends on in mobileseg itself (paths inside the package)."""


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """A digest of the source of `CODE`: a change to how blocks are built or converted changes it
    (read once per process: the source does not change while it runs)."""
    package = Path(__file__).resolve().parents[1]
    paths = [path for name in CODE
             for path in (sorted((package / name).rglob("*.py")) if (package / name).is_dir() else [package / name])]
    return text_digest(b"".join(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes()
                                for path in paths), length=16)


def device_id(fingerprint: dict) -> str:
    """A short stable id of the device a fingerprint describes (its measurement fields only) and
    of the code that builds and converts the blocks (`code_digest`).

    Example:
        >>> from mobileseg.latency.device import local_fingerprint
        >>> a = local_fingerprint(threads=1)
        >>> device_id(a) == device_id(dict(a, python="0.0", system="other"))
        True
        >>> device_id(a) == device_id(dict(a, runtime_version="0.0"))
        False
    """
    identity = {name: fingerprint.get(name, IMPLIED.get(name)) for name in MEASUREMENT_FIELDS + PHONE_FIELDS
                if name not in UNKNOWN_BEFORE or name in fingerprint}  # a phone's key is as before cpu_id
    identity["mobileseg_code"] = code_digest()
    return json_digest(identity, length=16)


def default_folder(environ: dict | None = None) -> Path | None:
    """The cache folder the environment chooses (None: ``off``).

    Example:
        >>> str(default_folder({"MOBILESEG_LATENCY_CACHE": "/tmp/c"})), default_folder({"MOBILESEG_LATENCY_CACHE": "off"})
        ('/tmp/c', None)
        >>> str(default_folder({"XDG_CACHE_HOME": "/x"}))
        '/x/mobileseg'
    """
    environ = os.environ if environ is None else environ
    value = environ.get(CACHE_ENV, "").strip()
    if value.lower() == OFF:
        return None
    if value:
        return Path(value).expanduser()
    base = environ.get("XDG_CACHE_HOME") or str(Path("~").expanduser() / ".cache")
    return Path(base) / "mobileseg"


def use_folder(value: str | None) -> None:
    """Apply a ``--latency_cache`` flag: ``DIR`` or ``off`` for this process and its subprocesses."""
    if value:
        os.environ[CACHE_ENV] = value


def open_default() -> LatencyCache | None:
    """The cache the environment chooses, or None when it is off or cannot be opened (said once)."""
    folder = default_folder()
    if folder is None:
        return None
    try:
        return LatencyCache(folder)
    except CacheError as error:
        warn_once(error)
        return None


def warn_once(error: CacheError) -> None:
    """Say, once per process and problem, that the work goes on without the cache."""
    if str(error) not in _warned:
        _warned.add(str(error))
        print(f"warning: {error}; going on without the latency cache", file=sys.stderr)


class LatencyCache:
    """Block latencies of every device measured on this machine, in ``folder/latency_cache.db``.

    Args:
        folder: created if missing.

    Raises:
        CacheError: the folder cannot be made or the file is not a readable SQLite database.
    """

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / FILE_NAME
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as connection:
                connection.execute("PRAGMA journal_mode=WAL")
                for statement in _SCHEMA:
                    connection.execute(statement)
        except (OSError, sqlite3.Error) as error:
            raise CacheError(f"latency cache {self.path}: {error} (delete the file, or choose another folder "
                             f"with --latency_cache DIR or {CACHE_ENV}=DIR; {OFF} turns it off)") from None

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)

    def _read(self, statement: str, parameters: tuple = ()) -> list:
        try:
            connection = self._connect()
            try:
                return connection.execute(statement, parameters).fetchall()
            finally:
                connection.close()
        except sqlite3.Error as error:
            raise CacheError(f"latency cache {self.path}: {error}") from None

    def _write(self, statements: list[tuple[str, tuple]]) -> None:
        """Run the statements in one transaction (the write lock taken up front)."""
        try:
            connection = self._connect()
            try:
                connection.execute("BEGIN IMMEDIATE")
                for statement, parameters in statements:
                    connection.execute(statement, parameters)
                connection.execute("COMMIT")
            finally:
                connection.close()
        except sqlite3.Error as error:
            raise CacheError(f"latency cache {self.path}: {error}") from None

    def get(self, fingerprint: dict, keys: Iterable[str]) -> dict:
        """``{key: TableEntry}`` of those keys the cache holds for this device."""
        keys, device, found = list(dict.fromkeys(keys)), device_id(fingerprint), {}
        for start in range(0, len(keys), 500):  # SQLite's bound-parameter limit
            chunk = keys[start:start + 500]
            rows = self._read(f"SELECT key, entry FROM blocks WHERE device = ? AND key IN ({','.join('?' * len(chunk))})",
                             (device, *chunk))
            for key, entry in rows:
                found[key] = TableEntry.from_dict(json.loads(entry))
        return found

    def put(self, fingerprint: dict, key: str, entry) -> None:
        """Store (or replace) one block's entry (a `TableEntry`) for this device."""
        self.put_many(fingerprint, {key: entry})

    def put_many(self, fingerprint: dict, entries: dict) -> None:
        """Store (or replace) ``{key: TableEntry}`` for this device, in one transaction."""
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        device = device_id(fingerprint)
        identity = {**fingerprint, "mobileseg_code": code_digest()}
        self._write([("INSERT OR IGNORE INTO devices VALUES (?, ?, ?)",
                      (device, json.dumps(identity, sort_keys=True), now))]
                    + [("INSERT OR REPLACE INTO blocks VALUES (?, ?, ?, ?)",
                        (device, key, json.dumps(entry.to_dict(), sort_keys=True), now))
                       for key, entry in entries.items()])

    def devices(self) -> list[dict]:
        """One row per device: ``device``, ``entries``, ``first_seen``, ``last_stored``, ``fingerprint``."""
        rows = self._read("SELECT d.device, d.fingerprint, d.first_seen, COUNT(b.key), MAX(b.stored_at) "
                         "FROM devices d LEFT JOIN blocks b ON b.device = d.device GROUP BY d.device "
                         "ORDER BY d.first_seen")
        return [{"device": device, "entries": count, "first_seen": first, "last_stored": last,
                 "fingerprint": json.loads(fingerprint)} for device, fingerprint, first, count, last in rows]

    def clear(self, device: str | None = None) -> int:
        """Remove every entry (of one device); how many were removed."""
        where, parameters = ("WHERE device = ?", (device,)) if device else ("", ())
        removed = self._read(f"SELECT COUNT(*) FROM blocks {where}", parameters)[0][0]
        self._write([(f"DELETE FROM blocks {where}", parameters), (f"DELETE FROM devices {where}", parameters)])
        return removed


def describe(fingerprint: dict) -> str:
    """``Intel Xeon ..., ai-edge-litert 2.3.0, TF 2.21.0, 1 thread(s), xnnpack, thread_cpu clock, block code ...``."""
    device = fingerprint.get("model") or fingerprint.get("cpu") or "unknown device"
    return (f"{device}, {fingerprint.get('runtime', '?')} {fingerprint.get('runtime_version', '?')}, "
            f"TF {fingerprint.get('tensorflow', '?')}, {fingerprint.get('threads', '?')} thread(s), "
            f"{fingerprint.get('delegate', 'xnnpack')}, {fingerprint.get('clock', 'wall')} clock, "
            f"block code {fingerprint.get('mobileseg_code', '?')}")


def command(action: str, device: str | None = None) -> int:
    """``python -m mobileseg.latency cache list|clear``; the exit code."""
    folder = default_folder()
    if folder is None:
        print(f"the latency cache is off ({CACHE_ENV}={OFF})")
        return 0
    cache = LatencyCache(folder)
    if action == "clear":
        removed = cache.clear(device)
        print(f"removed {removed} entries{f' of device {device}' if device else ''} from {cache.path}")
        return 0
    devices = cache.devices()
    print(f"{cache.path}: {sum(d['entries'] for d in devices)} entries, {len(devices)} device(s)")
    for row in devices:
        print(f"  {row['device']}  {row['entries']:5d} entries  last {row['last_stored'] or '-'}  "
              f"{describe(row['fingerprint'])}")
    return 0
