"""The random-search baseline: distinct seeded draws, the choice rule, supernet scores and their resume, the
outputs."""

import json

import pytest

from mobileseg.arch import schema_io
from mobileseg.arch.space import SearchSpace
from mobileseg.run.fingerprint import genotype_key
from mobileseg.search import random_search
from mobileseg.search.testing import CapacityAccuracyModel, WidthLatencyModel
from mobileseg.state_files import StateFileError

SPACE = SearchSpace.from_text("""
name: widths
branches:
  - name: main
    source: null
    cells:
      - {op: conv, width: {choice: [8, 16, 24, 32]}, stride: 2}
      - {op: conv, width: {choice: [8, 16, 24, 32]}, stride: 2}
      - choice: [{op: conv, width: {choice: [8, 16]}}, {op: skip}]
head: {op: light, inputs: [{branch: main}], width: 8}
""")


def test_draws_are_distinct_seeded_and_predicted():
    first = random_search.sample_networks(SPACE, WidthLatencyModel(), 0.6, trials=20, seed=3)
    again = random_search.sample_networks(SPACE, WidthLatencyModel(), 0.6, trials=20, seed=3)
    other = random_search.sample_networks(SPACE, WidthLatencyModel(), 0.6, trials=20, seed=4)
    keys = [n.key for n in first.networks]
    assert len(keys) == 20 == len(set(keys))
    assert keys == [n.key for n in again.networks] and keys != [n.key for n in other.networks]
    assert all(n.latency_ms == WidthLatencyModel().latency_ms(n.genotype) for n in first.networks)
    assert all(n.key == genotype_key(n.genotype) for n in first.networks)


def test_a_small_space_gives_every_network_it_has():
    result = random_search.sample_networks(SPACE, WidthLatencyModel(), 0.6, trials=1000, seed=0)
    other = random_search.sample_networks(SPACE, WidthLatencyModel(), 0.6, trials=1000, seed=1)
    assert 1 < len(result.networks) < 1000
    assert {n.key for n in result.networks} == {n.key for n in other.networks}


def test_the_choice_is_the_slowest_network_within_the_target_else_the_fastest():
    result = random_search.sample_networks(SPACE, WidthLatencyModel(), 0.6, trials=15, seed=1)
    within = [n.latency_ms for n in result.networks if n.latency_ms <= 0.6]
    assert result.chosen().latency_ms == max(within) and "within the 0.6 ms target" in result.reason()
    tight = random_search.RandomResult(result.networks, 0.01, 1)
    assert tight.chosen().latency_ms == min(n.latency_ms for n in result.networks)
    assert "none of 15" in tight.reason()


def test_outputs(tmp_path):
    result = random_search.sample_networks(SPACE, WidthLatencyModel(), 0.6, trials=15, seed=1)
    arch, summary = random_search.write_outputs(tmp_path, result, latency_source="test")
    report = json.loads((tmp_path / "pareto.json").read_text())
    assert report["strategy"] == "random" and report["study"]["trials"] == 15
    assert report["chosen"]["latency_ms"] == result.chosen().latency_ms and report["chosen"]["miou"] is None
    assert all(row["feasible"] and row["miou"] is None for row in report["front"])
    assert len(report["front"]) == len(result.feasible())
    assert genotype_key(schema_io.load(arch)) == result.chosen().key
    assert (tmp_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert f"{result.chosen().latency_ms:.3f} ms" in summary


@pytest.mark.parametrize("trials", [1, 5])
def test_progress_lines(trials):
    lines = []
    random_search.sample_networks(SPACE, WidthLatencyModel(), 0.6, trials=trials, seed=0, progress=lines.append)
    assert lines and lines[-1].startswith(f"random: {trials}/{trials} networks")


class CountingAccuracy(CapacityAccuracyModel):
    """`CapacityAccuracyModel` that counts the networks it scored."""

    def __init__(self):
        super().__init__()
        self.scored = 0

    def miou(self, genotypes):
        self.scored += len(genotypes)
        return super().miou(genotypes)


def test_within_target_counts_only_the_networks_within_it():
    result = random_search.sample_networks(SPACE, WidthLatencyModel(), 0.6, trials=6, seed=2, within_target=True)
    assert len(result.feasible()) == 6 < len(result.networks)
    assert result.networks[-1].latency_ms <= 0.6  # drawing stops at the sixth within the target
    nothing = random_search.sample_networks(SPACE, WidthLatencyModel(), 0.01, trials=3, seed=2, within_target=True)
    assert not nothing.feasible() and len(nothing.networks) > 3  # a target no network meets ends the draws


def test_scores_choose_the_best_proxy_miou_and_resume_from_the_file(tmp_path):
    path, proxy = tmp_path / random_search.SCORES_JSON, {"supernet_epoch": 3}
    drawn = random_search.sample_networks(SPACE, WidthLatencyModel(), 0.6, trials=8, seed=5, within_target=True)
    accuracy = CountingAccuracy()
    scored = random_search.score_networks(drawn, accuracy, path, proxy)
    assert accuracy.scored == 8 and len(scored.scored()) == 8
    assert all(n.miou is None for n in scored.networks if n.latency_ms > 0.6)
    best = max(scored.scored(), key=lambda n: n.miou)
    assert scored.chosen() == best and "best proxy mIoU of the 8" in scored.reason()
    assert best.miou == accuracy.miou([best.genotype])[0]
    again = CountingAccuracy()
    assert random_search.score_networks(drawn, again, path, proxy).chosen() == best and again.scored == 0
    with pytest.raises(StateFileError, match=r"another supernet or proxy \(supernet_epoch 3 -> 4\)"):
        random_search.score_networks(drawn, again, path, {"supernet_epoch": 4})


def test_scored_outputs(tmp_path):
    drawn = random_search.sample_networks(SPACE, WidthLatencyModel(), 0.6, trials=5, seed=1, within_target=True)
    result = random_search.score_networks(drawn, CapacityAccuracyModel(), tmp_path / "scores.json", {})
    _, summary = random_search.write_outputs(tmp_path, result, latency_source="test")
    report = json.loads((tmp_path / "pareto.json").read_text())
    assert report["study"]["scored"] == 5 and report["objectives"]["miou"].startswith("proxy mIoU")
    assert report["chosen"]["miou"] == result.chosen().miou == max(row["miou"] for row in report["front"])
    assert (tmp_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert f"proxy mIoU {100 * result.chosen().miou:.1f}" in summary
