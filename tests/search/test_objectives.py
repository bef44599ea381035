"""The accuracy interface, mIoU checks, references on the search's axes, the fakes."""

import numpy as np
import pytest

from mobileseg.arch import schema_io
from mobileseg.arch.space import SearchSpace
from mobileseg.latency.predictor import LatencyModel, MissingBlockError
from mobileseg.search.objectives import AccuracyModel, checked_mious, evaluate_references
from mobileseg.search.testing import DEMO_SPACE, CapacityAccuracyModel, WidthLatencyModel

REFERENCES = DEMO_SPACE.parent / "references"


@pytest.fixture(scope="module")
def space():
    return SearchSpace.load(DEMO_SPACE)


def test_checked_mious_refuses_wrong_counts_and_non_fractions():
    assert checked_mious(np.array([0.0, 1.0]), ["a", "b"]) == [0.0, 1.0]
    with pytest.raises(ValueError, match="gave 1 values for 2 networks"):
        checked_mious([0.5], ["a", "b"])
    for bad in (float("nan"), -0.1, 41.2, float("inf")):
        with pytest.raises(ValueError, match="expected a fraction in"):
            checked_mious([bad], ["a"])


def test_the_fakes_follow_the_protocols_and_are_deterministic(space):
    accuracy, latency = CapacityAccuracyModel(), WidthLatencyModel()
    assert isinstance(accuracy, AccuracyModel) and isinstance(latency, LatencyModel)
    rng = np.random.default_rng(1)
    samples = [space.sample(rng) for _ in range(50)]
    scores = accuracy.miou(samples)
    assert scores == CapacityAccuracyModel().miou(samples) and all(0 < s < 1 for s in scores)
    assert accuracy.batches == [50] and len(accuracy.evaluated) == 50
    latencies = [latency.latency_ms(g) for g in samples]
    assert min(latencies) > 0 and len(set(latencies)) > 5
    # a real trade-off: the wider networks score higher and run slower
    assert np.corrcoef(latencies, scores)[0, 1] > 0.5


class TableWithoutAttention:
    """A latency model that lacks the blocks of attention cells, like a table built for another space."""

    def latency_ms(self, genotype):
        for branch in genotype.branches:
            for cell in branch.cells:
                if "attention" in cell.OP:
                    raise MissingBlockError(f"{cell.OP}@...", "phone.json")
        return WidthLatencyModel().latency_ms(genotype)


def test_references_get_latency_always_and_miou_only_inside_the_space(space):
    inside = space.sample(np.random.default_rng(2))
    outside = REFERENCES / "mobilenetv3_small_lraspp.yaml"
    attention = REFERENCES / "seaformer_tiny.yaml"
    accuracy = CapacityAccuracyModel()
    points = evaluate_references([inside, outside, attention], TableWithoutAttention(), accuracy, space)
    assert [p.name for p in points] == [inside.name, "mobilenetv3_small_lraspp", "seaformer_tiny"]
    assert points[0].in_space and points[0].miou == accuracy.score(inside) and points[0].latency_ms > 0
    assert points[0].file == "" and points[1].file == "mobilenetv3_small_lraspp.yaml"
    assert not points[1].in_space and points[1].miou is None and points[1].latency_ms > 0
    assert points[1].note == "outside the search space: latency only"
    assert points[2].latency_ms is None and "phone.json" in points[2].note
    assert accuracy.batches == [1]  # one batch, with the reference inside the space only
    assert points[0].as_dict()["in_space"] is True


def test_a_broken_reference_file_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    with pytest.raises(schema_io.GenotypeError, match="bad.yaml"):
        evaluate_references([bad], WidthLatencyModel())
