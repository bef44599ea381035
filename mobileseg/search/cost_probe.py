"""Seconds of one unit of every stage on this machine, from a few timed steps on the real data.

`probe_costs` builds the search's supernet at its input size and times, after one untimed step
that traces the compiled functions:

- ``steps`` sandwich steps of the supernet (`SupernetTrainer.sandwich_step`: the largest, the
  smallest and ``num_random`` random networks): an epoch is ``steps_per_epoch`` of them, and the
  stage's one-off cost is building the supernet plus what the first step (which traces) takes
  more than the others;
- one proxy score of a random network (`SupernetAccuracyModel`: batch-norm recalibration on
  ``calib_batches`` batches, then the validation images): one NSGA-II trial;
- for the pipeline, a training epoch: the training steps of that random network, each timed as the
  trainer runs it (`mobileseg.training.training_model.TrainingModel` with the trainer's loss and
  optimizer, after a step that traces), plus the validation images at the scoring pace, plus two
  saves of that network (``last.keras`` and ``model.keras`` after every epoch, timed), and the
  stage's one-off cost what its first step takes more than the others; a QAT epoch is
  `QAT_SLOWDOWN` training epochs;
  the reserve is the int8 conversion of that random network, timed, twice (export and its report),
  plus the float and int8 evaluation of the test images at the scoring pace.

The latency stage costs the blocks left to measure (`LatencyTable.to_measure`: blocks the table
or the persistent cache hold cost nothing) times the seconds of one block: the median gap
between the table's consecutive measurements when it holds a build of 5 blocks or more (an
earlier run), else one block converted and timed now, in memory (the table is not touched).

Nothing is written: a dry run leaves the run folder as it was.
"""

from __future__ import annotations

import dataclasses
import datetime
import statistics
import tempfile
import time
from pathlib import Path

from mobileseg.timebudget.split import StageCosts

QAT_SLOWDOWN = 2.0
"""A quantization-aware epoch over a training epoch (fake quantization around every op, and the float
model as the distillation teacher). Measured once, CamVid at 184x240 (the 1 h budget run): QAT epochs
of 24 and 42 s after a first of 68 s that traces, against training epochs of 14-17 s."""
HISTORY_GAP_S = 120.0
"""Gaps between a table's consecutive measurements longer than this are pauses, not one block's cost."""


@dataclasses.dataclass(frozen=True)
class ProbeSettings:
    """What the probe times, as the run will do it.

    Attributes:
        batch_size: images per step.
        steps_per_epoch: supernet steps per epoch (already capped by the data).
        calib_batches, val_images: the proxy's budget (``val_images`` None: every validation image).
        search_scale: the supernet's rescaling (as the search's).
        train_steps, train_val_images: the training's steps per epoch and validation images (pipeline).
        test_images: images the export evaluates (pipeline); None: the search alone.
        references: reference networks whose proxy the search's outputs score.
        steps: sandwich steps timed.
        seed: seeds the networks drawn.
    """

    batch_size: int
    steps_per_epoch: int
    calib_batches: int
    val_images: int | None
    search_scale: float
    train_steps: int = 0
    train_val_images: int = 0
    test_images: int | None = None
    references: int = 0
    steps: int = 2
    seed: int = 0


def seconds_per_block(table, to_measure, make_model, measurer, convert) -> tuple[float, str]:
    """(seconds one block takes to convert and time, where the figure comes from)."""
    history = _history_gap(table)
    if history is not None:
        return history, f"median gap of {len(table)} earlier measurements"
    if not to_measure:
        return 0.0, "nothing to measure"
    from mobileseg.latency.table import LatencyTable

    scratch = LatencyTable(table.fingerprint, table.quantization)  # in memory: no file, no cache
    started = time.perf_counter()
    scratch.build(to_measure[:1], make_model, measurer, convert=convert, progress=False)
    return time.perf_counter() - started, "one block timed now"


def _history_gap(table) -> float | None:
    stamps = sorted(datetime.datetime.fromisoformat(entry.measured_at).timestamp()
                    for entry in table.entries.values() if entry.measured_at)
    gaps = [b - a for a, b in zip(stamps, stamps[1:]) if 0 < b - a <= HISTORY_GAP_S]
    return statistics.median(gaps) if len(gaps) >= 4 else None


def probe_costs(supernet, source, settings: ProbeSettings, latency_s: float,
                build_s: float = 0.0) -> tuple[StageCosts, dict]:
    """Time the stages' units on ``source`` (its train and val splits) with ``supernet`` (freshly built).

    Args:
        supernet: the search's `Supernet`, at its input size; its weights are trained a few steps
            (pass a fresh one, not the one the search trains).
        source: the data set.
        settings: what to time.
        latency_s: the latency stage's seconds (`seconds_per_block` times the blocks to measure).
        build_s: the seconds building ``supernet`` took (part of the supernet stage's one-off cost).

    Returns:
        The `StageCosts` and the measured facts (seconds of a sandwich step, of a trial...) for ``plan.json``.
    """
    import numpy as np

    from mobileseg.data.checks import verified_pairs
    from mobileseg.supernet.accuracy import SupernetAccuracyModel
    from mobileseg.supernet.train_config import SupernetTrainConfig
    from mobileseg.supernet.trainer import SupernetTrainer
    from mobileseg.training.factories import epoch_batches

    rng = np.random.default_rng(settings.seed)
    config = SupernetTrainConfig(epochs=1, batch_size=settings.batch_size, search_scale=settings.search_scale,
                                 seed=settings.seed, verbose=False)
    trainer = SupernetTrainer(supernet, config, steps_per_epoch=settings.steps_per_epoch)
    pairs, _ = verified_pairs(source, "train")
    # repeated: a training split of fewer batches than the probe's steps is timed over again
    batches = list(epoch_batches(source, pairs, trainer.train_config, 0).repeat().take(settings.steps + 1))
    sandwich = _seconds_each(lambda images, labels: trainer.sandwich_step(images, labels, rng), batches)
    step_s = statistics.mean(sandwich[1:])  # the first traces
    accuracy = SupernetAccuracyModel(
        supernet, source, source, calib_batches=settings.calib_batches, batch_size=settings.batch_size,
        max_val_images=settings.val_images, scale_range=trainer.train_config.scale_range, seed=settings.seed)
    genotype = supernet.sample(rng)
    accuracy.miou([genotype])  # traces
    started = time.perf_counter()
    arch = supernet.encode(genotype)
    accuracy.recalibrate(arch)
    calibrated = time.perf_counter()
    accuracy.score(arch)
    trial_s, score_s = time.perf_counter() - started, time.perf_counter() - calibrated
    image_s = score_s / accuracy.val_images
    facts = {"sandwich_step_s": round(step_s, 3), "trial_s": round(trial_s, 3),
             "val_image_s": round(image_s, 4)}
    costs = {"latency_s": latency_s, "supernet_epoch_s": settings.steps_per_epoch * step_s, "trial_s": trial_s,
             "reserve_s": settings.references * trial_s, "supernet_setup_s": build_s + max(0.0, sandwich[0] - step_s)}
    if settings.test_images is not None:
        from mobileseg.deploy.tflite_convert import convert

        network = supernet.extract(genotype)
        started = time.perf_counter()
        convert(network, "int8")
        convert_s = time.perf_counter() - started
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            network.save(Path(folder) / "probe.keras")
            save_s = time.perf_counter() - started
        train_step_s, train_first_s = training_step_seconds(network, trainer.train_config, batches)
        overhead_s = settings.train_val_images * image_s + 2 * save_s  # validation and saves, every epoch
        train_epoch_s = settings.train_steps * train_step_s + overhead_s
        facts.update(train_step_s=round(train_step_s, 3), model_save_s=round(save_s, 2))
        costs.update(train_epoch_s=train_epoch_s, qat_epoch_s=QAT_SLOWDOWN * train_epoch_s,
                     train_setup_s=max(0.0, train_first_s - train_step_s),
                     reserve_s=costs["reserve_s"] + 2 * convert_s + 2 * settings.test_images * image_s)
        facts["int8_conversion_s"] = round(convert_s, 2)
    return StageCosts(**costs), facts


def _seconds_each(step, batches) -> list[float]:
    """Seconds of ``step(images, labels)`` on each of ``batches``."""
    timed = []
    for images, labels in batches:
        started = time.perf_counter()
        step(images, labels)
        timed.append(time.perf_counter() - started)
    return timed


def training_step_seconds(network, train_config, batches) -> tuple[float, float]:
    """(seconds of one training step of ``network`` as `mobileseg.training.trainer.fit` runs it, seconds of the
    first step, which traces): `TrainingModel` with the trainer's loss and its own optimizer, over ``batches``
    (at least 2). The network's weights change: pass a copy no one keeps."""
    from mobileseg.training.factories import make_loss, make_optimizer
    from mobileseg.training.training_model import TrainingModel

    model = TrainingModel(network, make_loss(train_config))
    model.compile(optimizer=make_optimizer(train_config, steps_per_epoch=len(batches)),
                  jit_compile=train_config.jit_compile)
    timed = _seconds_each(lambda images, labels: model.train_on_batch(images, labels), batches)
    return statistics.mean(timed[1:]), timed[0]
