"""Training on several machines: the cluster ``TF_CONFIG`` describes, its strategy, and what each worker writes.

``python -m mobileseg.train --distribute multiworker`` runs one copy of the command per machine, each
with ``TF_CONFIG`` set to the same cluster and its own task, as TensorFlow's
``MultiWorkerMirroredStrategy`` reads it::

    TF_CONFIG='{"cluster": {"worker": ["host0:2222", "host1:2222"]}, "task": {"type": "worker", "index": 0}}'

The workers train one model in lockstep: every step, each replica takes ``batch_size / replicas`` of
the global batch and the gradients are summed across workers (`TrainingModel` divides each replica's
loss by the replicas, so the sum is the global batch's mean). What this module holds:

- `parse_tf_config`: the cluster and this worker's place in it, checked before anything starts (a
  missing or malformed ``TF_CONFIG`` is refused with the problem named);
- `worker_folder`: where a worker writes. Only the chief (``task.index`` 0 of the ``worker`` job, or
  the ``chief`` job's task) writes the run folder and holds its lock (`mobileseg.run_lock`); the other
  workers write their copy of the run's files to a temporary folder, removed when they end (the
  pattern TensorFlow documents for Keras checkpoints), so workers may share DIR on one file system
  or not;
- `agreed_start`: the workers must start at the same optimizer step. A resumed run needs the chief's
  ``last.keras`` in every worker's ``--run_dir`` (a shared folder, or a copy); a worker that sees
  another step than the chief is refused instead of training a different model;
- `lost_worker_message`: a worker that dies (killed, its machine down) stops the others within about
  a minute (TensorFlow's coordination service misses its heartbeats); the message names it;
- `agreed_go_on`: a run ends after an epoch when any worker's callbacks end it (a time budget's
  deadline is read from each machine's clock), so that no worker waits for the others forever;
- `AverageMovingStatistics`: the BatchNorm moving statistics, kept per replica by Keras 3, averaged
  over the replicas after every epoch, so that every worker validates and saves one model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from mobileseg.run.run_dir import RunDir
from mobileseg.training.errors import ResumeError, TrainingError

RESUME_FILES = (RunDir.LAST, RunDir.TRAIN_STATE, RunDir.TRAIN_LOG, RunDir.CONFIG)
"""The run folder's files a worker other than the chief reads from DIR to resume (copied to its own folder)."""


class ClusterError(TrainingError):
    """``TF_CONFIG`` is missing or does not describe a cluster this worker is in; the message names the problem."""


@dataclasses.dataclass(frozen=True)
class Cluster:
    """A multi-worker cluster as ``TF_CONFIG`` describes it, seen from one of its tasks.

    Attributes:
        workers: every task's ``host:port``, the chief first (the ``chief`` job's task, else worker 0).
        rank: this task's place in `workers`.
    """

    workers: tuple[str, ...]
    rank: int

    @property
    def is_chief(self) -> bool:
        """Whether this task is the chief, the one that writes the run folder."""
        return self.rank == 0


def parse_tf_config(text: str | None) -> Cluster:
    """The cluster and this task in ``TF_CONFIG`` (its text; None when the variable is not set).

    Example:
        >>> cluster = parse_tf_config('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}')
        >>> cluster.workers, cluster.rank, cluster.is_chief
        (('a:1', 'b:2'), 1, False)
        >>> parse_tf_config('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}')
        Traceback (most recent call last):
        ...
        mobileseg.training.distribute.ClusterError: TF_CONFIG: task index 3 is not in the worker job (1 task)

    Raises:
        ClusterError: not set, not JSON, no ``cluster`` with a list of ``host:port`` for ``worker`` (and
            at most one for ``chief``), or a ``task`` that is not one of them.
    """
    if not text or not text.strip():
        raise ClusterError("TF_CONFIG is not set: set it on every machine to the cluster and that machine's task, "
                           'e.g. {"cluster": {"worker": ["host0:2222", "host1:2222"]}, '
                           '"task": {"type": "worker", "index": 0}}')
    try:
        config = json.loads(text)
    except ValueError as error:
        raise ClusterError(f"TF_CONFIG: not JSON ({error})") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
        raise ClusterError('TF_CONFIG: no "cluster" mapping of jobs to lists of host:port')
    jobs = config["cluster"]
    unknown = sorted(set(jobs) - {"chief", "worker"})
    if unknown:
        raise ClusterError(f"TF_CONFIG: job(s) {', '.join(unknown)} in the cluster; MultiWorkerMirroredStrategy "
                           "takes only chief and worker")
    for job, tasks in jobs.items():
        if not isinstance(tasks, list) or not tasks or not all(_is_address(task) for task in tasks):
            raise ClusterError(f'TF_CONFIG: cluster job "{job}" must be a non-empty list of "host:port", '
                               f"got {tasks!r}")
    if "worker" not in jobs and "chief" not in jobs:
        raise ClusterError('TF_CONFIG: the cluster has no "worker" job')
    if len(jobs.get("chief", [])) > 1:
        raise ClusterError(f'TF_CONFIG: the "chief" job has {len(jobs["chief"])} tasks; it takes one')
    task = config.get("task")
    if not isinstance(task, dict) or task.get("type") not in jobs:
        raise ClusterError(f'TF_CONFIG: "task" must name this machine\'s job ({" or ".join(sorted(jobs))}) and index, '
                           f"got {task!r}")
    index = task.get("index", 0)
    tasks = jobs[task["type"]]
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(tasks):
        count = f"{len(tasks)} task{'s' if len(tasks) > 1 else ''}"
        raise ClusterError(f"TF_CONFIG: task index {index} is not in the {task['type']} job ({count})")
    workers = tuple(jobs.get("chief", [])) + tuple(jobs.get("worker", []))
    return Cluster(workers, index + (1 if "chief" in jobs and task["type"] == "worker" else 0))


def _is_address(text) -> bool:
    host, _, port = str(text).rpartition(":") if isinstance(text, str) else ("", "", "")
    return bool(host) and port.isdigit()


@contextlib.contextmanager
def worker_folder(run_dir: str | Path, cluster: Cluster | None) -> Iterator[Path]:
    """The folder this worker writes the run's files to, for the block.

    The chief (or a run on one machine, ``cluster`` None) writes ``run_dir`` itself. Another worker
    gets a new temporary folder holding a copy of the files of ``run_dir`` a resumed run reads
    (`RESUME_FILES`, those there), removed when the block ends however it ends.
    """
    if cluster is None or cluster.is_chief:
        yield Path(run_dir)
        return
    folder = Path(tempfile.mkdtemp(prefix=f"mobileseg-worker{cluster.rank}-"))
    try:
        for name in RESUME_FILES:
            if (Path(run_dir) / name).is_file():
                shutil.copyfile(Path(run_dir) / name, folder / name)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """Whether `strategy` spans several processes (a `tf.distribute.MultiWorkerMirroredStrategy`)."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def _gathered(strategy: tf.distribute.Strategy, value: int) -> list[int]:
    """Every replica's copy of ``value`` (an int of this worker), in replica order: the chief's first."""
    constant = tf.constant(value, tf.int64)
    per_replica = strategy.run(lambda: tf.reshape(tf.identity(constant), [1]))
    return [int(v) for v in strategy.gather(per_replica, axis=0).numpy()]


def agreed_start(strategy: tf.distribute.Strategy, step: int) -> None:
    """Check that every worker starts at the chief's optimizer step (nothing to do on one machine).

    Args:
        strategy: the run's strategy.
        step: the step this worker's run folder says the run resumes at (0: a new run).

    Raises:
        ResumeError: some worker sees another step than the chief (every worker raises it).
    """
    if not is_multi_worker(strategy):
        return
    steps = _gathered(strategy, step)
    others = sorted({s for s in steps[1:] if s != steps[0]})
    if others:
        raise ResumeError(f"--run_dir: the chief resumes at optimizer step {steps[0]} but another worker at "
                          f"{', '.join(map(str, others))} (steps of the workers: {steps}); every worker resumes "
                          f"from the chief's {RunDir.LAST}: share the run folder between the machines, or copy "
                          f"the chief's {', '.join(RESUME_FILES)} into every worker's --run_dir")


def agreed_go_on(strategy: tf.distribute.Strategy, go_on: bool) -> bool:
    """Whether every worker goes on after this epoch (False when any one stops); ``go_on`` on one machine."""
    if not is_multi_worker(strategy):
        return go_on
    return all(_gathered(strategy, int(go_on)))


class AverageMovingStatistics(keras.callbacks.Callback):
    """At the end of every epoch, every replica's moving statistics (BatchNorm's) set to their mean over the replicas.

    Keras 3 keeps a BatchNorm's moving mean and variance per replica (their aggregation is "none"), each
    from that replica's share of the batches, so the workers would validate and save different models.
    The moving averages are linear in the batch statistics, so averaging them once per epoch gives what
    averaging every step would: the moving average of the replicas' mean statistics. Runs first, before
    validation and the checkpoint; nothing to do with one replica.

    Args:
        model: the trained model.
        strategy: the run's strategy.
    """

    def __init__(self, model: keras.Model, strategy: tf.distribute.Strategy):
        super().__init__()
        self.strategy = strategy
        self.variables = [v for v in model.non_trainable_variables if v.dtype.startswith("float")]

    def on_epoch_end(self, epoch, logs=None):
        if self.strategy.num_replicas_in_sync < 2 or not self.variables:
            return
        def flat():  # in each replica: its own copies
            return tf.concat([tf.reshape(variable.value, [-1]) for variable in self.variables], axis=0)

        mean = self.strategy.reduce("MEAN", self.strategy.run(flat), axis=None)
        start = 0
        for variable in self.variables:
            size = int(np.prod(variable.shape))
            variable.assign(tf.reshape(mean[start:start + size], variable.shape))
            start += size


LOST_WORKER = tf.errors.UnavailableError
"""What a collective raises on the other workers when one has died."""


def lost_worker_message(error: Exception) -> str:
    r"""One line for a `LOST_WORKER` error: which tasks were lost, and how to go on.

    Example:
        >>> lost = RuntimeError("Graph execution error:\n\nCollective ops is aborted by: The following tasks "
        ...                     "are unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:1\n")
        >>> lost_worker_message(lost).split(";")[0]
        'lost worker 1 (stopped sending heartbeats)'
        >>> lost_worker_message(RuntimeError("[[{{node allgather}}]] on /job:worker/replica:0/task:0")).split(";")[0]
        'lost a worker ([[{{node allgather}}]] on /job:worker/replica:0/task:0)'
    """
    text = str(error)
    unhealthy = text.partition("unhealthy")[2].partition("The tasks have crashed")[0]  # the list of lost tasks
    tasks = sorted(set(re.findall(r"/job:(\w+)/replica:\d+/task:(\d+)", unhealthy)))
    who = ", ".join(f"{job} {task}" for job, task in tasks) or "a worker"
    reason = "stopped sending heartbeats" if "heartbeat" in text else next(
        (line.strip() for line in text.splitlines() if line.strip()), "unavailable")
    return (f"lost {who} ({reason}); the run folder holds the last completed epoch: start every worker again with "
            "the same command to resume")
