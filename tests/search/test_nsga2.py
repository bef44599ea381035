"""NSGA-II through Optuna on the demo space with fake models: progress, resume, constraint, invalid samples."""

import re

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from mobileseg.arch import schema_io
from mobileseg.arch.space import SearchSpace
from mobileseg.run.fingerprint import genotype_key
from mobileseg.search.nsga2 import EvolutionarySearch, SearchError
from mobileseg.search.objectives import evaluate_references
from mobileseg.search.pareto import hypervolume_2d, write_outputs
from mobileseg.search.study_storage import default_storage
from mobileseg.search.testing import DEMO_SPACE, CapacityAccuracyModel, WidthLatencyModel

LINE = re.compile(r"gen (\d+)/(\d+): (\d+) trials( \(\d+ invalid pruned\))?, front (\d+) "
                  r"\((best|best under [\d.]+ ms) [\d.]+ mIoU @ [\d.]+ ms; fastest [\d.]+ @ [\d.]+ ms\), \d+ s, "
                  r"ETA [\dhms.]+ \(at \d\d:\d\d\)")  # the generations left at the pace so far

# Half of all combinations do not connect: a width of 18 is not divisible by the 4 heads that follow.
HALF_INVALID = """
name: half
branches:
  - name: main
    source: null
    cells:
      - {op: conv, width: 8, stride: 2}
      - {op: mbconv, width: {choice: [16, 18]}, stride: 2, expansion: 2.0}
      - {op: mhsa, heads: 4, key_dim: 8}
      - choice: [{op: mbconv, width: {choice: [16, 24, 32]}, expansion: 2.0}, {op: skip}]
      - choice: [{op: mbconv, width: {choice: [16, 24, 32]}, expansion: 2.0}, {op: skip}]
      - {op: conv, width: 16, kernel: 1}
head: {op: light, inputs: [{branch: main}], width: 16}
"""


@pytest.fixture(scope="module")
def space():
    return SearchSpace.load(DEMO_SPACE)


def search(space, storage, generations, accuracy=None, **kwargs):
    kwargs.setdefault("population", 8)
    kwargs.setdefault("seed", 0)
    return EvolutionarySearch(space, accuracy or CapacityAccuracyModel(), WidthLatencyModel(), storage,
                              generations=generations, **kwargs)


def stored_trials(storage, name="search"):
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


@pytest.mark.parametrize("encoding", ["full", "active"])
def test_search_improves_the_hypervolume_and_reports_each_generation(space, encoding):
    lines = []
    result = search(space, None, 4, encoding=encoding).run(progress=lines.append)
    assert len(lines) == 4 and all(LINE.fullmatch(line) for line in lines), lines
    assert [LINE.fullmatch(line).group(1, 2, 3) for line in lines] == [
        ("1", "4", "8"), ("2", "4", "16"), ("3", "4", "24"), ("4", "4", "32")]
    assert len(result.candidates) == 32 and result.generations == 4
    assert [c.generation for c in result.candidates] == [g for g in range(4) for _ in range(8)]
    reference = (2.5, 0.0)

    def hypervolume(candidates):
        return hypervolume_2d([c.latency_ms for c in candidates], [c.miou for c in candidates], reference)

    assert hypervolume(result.candidates) > hypervolume(result.candidates[:8])
    for c in result.candidates:  # every trial carries what it needs to be rebuilt
        assert space.materialize(c.decisions) == c.genotype and genotype_key(c.genotype) == c.key
        assert c.latency_ms == WidthLatencyModel().latency_ms(c.genotype)
    assert result.storage == "in-memory"


def test_seeded_searches_repeat_and_seeds_differ(space):
    def decisions(seed):
        return [c.decisions for c in search(space, None, 2, seed=seed).run(progress=None).candidates]

    assert decisions(3) == decisions(3)
    assert decisions(3) != decisions(4)


def test_a_search_resumes_without_redoing_work(space, tmp_path):
    storage = default_storage(tmp_path)
    first_model = CapacityAccuracyModel()
    search(space, storage, 2, first_model).run(progress=None)
    second_model = CapacityAccuracyModel()
    lines = []
    result = search(space, storage, 4, second_model).run(progress=lines.append)
    assert [line.split(":")[0] for line in lines] == ["gen 3/4", "gen 4/4"]
    assert len(result.candidates) == 32 and result.generations == 4
    assert [c.generation for c in result.candidates] == [g for g in range(4) for _ in range(8)]
    assert not set(first_model.evaluated) & set(second_model.evaluated)  # nothing scored twice
    assert len(set(first_model.evaluated + second_model.evaluated)) == len(result.unique())
    assert len(second_model.batches) == 2  # one batch per generation
    again = search(space, storage, 4, CapacityAccuracyModel())
    assert again.run(progress=None).candidates == result.candidates  # already done: nothing runs
    assert again.accuracy_model.batches == []


class Interrupting(CapacityAccuracyModel):
    """Ctrl-C during the batch of a given call."""

    def __init__(self, at_call):
        super().__init__()
        self.at_call = at_call

    def miou(self, genotypes):
        if len(self.batches) + 1 == self.at_call:
            raise KeyboardInterrupt
        return super().miou(genotypes)


def test_an_interrupted_generation_is_redone_and_nothing_half_done_is_stored(space, tmp_path):
    storage = default_storage(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        search(space, storage, 4, Interrupting(at_call=3)).run(progress=None)
    states = {t.state for t in stored_trials(storage)}
    assert states <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert sum(t.state == TrialState.COMPLETE for t in stored_trials(storage)) == 16
    result = search(space, storage, 4).run(progress=None)
    assert len(result.candidates) == 32
    assert [c.generation for c in result.candidates] == [g for g in range(4) for _ in range(8)]


def test_a_generation_cut_short_is_completed_with_the_trials_it_lacks(space, tmp_path):
    storage = default_storage(tmp_path)
    killed = search(space, storage, 3)
    store = killed._store
    stored = []

    def dies_after_twenty(trial):
        if sum(t.state == TrialState.COMPLETE for t in stored) == 20:
            raise KeyboardInterrupt  # the process dies after writing 4 networks of generation 3
        store(trial)
        stored.append(trial)

    killed._store = dies_after_twenty
    with pytest.raises(KeyboardInterrupt):
        killed.run(progress=None)
    assert sum(t.state == TrialState.COMPLETE for t in stored_trials(storage)) == 20
    resumed = search(space, storage, 3)
    lines = []
    result = resumed.run(progress=lines.append)
    assert len(lines) == 1 and lines[0].startswith("gen 3/3: 24 trials")
    assert [c.generation for c in result.candidates] == [g for g in range(3) for _ in range(8)]


def test_the_latency_target_constrains_the_search_and_the_choice(space, tmp_path):
    rng = np.random.default_rng(0)
    latencies = sorted(WidthLatencyModel().latency_ms(space.sample(rng)) for _ in range(200))
    target = latencies[40]  # a fifth of the space is within the target
    storage = default_storage(tmp_path)
    lines = []
    result = search(space, storage, 4, target_latency_ms=target).run(progress=lines.append)
    assert f"best under {target:g} ms" in lines[-1]
    constraints = [t.constraints for t in stored_trials(storage) if t.state == TrialState.COMPLETE]
    assert constraints == [{"latency": c.latency_ms - target} for c in result.candidates]
    feasible = [sum(c.latency_ms <= target for c in result.candidates if c.generation == g) for g in range(4)]
    assert feasible[-1] >= feasible[0] and feasible[-1] >= 4  # selection moves the population under the target
    outputs = write_outputs(tmp_path / "run", result)
    arch = schema_io.load(outputs.arch_yaml)
    assert WidthLatencyModel().latency_ms(arch) <= target
    assert outputs.choice.candidate.miou == max(c.miou for c in result.candidates if c.latency_ms <= target)
    with pytest.raises(SearchError, match=r"other settings \(target_latency_ms"):
        search(space, storage, 5, target_latency_ms=target * 2).run(progress=None)
    with pytest.raises(SearchError, match="population 8 -> 10"):
        search(space, storage, 5, population=10, target_latency_ms=target).run(progress=None)


def test_invalid_combinations_are_pruned_logged_and_redrawn():
    space = SearchSpace.from_text(HALF_INVALID, "half.yaml")
    engine = search(space, None, 3)
    result = engine.run(progress=None)
    assert len(result.candidates) == 24 and result.invalid > 0
    assert all(c.genotype.branches[0].cells[1].width == 16 for c in result.candidates)
    pruned = engine.study().get_trials(states=(TrialState.PRUNED,))
    assert len(pruned) == result.invalid
    assert all("4 heads do not divide the input width 18" in t.user_attrs["invalid"] for t in pruned)
    assert all(t.user_attrs["decisions"]["branches[0].cells[1].width"] == 1 for t in pruned)


class AlwaysInvalid(SearchSpace):
    """A space whose every sample fails to connect (its sampler proposals and random samples alike)."""

    def materialize(self, decisions):
        raise schema_io.GenotypeError("half.yaml: nothing connects")


def test_a_space_without_valid_networks_raises_instead_of_looping():
    space = AlwaysInvalid.from_text(HALF_INVALID, "half.yaml")
    engine = search(space, None, 2, fallback_after=3, max_invalid=6)
    with pytest.raises(SearchError, match="gives no valid network"):
        engine.run(progress=None)
    pruned = engine.study().get_trials(states=(TrialState.PRUNED,))
    assert len(pruned) == 3  # every proposal is logged before giving up


class ProposesWidth18(optuna.samplers.RandomSampler):
    """A sampler that always proposes the width that cannot connect."""

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_independent(self, study, trial, name, distribution):
        if name == "branches[0].cells[1].width":
            return 1
        return super().sample_independent(study, trial, name, distribution)


def test_the_random_fallback_rescues_a_sampler_that_keeps_proposing_invalid_networks():
    space = SearchSpace.from_text(HALF_INVALID, "half.yaml")
    engine = search(space, None, 1, fallback_after=2, max_invalid=5)
    engine._working_copy().sampler = ProposesWidth18(seed=0)
    result = engine.run(progress=None)
    assert len(result.candidates) == 8 and result.invalid == 16  # two proposals per slot, then a random network


def test_a_bad_accuracy_model_fails_loudly_and_leaves_no_trial_behind(space, tmp_path):
    class Percent(CapacityAccuracyModel):
        def miou(self, genotypes):
            return [100 * value for value in super().miou(genotypes)]

    storage = default_storage(tmp_path)
    with pytest.raises(ValueError, match="expected a fraction in"):
        search(space, storage, 1, Percent()).run(progress=None)
    assert not [t for t in stored_trials(storage) if t.state == TrialState.COMPLETE]


def test_arguments_are_checked(space):
    for kwargs, message in [({"population": 1}, "population must be at least 2"),
                            ({"encoding": "flat"}, "unknown encoding"),
                            ({"target_latency_ms": 0}, "must be positive"),
                            ({"fallback_after": 0}, "fallback_after")]:
        with pytest.raises(ValueError, match=message):
            search(space, None, 1, **kwargs)
    with pytest.raises(ValueError, match="generations must be at least 1"):
        search(space, None, 0)


def test_search_then_outputs_with_the_reference_zoo(space, tmp_path):
    accuracy, latency = CapacityAccuracyModel(), WidthLatencyModel()
    result = EvolutionarySearch(space, accuracy, latency, default_storage(tmp_path), population=6,
                                generations=2, seed=1).run(progress=None)
    zoo = sorted((DEMO_SPACE.parent / "references").glob("*.yaml"))
    references = evaluate_references([result.candidates[0].genotype, *zoo], latency, accuracy, space)
    assert references[0].in_space and references[0].miou is not None
    assert all(not r.in_space and r.miou is None and r.latency_ms > 0 for r in references[1:])
    outputs = write_outputs(tmp_path, result, references)
    assert schema_io.load(outputs.arch_yaml).branches
    assert outputs.pareto_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "study.db").is_file()


def test_two_workers_share_one_study(space, tmp_path):
    """Two searches on one storage at once (threads standing in for processes or machines)."""
    import threading

    storage = default_storage(tmp_path)
    workers = [search(space, storage, 4, population=6, seed=seed) for seed in (0, 1)]
    errors = []

    def work(engine):
        try:
            engine.run(progress=None)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(engine,)) for engine in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and not any(thread.is_alive() for thread in threads)
    complete = [t for t in stored_trials(storage) if t.state == TrialState.COMPLETE]
    assert 24 <= len(complete) <= 24 + 6  # at most one extra batch when both finish the last generation
    uids = [t.user_attrs["uid"] for t in complete]
    assert len(set(uids)) == len(uids)
    mine = [{t.user_attrs["uid"] for t in engine._working_copy().get_trials() if t.state == TrialState.COMPLETE}
            for engine in workers]
    assert all(len(own) > 6 for own in mine)  # each saw trials beyond its own first generation


def test_workers_with_one_seed_draw_apart_and_tag_and_count_their_own_trials(space, tmp_path):
    """Named workers mix their name into the seed: two workers started on one empty study with one seed do
    not propose the same networks (unnamed, they would propose identical generations)."""
    def first_generation(worker, storage=None):
        engine = search(space, storage, 1, worker=worker)
        return engine, [c.decisions for c in engine.run(progress=None).candidates]

    assert first_generation(None)[1] == first_generation(None)[1]
    assert first_generation("host:/runs/a")[1] == first_generation("host:/runs/a")[1]
    assert first_generation("host:/runs/a")[1] != first_generation("host:/runs/b")[1]

    storage = default_storage(tmp_path)
    first, _ = first_generation("host:/runs/a", storage)
    second = search(space, storage, 3, worker="host:/runs/b")
    second.run(progress=None)
    complete = [t for t in stored_trials(storage) if t.state == TrialState.COMPLETE]
    workers = [t.user_attrs["worker"] for t in complete]
    assert (first.added, second.added, len(complete)) == (8, 16, 24)
    assert (workers.count("host:/runs/a"), workers.count("host:/runs/b")) == (8, 16)
