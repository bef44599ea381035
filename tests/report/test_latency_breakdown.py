"""The per-block latency breakdown adds up to the search's own prediction, overhead included, from a
table measured here; a block missing from the table is named, and then nothing is predicted."""

import json

from mobileseg.data.sources import open_source
from mobileseg.latency.genotype_latency import genotype_latency_model
from mobileseg.latency.overhead import Overhead
from mobileseg.latency.table import LatencyTable
from mobileseg.report.latency_breakdown import breakdown
from tests import tiny_segmenters

GENOTYPE, SIZE = tiny_segmenters.GENOTYPE, tiny_segmenters.INPUT_SIZE


def predicted_by_the_search(table_path, classes):
    return genotype_latency_model(f"table:{table_path}", SIZE, classes).latency_ms(GENOTYPE)


def test_the_blocks_add_up_to_the_search_prediction_with_or_without_overhead(trained_run, tmp_path):
    classes = open_source(tiny_segmenters.DATA).num_classes
    table_path = trained_run / "latency_table.json"
    result = breakdown(GENOTYPE, table_path, SIZE, classes)
    assert [block.name for block in result.blocks] == ["main[0]", "main[1]", "main[2]", "head"]
    assert [block.op for block in result.blocks] == ["conv", "conv", "mbconv", "light_head"]
    assert result.blocks[0].shapes == "32x48x3 -> 16x24x12" and result.missing == []
    assert all(block.ms > 0 for block in result.blocks)
    assert result.predicted_ms == result.blocks_ms == predicted_by_the_search(table_path, classes)
    assert "1 thread(s), int8" in result.device

    table = LatencyTable.load(table_path)
    table.overhead = Overhead("offset", offset_ms=0.25)
    table.save(tmp_path / "with_overhead.json")
    result = breakdown(GENOTYPE, tmp_path / "with_overhead.json", SIZE, classes)
    assert result.predicted_ms == result.blocks_ms + 0.25 == predicted_by_the_search(tmp_path / "with_overhead.json",
                                                                                      classes)


def test_a_block_missing_from_the_table_is_named(trained_run, tmp_path):
    classes = open_source(tiny_segmenters.DATA).num_classes
    data = json.loads((trained_run / "latency_table.json").read_text())
    data["entries"] = {key: entry for key, entry in data["entries"].items() if not key.startswith("light_head")}
    (tmp_path / "table.json").write_text(json.dumps(data))
    result = breakdown(GENOTYPE, tmp_path / "table.json", SIZE, classes)
    assert result.missing == ["head"] and result.predicted_ms is None and result.blocks_ms > 0
