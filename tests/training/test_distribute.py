"""`mobileseg.training.distribute`: TF_CONFIG checked with the problem named, and where each worker writes.

The workers training together (two processes, MultiWorkerMirroredStrategy) are tested end to end in
tests/test_train_multiworker.py: a strategy spanning processes cannot be made in a test process
whose TensorFlow has started.
"""

import json

import pytest

from mobileseg.run.run_dir import RunDir
from mobileseg.training import distribute
from mobileseg.training.distribute import Cluster, ClusterError, parse_tf_config, worker_folder


def tf_config(cluster, task) -> str:
    return json.dumps({"cluster": cluster, "task": task})


def test_the_workers_in_order_and_this_one():
    cluster = parse_tf_config(tf_config({"worker": ["a:1", "b:2", "c:3"]}, {"type": "worker", "index": 2}))
    assert cluster == Cluster(("a:1", "b:2", "c:3"), 2) and not cluster.is_chief
    assert parse_tf_config(tf_config({"worker": ["a:1", "b:2"]}, {"type": "worker"})).is_chief  # index 0


def test_a_chief_job_comes_first_and_is_the_chief():
    cluster = {"chief": ["boss:9"], "worker": ["a:1", "b:2"]}
    chief = parse_tf_config(tf_config(cluster, {"type": "chief", "index": 0}))
    worker = parse_tf_config(tf_config(cluster, {"type": "worker", "index": 0}))
    assert chief == Cluster(("boss:9", "a:1", "b:2"), 0) and chief.is_chief
    assert worker.rank == 1 and not worker.is_chief


@pytest.mark.parametrize("text, message", [
    (None, r"^TF_CONFIG is not set: set it on every machine"),
    ("  ", r"^TF_CONFIG is not set"),
    ("{cluster: 1}", r"^TF_CONFIG: not JSON \(Expecting property name"),
    ('["a:1"]', r'^TF_CONFIG: no "cluster" mapping'),
    (tf_config({"worker": ["a:1"], "ps": ["b:2"]}, {"type": "worker"}), r"job\(s\) ps in the cluster"),
    (tf_config({"worker": []}, {"type": "worker"}), r'"worker" must be a non-empty list of "host:port", got \[\]'),
    (tf_config({"worker": ["localhost"]}, {"type": "worker"}), r"got \['localhost'\]"),
    (tf_config({"worker": "a:1"}, {"type": "worker"}), r"got 'a:1'"),
    (tf_config({"chief": ["a:1", "b:2"], "worker": ["c:3"]}, {"type": "chief"}), r'"chief" job has 2 tasks'),
    (tf_config({"worker": ["a:1"]}, None), r'"task" must name this machine\'s job \(worker\) and index, got None'),
    (tf_config({"worker": ["a:1"]}, {"type": "chief"}), r"got \{'type': 'chief'\}"),
    (tf_config({"worker": ["a:1", "b:2"]}, {"type": "worker", "index": 2}),
     r"task index 2 is not in the worker job \(2 tasks\)"),
    (tf_config({"worker": ["a:1"]}, {"type": "worker", "index": "0"}), r"task index 0 is not in the worker job"),
])
def test_a_missing_or_malformed_tf_config_is_refused_with_the_problem(text, message):
    with pytest.raises(ClusterError, match=message):
        parse_tf_config(text)


def test_the_chief_and_a_lone_run_write_the_run_folder(tmp_path):
    for cluster in (None, Cluster(("a:1", "b:2"), 0)):
        with worker_folder(tmp_path / "run", cluster) as folder:
            assert folder == tmp_path / "run"


def test_another_worker_writes_a_temporary_copy_removed_at_the_end(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in (*distribute.RESUME_FILES, RunDir.MODEL, "native.log"):
        (run_dir / name).write_text(f"the chief's {name}")
    before = {p.name: p.read_text() for p in run_dir.iterdir()}
    with pytest.raises(RuntimeError, match="stopped"):
        with worker_folder(run_dir, Cluster(("a:1", "b:2"), 1)) as folder:
            assert folder.name.startswith("mobileseg-worker1-") and not folder.is_relative_to(run_dir)
            assert {p.name: p.read_text() for p in folder.iterdir()} == {
                name: f"the chief's {name}" for name in distribute.RESUME_FILES}
            (folder / RunDir.MODEL).write_text("this worker's model")
            raise RuntimeError("stopped")
    assert not folder.exists()
    assert {p.name: p.read_text() for p in run_dir.iterdir()} == before


def test_another_worker_without_the_run_folder_starts_empty(tmp_path):
    with worker_folder(tmp_path / "not_here", Cluster(("a:1", "b:2"), 1)) as folder:
        assert list(folder.iterdir()) == []
    assert not (tmp_path / "not_here").exists() and not folder.exists()
