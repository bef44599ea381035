"""``python -m mobileseg.train --arch ARCH.yaml --data KIND:PATH --run_dir DIR [flags]``.

Trains the network a genotype file describes on a data set, into a run folder:
AdamW with linear warm-up and poly (or cosine) decay, OHEM cross-entropy with the
ignore index on the logits upsampled to every ``--loss_stride``-th pixel of the crop
(``--class_weight enet``: weighted by ENet's class weights of the training split),
optional weight EMA (``--ema``: validation and ``model.keras`` use the weights' moving average),
auxiliary heads where the genotype lists ``head.aux`` cells, optional distillation from
a trained ``--teacher``, full-resolution validation mIoU and per-class IoU after every
``--val_every``-th epoch and the last, the decoded training images kept in memory, a
Keras progress bar and TensorBoard logs. In DIR (see `mobileseg.training.callbacks`):

- ``model.keras``: the best checkpoint by validation mIoU (main output only), at
  ``--model_size`` (default ``--input_size``); ``last.keras``: the last one, with the
  optimizer state;
- ``config.yaml``: its ``train`` section holds every flag value, resolved (other
  steps' sections are kept);
- ``train_state.json``, ``train_log.jsonl``, ``tensorboard/``.

Started again with the same DIR, a killed run resumes where it stopped (weights,
optimizer state, epoch, the same data order); ``--epochs`` may be raised to train
longer. A NaN or infinite loss stops the run with a message naming the epoch and
step, leaving the last good checkpoints as they were.

``--init`` starts the network from other weights, matched by layer name and shape
(`mobileseg.warm_start`): another run's ``.keras`` or ``.weights.h5``, ``supernet:DIR`` (the
network's weights inherited from the supernet a search trained in DIR) or ``imagenet:FILE``
(keras.applications' MobileNetV3 ImageNet weights, for the MobileNetV3 references). What
matched is printed and kept in ``DIR/init_report.json``; a resumed run goes on from its own
weights, and resuming with another ``--init`` is refused.

``--distribute multiworker`` trains on several machines, one command per machine with
``TF_CONFIG`` naming the cluster and that machine's task (`mobileseg.training.distribute`):
``--batch_size`` is the global batch, shared out over the workers; only the chief writes DIR
and holds its lock, the others write a temporary folder they remove; every worker resumes from
the chief's ``last.keras`` (a shared DIR, or a copy of it).

Exit codes: 0 trained (or already trained), 1 training diverged or a file could not be
written (a full disk; the files of the last good epoch are kept) or another worker was lost, 2 bad input (a missing
or malformed ``--arch``, a bad ``--data``, an ``--input_size`` that is not a multiple of
the network's output stride, a ``--teacher`` with other classes, an ``--init`` that is not
a weights file or a trained supernet, or another ``--init`` than the run in DIR started
from, a DIR holding a different run or a damaged ``train_state.json``, a DIR another
command is running in: `mobileseg.run_lock`; with ``--distribute multiworker``, a missing or
malformed ``TF_CONFIG``, a ``--batch_size`` the replicas do not divide, or a worker that would
resume at another step than the chief); with bad input nothing in DIR is changed.

Example:
    python -m mobileseg.train --arch search_space/references/mobilenetv3_small_lraspp.yaml \\
        --data camvid:../shared/datasets/camvid --input_size 360x480 --batch_size 8 --epochs 200 \\
        --run_dir runs/camvid_mv3
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

from mobileseg.data.class_balance import CLASS_WEIGHTS
from mobileseg.run.exit_codes import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, BadInput
from mobileseg.run.run_dir import RunDir
from mobileseg.run.sizes import check_size, logits_stride

FLAG_NAMES = (
    "arch", "data", "run_dir", "epochs", "input_size", "batch_size", "lr", "weight_decay", "schedule", "poly_power",
    "warmup_epochs", "min_lr", "seed", "ohem", "ohem_thresh", "ohem_min_kept", "loss_stride", "class_weight", "ema",
    "aux_weight", "init", "teacher", "distill_weight", "temperature", "scale_range", "train_split", "val_split",
    "val_size", "val_batch_size", "val_every", "cache_images", "precision", "model_size", "distribute", "skip_bad",
    "jit_compile", "tensorboard", "verbose", "time_plan",
)
"""Every flag of the command, in the order config.yaml lists them."""


def define_flags(flag_values=None) -> None:
    """Declare the flags (at start-up only, so importing this module declares nothing)."""
    from absl import flags

    from mobileseg.warm_start.initialize import HELP as INIT_HELP

    fv = flags.FLAGS if flag_values is None else flag_values
    flags.DEFINE_string("arch", None, "The network: a genotype YAML/JSON file.", flag_values=fv)
    flags.DEFINE_string("data", None, "Data set as KIND:PATH, one of camvid:DIR, cityscapes:DIR, ade20k:DIR, "
                        "folder:DIR or synthetic:N[,size=HxW][,seed=S].", flag_values=fv)
    flags.DEFINE_string("run_dir", None, "The run folder (created; resumed when it holds last.keras).",
                        flag_values=fv)
    flags.DEFINE_integer("epochs", 100, "Epochs in total (a resumed run continues up to this).", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_string("input_size", "512x512", "Training crop HEIGHTxWIDTH: the model's input size; a "
                        "multiple of the network's output stride.", flag_values=fv)
    flags.DEFINE_integer("batch_size", 8, "Images per optimizer step.", lower_bound=1, flag_values=fv)
    flags.DEFINE_float("lr", 1e-3, "Peak learning rate (AdamW).", flag_values=fv)
    flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay (not on norms and biases).", flag_values=fv)
    flags.DEFINE_enum("schedule", "poly", ["poly", "cosine"], "Decay after the warm-up.", flag_values=fv)
    flags.DEFINE_float("poly_power", 0.9, "Exponent of the poly decay.", flag_values=fv)
    flags.DEFINE_float("warmup_epochs", 1.0, "Linear warm-up length in epochs (may be fractional).",
                       flag_values=fv)
    flags.DEFINE_float("min_lr", 0.0, "Learning rate at the end of training.", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seeds initial weights, data order and augmentation.", flag_values=fv)
    flags.DEFINE_bool("ohem", True, "OHEM cross-entropy (--noohem: plain cross-entropy).", flag_values=fv)
    flags.DEFINE_float("ohem_thresh", 0.7, "OHEM: pixels whose true-class probability is below this are hard.",
                       flag_values=fv)
    flags.DEFINE_integer("ohem_min_kept", None, "OHEM: pixels per image always kept (default: a quarter of "
                         "the crop).", lower_bound=0, flag_values=fv)
    flags.DEFINE_integer("loss_stride", 2, "The loss compares every N-th pixel of the crop in each direction "
                         "(logits resized to that grid); 1: every pixel.", lower_bound=1, flag_values=fv)
    flags.DEFINE_enum("class_weight", "enet", list(CLASS_WEIGHTS), "Weight each pixel's loss by its class: enet "
                      "(1 / ln(1.02 + the class's pixel share in the training split; the weights go into config.yaml) "
                      "or none. On CamVid, enet raised mobilenetv3_small_lraspp's best val mIoU from 58.7 to 61.1 "
                      "(README).", flag_values=fv)
    flags.DEFINE_float("ema", 0.0, "Weight EMA: after every step an average of the weights moves by 1 - EMA "
                       "towards them (e.g. 0.999); validation and model.keras use the average. 0: off.",
                       lower_bound=0.0, upper_bound=0.9999, flag_values=fv)
    flags.DEFINE_float("aux_weight", 0.4, "Weight of each auxiliary head's loss.", flag_values=fv)
    flags.DEFINE_string("init", None, "Start from these weights instead of random ones (a resumed run goes on "
                        "from its own): " + INIT_HELP + ". The report: DIR/init_report.json.", flag_values=fv)
    flags.DEFINE_string("teacher", None, "Distil from this trained model: a .keras file or a run folder "
                        "(its model.keras); it must predict the data set's classes.", flag_values=fv)
    flags.DEFINE_float("distill_weight", 1.0, "Weight of the distillation term (with --teacher).", flag_values=fv)
    flags.DEFINE_float("temperature", 1.0, "Distillation temperature.", flag_values=fv)
    flags.DEFINE_list("scale_range", ["0.5", "2.0"], "Random rescaling range of training images: LOW,HIGH.",
                      flag_values=fv)
    flags.DEFINE_list("train_split", ["train"], "Splits trained on: train, or train,val once the recipe has been "
                      "chosen on val (never test).", flag_values=fv)
    flags.DEFINE_string("val_split", "val", "Split validated on after every epoch.", flag_values=fv)
    flags.DEFINE_string("val_size", None, "Resize validation images to HEIGHTxWIDTH (default: full resolution).",
                        flag_values=fv)
    flags.DEFINE_integer("val_batch_size", 1, "Validation images per batch.", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("val_every", 1, "Validate after every N-th epoch (and after the last); model.keras is "
                         "the best validated epoch.", lower_bound=1, flag_values=fv)
    flags.DEFINE_enum("cache_images", "auto", ["auto", "yes", "no"], "Keep the decoded training images in memory "
                      "(auto: when they take at most 4 GB).", flag_values=fv)
    flags.DEFINE_enum("precision", "float32", ["float32", "mixed_bfloat16"], "Keras dtype policy to train "
                      "under; model.keras is saved in float32 either way. On the 2-core Xeon of the README, "
                      "mixed_bfloat16 is 2-3x slower (depthwise gradients).", flag_values=fv)
    flags.DEFINE_string("model_size", None, "Save model.keras for HEIGHTxWIDTH images (default: --input_size).",
                        flag_values=fv)
    flags.DEFINE_enum("distribute", "none", ["none", "mirrored", "multiworker"], "tf.distribute strategy: none, "
                      "MirroredStrategy over the local GPUs (or the CPU), or MultiWorkerMirroredStrategy over the "
                      "machines TF_CONFIG names (one command per machine; only the chief, task 0, writes "
                      "--run_dir).", flag_values=fv)
    flags.DEFINE_bool("skip_bad", False, "Leave bad pairs out instead of stopping at the first.", flag_values=fv)
    flags.DEFINE_bool("jit_compile", False, "Compile the training step with XLA.", flag_values=fv)
    flags.DEFINE_bool("tensorboard", True, "Write TensorBoard logs to DIR/tensorboard.", flag_values=fv)
    flags.DEFINE_integer("verbose", 1, "Progress bar: 0 none, 1 a bar, 2 one line per epoch.", lower_bound=0,
                         upper_bound=2, flag_values=fv)
    flags.DEFINE_string("time_plan", None, "A plan.json of --time_budget (the pipeline passes it): training stops "
                        "after the epoch past which another would miss the plan's train deadline.", flag_values=fv)


def _size_flag(flag_values, name: str) -> tuple[int, int] | None:
    from mobileseg.cli_flags import parse_size

    text = flag_values[name].value
    if not text:
        return None
    try:
        return parse_size(text)
    except ValueError as error:
        raise BadInput(f"--{name}: {error}") from None


def _scale_range(values: list[str]) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in values)
    except ValueError:
        raise BadInput(f"--scale_range {','.join(values)}: expected LOW,HIGH, e.g. 0.5,2.0") from None
    return low, high


def train_config(flag_values):
    """The `TrainConfig` the flags describe.

    Raises:
        BadInput: a value out of range (the flag is named).
    """
    from mobileseg.training.train_config import TrainConfig

    fv = flag_values
    try:
        return TrainConfig(
            epochs=fv.epochs, batch_size=fv.batch_size, input_size=_size_flag(fv, "input_size"), lr=fv.lr,
            weight_decay=fv.weight_decay, schedule=fv.schedule, poly_power=fv.poly_power,
            warmup_epochs=fv.warmup_epochs, min_lr=fv.min_lr, ohem_thresh=fv.ohem_thresh if fv.ohem else None,
            ohem_min_kept=fv.ohem_min_kept, loss_stride=fv.loss_stride, class_weight=fv.class_weight, ema=fv.ema,
            aux_weight=fv.aux_weight, distill_weight=fv.distill_weight, temperature=fv.temperature, seed=fv.seed,
            scale_range=_scale_range(fv.scale_range), train_split=tuple(fv.train_split), val_split=fv.val_split,
            val_size=_size_flag(fv, "val_size"), val_batch_size=fv.val_batch_size, val_every=fv.val_every,
            cache_images=fv.cache_images, precision=fv.precision, model_size=_size_flag(fv, "model_size"),
            skip_bad=fv.skip_bad, verbose=fv.verbose, jit_compile=fv.jit_compile, tensorboard=fv.tensorboard)
    except ValueError as error:
        if isinstance(error, BadInput):
            raise
        raise BadInput(f"--{error}") from None  # TrainConfig names the field, which is the flag


def run(flag_values, argv: Sequence[str]) -> int:
    """Train as the parsed flags say; returns the exit code."""
    from mobileseg.arch.schema_io import GenotypeError
    from mobileseg.atomic_write import AtomicWriteError
    from mobileseg.data.problems import DataError
    from mobileseg.run_lock import RunLockError, hold
    from mobileseg.state_files import StateFileError
    from mobileseg.training.distribute import (LOST_WORKER, ClusterError, lost_worker_message, parse_tf_config,
                                               worker_folder)
    from mobileseg.training.errors import TrainingDiverged, TrainingError
    from mobileseg.warm_start.matching import InitError

    if len(argv) > 1:
        print(f"mobileseg.train: error: unexpected arguments {list(argv[1:])}", file=sys.stderr)
        return EXIT_BAD_INPUT
    missing = [f"--{name}" for name in ("arch", "data", "run_dir") if not flag_values[name].value]
    if missing:
        print(f"mobileseg.train: error: {', '.join(missing)} required", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        cluster = parse_tf_config(os.environ.get("TF_CONFIG")) if flag_values.distribute == "multiworker" else None
        lock = hold(flag_values.run_dir, "mobileseg.train") if cluster is None or cluster.is_chief else nullcontext()
        with lock, worker_folder(flag_values.run_dir, cluster) as folder:
            result = _train(flag_values, folder)
    except (TrainingDiverged, AtomicWriteError) as error:
        print(f"mobileseg.train: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except DataError as error:
        message = str(error) if str(error).startswith("--data") else f"--data {flag_values.data}: {error}"
        print(f"mobileseg.train: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except LOST_WORKER as error:
        print(f"mobileseg.train: error: --distribute multiworker: {lost_worker_message(error)}", file=sys.stderr)
        return EXIT_FAILED
    except ClusterError as error:
        print(f"mobileseg.train: error: --distribute multiworker: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (BadInput, GenotypeError, TrainingError, RunLockError, StateFileError, InitError) as error:
        print(f"mobileseg.train: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    best = "none" if result.best_miou is None else f"{result.best_miou:.4f} (epoch {result.best_epoch})"
    written = (f"model: {RunDir(result.run_dir).file(RunDir.MODEL)}" if cluster is None or cluster.is_chief else
               f"worker {cluster.rank} of {len(cluster.workers)}: the chief ({cluster.workers[0]}) wrote "
               "the run folder")
    print(f"trained {result.epoch} epochs ({result.optimizer_step} steps); best val mIoU {best}; {written}")
    return EXIT_OK


def _train(fv, folder: Path):
    """Train into ``folder`` (the run folder, or a worker's own: `mobileseg.training.distribute.worker_folder`)."""
    import keras
    import tensorflow as tf

    from mobileseg.arch import builder, schema_io
    from mobileseg.arch.external import External
    from mobileseg.data.sources import open_source
    from mobileseg.run.fingerprint import arch_sha256
    from mobileseg.run.run_config import ResumeRefused, read_config, resume_changes
    from mobileseg.training import trainer
    from mobileseg.training.teacher import load_teacher, prepare_teacher
    from mobileseg.warm_start import initialize

    strategy = _strategy(fv.distribute)  # first: MultiWorkerMirroredStrategy must come before any TensorFlow op
    genotype = schema_io.load(fv.arch)
    source = open_source(fv.data)
    config = train_config(fv)
    stride = logits_stride(genotype)
    what = f"{genotype.name} ({fv.arch})"
    check_size("--input_size", config.input_size, stride, what)
    if isinstance(genotype, External):
        for flag, size in (("--input_size", config.input_size), ("--model_size", config.model_size or config.input_size),
                           ("--val_size", config.val_size)):
            genotype.check_input_size(size, flag)
    if config.model_size:
        check_size("--model_size", config.model_size, stride, what)
    digest = arch_sha256(genotype)
    previous = read_config(folder, error=trainer.TrainingError).get("train") or {}
    if resume_changes(previous, {"arch_sha256": digest}):
        raise ResumeRefused(f"--arch {fv.arch}: {fv.run_dir} holds a run of another network "
                            f"({previous.get('arch_name')} from {previous.get('arch')}); use a new --run_dir")
    if previous and previous.get("init") != fv.init:  # a run from random weights records init: null
        raise ResumeRefused(f"--init {fv.init or '(none)'}: {fv.run_dir} holds a run started from "
                            f"{previous.get('init') or 'random weights'}; resume it with the same --init, or use "
                            "a new --run_dir")
    init = initialize.parse_init(fv.init) if fv.init else None

    teacher = None
    if fv.teacher:
        with strategy.scope():
            try:
                loaded = load_teacher(fv.teacher)
            except trainer.TrainingError as error:
                raise BadInput(f"--teacher: {error}") from None
            teacher = prepare_teacher(loaded, source.num_classes, config.input_size, name=f"--teacher {fv.teacher}")
    auxiliary = not isinstance(genotype, External) and bool(genotype.head.aux)

    def build():  # called by fit only for a run that starts (never on resume), once every other check passed
        model = builder.build_model(genotype, source.num_classes, config.input_size, auxiliary=auxiliary)
        if init is not None:
            report = initialize.initialize(model, init, genotype)
            print(report.summary())
            initialize.write_report(folder, report)
        return model

    record = {name: fv[name].value for name in FLAG_NAMES}
    record.update(
        input_size=list(config.input_size), val_size=config.val_size and list(config.val_size),
        model_size=list(config.model_size or config.input_size), scale_range=list(config.scale_range),
        ohem_thresh=config.ohem_thresh, ohem_min_kept=config.min_kept(), arch_name=genotype.name,
        arch_sha256=digest, output_stride=stride, auxiliary_heads=len(genotype.head.aux) if auxiliary else 0,
        num_classes=source.num_classes, class_names=list(source.class_names),
        replicas=strategy.num_replicas_in_sync, tensorflow=tf.__version__, keras=keras.__version__)
    return trainer.fit(build, source, folder, config, teacher=teacher, strategy=strategy, record=record,
                       callbacks=_deadline_stop(fv.time_plan, config.epochs))


def _strategy(name: str):
    """The tf.distribute strategy ``--distribute`` names (MultiWorkerMirroredStrategy reads TF_CONFIG)."""
    import tensorflow as tf

    if name == "multiworker":
        # the strategy's start-up and per-collective info lines are not for the user
        tf.get_logger().setLevel("ERROR")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":  # the local GPUs, else the CPU's logical devices (one unless configured)
        return tf.distribute.MirroredStrategy([device.name for device in tf.config.list_logical_devices("GPU")]
                                              or [device.name for device in tf.config.list_logical_devices("CPU")])
    return tf.distribute.get_strategy()


def _deadline_stop(time_plan: str | None, epochs: int) -> list:
    """The callback keeping training to the ``train`` deadline of ``--time_plan`` (none without a plan)."""
    if not time_plan:
        return []
    from mobileseg.timebudget.time_plan import PlanError, stage_deadline
    from mobileseg.training.deadline_stop import DeadlineStop

    try:
        return [DeadlineStop(stage_deadline(time_plan, "train"), epochs)]
    except PlanError as error:
        raise BadInput(f"--time_plan: {error}") from None


def main() -> None:
    """Entry point of ``python -m mobileseg.train``."""
    from absl import app, flags

    from mobileseg.console import quiet_native_logs, run_command

    quiet_native_logs()
    define_flags()
    app.run(lambda argv: sys.exit(run_command(run, flags.FLAGS, argv)))


if __name__ == "__main__":
    main()
