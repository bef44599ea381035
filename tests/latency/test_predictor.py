"""Latency models: table sums with overhead, missing blocks, local on-the-fly measurement, calibration."""

import functools

import keras
import pytest

from mobileseg.deploy import tflite_convert
from mobileseg.latency.device import local_fingerprint
from mobileseg.litert_measure import measure_tflite
from mobileseg.latency.overhead import Overhead
from mobileseg.latency.predictor import (DeviceMismatchError, LatencyModel, LocalLatencyModel,
                                         MissingBlockError, TableLatencyModel, calibrate_overhead,
                                         latency_model_from_spec)
from mobileseg.latency.signature import BlockSignature
from mobileseg.latency.table import LatencyTable
from mobileseg.latency.testing import block_model

FAST = functools.partial(measure_tflite, threads=1, warmup=2, min_runs=10, max_runs=30)
A = BlockSignature("conv", (8, 8, 4), (8, 8, 4), kernel=3)
B = BlockSignature("conv", (8, 8, 4), (4, 4, 8), kernel=3, stride=2)
C = BlockSignature("conv", (4, 4, 8), (4, 4, 8), kernel=3)


def entry(ms):
    return {"median_ms": ms, "p90_ms": ms, "std_ms": 0.0, "min_ms": ms, "runs": 1,
            "xnnpack_partitions": 1, "fallback_ops": []}


@pytest.fixture
def table(tmp_path):
    table = LatencyTable(dict(local_fingerprint(1), cpu="some phone"), path=tmp_path / "phone.json")
    table.add(A, entry(1.25))
    table.add(B, entry(2.5))
    table.save()
    return table


def genotype_blocks(genotype):
    """A stand-in genotype: a dict whose 'blocks' are signatures."""
    return genotype["blocks"]


def test_sum_of_entries_with_each_repeat_counted(table):
    model = TableLatencyModel(table, genotype_blocks)
    assert isinstance(model, LatencyModel)
    assert model.overhead == Overhead()
    assert model.latency_ms({"blocks": [A, A, B]}) == pytest.approx(5.0)
    assert model.latency_ms({"blocks": []}) == 0.0


def test_overhead_is_applied(table):
    affine = Overhead("affine", scale=1.2, offset_ms=0.3)
    assert TableLatencyModel(table, genotype_blocks, affine).latency_ms({"blocks": [A, B]}) == \
        pytest.approx(1.2 * 3.75 + 0.3)
    table.overhead = Overhead("offset", offset_ms=0.5)
    model = TableLatencyModel(table, genotype_blocks)
    assert model.blocks_ms({"blocks": [A, B]}) == pytest.approx(3.75)
    assert model.latency_ms({"blocks": [A, B]}) == pytest.approx(4.25)


def test_missing_block_names_the_block_and_the_table(table):
    model = latency_model_from_spec(f"table:{table.path}", genotype_blocks)
    assert isinstance(model, TableLatencyModel)
    with pytest.raises(MissingBlockError) as caught:
        model.latency_ms({"blocks": [A, C]})
    assert isinstance(caught.value, KeyError)
    message = str(caught.value)
    assert C.key in message and "phone.json" in message
    assert caught.value.key == C.key and caught.value.path == str(table.path)


def test_local_measures_missing_blocks_once_and_saves_them(tmp_path):
    path = tmp_path / "local.json"
    calls = []

    def make_model(signature):
        calls.append(signature.key)
        return block_model(signature)

    model = LocalLatencyModel(path, genotype_blocks, make_model, measurer=FAST, progress=False)
    first = model.latency_ms({"blocks": [A, B, A]})
    assert calls == [A.key, B.key]
    saved = LatencyTable.load(path)
    assert first == pytest.approx(2 * saved[A].median_ms + saved[B].median_ms)
    assert saved.fingerprint == local_fingerprint(1)
    again = LocalLatencyModel(path, genotype_blocks, make_model, measurer=FAST, progress=False)
    assert again.latency_ms({"blocks": [B, A]}) == pytest.approx(saved[A].median_ms + saved[B].median_ms)
    assert calls == [A.key, B.key]
    assert again.measure_missing([{"blocks": [C]}]) == [C.key]


def test_local_refuses_a_table_of_another_device(table):
    with pytest.raises(DeviceMismatchError, match="cpu: 'some phone'"):
        latency_model_from_spec(f"local:{table.path}", genotype_blocks, make_model=block_model)


def test_spec_errors(tmp_path):
    with pytest.raises(ValueError, match="--latency_backend gpu-cloud: expected local"):
        latency_model_from_spec("gpu-cloud", genotype_blocks)
    with pytest.raises(ValueError, match="'adb' needs make_model"):
        latency_model_from_spec("adb", genotype_blocks, default_table=tmp_path / "t.json")
    with pytest.raises(ValueError, match="needs a file"):
        latency_model_from_spec("table:", genotype_blocks)
    with pytest.raises(ValueError, match="needs make_model"):
        latency_model_from_spec("local", genotype_blocks, default_table=tmp_path / "t.json")
    with pytest.raises(ValueError, match="needs a table file"):
        latency_model_from_spec("local", genotype_blocks, make_model=block_model)
    with pytest.raises(FileNotFoundError):
        latency_model_from_spec(f"table:{tmp_path / 'absent.json'}", genotype_blocks)
    local = latency_model_from_spec("local", genotype_blocks, make_model=block_model,
                                    default_table=tmp_path / "t.json", progress=False)
    assert isinstance(local, LocalLatencyModel)


def chain(signatures):
    """The network of a stand-in genotype: its blocks applied one after another."""
    inputs = keras.Input(signatures[0].input)
    x = inputs
    for signature in signatures:
        x = block_model(signature)(x)
    return keras.Model(inputs, x)


def test_calibrate_on_real_networks(tmp_path):
    path = tmp_path / "local.json"
    model = LocalLatencyModel(path, genotype_blocks, block_model, measurer=FAST, progress=False)
    genotypes = [{"blocks": [A]}, {"blocks": [A, B]}, {"blocks": [A, B, C, C]}]

    def measure_network(genotype):
        return FAST(tflite_convert.convert(chain(genotype["blocks"]), "int8")).median_ms

    overhead = calibrate_overhead(model, genotypes, measure_network)
    assert overhead.kind in ("affine", "offset") and len(overhead.points) == 3
    saved = LatencyTable.load(path)
    assert saved.overhead == overhead
    blocks = model.blocks_ms(genotypes[2])
    assert [point[0] for point in overhead.points] == pytest.approx(
        [model.blocks_ms(g) for g in genotypes])
    reloaded = latency_model_from_spec(f"table:{path}", genotype_blocks)
    assert reloaded.latency_ms(genotypes[2]) == pytest.approx(overhead.apply(blocks))
