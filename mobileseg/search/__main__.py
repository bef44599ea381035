"""``python -m mobileseg.search --space SPACE.yaml --data KIND:PATH --run_dir DIR [flags]``.

Searches a space for the networks that trade proxy mIoU against latency best, into a run
folder (docs/architecture.md, section 1), in four stages:

1. **latency**: every block the space can produce at ``--input_size``
   (`mobileseg.latency.blocks.enumerate_space`), then every block of the reference networks
   placed on the plot, that the latency table lacks is built alone, converted to int8 TFLite
   and timed: on this CPU with LiteRT (``--latency_backend local``, the default, into
   ``DIR/latency_table.json``; ``local:FILE`` keeps the table elsewhere, e.g. to share it
   between runs; blocks this device measured before, for any table, are taken from the
   persistent cache, `mobileseg.latency.cache`, ``--latency_cache DIR|off``), or on an
   Android phone with ``benchmark_model`` (``adb`` / ``adb:FILE``, the
   phone ``--serial``, the executable ``--adb``). ``table:FILE`` reads a finished table (any
   device's, e.g. from ``python -m mobileseg.latency build``) and measures nothing: it must
   hold every block of the space. The table is saved after every block.
2. **supernet**: the weight-sharing supernet of the space at ``--input_size`` is trained with
   the sandwich rule (`mobileseg.supernet.trainer`) for ``--supernet_epochs`` into
   ``DIR/supernet/``, checkpointed after every epoch.
3. **search**: NSGA-II (`mobileseg.search.nsga2.EvolutionarySearch`) over ``--generations``
   generations of ``--population`` networks, maximising the proxy mIoU
   (`mobileseg.supernet.accuracy.SupernetAccuracyModel`: inherited weights, batch norm
   recalibrated on ``--calib_batches`` training batches, mIoU on ``--val_images`` validation
   images) and minimising the predicted latency (sum of the table's blocks); with
   ``--target_latency_ms`` the latency is a constraint (constrained NSGA-II). One line per
   generation. Every trial is stored in ``--storage`` (``DIR/study.db``, SQLite, by default).
4. **outputs**: ``pareto.json``, ``pareto.png`` (every network, the front, the target, the
   chosen network and the references) and ``arch.yaml`` (the best proxy mIoU within the target,
   else the knee of the front; `mobileseg.search.pareto`); the summary is printed.

``--stage supernet`` runs stage 2 only, ``--stage search`` stages 1, 3 and 4 on the supernet
already trained in DIR, ``--stage all`` (the default) all four. ``DIR/config.yaml`` gets a
``search`` section with every flag, resolved; ``DIR/search_state.json`` says which stages ran,
how long each took and the machine's load.

Strategies (``--strategy``): ``evolutionary`` (the default) is the flow above. ``differentiable``
(`mobileseg.search.differentiable`: GAS-style per-cell architecture logits, with GAS's GCN between
neighbouring cells unless ``--nogcn``, a straight-through Gumbel path through the supernet, and
FasterSeg's ``CE + lambda * expected latency`` loss from the same latency table, lambda steered
towards ``--target_latency_ms``) replaces stages 2 and 3 by one stage that trains the supernet's
weights and the architecture together for ``--supernet_epochs`` epochs on the two halves of the
training split, into ``DIR/differentiable/`` (checkpointed after every epoch, resumed by the same
command); every epoch's most likely network is one trial of the outputs (stage 4, the same files).
For it ``--stage supernet``, ``search`` and ``all`` all run stage 1 (the shared latency table) then
that stage; ``--population``, ``--generations``, ``--storage`` and ``--study_name`` are not used.
``random`` (`mobileseg.search.random_search`, the baseline a search must beat; needs
``--target_latency_ms``) replaces stages 2 and 3 by ``--population`` x ``--generations`` seeded
random networks scored by their predicted latency only, and ``arch.yaml`` is the one within the
target with the highest predicted latency; every ``--stage`` runs stage 1, that, and the outputs.

Sizes: networks are trained, scored and timed at ``--input_size`` (the search resolution,
also the size the latency is predicted for). By default it is half of the data set's image
size (its first training image), each side rounded to the nearest multiple of the space's
output stride: CamVid's 360x480 gives 184x240, ``synthetic:N`` (120x160) 64x80. Training crops
are taken from images scaled by ``--search_scale`` times 0.5 to 2 (default: the input size
over the image size, the smaller of the two ratios), so the supernet sees objects at the size
the validation images are scored at.

Budget: the flags ``--supernet_epochs``, ``--population``, ``--generations``,
``--calib_batches`` and ``--references`` default to those of ``--budget``
(`mobileseg.search.budget`): ``auto`` picks ``demo`` (minutes) for a data set of fewer than
100 training images and ``default`` (hours on a 2-core CPU) otherwise.

Time budget: ``--time_budget 45m`` (`mobileseg.timebudget`) times a few steps of every stage on the
data (`mobileseg.search.cost_probe`), sizes ``--supernet_epochs``, ``--population`` and
``--generations`` to fit (those given win; the rule: `mobileseg.timebudget.split`), prints the plan and
writes it to ``DIR/plan.json``; the supernet and the NSGA-II search then stop at an epoch or generation
boundary when another would end past their deadline, and the outputs are written from what they have.
``--dry_run`` prints and writes the plan only. ``--time_plan FILE`` keeps to the deadlines of a plan made
elsewhere (the pipeline's). Both need ``--strategy evolutionary --stage all``.

References (``--references``, `mobileseg.search.reference_choice`): ``all`` the networks of
``search_space/references/``, ``none``, ``cheapest:K`` the K of them with the fewest blocks to
measure, or ``FILE,FILE``. They are placed with the same latency model (their blocks are
measured once into the same table in stage 1); those inside the space also get a proxy mIoU.

Resume: started again with the same command, a killed search goes on where it stopped. The
latency table keeps every block measured, the supernet resumes after its last completed epoch
(epochs done are not trained again) and the study goes on with the generations it lacks
(trials stored are not evaluated again). ``--generations`` may be raised to search longer. A
study scored with a supernet trained for another number of epochs, or with another proxy
budget or latency backend, is not continued: use a new ``--study_name``.

Several workers on one study (README, "Several workers"): give every worker the same ``--storage``
database server and ``--study_name``, e.g. ``--storage postgresql://user:password@host/search``
(driver: psycopg2-binary, in requirements.txt); each worker runs ``--stage search`` in its own DIR
holding a copy of the same trained ``supernet/`` and of the same table (``--latency_backend
table:FILE``: copies of one table are one backend, recorded by its contents), and each sees the
others' trials at every generation. With ``--storage`` a worker is named by its host and DIR: the
name seeds its draws with ``--seed`` and tags its trials (`mobileseg.search.nsga2`), and
``search_state.json``'s ``new_trials`` counts its own. A killed worker loses only its unfinished
generation; the same command again resumes it. SQLite (the default) is for one process.

One command at a time in DIR: the search holds ``DIR/.lock`` while it runs (`mobileseg.run_lock`),
and a second command on the same folder is refused (exit 2) with the pid of the one running.

Exit codes: 0 done; 1 failure (a diverged supernet, a benchmark that failed on the phone, a full
disk: the file being written is left as it was); 2 bad input: a missing or malformed space, a bad
``--data`` (or one without train and val images), a bad ``--input_size`` (not HEIGHTxWIDTH, or not
a multiple of the space's output stride), a bad flag value, a ``table:`` file that is missing or
lacks blocks of the space, ``--stage search`` without a trained supernet, a DIR holding a search
of another space, data set or input size (or a supernet or study with other settings), a damaged
``supernet/checkpoint.npz``, ``supernet/state.json`` or ``study.db`` (the message says what to
do), a DIR another command is running in; bad input changes nothing in DIR; 3 the phone could
not be reached or was lost (adb): every block measured is saved, connect it and run the same
command again.

Example:
    python -m mobileseg.search --space search_space/demo.yaml --data synthetic:64 --run_dir runs/demo_search
    python -m mobileseg.search --strategy differentiable --space search_space/demo.yaml --data synthetic:64 \\
        --target_latency_ms 5 --run_dir runs/demo_differentiable
    python -m mobileseg.search --strategy random --space search_space/demo.yaml --data synthetic:64 \\
        --target_latency_ms 5 --run_dir runs/demo_random
    python -m mobileseg.search --space search_space/default.yaml --data camvid:../shared/datasets/camvid \\
        --target_latency_ms 30 --run_dir runs/camvid_search
    python -m mobileseg.search --space search_space/default.yaml --data camvid:../shared/datasets/camvid \\
        --latency_backend adb --serial 28241FDH3001AB --threads 4 --run_dir runs/camvid_pixel7
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import socket
import sys
import time
import types
from collections.abc import Sequence
from pathlib import Path

from mobileseg.run.exit_codes import BadInput

STAGES = ("supernet", "search", "all")
STRATEGIES = ("evolutionary", "differentiable", "random")
FLAG_NAMES = (
    "space", "data", "run_dir", "input_size", "target_latency_ms", "latency_backend", "serial", "adb", "threads",
    "clock", "stage", "budget", "population", "generations", "seed", "storage", "study_name", "supernet_epochs",
    "steps_per_epoch", "batch_size", "search_scale", "val_images", "calib_batches", "references", "progress",
    "strategy", "gcn", "latency_cache", "precision", "time_budget", "time_plan",
)
"""Every flag of the command, in the order config.yaml lists them."""
BUDGET_FLAGS = ("supernet_epochs", "population", "generations", "calib_batches", "references")
SIZE_FLAGS = ("supernet_epochs", "population", "generations")
"""What ``--time_budget`` sizes (unless given)."""
STATE = "search_state.json"
TABLE = "latency_table.json"
LATENCY_BACKENDS = ("local", "adb", "table")


def define_flags(flag_values=None) -> None:
    """Declare the flags (at start-up only, so importing this module declares nothing)."""
    from absl import flags

    from mobileseg.data.sources import DATA_FLAG_HELP
    from mobileseg.search import budget
    from mobileseg.training.trainer import PRECISIONS

    fv = flags.FLAGS if flag_values is None else flag_values
    flags.DEFINE_string("space", None, "Search space YAML file, e.g. search_space/default.yaml.", flag_values=fv)
    flags.DEFINE_string("data", None, DATA_FLAG_HELP, flag_values=fv)
    flags.DEFINE_string("run_dir", None, "The run folder (created; resumed when it holds a search).", flag_values=fv)
    flags.DEFINE_string("input_size", None, "Search resolution HEIGHTxWIDTH: the supernet's input and the size "
                        "latency is predicted at; a multiple of the space's output stride (default: half the data "
                        "set's image size, rounded to it).", flag_values=fv)
    flags.DEFINE_float("target_latency_ms", None, "Latency target: constrained NSGA-II, and arch.yaml is the best "
                       "network within it.", flag_values=fv)
    flags.DEFINE_string("latency_backend", "local", "local[:FILE] (this CPU, LiteRT; FILE default "
                        "DIR/latency_table.json), adb[:FILE] (a phone, with --serial), or table:FILE (read only).",
                        flag_values=fv)
    flags.DEFINE_string("latency_cache", None, "local, adb: folder of the persistent latency cache, or off "
                        "(default: $MOBILESEG_LATENCY_CACHE, else ~/.cache/mobileseg): blocks this device measured "
                        "before, in any run, are not measured again.", flag_values=fv)
    flags.DEFINE_string("serial", None, "adb: the phone (default: the only one connected).", flag_values=fv)
    flags.DEFINE_string("adb", "adb", "adb: the adb executable.", flag_values=fv)
    flags.DEFINE_integer("threads", 1, "Threads of LiteRT / benchmark_model when timing blocks.", flag_values=fv)
    flags.DEFINE_enum("clock", "wall", ["wall", "thread_cpu"], "local: how blocks are timed: wall (latency as "
                      "seen) or thread_cpu (CPU time of the one LiteRT thread: the idle-core latency on a machine "
                      "others are loading; needs --threads 1).", flag_values=fv)
    flags.DEFINE_enum("stage", "all", list(STAGES), "supernet: train it only; search: latency, search and "
                      "outputs on the supernet in DIR; all: everything. With --strategy differentiable the "
                      "supernet and the search are one stage: every value runs the latency stage (shared), "
                      "then it, then the outputs.", flag_values=fv)
    flags.DEFINE_enum("strategy", "evolutionary", list(STRATEGIES), "evolutionary: train the supernet, then "
                      "NSGA-II over it; differentiable: train the weights and per-cell architecture logits "
                      "together (GAS, FasterSeg's latency loss) for --supernet_epochs epochs, in DIR/differentiable; "
                      "random: population x generations seeded random networks, no accuracy score, arch.yaml the "
                      "slowest within --target_latency_ms (the baseline).", flag_values=fv)
    flags.DEFINE_boolean("gcn", True, "differentiable: pass each cell's architecture logits through GAS's graph "
                         "convolution over neighbouring cells before the softmax (--nogcn: cells independent).",
                         flag_values=fv)
    flags.DEFINE_enum("budget", "auto", list(budget.CHOICES), "Defaults of the budget flags: demo (minutes), "
                      "default (hours), auto (demo below 100 training images).", flag_values=fv)
    flags.DEFINE_integer("population", None, "Networks per generation (default: the budget's).", flag_values=fv)
    flags.DEFINE_integer("generations", None, "Generations in the study (default: the budget's; raise it to "
                         "search longer).", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seeds the supernet, its training and the search.", flag_values=fv)
    flags.DEFINE_string("storage", None, "Optuna RDB URL of the study (default: sqlite:///DIR/study.db); a "
                        "database server such as postgresql://user:password@host/db for several workers.",
                        flag_values=fv)
    flags.DEFINE_string("study_name", "search", "The study in the storage.", flag_values=fv)
    flags.DEFINE_integer("supernet_epochs", None, "Supernet epochs; with --strategy differentiable the epochs of "
                         "the joint weight and architecture training (default: the budget's).", flag_values=fv)
    flags.DEFINE_integer("steps_per_epoch", None, "At most this many supernet steps per epoch (default: one pass "
                         "over the training images).", flag_values=fv)
    flags.DEFINE_integer("batch_size", 8, "Images per supernet step and per calibration batch.", flag_values=fv)
    flags.DEFINE_enum("precision", "float32", list(PRECISIONS), "Keras dtype policy the supernet trains under "
                      "(mixed_bfloat16: bfloat16 compute, float32 weights and loss; slower on this CPU, see the "
                      "README). Networks are scored in float32 either way.", flag_values=fv)
    flags.DEFINE_float("search_scale", None, "Scales the training images' random rescaling (default: input size "
                       "over the data set's image size).", flag_values=fv)
    flags.DEFINE_integer("val_images", None, "Proxy mIoU on at most this many validation images (default: all).",
                         flag_values=fv)
    flags.DEFINE_integer("calib_batches", None, "Batch-norm recalibration batches per network (default: the "
                         "budget's).", flag_values=fv)
    flags.DEFINE_string("references", None, "Reference networks on the plot: all, none, cheapest:K or "
                        "FILE,FILE (default: the budget's).", flag_values=fv)
    flags.DEFINE_boolean("progress", True, "Show progress bars (block measurement, supernet epochs).",
                         flag_values=fv)
    flags.DEFINE_string("time_budget", None, "Fit the whole search in this time, e.g. 45m, 2h, 1h30m: supernet "
                        "epochs, population and generations are sized to it from a few timed steps (flags given "
                        "win), the plan is printed and written to DIR/plan.json, and a stage that overruns its "
                        "share stops at an epoch or generation boundary.", flag_values=fv)
    flags.DEFINE_boolean("dry_run", False, "Print the plan (stages, sizes, estimated durations; with "
                         "--time_budget, sized to it), write DIR/plan.json, and stop.", flag_values=fv)
    flags.DEFINE_string("time_plan", None, "Keep to the supernet and search deadlines of this plan.json (the "
                        "pipeline passes its own).", flag_values=fv)


def _say(message: str) -> None:
    print(message, flush=True)


# ---- checking the input (nothing is written) -------------------------------------------------

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
        if not self.flags.latency_backend.startswith("table:"):
            return self.flags.latency_backend
        text = json.dumps(self.latency.table.to_json(), sort_keys=True)
        return f"table sha256:{hashlib.sha256(text.encode()).hexdigest()[:16]}"


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


def _space_digest(space) -> str:
    return hashlib.sha256(json.dumps(space.tree, sort_keys=True, default=str).encode()).hexdigest()


def _image_size(source) -> tuple[int, int]:
    from mobileseg.data.problems import DataError

    pair = source.pairs("train")[0]
    try:
        image, _ = source.load_pair(pair)
    except OSError as error:
        raise DataError(f"{pair.image}: cannot read it: {error}") from None
    return tuple(int(v) for v in image.shape[:2])


def check_inputs(fv) -> Plan:
    """Check every input and resolve every flag; nothing is written.

    Raises:
        BadInput, GenotypeError, DataError, TrainingError: bad input (exit 2).
        mobileseg.android.errors.AdbError: the phone of ``--latency_backend adb`` cannot be reached.
    """
    import numpy as np

    from mobileseg.arch import schema_io
    from mobileseg.arch.space import SearchSpace
    from mobileseg.cli_flags import parse_size
    from mobileseg.data.problems import DataError
    from mobileseg.data.sources import open_source
    from mobileseg.search.budget import choose_budget
    from mobileseg.search.study_storage import STUDY_FILE, hide_password
    from mobileseg.search.reference_choice import parse_references
    from mobileseg.supernet.plan import SupernetPlan
    from mobileseg.run.sizes import check_size, logits_stride

    _positive(fv, ("target_latency_ms", "threads", "population", "generations", "supernet_epochs",
                   "steps_per_epoch", "batch_size", "search_scale", "val_images", "calib_batches"))
    if fv.population is not None and fv.population < 2:
        raise BadInput(f"--population {fv.population}: must be at least 2")
    space = SearchSpace.load(fv.space)
    source = open_source(fv.data)
    for split in ("train", "val"):
        if split not in source.splits() or not source.pairs(split):
            raise DataError(f"--data {fv.data}: no {split} images (it has: {', '.join(source.splits()) or 'none'}); "
                            "the search trains on train and scores on val")
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
    stride = logits_stride(space.sample(np.random.default_rng(0)))
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
    record = {**resolved, "space_sha256": _space_digest(space), "num_classes": source.num_classes,
              "class_names": list(source.class_names), "image_size": list(image_size), "output_stride": stride,
              "train_pairs": train_pairs, "val_pairs": len(source.pairs("val"))}
    plan = Plan(types.SimpleNamespace(**resolved), record, run_dir, space, source, input_size, storage, references)
    if fv.strategy == "differentiable":
        _check_differentiable_dir(plan)
        _open_latency_model(plan)
        return plan
    if fv.strategy == "random":
        if fv.target_latency_ms is None:
            raise BadInput("--strategy random: needs --target_latency_ms (it chooses by predicted latency alone)")
        _check_same_search(plan)
        _open_latency_model(plan)
        return plan
    supernet_epoch = _check_run_dir(plan)
    if fv.stage != "supernet":
        _open_latency_model(plan)
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
    from mobileseg.training.trainer import read_config

    previous = read_config(plan.run_dir).get("search") or {}
    changed = [f"{key} {previous[key]!r} -> {plan.record[key]!r}" for key in ("space_sha256", "data", "input_size")
               if key in previous and previous[key] != plan.record[key]]
    if changed:
        raise BadInput(f"--run_dir {plan.run_dir}: holds a search of another space, data set or input size "
                       f"({'; '.join(changed)}); use a new --run_dir")


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


def _search(plan: Plan, accuracy_model=None, latency_model=None):
    from mobileseg.search.nsga2 import EvolutionarySearch

    f = plan.flags
    return EvolutionarySearch(plan.space, accuracy_model, latency_model, plan.storage, f.study_name,
                              population=f.population, generations=f.generations, seed=f.seed,
                              target_latency_ms=f.target_latency_ms, worker=f.worker)


def _proxy_mismatch(plan: Plan, stored: dict, ours: dict) -> str | None:
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
        study = _search(plan).study()
    except SearchError as error:
        raise BadInput(str(error)) from None
    stored = study.user_attrs.get("proxy")
    mismatch = stored and _proxy_mismatch(plan, stored, plan.proxy(supernet_epoch))
    if mismatch:
        raise BadInput(mismatch)


def _open_latency_model(plan: Plan) -> None:
    """The latency model of ``--latency_backend`` (a phone is reached here) and the space's blocks."""
    from mobileseg.latency.blocks import enumerate_space, genotype_latency_model
    from mobileseg.latency.predictor import MeasuringLatencyModel

    f = plan.flags
    backend, _, path = f.latency_backend.partition(":")
    if backend not in LATENCY_BACKENDS or (backend == "table" and not path):
        raise BadInput(f"--latency_backend {f.latency_backend}: expected local[:FILE], adb[:FILE] or table:FILE")
    if backend != "adb" and f.serial:
        raise BadInput(f"--serial {f.serial}: only for --latency_backend adb")
    if f.clock != "wall" and (backend != "local" or f.threads != 1):
        raise BadInput(f"--clock {f.clock}: only for --latency_backend local with --threads 1 (a phone's "
                       "benchmark_model has only the wall clock)")
    plan.latency_table = Path(path) if path else plan.run_dir / TABLE
    try:
        plan.latency = genotype_latency_model(
            f.latency_backend, plan.input_size, plan.source.num_classes, default_table=plan.latency_table,
            threads=f.threads, serial=f.serial, adb=f.adb, progress=f.progress,
            **({"clock": f.clock} if backend == "local" else {}))
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
                f"--num_classes {plan.source.num_classes} --out {path}")


# ---- running the stages --------------------------------------------------------------------

class BuildInterrupted(Exception):
    """The phone went during a table build; the message says what is saved and what is left."""


class RunState:
    """``DIR/search_state.json``: the stages this call ran, their wall time and facts, the machine's load.

    Args:
        run_dir: the run folder.
        stage: the ``--stage`` flag.
    """

    def __init__(self, run_dir: Path, stage: str):
        from mobileseg.provenance import load_average

        self.path = run_dir / STATE
        self.started = time.perf_counter()
        self.data = {"status": "running", "stage": stage, "started": _now(), "stages": {},
                     "load_average": {"start": load_average()}}

    def done(self, stage: str, started: float, **facts) -> None:
        """Record a finished stage (begun at ``time.perf_counter() == started``), the load at its end; save."""
        from mobileseg.provenance import load_average

        self.data["stages"][stage] = {"seconds": round(time.perf_counter() - started, 1),
                                      "load_average_end": load_average(), **facts}
        self.save()

    def finish(self) -> None:
        """Record the end of the run and save."""
        from mobileseg.provenance import load_average

        self.data.update(status="finished", seconds=round(time.perf_counter() - self.started, 1))
        self.data["load_average"]["end"] = load_average()
        self.save()

    def save(self) -> None:
        from mobileseg.atomic_write import write_atomic

        self.data["updated"] = _now()
        write_atomic(self.path, json.dumps(self.data, indent=2) + "\n")

    def timings(self) -> str:
        """``latency 62 s, supernet 95 s, ...`` for the stages this call ran."""
        return ", ".join(f"{name} {stage['seconds']:.0f} s" for name, stage in self.data["stages"].items())


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _measure(plan: Plan, signatures) -> int:
    """Measure the blocks the table lacks (a read-only table measures nothing); how many were measured."""
    from mobileseg.android.errors import DeviceLost
    from mobileseg.latency.device_lost import build_interrupted
    from mobileseg.latency.predictor import MeasuringLatencyModel

    model = plan.latency
    if not isinstance(model, MeasuringLatencyModel):
        return 0
    try:
        return len(model.table.build(signatures, model.make_model, model.measurer, progress=plan.flags.progress,
                                     conversions=model.conversions))
    except DeviceLost as error:
        raise BuildInterrupted(build_interrupted(error, model.table, signatures, model.conversions)) from error


def _latency_stage(plan: Plan, state: RunState) -> list[Path]:
    """Stage 1: the space's blocks, then the chosen references' blocks; returns the reference files."""
    from mobileseg.arch import schema_io
    from mobileseg.latency.predictor import MeasuringLatencyModel
    from mobileseg.search.reference_choice import cheapest

    started = time.perf_counter()
    model, table = plan.latency, plan.latency.table
    height, width = plan.input_size
    todo = (len(table.to_measure(plan.signatures, model.conversions))
            if isinstance(model, MeasuringLatencyModel) else 0)
    _say(f"latency: {len(plan.signatures)} blocks in {plan.space.source} at {height}x{width}; {table.path}: "
         f"{len(table)} entries, {todo} to measure ({_latency_source(plan)})")
    measured = _measure(plan, plan.signatures)
    choice = plan.references
    genotypes = {path: schema_io.load(path) for path in choice.files}
    blocks = {path: model.signatures_of(genotype) for path, genotype in genotypes.items()}
    files = list(choice.files)
    if choice.cheapest is not None:
        files = cheapest(files, lambda path: len(table.missing(blocks[path])), choice.cheapest)
    for path in files:
        try:
            measured += _measure(plan, blocks[path])
        except Exception as error:
            error.add_note(f"(while measuring the blocks of the reference {path} at {height}x{width}; "
                           "--references chooses others)")
            raise
    _say(f"latency: measured {measured} blocks in {time.perf_counter() - started:.0f} s; {table.path} has "
         f"{len(table)} entries" + (f"; references: {', '.join(p.stem for p in files)}" if files else ""))
    state.done("latency", started, table=str(table.path), entries=len(table), measured=measured,
               space_blocks=len(plan.signatures), references=[str(path) for path in files])
    return files


def _latency_source(plan: Plan) -> str:
    """What the latencies are, for the plot and pareto.json: backend, device, threads, table."""
    fingerprint = plan.latency.table.fingerprint
    device = fingerprint.get("model") or fingerprint.get("cpu") or "unknown device"
    backend = plan.flags.latency_backend.partition(":")[0]
    return (f"{backend}: {device}, {fingerprint.get('threads', '?')} thread(s), {plan.latency.table.quantization}, "
            f"{plan.latency_table}")


def _supernet_stage(plan: Plan, state: RunState):
    """Stage 2 (or, for ``--stage search``, loading its weights): the supernet and its epoch."""
    import keras
    import numpy as np

    from mobileseg.supernet.model import Supernet
    from mobileseg.supernet.trainer import FOLDER, SupernetTrainer, load_supernet_weights
    from mobileseg.timebudget.time_plan import stage_deadline
    from mobileseg.training.trainer import dtype_policy

    started = time.perf_counter()
    keras.utils.set_random_seed(plan.flags.seed)
    if plan.flags.stage == "search":
        supernet = Supernet(plan.space, plan.source.num_classes, plan.input_size)
        return supernet, load_supernet_weights(supernet, plan.run_dir)
    with dtype_policy(plan.flags.precision):  # its layers compute in the policy's dtype
        supernet = Supernet(plan.space, plan.source.num_classes, plan.input_size)
    trainer = SupernetTrainer(supernet, plan.supernet_config())
    result = trainer.fit(plan.source, plan.run_dir, np.random.default_rng(plan.flags.seed),
                         deadline=stage_deadline(plan.flags.time_plan, "supernet"))
    if result.cut:
        _say(result.cut)
    if supernet.compute_dtype != "float32":  # networks are scored in float32, as a --stage search run does
        supernet = Supernet(plan.space, plan.source.num_classes, plan.input_size)
        load_supernet_weights(supernet, plan.run_dir)
    trained = result.epoch - result.initial_epoch
    done = (f"trained {trained} epoch{'s' * (trained != 1)}" if trained else "already trained") + \
        f", {result.epoch} in all"
    _say(f"supernet: {done} ({trainer.steps()} steps) in {time.perf_counter() - started:.0f} s -> "
         f"{plan.run_dir / FOLDER}")
    state.done("supernet", started, epoch=result.epoch, trained_now=trained, steps=trainer.steps(),
               last_epoch=result.log[-1] if result.log else None, cut=result.cut)
    return supernet, result.epoch


def _search_stage(plan: Plan, supernet, supernet_epoch: int, state: RunState):
    """Stage 3: NSGA-II scored by the supernet; returns the result and the accuracy model."""
    from mobileseg.search.nsga2 import SearchError
    from mobileseg.supernet.accuracy import SupernetAccuracyModel
    from mobileseg.timebudget.time_plan import stage_deadline

    started = time.perf_counter()
    f = plan.flags
    accuracy = SupernetAccuracyModel(
        supernet, plan.source, plan.source, calib_batches=f.calib_batches, batch_size=f.batch_size,
        max_val_images=f.val_images, scale_range=plan.supernet_config().train_config(plan.input_size).scale_range,
        seed=f.seed)
    search = _search(plan, accuracy, plan.latency)
    study = search.study()
    stored, ours = study.user_attrs.get("proxy"), plan.proxy(supernet_epoch)
    if stored is None:
        study.set_user_attr("proxy", ours)
    elif mismatch := _proxy_mismatch(plan, stored, ours):  # checked before; changed since by another worker
        raise SearchError(mismatch)
    result = search.run(progress=_say, deadline=stage_deadline(f.time_plan, "search"))
    state.done("search", started, trials=len(result.candidates), new_trials=search.added, worker=f.worker,
               generations=result.generations, networks_scored=len(accuracy.seconds),
               val_images=accuracy.val_images, supernet_epoch=supernet_epoch)
    return result, accuracy


def _differentiable_stage(plan: Plan, state: RunState):
    """Stages 2 and 3 of ``--strategy differentiable``: weights and architecture together; (result, accuracy)."""
    import keras
    import numpy as np

    from mobileseg.search.differentiable import DifferentiableConfig, DifferentiableSearch
    from mobileseg.supernet.model import Supernet
    from mobileseg.training.trainer import dtype_policy

    started = time.perf_counter()
    f = plan.flags
    keras.utils.set_random_seed(f.seed)
    with dtype_policy(f.precision):
        supernet = Supernet(plan.space, plan.source.num_classes, plan.input_size)
    config = DifferentiableConfig(plan.supernet_config(), gcn=f.gcn, target_latency_ms=f.target_latency_ms,
                                  calib_batches=f.calib_batches, val_images=f.val_images)
    search = DifferentiableSearch(supernet, plan.latency, config)
    done = search.fit(plan.source, plan.run_dir, np.random.default_rng(f.seed), progress=_say)
    trained = done.epoch - done.initial_epoch
    _say(f"differentiable: {'trained %d epoch%s' % (trained, 's' * (trained != 1)) if trained else 'already trained'}"
         f", {done.epoch} in all ({'GCN' if f.gcn else 'no GCN'}, warm-up {config.warmup}, lambda now "
         f"{search.latency_weight:.3g}) in {time.perf_counter() - started:.0f} s -> {done.folder}")
    state.done("differentiable", started, epoch=done.epoch, trained_now=trained, gcn=f.gcn,
               warmup_epochs=config.warmup, latency_weight=search.latency_weight,
               last_epoch=done.log[-1] if done.log else None)
    return done.result, done.accuracy


def _random_stage(plan: Plan, references: list[Path], state: RunState) -> str:
    """Stages 2 to 4 of ``--strategy random``: draw, predict, write the outputs; the summary."""
    from mobileseg.search import random_search
    from mobileseg.search.objectives import evaluate_references

    started = time.perf_counter()
    f = plan.flags
    result = random_search.sample_networks(plan.space, plan.latency, f.target_latency_ms,
                                           f.population * f.generations, f.seed, progress=_say)
    points = evaluate_references(references, plan.latency, None, plan.space)
    _, summary = random_search.write_outputs(plan.run_dir, result, points, _latency_source(plan))
    chosen = result.chosen()
    state.done("random", started, networks=len(result.networks), within_target=len(result.feasible()),
               chosen_trial=chosen.trial, chosen_latency_ms=chosen.latency_ms)
    return summary


def _outputs_stage(plan: Plan, result, accuracy, references: list[Path], state: RunState):
    """Stage 4: the references on the same axes, then pareto.json, pareto.png and arch.yaml."""
    from mobileseg.arch.complexity import params_and_macs
    from mobileseg.search.objectives import evaluate_references
    from mobileseg.search.pareto import write_outputs

    started = time.perf_counter()
    points = evaluate_references(references, plan.latency, accuracy, plan.space)
    outputs = write_outputs(plan.run_dir, result, points, _latency_source(plan),
                            functools.partial(params_and_macs, num_classes=plan.source.num_classes,
                                              input_size=plan.input_size))
    state.done("outputs", started, chosen_trial=outputs.choice.candidate.trial, references=len(points))
    return outputs


def execute(plan: Plan) -> None:
    """Run the stages ``--stage`` asks for, into the run folder."""
    from mobileseg.training.trainer import record_config

    plan.run_dir.mkdir(parents=True, exist_ok=True)
    record_config(plan.run_dir, "search", plan.record)
    state = RunState(plan.run_dir, plan.flags.stage)
    if plan.flags.strategy == "random":
        _say(_random_stage(plan, _latency_stage(plan, state), state))
        state.finish()
        _say(f"stages: {state.timings()}; {state.data['seconds']:.0f} s in all -> {plan.run_dir}")
        return
    if plan.flags.strategy == "differentiable":
        references = _latency_stage(plan, state)
        result, accuracy = _differentiable_stage(plan, state)
        _say(_outputs_stage(plan, result, accuracy, references, state).summary)
        state.finish()
        _say(f"stages: {state.timings()}; {state.data['seconds']:.0f} s in all -> {plan.run_dir}")
        return
    references = _latency_stage(plan, state) if plan.flags.stage != "supernet" else []
    supernet, epoch = _supernet_stage(plan, state)
    if plan.flags.stage != "supernet":
        result, accuracy = _search_stage(plan, supernet, epoch, state)
        outputs = _outputs_stage(plan, result, accuracy, references, state)
        _say(outputs.summary)
    state.finish()
    _say(f"stages: {state.timings()}; {state.data['seconds']:.0f} s in all -> {plan.run_dir}")
    if plan.flags.time_plan:
        _say(f"time planned / actual: {_planned_vs_actual(Path(plan.flags.time_plan), state)}")


def _planned_vs_actual(path: Path, state: RunState) -> str:
    """The search's stages planned against what they took (``reserve``: the outputs stage)."""
    from mobileseg.timebudget.time_plan import format_planned_vs_actual, planned_vs_actual, read_plan

    time_plan = read_plan(path)
    stages = state.data["stages"]
    actual = {name: (stages.get(stage) or {}).get("seconds")
              for name, stage in (("latency", "latency"), ("supernet", "supernet"), ("search", "search"),
                                  ("reserve", "outputs"))}
    rows = planned_vs_actual(time_plan, {**actual, "probe": time_plan.estimates.get("probe")})
    return format_planned_vs_actual([row for row in rows if row["stage"] in (*actual, "probe")])


def with_time_plan(fv, plan: Plan, started: float) -> Plan | None:
    """``--time_budget``/``--dry_run``: probe, size, print and write ``DIR/plan.json``; the plan to run (None:
    a dry run, done). ``--time_plan`` alone: checked, kept to by the stages. ``started``: `time.time` at the
    command's start, which the deadlines count from.

    Raises:
        BadInput: a bad duration, or a budget for what it cannot size (another strategy or stage).
        mobileseg.timebudget.split.BudgetTooSmall, mobileseg.timebudget.time_plan.PlanError.
    """
    from mobileseg.search.time_planner import make_plan
    from mobileseg.timebudget.duration import DurationError, parse_duration
    from mobileseg.timebudget.time_plan import PLAN, earlier_plan, read_plan, write_plan

    if fv.time_plan and (fv.time_budget or fv.dry_run):
        raise BadInput("--time_plan: not with --time_budget or --dry_run (which make the plan)")
    if fv.time_plan:
        read_plan(Path(fv.time_plan))
        return plan
    if fv.strategy != "evolutionary" or fv.stage != "all":
        raise BadInput(f"--time_budget, --dry_run: for --strategy evolutionary --stage all only (not --strategy "
                       f"{fv.strategy} --stage {fv.stage})")
    try:
        budget = parse_duration(fv.time_budget) if fv.time_budget else None
    except DurationError as error:
        raise BadInput(f"--time_budget {error}") from None
    time_plan = None if fv.dry_run else earlier_plan(plan.run_dir, budget, "search")
    if time_plan is not None:
        _say(f"plan: kept from the run started in {plan.run_dir} with this budget; deadlines count from now")
    time_plan = time_plan or make_plan(plan, budget, {name: fv[name].value for name in SIZE_FLAGS})
    _say(time_plan.format())
    if fv.dry_run:
        _say(f"dry run: nothing else done; the plan is in {write_plan(plan.run_dir, time_plan)}")
        return None
    for name in SIZE_FLAGS:
        fv[name].value = time_plan.sizes[name]
    time_plan.start(started)
    fv.time_plan = str(plan.run_dir / PLAN)
    plan = check_inputs(fv)  # again, at the sizes chosen
    write_plan(plan.run_dir, time_plan)
    return plan


def run(flag_values, argv: Sequence[str]) -> int:
    """Search as the parsed flags say; returns the exit code."""
    from mobileseg.android.errors import (AdbError, AdbNotFoundError, AndroidBenchError, DeviceLost,
                                          MultipleDevicesError)
    from mobileseg.arch.schema_io import GenotypeError
    from mobileseg.atomic_write import AtomicWriteError
    from mobileseg.data.problems import DataError
    from mobileseg.latency.cache import use_folder
    from mobileseg.latency.device_lost import EXIT_DEVICE_LOST
    from mobileseg.run_lock import RunLockError, hold
    from mobileseg.search.nsga2 import SearchError
    from mobileseg.state_files import StateFileError
    from mobileseg.timebudget.split import BudgetTooSmall
    from mobileseg.timebudget.time_plan import PlanError
    from mobileseg.training.trainer import TrainingDiverged, TrainingError

    def fail(message: str, code: int) -> int:
        print(f"mobileseg.search: error: {message}", file=sys.stderr)
        return code

    if len(argv) > 1:
        return fail(f"unexpected arguments {list(argv[1:])}", 2)
    missing = [f"--{name}" for name in ("space", "data", "run_dir") if not flag_values[name].value]
    if missing:
        return fail(f"{', '.join(missing)} required", 2)
    use_folder(flag_values.latency_cache)
    started = time.time()
    try:
        with hold(flag_values.run_dir, "mobileseg.search"):
            plan = check_inputs(flag_values)
            if flag_values.time_budget or flag_values.dry_run or flag_values.time_plan:
                plan = with_time_plan(flag_values, plan, started)
            if plan is not None:
                execute(plan)
    except BuildInterrupted as error:
        print(error, file=sys.stderr)
        return EXIT_DEVICE_LOST
    except DeviceLost as error:
        return fail(f"{error}\nEvery block measured so far is saved in the latency table; reconnect the phone and "
                    "run the same command again to go on.", EXIT_DEVICE_LOST)
    except (AdbNotFoundError, MultipleDevicesError) as error:
        return fail(str(error), 2)
    except AdbError as error:
        return fail(f"{error}\nConnect the phone and run the same command again.", EXIT_DEVICE_LOST)
    except TrainingDiverged as error:
        return fail(str(error), 1)
    except DataError as error:
        return fail(str(error) if str(error).startswith("--data") else f"--data {flag_values.data}: {error}", 2)
    except (BadInput, GenotypeError, TrainingError, SearchError, StateFileError, RunLockError, BudgetTooSmall,
            PlanError) as error:
        return fail(str(error), 2)
    except (AndroidBenchError, AtomicWriteError) as error:
        return fail(str(error), 1)
    return 0


def main() -> None:
    """Entry point of ``python -m mobileseg.search``."""
    import warnings

    from absl import app, flags

    from mobileseg.cli_flags import bad_input_parser
    from mobileseg.console import quiet_native_logs, run_command

    quiet_native_logs()
    # the TFLite converter's int8 calibration still uses tf.lite.Interpreter internally
    warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
    define_flags()
    app.run(lambda argv: sys.exit(run_command(run, flags.FLAGS, argv)),
            flags_parser=bad_input_parser("mobileseg.search"))


if __name__ == "__main__":
    main()
