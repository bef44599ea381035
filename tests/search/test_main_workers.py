"""Several ``python -m mobileseg.search`` workers on one study, in a real PostgreSQL server.

The README's "Several workers" recipe, run for real: a server (tests/search/postgres_server.py,
skipped where none can run), a database, one supernet trained once (``--stage supernet``), its
``supernet/`` and latency table copied into each worker's run folder, two ``--stage search``
workers started together on one study, one killed with SIGKILL once it has stored a generation,
and the same command run again in its folder while the other goes on. Also, without a server:
workers' copies of one table at other paths continue one study, another table does not. Tiny
settings as in test_main.py.
"""

import json
import shutil
import signal
import socket
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from mobileseg.arch.space import SearchSpace
from mobileseg.run.run_dir import RunDir
from mobileseg.search.study_storage import open_storage
from tests.search.latency_tables import fake_table
from tests.search.test_main import REPO, common, run_cli

# test_main.py's space with a choice of kernel in the first cell: 16 decision combinations, so two workers that drew the
# same first generation would not do so by chance
SPACE = """
name: tiny_search
branches:
  - name: main
    source: null
    cells:
      - {op: conv, width: 8, stride: 2, kernel: {choice: [3, 5]}}
      - {op: conv, width: {choice: [8, 16]}, stride: 2}
      - choice: [{op: conv, width: 16, kernel: {choice: [1, 3]}}, {op: skip}]
head: {op: light, inputs: [{branch: main}], width: 16}
"""
POPULATION, GENERATIONS = 4, 5
STUDY = "workers"
TIMEOUT = 600


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A folder with the space and ``trained/``: a supernet trained once (``--stage supernet``) and a latency table."""
    folder = tmp_path_factory.mktemp("workers")
    (folder / "space.yaml").write_text(SPACE)
    code, _, err = run_cli(*common(folder, folder / "trained", "--stage", "supernet", "--supernet_epochs", "1"))
    assert code == 0, err
    fake_table(SearchSpace.load(folder / "space.yaml"), (32, 32), 8, path=folder / "trained" / "latency_table.json")
    return folder


def worker_folder(trained, run_dir):
    """A worker's run folder: copies of the trained supernet and the table (the README's recipe)."""
    run_dir.mkdir()
    shutil.copytree(trained / "trained" / "supernet", run_dir / "supernet")
    shutil.copy(trained / "trained" / "latency_table.json", run_dir / "latency_table.json")
    return run_dir


def worker_args(trained, run_dir, storage, generations=GENERATIONS):
    """The README's worker flags: ``--stage search`` on its copies, on the shared study."""
    return [*common(trained, run_dir), "--stage", "search", "--supernet_epochs", "1", "--generations",
            str(generations), "--population", str(POPULATION), "--references", "none", "--latency_backend",
            f"table:{run_dir / 'latency_table.json'}", "--storage", storage, "--study_name", STUDY]


@pytest.fixture
def start():
    """``start(args, log)`` runs ``python -m mobileseg.search ARGS`` into the file ``log``; any still running at
    the end is killed (a failed test leaves no worker behind)."""
    started = []

    def run(args, log):
        with open(log, "w") as out:
            started.append(subprocess.Popen([sys.executable, "-m", "mobileseg.search", *args], cwd=REPO, stdout=out,
                                            stderr=subprocess.STDOUT))
        return started[-1]

    yield run
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def trials(storage):
    return optuna.load_study(study_name=STUDY, storage=storage).get_trials(deepcopy=False)


def stored_by(storage, worker):
    """The completed trials ``worker`` stored, in trial order (none before the study exists)."""
    if STUDY not in optuna.study.get_all_study_names(storage=storage):
        return []
    return [t for t in trials(storage) if t.state == TrialState.COMPLETE and t.user_attrs.get("worker") == worker]


def wait_for_tables(server, database, process, log):
    """Until the workers have made Optuna's tables (the test makes none: they race to create them)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        connection = server.connect(database)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT to_regclass('public.version_info') IS NOT NULL")
                if cursor.fetchone()[0]:
                    return
        finally:
            connection.close()
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "no worker made the study's tables"
        time.sleep(0.5)


def test_two_workers_one_killed_and_run_again_fill_one_study_losing_and_repeating_no_trial(
        postgres, trained, start, tmp_path):
    url = postgres.create_database("workers")
    first, second = worker_folder(trained, tmp_path / "first"), worker_folder(trained, tmp_path / "second")
    names = {run_dir: f"{socket.gethostname()}:{run_dir.resolve()}" for run_dir in (first, second)}

    killed = start(worker_args(trained, first, url), tmp_path / "killed.log")
    survivor = start(worker_args(trained, second, url), tmp_path / "survivor.log")
    wait_for_tables(postgres, "workers", killed, tmp_path / "killed.log")
    storage = open_storage(url)  # one for all the test's queries (each storage holds connections open)
    deadline = time.monotonic() + TIMEOUT
    while len(stored_by(storage, names[first])) < POPULATION:  # a whole generation stored, the next one under way
        assert killed.poll() is None, (tmp_path / "killed.log").read_text()
        assert time.monotonic() < deadline, "the first worker stored no generation"
        time.sleep(0.2)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait(timeout=60) == -signal.SIGKILL
    before = stored_by(storage, names[first])
    rerun = start(worker_args(trained, first, url), tmp_path / "rerun.log")  # the same command again
    assert survivor.wait(timeout=TIMEOUT) == 0, (tmp_path / "survivor.log").read_text()
    assert rerun.wait(timeout=TIMEOUT) == 0, (tmp_path / "rerun.log").read_text()

    everything = trials(storage)
    assert {t.state for t in everything} <= {TrialState.COMPLETE, TrialState.PRUNED}  # nothing left RUNNING
    complete = [t for t in everything if t.state == TrialState.COMPLETE]
    uids = [t.user_attrs["uid"] for t in complete]
    assert len(set(uids)) == len(uids)  # no trial stored twice
    assert GENERATIONS * POPULATION <= len(complete) <= (GENERATIONS + 1) * POPULATION
    new = {run_dir: json.loads((run_dir / RunDir.SEARCH_STATE).read_text())["stages"]["search"]["new_trials"]
           for run_dir in (first, second)}
    after = stored_by(storage, names[first])
    assert {t.user_attrs["uid"] for t in before} <= set(uids)  # nothing the killed worker stored is lost
    assert len(after) == len(before) + new[first]  # the rerun's own trials
    assert len(stored_by(storage, names[second])) == new[second]
    assert len(after) + new[second] == len(complete)  # every trial is one worker's
    # started together on one seed, the workers still proposed different networks
    assert [t.params for t in before[:POPULATION]] != [t.params for t in stored_by(storage, names[second])[:POPULATION]]
    for run_dir in (first, second):
        report = json.loads((run_dir / "pareto.json").read_text())
        assert report["study"]["trials"] >= GENERATIONS * POPULATION and (run_dir / "arch.yaml").is_file()


def test_copies_of_one_table_continue_one_study_and_another_table_is_refused(trained, tmp_path):
    """The study records a ``table:FILE`` backend by the table's contents, not its path."""
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    code, _, err = run_cli(*worker_args(trained, worker_folder(trained, tmp_path / "a"), storage, generations=1))
    assert code == 0, err
    code, out, err = run_cli(*worker_args(trained, worker_folder(trained, tmp_path / "b"), storage, generations=2))
    assert code == 0, err
    assert "gen 2/2" in out and "gen 1/2" not in out
    other = worker_folder(trained, tmp_path / "c")
    table = json.loads((other / "latency_table.json").read_text())
    next(iter(table["entries"].values()))["median_ms"] += 1.0
    (other / "latency_table.json").write_text(json.dumps(table))
    code, _, err = run_cli(*worker_args(trained, other, storage, generations=3))
    assert code == 2 and "was scored with other settings (latency_backend 'table sha256:" in err, err
    assert not (other / "pareto.json").exists()

    # a study stored before tables were named by their contents names the table's path: it goes on from there
    study = optuna.load_study(study_name=STUDY, storage=storage)
    study.set_user_attr("proxy", {**study.user_attrs["proxy"],
                                  "latency_backend": f"table:{tmp_path / 'a' / 'latency_table.json'}"})
    code, out, err = run_cli(*worker_args(trained, tmp_path / "a", storage, generations=3))
    assert code == 0 and "gen 3/3" in out, err
