"""The search's latency model: a genotype's latency from its blocks' table entries."""

import pytest

from mobileseg.latency import blocks, genotype_latency
from tests.latency.test_blocks import TINY


def test_the_search_latency_model_sums_the_table_and_names_a_missing_block(tmp_path):
    from mobileseg.latency.device import local_fingerprint
    from mobileseg.latency.overhead import Overhead
    from mobileseg.latency.table import LatencyTable, MissingBlockError

    path = tmp_path / "table.json"
    table = LatencyTable(local_fingerprint(), overhead=Overhead("affine", 1.5, 0.25), path=path)
    signatures = blocks.signatures_of(TINY, (32, 32), 5)
    for i, signature in enumerate(signatures[:-1]):
        table.add(signature, {"median_ms": float(i + 1), "p90_ms": 1.0, "std_ms": 0.0,
                              "min_ms": 1.0, "runs": 9, "xnnpack_partitions": 1, "fallback_ops": []})
    table.save()
    model = genotype_latency.genotype_latency_model(f"table:{path}", (32, 32), 5)
    with pytest.raises(MissingBlockError, match=r"block light_head\|in=8x8x16\|.* has no entry in "
                                                 r"the latency table .*table\.json"):
        model.latency_ms(TINY)
    table.add(signatures[-1], {"median_ms": 10.0, "p90_ms": 1.0, "std_ms": 0.0, "min_ms": 1.0,
                               "runs": 9, "xnnpack_partitions": 1, "fallback_ops": []})
    table.save()
    model = genotype_latency.genotype_latency_model(f"table:{path}", (32, 32), 5)
    assert model.latency_ms(TINY) == pytest.approx(1.5 * (1 + 2 + 3 + 4 + 5 + 10) + 0.25)
