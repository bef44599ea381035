"""The persistent latency cache: reuse across tables and commands, invalidation, concurrent writers."""

import subprocess
import sys
import textwrap

import pytest

from mobileseg.latency import cache as cache_module
from mobileseg.latency.cache import CACHE_ENV, FILE_NAME, LatencyCache, default_folder, device_id
from mobileseg.latency.device import local_fingerprint
from mobileseg.latency.signature import BlockSignature
from mobileseg.latency.table import LatencyTable
from mobileseg.latency.table_entry import TableEntry
from tests.latency.cli_runner import FAST, REPO, SMALL_SPACE, cli
from tests.latency.test_table import FAST as FAST_MEASURER
from tests.latency.test_table import SIGNATURES, CountingMaker


def entry(ms):
    return TableEntry(ms, ms, 0.0, ms, 10, 1, (), "2026-01-01T00:00:00+00:00")


def test_put_get_round_trip_per_device(tmp_path):
    cache = LatencyCache(tmp_path)
    here = local_fingerprint(threads=1)
    cache.put_many(here, {"a|q=int8": entry(1.0), "b|q=int8": entry(2.0)})
    assert cache.get(here, ["a|q=int8", "b|q=int8", "c|q=int8"]) == {"a|q=int8": entry(1.0), "b|q=int8": entry(2.0)}
    assert cache.get(dict(here, threads=2), ["a|q=int8"]) == {}
    assert cache.get(dict(here, clock="thread_cpu"), ["a|q=int8"]) == {}
    cache.put(here, "a|q=int8", entry(3.0))  # a new measurement replaces the old
    assert cache.get(here, ["a|q=int8"])["a|q=int8"].median_ms == 3.0
    assert [row["entries"] for row in LatencyCache(tmp_path).devices()] == [2]


def test_a_second_table_of_the_device_measures_nothing(tmp_path):
    cache = LatencyCache(tmp_path / "cache")
    first = LatencyTable.load_or_create(tmp_path / "run1" / "table.json", local_fingerprint(threads=1), cache=cache)
    maker = CountingMaker()
    assert len(first.build(SIGNATURES, maker, FAST_MEASURER, progress=False)) == len(SIGNATURES)
    second = LatencyTable.load_or_create(tmp_path / "run2" / "table.json", local_fingerprint(threads=1), cache=cache)
    assert second.to_measure(SIGNATURES) == []
    maker.calls.clear()
    assert second.build(SIGNATURES, maker, FAST_MEASURER, progress=False) == []
    assert maker.calls == []
    assert second.entries == first.entries
    assert LatencyTable.load(tmp_path / "run2" / "table.json").entries == first.entries  # saved


def test_a_runtime_upgrade_measures_again(tmp_path):
    cache = LatencyCache(tmp_path / "cache")
    fingerprint = local_fingerprint(threads=1)
    cache.put_many(dict(fingerprint, runtime_version="0.0.1"), {s.key: entry(1.0) for s in SIGNATURES})
    table = LatencyTable(fingerprint, path=tmp_path / "table.json", cache=cache)
    assert table.to_measure(SIGNATURES) == SIGNATURES
    maker = CountingMaker()
    table.build(SIGNATURES[:1], maker, FAST_MEASURER, progress=False)
    assert maker.calls == [SIGNATURES[0].key]
    assert table[SIGNATURES[0]].median_ms != 1.0
    assert device_id(fingerprint) != device_id(dict(fingerprint, runtime_version="0.0.1"))
    assert sorted(row["entries"] for row in cache.devices()) == [1, len(SIGNATURES)]


def test_a_change_to_the_block_code_measures_again(tmp_path, monkeypatch):
    cache = LatencyCache(tmp_path)
    fingerprint = local_fingerprint(threads=1)
    cache.put(fingerprint, "a|q=int8", entry(1.0))
    assert len(cache_module.code_digest()) == 16 and cache.get(fingerprint, ["a|q=int8"])
    monkeypatch.setattr(cache_module, "code_digest", lambda: "another version")
    assert cache.get(fingerprint, ["a|q=int8"]) == {}


def test_cache_folder_choice(tmp_path):
    assert default_folder({CACHE_ENV: str(tmp_path)}) == tmp_path
    assert default_folder({CACHE_ENV: "OFF"}) is None
    assert default_folder({"HOME": "/h", "XDG_CACHE_HOME": "/x"}).as_posix() == "/x/mobileseg"


def test_a_damaged_cache_is_reported_and_skipped(tmp_path, monkeypatch, capsys):
    (tmp_path / FILE_NAME).write_bytes(b"this is not a database" * 100)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(cache_module, "_warned", set())
    table = LatencyTable.load_or_create(tmp_path / "t.json", local_fingerprint(threads=1))
    assert table.cache is None
    message = capsys.readouterr().err
    assert str(tmp_path / FILE_NAME) in message and "going on without the latency cache" in message


WRITER = textwrap.dedent("""
    import sys
    from mobileseg.latency.cache import LatencyCache
    from mobileseg.latency.device import local_fingerprint
    from mobileseg.latency.table_entry import TableEntry
    cache = LatencyCache(sys.argv[1])
    fingerprint = local_fingerprint(threads=1)
    for i in range(int(sys.argv[3])):
        cache.put(fingerprint, f"block{i}|w={sys.argv[2]}|q=int8",
                  TableEntry(float(i), None, None, None, 1, 1, (), "2026-01-01T00:00:00+00:00"))
""")


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    LatencyCache(tmp_path)  # created once, as the first process would
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), name, "150"], cwd=REPO,
                                stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    errors = [writer.communicate(timeout=300)[1] for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0], errors
    keys = [f"block{i}|w={name}|q=int8" for name in ("a", "b") for i in range(150)]
    found = LatencyCache(tmp_path).get(local_fingerprint(threads=1), keys)
    assert len(found) == 300 and found["block149|w=b|q=int8"].median_ms == 149.0


def test_cli_build_reuses_the_cache_then_list_and_clear(tmp_path):
    space = tmp_path / "small.yaml"
    space.write_text(SMALL_SPACE)
    folder = str(tmp_path / "cache")
    first = cli("build", "--space", str(space), "--input_size", "32x32", "--out", str(tmp_path / "a.json"),
                "--latency_cache", folder, *FAST)
    assert first.returncode == 0, first.stderr
    assert "measured 5 blocks" in first.stdout
    second = cli("build", "--space", str(space), "--input_size", "32x32", "--out", str(tmp_path / "b.json"),
                 "--latency_cache", folder, *FAST)
    assert second.returncode == 0, second.stderr
    assert "0 to measure" in second.stdout and "measured 0 blocks" in second.stdout
    assert "has 5 entries" in second.stdout
    listing = cli("cache", "list", "--latency_cache", folder)
    assert listing.returncode == 0, listing.stderr
    assert "5 entries, 1 device(s)" in listing.stdout
    device = listing.stdout.splitlines()[1].split()[0]
    assert "removed 0 entries of device other" in cli("cache", "clear", "--latency_cache", folder, "--device",
                                                      "other").stdout
    cleared = cli("cache", "clear", "--latency_cache", folder, "--device", device)
    assert cleared.returncode == 0 and "removed 5 entries" in cleared.stdout
    assert "0 entries, 0 device(s)" in cli("cache", "list", "--latency_cache", folder).stdout
    assert "removed 0 entries from" in cli("cache", "clear", "--latency_cache", folder).stdout


def test_cli_cache_usage_error():
    result = cli("cache", "drop")
    assert result.returncode == 2 and "cache {list,clear}" in result.stderr
