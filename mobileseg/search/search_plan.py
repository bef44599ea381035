"""A search checked before anything is written: `check_inputs` turns the flags into a `Plan`.

Every input is checked (space, data set and its splits, sizes against the space's output stride,
budget, references, storage, latency backend) and every flag resolved (the budget's defaults, the
input size, the image scale). The resume rules live here too: a run folder holding a search of
another space, data set or input size, a supernet or differentiable search trained with other
settings, or a study scored with another proxy is refused with the flag to change. Nothing is
written; `mobileseg.search.stages` runs the plan. The pipeline checks the space (`load_space`) and
the data set's splits (`check_splits`) with the same functions (`mobileseg.pipeline_checks`).
"""

from __future__ import annotations

import dataclasses
import socket
import types
from collections.abc import Sequence
from pathlib import Path

from mobileseg.run.exit_codes import BadInput
from mobileseg.run.fingerprint import json_digest
from mobileseg.run.latency_backend import parse_latency_backend
from mobileseg.run.run_config import ResumeRefused, read_config, resume_changes
from mobileseg.run.run_dir import RunDir
from mobileseg.search.search_flags import BUDGET_FLAGS, FLAG_NAMES


@dataclasses.dataclass
class Plan:
    """A search the flags describe, checked, with every flag resolved; nothing written yet.

    Attributes:
        flags: every flag's value (`FLAG_NAMES`), the budget's where a flag was left out.
        record: ``flags`` and what they resolve to, for config.yaml's ``search`` section.
    """

    flags: types.SimpleNamespace
    record: dict
    run_dir: Path
    space: object
    source: object
    input_size: tuple[int, int]
    storage: str
    references: object
    latency: object = None
    latency_table: Path | None = None
    signatures: tuple = ()

    def supernet_config(self):
        """The supernet's training settings."""
        from mobileseg.supernet.trainer import SupernetTrainConfig

        f = self.flags
        return SupernetTrainConfig(epochs=f.supernet_epochs, batch_size=f.batch_size,
                                   steps_per_epoch=f.steps_per_epoch, search_scale=f.search_scale, seed=f.seed,
                                   precision=f.precision, verbose=f.progress)

    def proxy(self, supernet_epoch: int) -> dict:
        """What the study's scores depend on besides the space (a continued study must match)."""
        f = self.flags
        return {"supernet_epoch": supernet_epoch, "calib_batches": f.calib_batches, "val_images": f.val_images,
                "batch_size": f.batch_size, "latency_backend": self.latency_identity(),
                "input_size": list(self.input_size), "data": self.source.spec}

    def latency_identity(self) -> str:
        """``--latency_backend``, a ``table:FILE`` by its contents: workers' copies of one table are one backend."""
        if parse_latency_backend(self.flags.latency_backend).measures:
            return self.flags.latency_backend
        return f"table sha256:{json_digest(self.latency.table.to_json(), length=16)}"


def default_input_size(image_size: Sequence[int], stride: int) -> tuple[int, int]:
    """Half of ``image_size``, each side rounded to the nearest multiple of ``stride`` (ties up).

    Example:
        >>> default_input_size((360, 480), 8), default_input_size((120, 160), 8), default_input_size((20, 20), 16)
        ((184, 240), (64, 80), (16, 16))
    """
    return tuple(max(stride, int(side / 2 / stride + 0.5) * stride) for side in image_size)


def _positive(fv, names: Sequence[str]) -> None:
    for name in names:
        value = fv[name].value
        if value is not None and not value > 0:
            raise BadInput(f"--{name} {value}: must be positive")


def _image_size(source) -> tuple[int, int]:
    from mobileseg.data.problems import DataError

    pair = source.pairs("train")[0]
    try:
        image, _ = source.load_pair(pair)
    except OSError as error:
        raise DataError(f"{pair.image}: cannot read it: {error}") from None
    return tuple(int(v) for v in image.shape[:2])


def load_space(path) -> tuple[object, int]:
    """The search space in ``path`` and the output stride of its logits (the search's and the pipeline's check).

    Raises:
        mobileseg.arch.schema_io.GenotypeError: the file is missing or malformed (it is named).
    """
    import numpy as np

    from mobileseg.arch.space import SearchSpace
    from mobileseg.run.sizes import logits_stride

    space = SearchSpace.load(path)
    return space, logits_stride(space.sample(np.random.default_rng(0)))


def check_splits(source, spec: str) -> None:
    """Refuse a data set without train or val images (the search's and the pipeline's check).

    Raises:
        mobileseg.data.problems.DataError: the message names ``--data`` and the splits it has.
    """
    from mobileseg.data.problems import DataError

    for split in ("train", "val"):
        if split not in source.splits() or not source.pairs(split):
            raise DataError(f"--data {spec}: no {split} images (it has: {', '.join(source.splits()) or 'none'}); "
                            "the search trains on train and scores on val")


def check_inputs(fv) -> Plan:
    """Check every input and resolve every flag; nothing is written.

    Raises:
        BadInput, GenotypeError, DataError, TrainingError: bad input (exit 2).
        mobileseg.android.errors.AdbError: the phone of ``--latency_backend adb`` cannot be reached.
    """
    from mobileseg.arch import schema_io
    from mobileseg.cli_flags import parse_size
    from mobileseg.data.sources import open_source
    from mobileseg.search.budget import choose_budget
    from mobileseg.search.study_storage import STUDY_FILE, hide_password
    from mobileseg.search.reference_choice import parse_references
    from mobileseg.supernet.plan import SupernetPlan
    from mobileseg.run.sizes import check_size

    _positive(fv, ("target_latency_ms", "threads", "population", "generations", "supernet_epochs",
                   "steps_per_epoch", "batch_size", "search_scale", "val_images", "calib_batches"))
    if fv.population is not None and fv.population < 2:
        raise BadInput(f"--population {fv.population}: must be at least 2")
    space, stride = load_space(fv.space)
    source = open_source(fv.data)
    check_splits(source, fv.data)
    train_pairs = len(source.pairs("train"))
    if train_pairs < fv.batch_size:
        raise BadInput(f"--batch_size {fv.batch_size}: larger than the {train_pairs} training images of {fv.data}")
    if fv.strategy == "differentiable" and train_pairs // 2 < fv.batch_size:
        raise BadInput(f"--batch_size {fv.batch_size}: larger than half of the {train_pairs} training images of "
                       f"{fv.data} (the differentiable search trains weights and architecture on two halves)")
    budget = choose_budget(fv.budget, train_pairs)
    resolved = {name: fv[name].value for name in FLAG_NAMES}
    for name in BUDGET_FLAGS:
        if resolved[name] is None:
            resolved[name] = getattr(budget, name)
    image_size = _image_size(source)
    if fv.input_size:
        try:
            input_size = parse_size(fv.input_size)
        except ValueError as error:
            raise BadInput(f"--input_size: {error}") from None
        check_size("--input_size", input_size, stride, f"the space {fv.space}")
    else:
        input_size = default_input_size(image_size, stride)
    if resolved["search_scale"] is None:
        resolved["search_scale"] = round(min(i / s for i, s in zip(input_size, image_size, strict=True)), 3)
    SupernetPlan(space, input_size)  # a space that cannot be one supernet at this size: SupernetError
    try:
        references = parse_references(resolved["references"])
    except ValueError as error:
        raise BadInput(str(error)) from None
    if references.cheapest is None:
        for path in references.files:
            schema_io.load(path)  # a malformed reference file: GenotypeError names it
    run_dir = Path(fv.run_dir)
    storage = fv.storage or f"sqlite:///{run_dir.resolve() / STUDY_FILE}"  # default_storage, folder not made
    _check_storage(storage)
    # a shared study: this worker's name (host and run folder) keeps its draws apart from the others'
    worker = f"{socket.gethostname()}:{run_dir.resolve()}" if fv.storage else None
    resolved.update(input_size=list(input_size), data=source.spec, storage=hide_password(storage),
                    budget=budget.name, worker=worker)
    record = {**resolved, "space_sha256": json_digest(space.tree), "num_classes": source.num_classes,
              "class_names": list(source.class_names), "image_size": list(image_size), "output_stride": stride,
              "train_pairs": train_pairs, "val_pairs": len(source.pairs("val"))}
    plan = Plan(types.SimpleNamespace(**resolved), record, run_dir, space, source, input_size, storage, references)
    if fv.strategy == "differentiable":
        _check_differentiable_dir(plan)
        _open_latency_model(plan)
        return plan
    if fv.random_score != "latency" and fv.strategy != "random":
        raise BadInput(f"--random_score {fv.random_score}: only for --strategy random")
    if fv.strategy == "random":
        if fv.target_latency_ms is None:
            raise BadInput("--strategy random: needs --target_latency_ms (it draws networks within it)")
        if fv.random_score == "latency":
            _check_same_search(plan)
            _open_latency_model(plan)
            return plan
    supernet_epoch = _check_run_dir(plan)
    if fv.stage != "supernet":
        _open_latency_model(plan)
        if fv.strategy == "random":
            from mobileseg.search.random_search import SCORES_JSON, stored_scores

            stored_scores(plan.run_dir / SCORES_JSON, plan.proxy(supernet_epoch))  # another proxy's: refused
        else:
            _check_study(plan, supernet_epoch)
    return plan


def _check_storage(url: str) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(url)
    except ArgumentError as error:
        raise BadInput(f"--storage {url}: not a database URL ({error}); e.g. sqlite:///study.db or "
                       "postgresql://user:password@host/db") from None


def _check_same_search(plan: Plan) -> None:
    """Refuse a DIR holding a search of another space, data set or input size."""
    from mobileseg.training.errors import TrainingError

    previous = read_config(plan.run_dir, error=TrainingError).get("search") or {}
    changed = [f"{key} {old!r} -> {new!r}" for key, (old, new) in resume_changes(
        previous, {key: plan.record[key] for key in ("space_sha256", "data", "input_size")}).items()]
    if changed:
        raise ResumeRefused(f"--run_dir {plan.run_dir}: holds a search of another space, data set or input "
                            f"size ({'; '.join(changed)}); use a new --run_dir")


def _check_differentiable_dir(plan: Plan) -> None:
    """Refuse a DIR holding another search, or a differentiable search with other fixed settings."""
    from mobileseg.search.differentiable import FOLDER, read_state, resume_conflicts

    _check_same_search(plan)
    state = read_state(plan.run_dir)
    if state is None:
        return
    f = plan.flags
    ours = {"space": str(plan.space.source), "input_size": list(plan.input_size),
            "num_classes": plan.source.num_classes, "data": plan.source.spec, "batch_size": f.batch_size,
            "seed": f.seed, "search_scale": f.search_scale, "gcn": f.gcn, "precision": f.precision}
    changed = resume_conflicts(state["fixed"], ours)
    if changed:
        raise BadInput(f"--run_dir {plan.run_dir}: its {FOLDER} search ran with other settings "
                       f"({'; '.join(changed)}); use the same flags or a new --run_dir")


def _check_run_dir(plan: Plan) -> int:
    """Refuse a DIR holding another search or supernet; returns the supernet epoch the search will use."""
    from mobileseg.state_files import read_json
    from mobileseg.supernet.trainer import CHECKPOINT, FOLDER, STATE as SUPERNET_STATE, damaged_advice

    f = plan.flags
    _check_same_search(plan)
    folder = plan.run_dir / FOLDER
    state = read_json(folder / SUPERNET_STATE, "delete it and run with --stage all (or supernet) to rewrite it from "
                      f"{CHECKPOINT}, or {damaged_advice(folder)}", ("epoch", "epochs", "status", "fixed"))
    if state is not None:
        ours = {"space": str(plan.space.source), "input_size": list(plan.input_size),
                "num_classes": plan.source.num_classes, "data": plan.source.spec, "batch_size": f.batch_size,
                "seed": f.seed, "search_scale": f.search_scale, "precision": f.precision}
        theirs = {"precision": "float32", **state["fixed"]}  # supernets before --precision trained in float32
        changed = [f"{key} {theirs.get(key)!r} -> {value!r}" for key, value in ours.items()
                   if theirs.get(key) != value]
        if changed:
            raise BadInput(f"--run_dir {plan.run_dir}: its supernet was trained with other settings "
                           f"({'; '.join(changed)}); use the same flags or a new --run_dir")
    if f.stage == "search":
        if state is None:
            raise BadInput(f"--stage search: no trained supernet in {plan.run_dir / FOLDER}; train it first "
                           "(--stage supernet, or --stage all)")
        if state.get("status") != "finished":
            raise BadInput(f"--stage search: the supernet in {plan.run_dir / FOLDER} stopped at epoch "
                           f"{state.get('epoch')} of {state.get('epochs')}; finish it with --stage supernet")
        return int(state["epoch"])
    return max(int(state["epoch"]) if state else 0, f.supernet_epochs)


def evolutionary_search(plan: Plan, accuracy_model=None, latency_model=None):
    """The NSGA-II search the plan describes (without models: to read or check its stored study)."""
    from mobileseg.search.nsga2 import EvolutionarySearch

    f = plan.flags
    return EvolutionarySearch(plan.space, accuracy_model, latency_model, plan.storage, f.study_name,
                              population=f.population, generations=f.generations, seed=f.seed,
                              target_latency_ms=f.target_latency_ms, worker=f.worker)


def proxy_mismatch(plan: Plan, stored: dict, ours: dict) -> str | None:
    """Why a study scored with ``stored`` cannot go on with ``ours``, or None when it can.

    A study stored before read-only tables were named by their contents names the table by its path.
    """
    from mobileseg.search.study_storage import hide_password

    if stored.get("latency_backend") == plan.flags.latency_backend:
        stored = {**stored, "latency_backend": ours["latency_backend"]}
    changed = [f"{key} {stored.get(key)!r} -> {value!r}" for key, value in ours.items() if stored.get(key) != value]
    if not changed:
        return None
    return (f"study {plan.flags.study_name!r} in {hide_password(plan.storage)} was scored with other settings "
            f"({'; '.join(changed)}); use a new --study_name, or the original settings")


def _check_study(plan: Plan, supernet_epoch: int) -> None:
    """Refuse to continue a stored study set up or scored differently (reads only)."""
    import optuna
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from mobileseg.search.nsga2 import SearchError
    from mobileseg.search.study_storage import hide_password, open_storage
    from mobileseg.state_files import check_sqlite

    url = make_url(plan.storage)
    if url.get_backend_name() == "sqlite":
        if not (url.database and Path(url.database).is_file()):
            return  # no database yet: nothing to continue
        check_sqlite(url.database, "move it away to run the search stage again (the supernet and the latency "
                                   "table are kept), or put back a good copy")
    try:
        names = optuna.study.get_all_study_names(storage=open_storage(plan.storage))
    except (ImportError, SQLAlchemyError) as error:  # no driver for the URL, no server there
        raise BadInput(f"--storage {hide_password(plan.storage)}: cannot open it ({type(error).__name__}: "
                       f"{str(error).splitlines()[0]}); for PostgreSQL install a driver, e.g. "
                       "pip install psycopg2-binary") from None
    if plan.flags.study_name not in names:
        return
    try:
        study = evolutionary_search(plan).study()
    except SearchError as error:
        raise BadInput(str(error)) from None
    stored = study.user_attrs.get("proxy")
    mismatch = stored and proxy_mismatch(plan, stored, plan.proxy(supernet_epoch))
    if mismatch:
        raise BadInput(mismatch)


def _open_latency_model(plan: Plan) -> None:
    """The latency model of ``--latency_backend`` (a phone is reached here) and the space's blocks."""
    from mobileseg.latency.genotype_latency import genotype_latency_model
    from mobileseg.latency.space_blocks import enumerate_space
    from mobileseg.latency.predictor import MeasuringLatencyModel

    f = plan.flags
    backend = parse_latency_backend(f.latency_backend)
    if not backend.on_phone and f.serial:
        raise BadInput(f"--serial {f.serial}: only for --latency_backend adb")
    if f.clock != "wall" and (backend.kind != "local" or f.threads != 1):
        raise BadInput(f"--clock {f.clock}: only for --latency_backend local with --threads 1 (a phone's "
                       "benchmark_model has only the wall clock)")
    plan.latency_table = Path(backend.path) if backend.path else RunDir(plan.run_dir).file(RunDir.LATENCY_TABLE)
    try:
        plan.latency = genotype_latency_model(
            f.latency_backend, plan.input_size, plan.source.num_classes, default_table=plan.latency_table,
            threads=f.threads, serial=f.serial, adb=f.adb, progress=f.progress,
            **({"clock": f.clock} if backend.kind == "local" else {}))
    except (ValueError, FileNotFoundError) as error:  # a missing or corrupt table, another device's table
        raise BadInput(f"--latency_backend {f.latency_backend}: {error}") from None
    plan.record["latency_table"] = str(plan.latency_table)
    plan.signatures = enumerate_space(plan.space, plan.input_size, plan.source.num_classes).signatures
    if not isinstance(plan.latency, MeasuringLatencyModel):
        missing = plan.latency.table.missing(plan.signatures)
        if missing:
            height, width = plan.input_size
            raise BadInput(
                f"--latency_backend {f.latency_backend}: the table lacks {len(missing)} of the {len(plan.signatures)} "
                f"blocks of {plan.space.source} at {height}x{width} (e.g. {missing[0].key}); complete it with "
                f"python -m mobileseg.latency build --space {plan.space.source} --input_size {height}x{width} "
                f"--num_classes {plan.source.num_classes} --out {backend.path}")
