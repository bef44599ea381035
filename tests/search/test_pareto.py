"""Non-dominated sorting against brute force, hypervolume, knee, choice, and the run folder outputs."""

import json
import struct

import numpy as np
import pytest

from mobileseg.arch import schema_io
from mobileseg.arch.composition import composition
from mobileseg.arch.space import SearchSpace
from mobileseg.run.fingerprint import genotype_key
from mobileseg.search.objectives import ReferencePoint
from mobileseg.search.pareto import (choose_arch, front_of, hypervolume_2d, knee_point, non_dominated_sort,
                                     pareto_mask, write_outputs)
from mobileseg.search.results import Candidate, SearchResult
from mobileseg.search.testing import DEMO_SPACE, CapacityAccuracyModel, WidthLatencyModel


def brute_force_front(costs):
    n = len(costs)
    return [i for i in range(n)
            if not any(all(costs[j] <= costs[i]) and any(costs[j] < costs[i]) for j in range(n) if j != i)]


@pytest.mark.parametrize("seed", range(6))
def test_pareto_mask_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    k = 2 + seed % 2
    costs = rng.integers(0, 12, size=(300, k)).astype(float)  # small integers: many ties and duplicates
    assert np.flatnonzero(pareto_mask(costs)).tolist() == brute_force_front(costs)
    continuous = rng.normal(size=(200, k))
    assert np.flatnonzero(pareto_mask(continuous)).tolist() == brute_force_front(continuous)


def test_pareto_mask_works_in_chunks_and_on_edge_cases():
    rng = np.random.default_rng(7)
    costs = rng.normal(size=(1300, 2))  # more than one chunk of 512
    assert np.flatnonzero(pareto_mask(costs)).tolist() == brute_force_front(costs)
    assert pareto_mask(np.zeros((0, 2))).tolist() == []
    assert pareto_mask([[1, 1], [1, 1]]).tolist() == [True, True]  # equal points do not dominate
    with pytest.raises(ValueError, match="points, objectives"):
        pareto_mask([1, 2, 3])


def test_non_dominated_sort_peels_fronts_like_brute_force():
    rng = np.random.default_rng(3)
    costs = rng.integers(0, 20, size=(150, 2)).astype(float)
    remaining = list(range(len(costs)))
    expected = []
    while remaining:
        front = [remaining[i] for i in brute_force_front(costs[remaining])]
        expected.append(front)
        remaining = [i for i in remaining if i not in front]
    assert [f.tolist() for f in non_dominated_sort(costs)] == expected


def test_hypervolume_matches_a_grid_count():
    rng = np.random.default_rng(4)
    latency, miou = rng.uniform(1, 10, 40), rng.uniform(0.2, 0.8, 40)
    reference = (9.0, 0.3)
    exact = hypervolume_2d(latency, miou, reference)
    xs = np.linspace(1, 9, 801)[:-1] + 0.005         # cell centres of a 0.01 ms grid
    ys = np.linspace(0.3, 0.8, 501)[:-1] + 0.0005     # and a 0.001 mIoU grid
    grid_x, grid_y = np.meshgrid(xs, ys)
    covered = np.zeros(grid_x.shape, dtype=bool)
    for l, m in zip(latency, miou):
        covered |= (grid_x >= l) & (grid_y <= m)
    assert exact == pytest.approx(covered.sum() * 0.01 * 0.001, rel=2e-3)
    dominated_extra = (latency.max(), miou.min())  # adding a dominated point changes nothing
    assert hypervolume_2d([*latency, dominated_extra[0]], [*miou, dominated_extra[1]], reference) == exact
    assert hypervolume_2d([], [], reference) == 0.0
    assert hypervolume_2d([10.0], [0.9], reference) == 0.0  # beyond the reference latency


def point(latency, miou, trial=0):
    return Candidate(trial=trial, generation=0, genotype=None, decisions={}, latency_ms=latency, miou=miou,
                     key=str(trial))


def test_knee_is_the_bend_of_the_front():
    front = [point(1, 0.10, 0), point(2, 0.50, 1), point(3, 0.55, 2), point(10, 0.60, 3)]
    assert knee_point(front).trial == 1
    assert knee_point([point(1, 0.1, 0), point(5, 0.4, 1)]).trial == 1  # no interior: the more accurate
    assert knee_point([point(1, 0.1, 5)]).trial == 5
    with pytest.raises(ValueError, match="empty"):
        knee_point([])


def test_choose_arch_takes_the_best_under_the_target_else_the_knee():
    front = [point(1, 0.10, 0), point(2, 0.50, 1), point(3, 0.55, 2), point(10, 0.60, 3)]
    assert choose_arch(front, 3.0).candidate.trial == 2
    assert choose_arch(front, 2.5).candidate.trial == 1
    assert choose_arch(front, 100).candidate.trial == 3
    assert "within the 3 ms target" in choose_arch(front, 3.0).reason
    no_target = choose_arch(front, None)
    assert no_target.candidate.trial == 1 and "no latency target" in no_target.reason
    too_tight = choose_arch(front, 0.5)
    assert too_tight.candidate.trial == 1 and "no network is within the 0.5 ms target" in too_tight.reason
    assert choose_arch([point(2, 0.5, 0), point(2, 0.5, 1)], 3).candidate.trial == 0


def test_front_of_sorts_fastest_first_and_ignores_dominated():
    candidates = [point(3, 0.5, 0), point(1, 0.2, 1), point(2, 0.1, 2), point(5, 0.5, 3)]
    assert [c.trial for c in front_of(candidates)] == [1, 0]


@pytest.fixture(scope="module")
def demo_result():
    space = SearchSpace.load(DEMO_SPACE)
    rng = np.random.default_rng(0)
    accuracy, latency = CapacityAccuracyModel(), WidthLatencyModel()
    genotypes = [space.sample(rng) for _ in range(40)]
    candidates = tuple(Candidate(trial=i, generation=i // 10, genotype=g, decisions=space.encode(g),
                                 latency_ms=latency.latency_ms(g), miou=accuracy.score(g), key=genotype_key(g))
                       for i, g in enumerate(genotypes))
    return SearchResult(candidates=candidates, generations=4, population=10, target_latency_ms=1.5, invalid=3,
                        study_name="demo", storage="sqlite:///x/study.db", seconds=12.0)


def png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_write_outputs_writes_the_three_files(tmp_path, demo_result):
    references = [ReferencePoint("in_space_net", "", 1.2, 0.5, True),
                  ReferencePoint("seaformer_tiny", "seaformer_tiny.yaml", 3.0, None, False,
                                 "outside the search space: latency only"),
                  ReferencePoint("segformer_b0", "segformer_b0.yaml", None, None, False, "no latency: block x")]
    outputs = write_outputs(tmp_path / "run", demo_result, references, latency_source="fake widths")
    report = json.loads(outputs.pareto_json.read_text())
    front = demo_result.front()
    assert [row["trial"] for row in report["front"]] == [c.trial for c in front]
    assert report["target_latency_ms"] == 1.5 and report["study"]["invalid_pruned"] == 3
    assert report["references"][1]["miou"] is None and report["latency_source"] == "fake widths"
    chosen = outputs.choice.candidate
    assert report["chosen"]["trial"] == chosen.trial and chosen.latency_ms <= 1.5
    assert chosen.miou == max(c.miou for c in demo_result.candidates if c.latency_ms <= 1.5)
    row = report["front"][0]
    assert set(row) == {"trial", "generation", "latency_ms", "miou", "feasible", "key", "composition", "decisions",
                        "genotype"}
    assert row["composition"] == composition(schema_io.from_dict(row["genotype"]))
    assert schema_io.from_dict(row["genotype"]) == front[0].genotype
    arch = schema_io.load(outputs.arch_yaml)
    assert arch.name == f"demo_trial{chosen.trial}" and genotype_key(arch) == chosen.key
    width, height = png_size(outputs.pareto_png.read_bytes())
    assert width >= 600 and height >= 400 and outputs.pareto_png.stat().st_size > 10_000
    assert "chosen: trial" in outputs.summary and "seaformer_tiny" in outputs.summary
    assert f"| {chosen.trial} |" in outputs.summary and "40 trials in 4 generations" in outputs.summary
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["arch.yaml", "pareto.json", "pareto.png"]


def test_outputs_without_target_or_references_take_the_knee(tmp_path, demo_result):
    import dataclasses

    result = dataclasses.replace(demo_result, target_latency_ms=None)
    outputs = write_outputs(tmp_path, result)
    assert outputs.choice.candidate == knee_point(result.front())
    assert json.loads(outputs.pareto_json.read_text())["references"] == []
    png_size(outputs.pareto_png.read_bytes())
