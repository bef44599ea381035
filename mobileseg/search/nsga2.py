"""NSGA-II over a search space through Optuna, in generations evaluated as batches.

Deb et al., "A fast and elitist multiobjective genetic algorithm: NSGA-II" (2002), as
Optuna's `NSGAIISampler`, maximising proxy mIoU and minimising predicted latency.
The search sees only ``AccuracyModel.miou(genotypes)`` and
``LatencyModel.latency_ms(genotype)`` (docs/architecture.md, sections 3 and 4).

One generation:

1. ask for ``population`` trials at once (Optuna's ask/tell interface); each trial
   suggests the space's choices define-by-run (`mobileseg.search.encoding`), the
   decisions are materialised into a genotype and its latency predicted;
2. a proposal that does not connect (``materialize`` raises) is told PRUNED with its
   reason in the ``invalid`` user attribute and replaced by a new proposal; after
   ``fallback_after`` invalid proposals in a row the replacement is a valid random
   network (``space.sample(rng)``, enqueued so it is a trial like any other); after
   ``max_invalid`` the search raises `SearchError` (it never loops forever);
3. one ``accuracy_model.miou(batch)`` call scores every network of the generation not
   scored before in the study (a network asked again reuses its score);
4. every trial is told ``(miou, latency_ms)`` and, with a target, the constraint
   ``latency_ms - target`` (``Trial.set_constraint``: feasible when <= 0, Optuna's
   constrained domination; it replaces the ``constraints_func`` deprecated in Optuna 5).

Every finished trial (completed or pruned) is written to the study in the storage
with its user attributes: ``genotype`` (as a dict), ``decisions``, ``latency_ms``,
``miou``, ``key`` (`mobileseg.run.fingerprint.genotype_key`), ``generation``, ``uid``, ``worker``
when the search has one, and ``cached`` when the score was reused. The storage is any Optuna RDB URL
(`mobileseg.search.study_storage`): ``sqlite:///runs/NAME/study.db`` by default, or a
database server such as ``postgresql://user:password@host/db`` so that several processes
or machines work on one study: every worker runs with the same storage and study name.

Optuna writes each suggested parameter in its own database transaction (about 10 ms
each with SQLite here, 81 parameters a trial in the default space), so the sampler
works on an in-memory copy of the study and each finished trial is written to the
storage in one transaction (``Study.add_trial``). The copy is refreshed from the
storage at every generation, which is when workers see one another's trials.

Resuming: a generation is done when the stored study holds ``population`` more
completed trials; rerunning on the same storage counts them and goes on from there
(a generation cut short is completed with just the trials it lacks). A killed
process loses only its unfinished generation's unwritten trials: a trial reaches the
storage finished or not at all, so no trial is ever left RUNNING there by a worker that
died (nothing to fail or retry, no heartbeat needed).

Several workers: each stops once the study holds ``generations * population`` completed
trials (so the last generation may end up larger, by at most a generation per other
worker). Each worker has a name (``worker``, e.g. its host and run folder) that seeds its
sampler with the seed (and the number of trials stored), so workers started together
with one ``--seed`` do not propose the same networks, and a worker's draws still follow
from its settings; its trials carry the name, and `EvolutionarySearch.added` counts the
completed trials this process stored.

Example:
    >>> from mobileseg.arch.space import SearchSpace
    >>> from mobileseg.search.testing import CapacityAccuracyModel, DEMO_SPACE, WidthLatencyModel
    >>> search = EvolutionarySearch(SearchSpace.load(DEMO_SPACE), CapacityAccuracyModel(), WidthLatencyModel(),
    ...                             storage_url=None, population=4, generations=2, seed=0)
    >>> lines = []
    >>> result = search.run(progress=lines.append)
    >>> len(result.candidates), result.generations, lines[-1].startswith("gen 2/2: 8 trials")
    (8, 2, True)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import numpy as np
import optuna
from optuna.trial import TrialState

from mobileseg.arch import schema_io
from mobileseg.arch.schema_io import GenotypeError
from mobileseg.arch.space import SearchSpace
from mobileseg.latency.predictor import LatencyModel
from mobileseg.run.fingerprint import genotype_key, json_digest, text_digest
from mobileseg.search import encoding as encodings
from mobileseg.search.objectives import AccuracyModel, checked_mious
from mobileseg.search.results import Candidate, SearchResult
from mobileseg.search.study_storage import DIRECTIONS, hide_password, open_study, quiet_optuna
from mobileseg.timebudget.eta import Pace


class SearchError(RuntimeError):
    """The search cannot go on (invalid proposals beyond the bound, a study set up differently)."""


class EvolutionarySearch:
    """NSGA-II (Optuna) over a `SearchSpace`, maximising proxy mIoU and minimising latency.

    Args:
        space: the search space.
        accuracy_model: an `AccuracyModel` (``miou(genotypes) -> [0..1] per network``),
            called once per generation with the networks not scored before.
        latency_model: a `LatencyModel` (``latency_ms(genotype)``).
        storage_url: an Optuna RDB URL (`default_storage` gives the run folder's SQLite
            file); None keeps the study in memory (no resume).
        study_name: the study in that storage; rerunning continues it.
        population: trials per generation (Optuna's ``population_size``), at least 2.
        generations: generations to reach in the study (counting those already done).
        seed: seeds the sampler and the fallback sampling (with the number of trials
            already in the study, so a resumed search does not replay its first draws).
        target_latency_ms: a latency constraint (constrained NSGA-II), or None.
        encoding: ``full`` or ``active``, see `mobileseg.search.encoding`.
        fallback_after: invalid proposals in a row before a slot takes a random valid network.
        max_invalid: invalid proposals in a row after which the search raises `SearchError`.
        worker: this worker's name, for several workers on one study (module docstring); None
            (one worker) leaves it out of the seed.

    Attributes:
        added: completed trials this object stored (other workers' are not counted).

    Raises:
        SearchError (from `study`, `run`): the stored study was created with another
            population, target, encoding or space.
    """

    def __init__(self, space: SearchSpace, accuracy_model: AccuracyModel, latency_model: LatencyModel,
                 storage_url: str | None, study_name: str = "search", population: int = 50,
                 generations: int = 20, seed: int = 0, target_latency_ms: float | None = None,
                 encoding: str = "full", fallback_after: int = 20, max_invalid: int = 100,
                 worker: str | None = None):
        if population < 2:
            raise ValueError(f"population must be at least 2, got {population}")
        if generations < 1:
            raise ValueError(f"generations must be at least 1, got {generations}")
        if encoding not in encodings.ENCODINGS:
            raise ValueError(f"unknown encoding {encoding!r}; expected one of {', '.join(encodings.ENCODINGS)}")
        if target_latency_ms is not None and not target_latency_ms > 0:
            raise ValueError(f"target_latency_ms must be positive, got {target_latency_ms}")
        if not 1 <= fallback_after <= max_invalid:
            raise ValueError(f"need 1 <= fallback_after <= max_invalid, got {fallback_after} and {max_invalid}")
        self.space = space
        self.accuracy_model = accuracy_model
        self.latency_model = latency_model
        self.storage_url = storage_url
        self.study_name = study_name
        self.population = population
        self.generations = generations
        self.seed = seed
        self.target_latency_ms = None if target_latency_ms is None else float(target_latency_ms)
        self.encoding = encoding
        self.fallback_after = fallback_after
        self.max_invalid = max_invalid
        self.worker = worker
        self.added = 0
        self._points = encodings.all_choice_points(space) if encoding == "full" else None
        self._study: optuna.Study | None = None    # the stored study
        self._working: optuna.Study | None = None  # its in-memory copy, where the sampler works
        self._copied: set[str] = set()             # uids of the stored trials in the copy
        self._candidates: dict[int, Candidate] = {}
        self._rng: np.random.Generator | None = None

    # -- the study -------------------------------------------------------------------------
    def study(self) -> optuna.Study:
        """The stored Optuna study (created, or loaded and checked against these settings)."""
        if self._study is not None:
            return self._study
        study = open_study(self.storage_url, self.study_name)
        settings = {"population": self.population, "target_latency_ms": self.target_latency_ms,
                    "encoding": self.encoding, "space": json_digest(self.space.tree, "sha1")}
        stored = study.user_attrs.get("settings")
        if stored is None:
            study.set_user_attr("settings", settings)
            study.set_user_attr("space_source", str(self.space.source))
        else:
            changed = [f"{key} {stored.get(key)!r} -> {value!r}" for key, value in settings.items()
                       if stored.get(key) != value]
            if changed:
                raise SearchError(f"study {self.study_name!r} in {hide_password(self.storage_url)} was created "
                                  f"with other settings ({'; '.join(changed)}); use a new study name or run "
                                  "folder, or the original settings")
        self._study = study
        return study

    def result(self, seconds: float = 0.0) -> SearchResult:
        """The stored study's completed trials as a `SearchResult` (runs nothing)."""
        trials = self.study().get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        for trial in complete:
            if trial.number not in self._candidates:
                self._candidates[trial.number] = _candidate(trial)
        invalid = sum(1 for t in trials if t.state == TrialState.PRUNED and "invalid" in t.user_attrs)
        return SearchResult(candidates=tuple(self._candidates[t.number] for t in complete),
                            generations=len(complete) // self.population, population=self.population,
                            target_latency_ms=self.target_latency_ms, invalid=invalid,
                            study_name=self.study_name, storage=hide_password(self.storage_url), seconds=seconds)

    def _working_copy(self) -> optuna.Study:
        """The in-memory copy with the stored trials it lacks added (other workers' included)."""
        stored = self.study().get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        if self._working is None:
            entropy = [self.seed, len(stored)]
            if self.worker is not None:
                entropy.append(int.from_bytes(bytes.fromhex(text_digest(self.worker, length=16)), "little"))
            seeds = np.random.default_rng(entropy).integers(2**31, size=2)
            sampler = optuna.samplers.NSGAIISampler(population_size=self.population, seed=int(seeds[0]))
            self._working = optuna.create_study(directions=list(DIRECTIONS), sampler=sampler)
            self._rng = np.random.default_rng(int(seeds[1]))
        for trial in stored:
            uid = trial.user_attrs.get("uid", f"trial-{trial.number}")
            if uid not in self._copied:
                self._copied.add(uid)
                self._working.add_trial(trial)
        return self._working

    def _store(self, trial: optuna.trial.FrozenTrial) -> None:
        """Write a finished trial of the working copy into the stored study (one transaction)."""
        self.study().add_trial(trial)
        self._copied.add(trial.user_attrs["uid"])
        self.added += trial.state == TrialState.COMPLETE

    # -- the search ------------------------------------------------------------------------
    def run(self, progress: Callable[[str], object] | None = print, deadline=None) -> SearchResult:
        """Run (or resume) generations until the study holds ``generations`` of them.

        Args:
            progress: called with one line per generation, its ETA at the pace so far (None: silent).
            deadline: a `mobileseg.timebudget.deadline.Deadline`, or None: after a generation is stored,
                the search stops there when another (at this call's mean pace) would end past it, and
                says so through ``progress``.

        Returns:
            The `SearchResult` of the whole stored study.
        """
        started = time.time()
        pace = None
        with quiet_optuna():
            while True:
                complete = self.study().get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                done = len(complete) // self.population
                if done >= self.generations:
                    break
                pace = pace or Pace(self.generations, done)
                if deadline is not None and not deadline.fits(pace.unit_seconds(done)):
                    if progress is not None:
                        progress(deadline.cut_message(f"{done} of {self.generations} generations", "generation"))
                    break
                generation_started = time.time()
                missing = (done + 1) * self.population - len(complete)
                scores = {t.user_attrs["key"]: t.user_attrs["miou"] for t in complete}
                self._generation(self._working_copy(), done, missing, scores)
                if progress is not None:
                    progress(f"{self._progress_line(done + 1, time.time() - generation_started)}, "
                             f"{pace.text(done + 1)}")
        return self.result(seconds=time.time() - started)

    def _generation(self, working: optuna.Study, generation: int, size: int, scores: dict[str, float]) -> None:
        """Ask ``size`` valid trials, score the new networks in one batch, tell and store them all."""
        asked: list[tuple[optuna.Trial, object, str]] = []
        try:
            for _ in range(size):
                asked.append(self._ask_valid(working, generation))
            new: dict[str, object] = {}
            for _, genotype, key in asked:
                if key not in scores:
                    new.setdefault(key, genotype)
            batch = list(new.values())
            if batch:
                scores.update(zip(new, checked_mious(self.accuracy_model.miou(batch), batch), strict=True))
            fresh = set(new)
            while asked:
                trial, _, key = asked[0]
                trial.set_user_attr("miou", scores[key])
                if key not in fresh:
                    trial.set_user_attr("cached", True)
                fresh.discard(key)  # a network asked twice in one generation is scored once
                finished = working.tell(trial, [scores[key], trial.user_attrs["latency_ms"]])
                asked.pop(0)
                self._store(finished)
        except BaseException as error:
            for trial, _, _ in asked:  # unfinished: failed in the copy, never stored
                trial.set_user_attr("error", f"{type(error).__name__}: {error}"[:500])
                working.tell(trial, state=TrialState.FAIL)
            raise

    def _ask_valid(self, working: optuna.Study, generation: int) -> tuple[optuna.Trial, object, str]:
        """One trial whose decisions give a network, its latency predicted (bounded redraws)."""
        last = None
        for attempt in range(self.max_invalid):
            if attempt == self.fallback_after:
                self._enqueue_random_network(working)
            trial = working.ask()
            trial.set_user_attr("uid", uuid.uuid4().hex)
            trial.set_user_attr("generation", generation)
            if self.worker is not None:
                trial.set_user_attr("worker", self.worker)
            decisions = None
            try:
                decisions = encodings.suggest_decisions(
                    self.space, lambda path, n: trial.suggest_categorical(path, list(range(n))),
                    self.encoding, self._points)
                genotype = self.space.materialize(decisions)
                latency = float(self.latency_model.latency_ms(genotype))
                if not np.isfinite(latency) or latency < 0:
                    raise ValueError(f"LatencyModel.latency_ms gave {latency!r}; expected milliseconds >= 0")
                key = genotype_key(genotype)
                trial.set_user_attr("decisions", decisions)
                trial.set_user_attr("genotype", schema_io.to_dict(genotype))
                trial.set_user_attr("key", key)
                trial.set_user_attr("latency_ms", latency)
                if self.target_latency_ms is not None:
                    trial.set_constraint("latency", latency - self.target_latency_ms)
            except GenotypeError as error:  # the decisions do not connect: prune, propose again
                last = error
                if decisions is not None:
                    trial.set_user_attr("decisions", decisions)
                trial.set_user_attr("invalid", str(error)[:500])
                self._store(working.tell(trial, state=TrialState.PRUNED))
                continue
            except BaseException as error:
                trial.set_user_attr("error", f"{type(error).__name__}: {error}"[:500])
                working.tell(trial, state=TrialState.FAIL)
                raise
            return trial, genotype, key
        raise SearchError(f"{self.max_invalid} proposals in a row did not give a network of {self.space.source} "
                          f"(a random valid network was also tried after {self.fallback_after}); last problem: {last}")

    def _enqueue_random_network(self, working: optuna.Study) -> None:
        """Queue a valid random network as the next trial's parameters."""
        try:
            genotype = self.space.sample(self._rng)
        except GenotypeError as error:
            raise SearchError(f"the space {self.space.source} gives no valid network: {error}") from None
        working.enqueue_trial(self.space.encode(genotype), skip_if_exists=False)

    def _progress_line(self, generation: int, seconds: float) -> str:
        result = self.result()
        front = result.front()
        target = self.target_latency_ms
        fastest = front[0]
        within = [c for c in front if c.feasible(target)]
        if within:
            best = max(within, key=lambda c: (c.miou, -c.latency_ms))
            label = "best" if target is None else f"best under {target:g} ms"
            best_text = f"{label} {100 * best.miou:.1f} mIoU @ {best.latency_ms:.3g} ms"
        else:
            best_text = f"none under {target:g} ms"
        invalid = f" ({result.invalid} invalid pruned)" if result.invalid else ""
        return (f"gen {generation}/{self.generations}: {len(result.candidates)} trials{invalid}, "
                f"front {len(front)} ({best_text}; fastest {100 * fastest.miou:.1f} @ {fastest.latency_ms:.3g} ms), "
                f"{seconds:.0f} s")


def _candidate(trial: optuna.trial.FrozenTrial) -> Candidate:
    attrs = trial.user_attrs
    return Candidate(trial=trial.number, generation=int(attrs["generation"]),
                     genotype=schema_io.from_dict(attrs["genotype"], f"trial {trial.number}"),
                     decisions={k: int(v) for k, v in attrs["decisions"].items()},
                     latency_ms=float(attrs["latency_ms"]), miou=float(attrs["miou"]), key=attrs["key"])
