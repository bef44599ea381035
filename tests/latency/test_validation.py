"""The validation's networks: a damaged record is measured again, networks are all converted before they are
timed in rounds (resuming after a kill), a fresh process times them without TensorFlow, and the rounds'
agreement with each other."""

import pytest

from mobileseg.latency.validation import NetworkStore, rounds_spearman_rho


def test_a_damaged_record_counts_as_not_measured_and_is_rewritten(tmp_path):
    store = NetworkStore(tmp_path)
    store.put("net-a", {"measured_ms": 1.5})
    for damage in (b'{"measured_ms": 1.', b"\xff\xfe not text", b"[1, 2]"):
        store.path("net-a").write_bytes(damage)
        assert store.get("net-a") is None
    store.put("net-a", {"measured_ms": 1.25})
    assert store.get("net-a") == {"measured_ms": 1.25, "key": "net-a"}


def _draw_two():
    from mobileseg.arch.space import SearchSpace
    from mobileseg.latency.validation import draw_networks
    from tests.latency.cli_runner import DEMO

    genotypes, _ = draw_networks(SearchSpace.load(DEMO), 2, 0, (32, 32), 12)
    return genotypes


def test_networks_are_all_converted_then_timed_in_rounds_and_keep_their_median_round(tmp_path):
    from mobileseg.latency.testing import tiny_tflite
    from mobileseg.latency.validation import measure_networks
    from mobileseg.litert_measure import measure_tflite

    genotypes = _draw_two()
    files = {id(genotypes[0]): tiny_tflite("conv", size=8, channels=4),
             id(genotypes[1]): tiny_tflite("conv", size=64, channels=32)}
    events = []

    def flatbuffer_of(genotype):
        events.append("convert")
        return files[id(genotype)]

    def measurer(flatbuffer, fail=False):
        events.append("time")
        if fail:
            raise KeyboardInterrupt  # the run is killed while timing
        return measure_tflite(flatbuffer, min_runs=10, max_runs=20)

    store = NetworkStore(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        measure_networks(genotypes, store, flatbuffer_of, lambda f: measurer(f, fail=True), "t", ["a", "b"],
                         progress=False)
    assert events == ["convert", "convert", "time"]
    events.clear()
    records = measure_networks(genotypes, store, flatbuffer_of, measurer, "t", ["a", "b"], progress=False,
                               rounds=3)
    assert events == ["time"] * 6  # converted before the kill: timed now, not converted again
    for record, genotype in zip(records, genotypes, strict=True):
        assert len(record["round_ms"]) == 3 and record["measured_ms"] == sorted(record["round_ms"])[1]
        assert record["measurement"]["median_ms"] == record["measured_ms"]
        assert store.flatbuffer_path(record["key"]).read_bytes() == files[id(genotype)]
    assert records[1]["measured_ms"] > records[0]["measured_ms"]  # 64x64x32 against 8x8x4
    events.clear()
    again = measure_networks(genotypes, store, flatbuffer_of, measurer, "t", ["a", "b"], progress=False)
    assert events == [] and [r["measured_ms"] for r in again] == [r["measured_ms"] for r in records]
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        measure_networks(genotypes, store, flatbuffer_of, measurer, "t", ["a", "b"], rounds=0)


def _time_reporting_tensorflow(flatbuffer):
    """A LiteRT timing whose record says whether TensorFlow was loaded in the process that timed it."""
    import sys

    from mobileseg.litert_measure import measure_tflite

    record = measure_tflite(flatbuffer, min_runs=10, max_runs=20).to_dict()
    return {**record, "fallback_ops": ["TENSORFLOW LOADED"] if "tensorflow" in sys.modules else []}


def test_a_fresh_process_times_the_networks_without_the_tensorflow_that_converted_them(tmp_path):
    import tensorflow  # noqa: F401  (loaded here, as in the validation that converts the networks)

    from mobileseg.latency.testing import tiny_tflite
    from mobileseg.latency.validation import measure_networks

    genotypes = _draw_two()
    files = {id(genotypes[0]): tiny_tflite("conv", size=8, channels=4),
             id(genotypes[1]): tiny_tflite("conv", size=64, channels=32)}
    assert _time_reporting_tensorflow(files[id(genotypes[0])])["fallback_ops"] == ["TENSORFLOW LOADED"]
    records = measure_networks(genotypes, NetworkStore(tmp_path), lambda g: files[id(g)], _time_reporting_tensorflow,
                               "t", ["a", "b"], progress=False, rounds=2, fresh_process=True)
    assert [len(r["round_ms"]) for r in records] == [2, 2]
    assert [r["measurement"]["fallback_ops"] for r in records] == [[], []]


def test_rounds_spearman_rho_is_the_worst_pair_of_rounds():
    same = [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [3.0, 3.0, 3.0]]
    assert rounds_spearman_rho(same) == 1.0
    swapped_in_round_3 = [[1.0, 1.0, 2.0], [2.0, 2.0, 1.0], [3.0, 3.0, 3.0]]
    assert rounds_spearman_rho(swapped_in_round_3) == 0.5  # rounds 1-2 agree (1.0); round 3 against either: 0.5
    assert rounds_spearman_rho([[1.0], [2.0]]) is None and rounds_spearman_rho([[1.0, 2.0]]) is None
