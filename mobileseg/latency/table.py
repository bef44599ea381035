"""The block latency table: measured latencies keyed by `BlockSignature`, one device per file.

On disk it is versioned JSON (docs/architecture.md, section 3)::

    {
      "schema_version": 1,
      "fingerprint": {"cpu": "...", "cores": 2, "runtime_version": "2.3.0", "threads": 1, ...},
      "quantization": "int8",
      "overhead": null | {"kind": "offset", "scale": 1.0, "offset_ms": 0.4, ...},
      "entries": {"mbconv|in=45x60x32|...|q=int8": {"median_ms": 0.81, "p90_ms": 0.85,
                  "std_ms": 0.02, "min_ms": 0.79, "runs": 60, "xnnpack_partitions": 1,
                  "fallback_ops": [], "measured_at": "2025-01-01T00:00:00+00:00"}}
    }

One table is one device + runtime + thread count + quantization: the fingerprint
says which, and every entry's key ends in the table's quantization.

`LatencyTable.build` converts each missing block as export converts a network
(`mobileseg.latency.shipped.block_flatbuffer`: flattened, frozen, export's converter), measures it,
and rewrites the file atomically (`mobileseg.atomic_write`: a temporary file + ``os.replace``) after
every entry, so a build that is killed keeps everything it measured and the next
build measures only the rest. A single process writes a table at a time. The errors a table
raises are `mobileseg.latency.table_errors`'.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping

from mobileseg.atomic_write import write_atomic
from mobileseg.latency.cache import CacheError, open_default, warn_once
from mobileseg.latency.device import fingerprint_mismatch, local_fingerprint
from mobileseg.latency.overhead import Overhead
from mobileseg.latency.signature import QUANTIZATIONS, BlockSignature
from mobileseg.latency.table_entry import TableEntry
from mobileseg.latency.table_errors import DeviceMismatchError, MissingBlockError, TableFormatError
from mobileseg.text_files import read_text

SCHEMA_VERSION = 1
DEFAULT_CACHE = object()
"""`LatencyTable.load_or_create`'s default: the persistent cache the environment chooses."""
_TOP_LEVEL = ("schema_version", "fingerprint", "quantization", "overhead", "entries")


class LatencyTable:
    """Measured block latencies of one device, keyed by `BlockSignature`.

    Args:
        fingerprint: the device, runtime and thread count (`local_fingerprint` for this machine).
        quantization: the mode of every entry: ``int8`` (default), ``fp16`` or ``fp32``.
        entries: ``{key: TableEntry}``.
        overhead: the fitted `Overhead`, or None before one is fitted.
        path: the file `save` writes by default.
        cache: a `mobileseg.latency.cache.LatencyCache`: `build` takes the blocks it holds for
            this fingerprint instead of measuring them, and stores every block it measures.

    Example:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "table.json"
        >>> table = LatencyTable(local_fingerprint(threads=1), path=path)
        >>> sig = BlockSignature("conv", (16, 16, 8), (16, 16, 8), kernel=3)
        >>> table.add(sig, {"median_ms": 0.05, "p90_ms": 0.06, "std_ms": 0.01, "min_ms": 0.04,
        ...                 "runs": 20, "xnnpack_partitions": 1, "fallback_ops": []})
        >>> table.save()
        >>> LatencyTable.load(path)[sig].median_ms
        0.05
    """

    def __init__(self, fingerprint: dict, quantization: str = "int8",
                 entries: Mapping[str, TableEntry] | None = None, overhead: Overhead | None = None,
                 path: str | os.PathLike | None = None, cache=None):
        if quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, "
                             f"got {quantization!r}")
        self.fingerprint = dict(fingerprint)
        self.quantization = quantization
        self.entries: dict[str, TableEntry] = dict(entries or {})
        self.overhead = overhead
        self.path = os.fspath(path) if path is not None else None
        self.cache = cache

    # ---- lookup -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, signature: BlockSignature | str) -> bool:
        return _key(signature) in self.entries

    def __getitem__(self, signature: BlockSignature | str) -> TableEntry:
        key = _key(signature)
        try:
            return self.entries[key]
        except KeyError:
            raise MissingBlockError(key, self.path) from None

    def signatures(self) -> list[BlockSignature]:
        """Every entry's signature, in key order."""
        return [BlockSignature.from_key(key) for key in sorted(self.entries)]

    def missing(self, signatures: Iterable[BlockSignature]) -> list[BlockSignature]:
        """The signatures without an entry, each once, in first-seen order.

        Raises:
            ValueError: a signature whose quantization is not the table's (named).
        """
        seen, missing = set(), []
        for signature in signatures:
            self._check_quantization(signature)
            if signature.key not in self.entries and signature.key not in seen:
                seen.add(signature.key)
                missing.append(signature)
        return missing

    def add(self, signature: BlockSignature, record, measured_at: str | None = None) -> None:
        """Store a measurement (`LatencyRecord` or record dict) under the signature's key."""
        self._check_quantization(signature)
        self.entries[signature.key] = TableEntry.from_record(record, measured_at)

    def _check_quantization(self, signature: BlockSignature) -> None:
        if signature.quantization != self.quantization:
            raise ValueError(f"block {signature.key} is {signature.quantization} but the latency "
                             f"table {self.path or '(not saved)'} holds {self.quantization} entries")

    # ---- files --------------------------------------------------------------------------

    def to_json(self) -> dict:
        """The JSON document (see the module doc)."""
        return {"schema_version": SCHEMA_VERSION, "fingerprint": self.fingerprint,
                "quantization": self.quantization,
                "overhead": self.overhead.to_dict() if self.overhead else None,
                "entries": {key: self.entries[key].to_dict() for key in sorted(self.entries)}}

    def save(self, path: str | os.PathLike | None = None) -> None:
        """Write the table atomically to ``path`` (default: the table's own path, which it then becomes)."""
        if path is None and self.path is None:
            raise ValueError("LatencyTable.save: no path given and the table has none")
        if path is not None:
            self.path = os.fspath(path)
        write_atomic(self.path, json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> LatencyTable:
        """Read a table file.

        Raises:
            FileNotFoundError: no such file.
            TableFormatError: unreadable, not UTF-8, invalid JSON, another schema version, unknown/missing
                fields or a malformed entry; the message names the file.
        """
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, "no such latency table", path)
        text = read_text(path, error=TableFormatError)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise TableFormatError(f"latency table {path} is not valid JSON ({error})") from None
        if not isinstance(data, dict):
            raise TableFormatError(f"latency table {path}: expected a JSON object, got "
                                   f"{type(data).__name__}")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise TableFormatError(f"latency table {path} has schema_version {version!r}; this "
                                   f"mobileseg reads version {SCHEMA_VERSION}; rebuild the table")
        unknown = sorted(set(data) - set(_TOP_LEVEL))
        missing = [name for name in _TOP_LEVEL if name not in data]
        if unknown or missing:
            raise TableFormatError(f"latency table {path}: unknown fields {unknown}, "
                                   f"missing fields {missing}")
        if not isinstance(data["fingerprint"], dict) or not isinstance(data["entries"], dict):
            raise TableFormatError(f"latency table {path}: fingerprint and entries must be objects")
        quantization = data["quantization"]
        if quantization not in QUANTIZATIONS:
            raise TableFormatError(f"latency table {path}: unknown quantization {quantization!r}")
        entries = {}
        for key, value in data["entries"].items():
            try:
                signature = BlockSignature.from_key(key)
                if not isinstance(value, dict):
                    raise ValueError(f"expected an object, got {type(value).__name__}")
                entries[key] = TableEntry.from_dict(value)
            except (TypeError, ValueError) as error:
                raise TableFormatError(f"latency table {path}: entry {key!r}: {error}") from None
            if signature.quantization != quantization:
                raise TableFormatError(f"latency table {path}: entry {key!r} is not {quantization}")
        try:
            overhead = Overhead.from_dict(data["overhead"]) if data["overhead"] is not None else None
        except (TypeError, ValueError) as error:
            raise TableFormatError(f"latency table {path}: overhead: {error}") from None
        return cls(data["fingerprint"], quantization, entries, overhead, path)

    @classmethod
    def load_or_create(cls, path: str | os.PathLike, fingerprint: dict,
                       quantization: str = "int8", cache=DEFAULT_CACHE) -> LatencyTable:
        """Open a table that this device will add entries to, or start an empty one there.

        The table gets ``cache`` (default: the persistent cache the environment chooses,
        `mobileseg.latency.cache.open_default`; None: none), so the blocks this device
        measured before, for any table, are not measured again.

        An existing table measured with another fingerprint (CPU, cores, LiteRT or
        TensorFlow version, threads, delegate) is refused: adding this machine's
        measurements to it would mix two devices in one table.

        Raises:
            DeviceMismatchError: the file's fingerprint differs (the fields are listed).
            ValueError: the file's quantization differs.
            TableFormatError: see `load`.
        """
        if cache is DEFAULT_CACHE:
            cache = open_default()
        if not os.path.exists(path):
            return cls(fingerprint, quantization, path=path, cache=cache)
        table = cls.load(path)
        table.cache = cache
        mismatch = fingerprint_mismatch(table.fingerprint, fingerprint)
        if mismatch:
            raise DeviceMismatchError(
                f"latency table {table.path} was measured on another device or setting "
                f"({'; '.join(mismatch)}); use it read-only with the 'table:' backend, or "
                "measure this machine into a new file")
        if table.quantization != quantization:
            raise ValueError(f"latency table {table.path} holds {table.quantization} entries, "
                             f"not {quantization}")
        return table

    # ---- building -----------------------------------------------------------------------

    def build(self, signatures: Iterable[BlockSignature],
              make_model: Callable[[BlockSignature], object],
              measurer: Callable[[bytes], object] | None = None, *,
              convert: Callable[[object, str], bytes] | None = None,
              save_every: int = 1, progress: bool = True, conversions: int = 1) -> list[str]:
        """Measure every signature not in the table yet, saving as it goes.

        Args:
            signatures: the blocks a space can produce (repeats are measured once).
            make_model: builds the block alone as a `keras.Model` at its input shape.
            measurer: flatbuffer bytes -> `LatencyRecord` (or record dict). Default:
                `measure_tflite` on this machine with the fingerprint's threads, delegate
                and clock, after checking the fingerprint is this machine's.
            convert: ``(model, quantization) -> bytes``; default
                `mobileseg.latency.shipped.block_flatbuffer` (as export converts a network).
            save_every: rewrite the file after this many new entries (and at the end,
                and when an error stops the build). Needs the table's ``path``.
            progress: show a tqdm bar on stderr.
            conversions: a block whose delegation can vary between conversions
                (`TableEntry.delegation_varies`: ops left to the built-in kernels) is
                converted this many times, each from a fresh model (new random weights and
                calibration), and keeps the conversion with the median latency: its typical
                cost, not the cost of one lucky or unlucky set of quantization parameters.
                Entries measured with fewer conversions are completed.

        Returns:
            The keys measured by this call, in order.

        Raises:
            DeviceMismatchError: default measurer and a fingerprint that is not this machine's.
            ValueError: a signature of another quantization.

        Example:
            >>> import pathlib, tempfile
            >>> from mobileseg.latency.testing import block_model
            >>> table = LatencyTable(local_fingerprint(threads=1),
            ...                      path=pathlib.Path(tempfile.mkdtemp()) / "t.json")
            >>> sig = BlockSignature("conv", (8, 8, 4), (8, 8, 4), kernel=3)
            >>> table.build([sig, sig], block_model, progress=False) == [sig.key]
            True
            >>> table.build([sig], block_model, progress=False)
            []
        """
        if save_every < 1:
            raise ValueError(f"save_every must be >= 1, got {save_every}")
        if conversions < 1:
            raise ValueError(f"conversions must be >= 1, got {conversions}")
        signatures = list(signatures)
        self.take_cached(signatures)
        todo = self.to_measure(signatures, conversions)
        if not todo:
            return []
        if measurer is None:
            measurer = self._local_measurer()
        if convert is None:
            from mobileseg.latency.shipped import block_flatbuffer as convert
        from tqdm.auto import tqdm

        def measure_once(signature: BlockSignature) -> TableEntry:
            flatbuffer = convert(make_model(signature), signature.quantization)
            entry = TableEntry.from_record(measurer(flatbuffer))
            _clear_keras_session()
            return entry

        measured: list[str] = []
        unsaved = 0
        bar = tqdm(total=len(todo), desc="latency table", unit="block", disable=not progress,
                   file=sys.stderr, dynamic_ncols=True)
        try:
            for signature in todo:
                bar.set_postfix_str(signature.key, refresh=False)
                self._check_quantization(signature)
                existing = self.entries.get(signature.key)
                runs = [existing] if existing is not None else [measure_once(signature)]
                medians = list(existing.conversion_medians_ms or (existing.median_ms,)) \
                    if existing is not None else [runs[0].median_ms]
                while self._needs_conversions(runs[0], conversions, len(medians)):
                    runs.append(measure_once(signature))
                    medians.append(runs[-1].median_ms)
                chosen = sorted(runs, key=lambda entry: entry.median_ms)[(len(runs) - 1) // 2]
                if len(medians) > 1:
                    chosen = dataclasses.replace(chosen, conversions=len(medians),
                                                 conversion_medians_ms=tuple(medians))
                self.entries[signature.key] = chosen
                self._store_in_cache(signature.key, chosen)
                measured.append(signature.key)
                unsaved += 1
                if self.path is not None and unsaved >= save_every:
                    self.save()
                    unsaved = 0
                bar.update()
        finally:
            bar.close()
            if unsaved and self.path is not None:
                self.save()
        return measured

    def to_measure(self, signatures: Iterable[BlockSignature], conversions: int = 1
                   ) -> list[BlockSignature]:
        """What `build` would measure: the missing signatures the cache does not hold, then
        the entries that need more conversions (see ``conversions`` there), each once."""
        signatures = list(signatures)
        todo = self.missing(signatures)
        cached = self._cached(todo)
        todo = [signature for signature in todo if signature.key not in cached]
        todo += [signature for signature in {s.key: s for s in signatures}.values()
                 if signature.key in self.entries
                 and self._needs_conversions(self.entries[signature.key], conversions)]
        return todo

    def take_cached(self, signatures: Iterable[BlockSignature]) -> list[str]:
        """Copy the missing signatures' entries that the cache holds for this device into the
        table (saved when it has a path); the keys taken."""
        cached = self._cached(self.missing(signatures))
        if cached:
            self.entries.update(cached)
            if self.path is not None:
                self.save()
        return list(cached)

    def _cached(self, signatures: list[BlockSignature]) -> dict:
        if self.cache is None or not signatures:
            return {}
        try:
            return self.cache.get(self.fingerprint, [signature.key for signature in signatures])
        except CacheError as error:
            self._drop_cache(error)
            return {}

    def _store_in_cache(self, key: str, entry: TableEntry) -> None:
        if self.cache is None:
            return
        try:
            self.cache.put(self.fingerprint, key, entry)
        except CacheError as error:
            self._drop_cache(error)

    def _drop_cache(self, error: CacheError) -> None:
        warn_once(error)
        self.cache = None

    @staticmethod
    def _needs_conversions(entry: TableEntry, conversions: int, done: int | None = None) -> bool:
        done = entry.conversions if done is None else done
        return done < conversions and entry.delegation_varies()

    def _local_measurer(self) -> Callable[[bytes], object]:
        threads = self.fingerprint.get("threads")
        delegate = self.fingerprint.get("delegate", "xnnpack")
        clock = self.fingerprint.get("clock", "wall")
        mismatch = fingerprint_mismatch(self.fingerprint, local_fingerprint(threads, delegate, clock))
        if mismatch:
            raise DeviceMismatchError(
                f"latency table {self.path or '(not saved)'} is for another device or setting "
                f"({'; '.join(mismatch)}); pass a measurer for that device, or start a new table")
        from mobileseg.litert_measure import measure_tflite

        return functools.partial(measure_tflite, threads=threads, delegate=delegate, clock=clock)


def _key(signature: BlockSignature | str) -> str:
    return signature if isinstance(signature, str) else signature.key


def _clear_keras_session() -> None:
    """Drop Keras' global graph state between blocks so a long build does not grow."""
    keras = sys.modules.get("keras")
    if keras is not None:
        keras.backend.clear_session()
