"""LatencyTable: JSON round trip, strict loading, incremental and resumable builds."""

import functools
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from mobileseg.latency.device import local_fingerprint
from mobileseg.litert_measure import measure_tflite
from mobileseg.latency.overhead import Overhead
from mobileseg.latency.signature import BlockSignature
from mobileseg.latency.table import SCHEMA_VERSION, LatencyTable
from mobileseg.latency.table_entry import TableEntry
from mobileseg.latency.table_errors import DeviceMismatchError, MissingBlockError, TableFormatError
from mobileseg.latency.testing import block_model

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAST = functools.partial(measure_tflite, threads=1, warmup=2, min_runs=10, max_runs=30)
SIGNATURES = [BlockSignature("conv", (8, 8, 4), (8, 8, c), kernel=3) for c in (4, 8, 12, 16)]


def record(ms, fallback=()):
    return {"median_ms": ms, "p90_ms": ms * 1.1, "std_ms": 0.01, "min_ms": ms * 0.9, "runs": 30,
            "xnnpack_partitions": 1, "fallback_ops": list(fallback)}


class CountingMaker:
    """make_model that counts calls and can fail at a given call."""

    def __init__(self, fail_at=None):
        self.calls, self.fail_at = [], fail_at

    def __call__(self, signature):
        self.calls.append(signature.key)
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            raise RuntimeError("simulated crash while building a block")
        return block_model(signature)


def test_round_trip(tmp_path):
    path = tmp_path / "table.json"
    table = LatencyTable(local_fingerprint(threads=1), path=path)
    for i, signature in enumerate(SIGNATURES):
        table.add(signature, record(0.1 * (i + 1), ["SOFTMAX"] if i == 2 else ()))
    table.overhead = Overhead("offset", 1.0, 0.25, ((1.0, 1.25),), 0.0, "test")
    table.save()
    loaded = LatencyTable.load(path)
    assert loaded.entries == table.entries
    assert loaded.fingerprint == table.fingerprint
    assert loaded.quantization == "int8" and loaded.overhead == table.overhead
    assert loaded.path == str(path)
    assert loaded.signatures() == sorted(SIGNATURES, key=lambda s: s.key)
    assert loaded[SIGNATURES[2]].fallback_ops == ("SOFTMAX",)
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert set(data) == {"schema_version", "fingerprint", "quantization", "overhead", "entries"}
    assert list(data["entries"]) == sorted(data["entries"])
    loaded.save(tmp_path / "copy.json")
    assert (tmp_path / "copy.json").read_text() == path.read_text()


def test_lookup_and_missing_block_error(tmp_path):
    table = LatencyTable(local_fingerprint(), path=tmp_path / "t.json")
    table.add(SIGNATURES[0], record(0.2))
    assert SIGNATURES[0] in table and SIGNATURES[0].key in table and len(table) == 1
    with pytest.raises(MissingBlockError) as caught:
        table[SIGNATURES[1]]
    assert isinstance(caught.value, KeyError)
    assert SIGNATURES[1].key in str(caught.value) and "t.json" in str(caught.value)


def test_missing_dedupes_and_checks_quantization():
    table = LatencyTable(local_fingerprint())
    table.add(SIGNATURES[0], record(0.2))
    assert table.missing(SIGNATURES + SIGNATURES[::-1]) == SIGNATURES[1:]
    fp16 = BlockSignature("conv", (8, 8, 4), (8, 8, 4), quantization="fp16")
    with pytest.raises(ValueError, match="is fp16 but the latency table .* holds int8"):
        table.missing([fp16])


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"schema_version": 99}', "has schema_version 99; this mobileseg reads version 1"),
    ('{"schema_version": 1, "fingerprint": {}, "quantization": "int8", "entries": {}}',
     r"missing fields \['overhead'\]"),
    ('{"schema_version": 1, "fingerprint": {}, "quantization": "int8", "overhead": null,'
     ' "entries": {}, "notes": 1}', r"unknown fields \['notes'\]"),
    ('{"schema_version": 1, "fingerprint": {}, "quantization": "int4", "overhead": null,'
     ' "entries": {}}', "unknown quantization 'int4'"),
    ('{"schema_version": 1, "fingerprint": {}, "quantization": "int8", "overhead": null,'
     ' "entries": {"conv|bad": {}}}', "entry 'conv\\|bad'"),
    ('{"schema_version": 1, "fingerprint": {}, "quantization": "int8", "overhead": null,'
     ' "entries": {"conv|in=8x8x4|out=8x8x4|k=1|s=1|e=1|w=0|q=int8": {"median_ms": 1}}}',
     "missing keys"),
    ('{"schema_version": 1, "fingerprint": {}, "quantization": "fp16", "overhead": null,'
     ' "entries": {"conv|in=8x8x4|out=8x8x4|k=1|s=1|e=1|w=0|q=int8": {"median_ms": 1.0,'
     ' "p90_ms": 1.0, "std_ms": 0.0, "min_ms": 1.0, "runs": 1, "xnnpack_partitions": 1,'
     ' "fallback_ops": [], "measured_at": "x"}}}', "is not fp16"),
    ('{"schema_version": 1, "fingerprint": {}, "quantization": "int8", "overhead": {"kind": "x"},'
     ' "entries": {}}', "overhead"),
])
def test_corrupt_files_are_named(tmp_path, content, message):
    path = tmp_path / "broken_table.json"
    path.write_text(content)
    with pytest.raises(TableFormatError, match=message) as caught:
        LatencyTable.load(path)
    assert "broken_table.json" in str(caught.value)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        LatencyTable.load(tmp_path / "absent.json")


def test_a_table_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "table.json"
    path.write_bytes(b'{"schema_version": 1, "fingerprint": {"cpu": "Ryzen \xae"}}')
    with pytest.raises(TableFormatError, match=rf"^{path}: not UTF-8 text \(byte 0xae on line 1\); save it as UTF-8"):
        LatencyTable.load(path)


def test_build_measures_real_blocks_incrementally(tmp_path):
    path = tmp_path / "table.json"
    table = LatencyTable.load_or_create(path, local_fingerprint(threads=1))
    maker = CountingMaker()
    assert table.build(SIGNATURES[:2] + SIGNATURES[:1], maker, FAST, progress=False) == \
        [s.key for s in SIGNATURES[:2]]
    assert maker.calls == [s.key for s in SIGNATURES[:2]]
    on_disk = LatencyTable.load(path)
    assert set(on_disk.entries) == {s.key for s in SIGNATURES[:2]}
    for entry in on_disk.entries.values():
        assert 0 < entry.min_ms <= entry.median_ms <= entry.p90_ms
        assert entry.xnnpack_partitions == 1 and entry.fallback_ops == () and entry.runs >= 10
    again = CountingMaker()
    assert on_disk.build(SIGNATURES[:2], again, FAST, progress=False) == []
    assert again.calls == []
    assert sorted(os.listdir(tmp_path)) == ["table.json"]  # no temporary files left


def test_build_fp16_table(tmp_path):
    table = LatencyTable(local_fingerprint(threads=1), quantization="fp16", path=tmp_path / "t.json")
    signature = BlockSignature("conv", (8, 8, 4), (8, 8, 4), kernel=3, quantization="fp16")
    table.build([signature], block_model, FAST, progress=False)
    assert LatencyTable.load(tmp_path / "t.json")[signature].median_ms > 0


def test_build_that_fails_keeps_what_it_measured_and_resumes(tmp_path):
    path = tmp_path / "table.json"
    crashing = CountingMaker(fail_at=3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        LatencyTable.load_or_create(path, local_fingerprint(1)).build(
            SIGNATURES, crashing, FAST, progress=False, save_every=5)
    assert set(LatencyTable.load(path).entries) == {s.key for s in SIGNATURES[:2]}
    resumed = CountingMaker()
    LatencyTable.load_or_create(path, local_fingerprint(1)).build(SIGNATURES, resumed, FAST,
                                                                  progress=False)
    assert resumed.calls == [s.key for s in SIGNATURES[2:]]
    assert set(LatencyTable.load(path).entries) == {s.key for s in SIGNATURES}


KILLED_BUILD = textwrap.dedent("""
    import functools, os, signal, sys
    from mobileseg.latency.device import local_fingerprint
    from mobileseg.litert_measure import measure_tflite
    from mobileseg.latency.signature import BlockSignature
    from mobileseg.latency.table import LatencyTable
    from mobileseg.latency.testing import block_model

    path, survive = sys.argv[1], int(sys.argv[2])
    signatures = [BlockSignature("conv", (8, 8, 4), (8, 8, c), kernel=3) for c in (4, 8, 12, 16)]
    calls = []

    def make_model(signature):
        calls.append(signature)
        if len(calls) > survive:
            os.kill(os.getpid(), signal.SIGKILL)  # no exception handler, no finally: a real kill
        return block_model(signature)

    measurer = functools.partial(measure_tflite, threads=1, min_runs=10, max_runs=30)
    LatencyTable.load_or_create(path, local_fingerprint(1)).build(signatures, make_model, measurer)
""")


def test_sigkilled_build_resumes(tmp_path):
    path = tmp_path / "table.json"
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3",
               CUDA_VISIBLE_DEVICES="", PYTHONPATH=REPO)
    process = subprocess.run([sys.executable, "-c", KILLED_BUILD, str(path), "2"], env=env,
                             cwd=REPO, capture_output=True, text=True, timeout=120)
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]
    assert "latency table" in process.stderr  # the progress bar was shown
    survived = LatencyTable.load(path)
    assert set(survived.entries) == {s.key for s in SIGNATURES[:2]}
    resumed = CountingMaker()
    assert survived.build(SIGNATURES, resumed, FAST, progress=False) == [s.key for s in SIGNATURES[2:]]
    assert resumed.calls == [s.key for s in SIGNATURES[2:]]
    assert len(LatencyTable.load(path)) == 4


def test_other_device_table_is_refused_for_local_measurement(tmp_path):
    path = tmp_path / "phone.json"
    phone = dict(local_fingerprint(threads=1), cpu="Snapdragon 888", machine="aarch64")
    LatencyTable(phone, path=path).save()
    with pytest.raises(DeviceMismatchError, match="phone.json was measured on another device") as caught:
        LatencyTable.load_or_create(path, local_fingerprint(threads=1))
    assert "cpu: 'Snapdragon 888'" in str(caught.value)
    with pytest.raises(DeviceMismatchError, match="threads: 1 != 4"):
        LatencyTable.load_or_create(path, dict(phone, threads=4))
    with pytest.raises(DeviceMismatchError, match="pass a measurer for that device"):
        LatencyTable.load(path).build(SIGNATURES[:1], block_model, progress=False)
    with pytest.raises(ValueError, match="holds int8 entries, not fp16"):
        LatencyTable.load_or_create(path, phone, quantization="fp16")


def test_build_accepts_record_dicts_from_another_measurer(tmp_path):
    # a measurer for another device (e.g. a phone) that returns record dicts
    table = LatencyTable(dict(local_fingerprint(1), cpu="phone"), path=tmp_path / "t.json")
    seen = []

    def phone_measurer(flatbuffer):
        seen.append(flatbuffer[4:8])
        return dict(record(1.5, ["GELU"]), model="x.tflite", threads=1, delegate="xnnpack")

    table.build(SIGNATURES[:1], block_model, phone_measurer, progress=False)
    assert seen == [b"TFL3"]
    assert table[SIGNATURES[0]] == TableEntry(1.5, 1.5 * 1.1, 0.01, 1.5 * 0.9, 30, 1, ("GELU",),
                                              table[SIGNATURES[0]].measured_at)
    with pytest.raises(ValueError, match="record lacks p90_ms, xnnpack_partitions"):
        table.build(SIGNATURES[1:2], block_model, lambda flatbuffer: {
            "median_ms": 1.0, "p95_ms": 1.2, "std_ms": 0.1, "min_ms": 0.9, "runs": 50,
            "fallback_ops": []}, progress=False)


def test_blocks_whose_delegation_varies_keep_the_median_of_several_conversions(tmp_path):
    varying = BlockSignature("attn", (8, 8, 4), (8, 8, 4))
    steady = BlockSignature("conv", (8, 8, 4), (8, 8, 4), kernel=3)
    medians = iter([5.0, 1.0, 9.0, 7.0, 2.0, 3.0])  # the measurer's results, in call order

    def measurer(flatbuffer):
        return {**record(next(medians), ["BATCH_MATMUL"] if flatbuffer == b"attn" else ()),
                "xnnpack_partitions": 2 if flatbuffer == b"attn" else 1}

    table = LatencyTable(local_fingerprint(threads=1), path=tmp_path / "t.json")
    fake = {"make_model": lambda signature: signature.op,
            "convert": lambda model, quantization: model.encode(), "progress": False}
    assert table.to_measure([varying, steady], conversions=3) == [varying, steady]
    assert table.build([varying, steady], fake["make_model"], measurer, conversions=3,
                       convert=fake["convert"], progress=False) == [varying.key, steady.key]
    attn, conv = table[varying], table[steady]
    assert (attn.median_ms, attn.conversions, attn.conversion_medians_ms) == (5.0, 3, (5.0, 1.0, 9.0))
    assert attn.fallback_ops == ("BATCH_MATMUL",) and attn.delegation_varies()
    assert (conv.median_ms, conv.conversions, conv.conversion_medians_ms) == (7.0, 1, None)
    assert not conv.delegation_varies()
    assert LatencyTable.load(tmp_path / "t.json").entries == table.entries  # round trip
    assert table.to_measure([varying, steady], conversions=3) == []
    # asking for more conversions later completes the entries that vary, and only those
    assert table.to_measure([varying, steady], conversions=5) == [varying]
    table.build([varying, steady], fake["make_model"], measurer, conversions=5,
                convert=fake["convert"], progress=False)
    assert table[varying].conversion_medians_ms == (5.0, 1.0, 9.0, 2.0, 3.0)
    assert table[varying].conversions == 5 and table[steady] == conv


def test_entries_of_older_tables_read_with_one_conversion():
    data = TableEntry(1.0, 1.2, 0.1, 0.9, 50, 1, (), "2025-01-01T00:00:00+00:00").to_dict()
    for name in ("p95_ms", "conversions", "conversion_medians_ms"):
        del data[name]
    entry = TableEntry.from_dict(data)
    assert (entry.conversions, entry.conversion_medians_ms, entry.p95_ms) == (1, None, None)
