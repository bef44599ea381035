"""The validation's store of measured networks: a damaged record is measured again, not a traceback."""

from mobileseg.latency.validation import NetworkStore


def test_a_damaged_record_counts_as_not_measured_and_is_rewritten(tmp_path):
    store = NetworkStore(tmp_path)
    store.put("net-a", {"measured_ms": 1.5})
    for damage in (b'{"measured_ms": 1.', b"\xff\xfe not text", b"[1, 2]"):
        store.path("net-a").write_bytes(damage)
        assert store.get("net-a") is None
    store.put("net-a", {"measured_ms": 1.25})
    assert store.get("net-a") == {"measured_ms": 1.25, "key": "net-a"}
