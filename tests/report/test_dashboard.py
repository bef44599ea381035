"""The live view of a search: ``optuna-dashboard`` (pinned in requirements.txt) serves a run's study.db
on loopback, with every trial the search stored, shows the trials a search goes on adding while it
runs, and stops when told."""

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest

from mobileseg.arch.space import SearchSpace
from mobileseg.search.nsga2 import EvolutionarySearch
from mobileseg.search.testing import DEMO_SPACE, CapacityAccuracyModel, WidthLatencyModel


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str, deadline: float):
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read()
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_optuna_dashboard_serves_the_run_study_live_on_loopback(searched_run, tmp_path):
    binary = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent))
    if binary is None:
        pytest.skip("optuna-dashboard is not installed (pip install -r requirements.txt)")
    shutil.copy(searched_run / "study.db", tmp_path / "study.db")  # the search goes on below: on a copy
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.load_study(study_name="search", storage=storage)
    port = free_port()
    server = subprocess.Popen([binary, storage, "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        status, body = get(f"http://127.0.0.1:{port}/api/studies", deadline)
        (summary,) = json.loads(body)["study_summaries"]
        assert status == 200 and summary["study_name"] == "search" and summary["directions"] == [
            "maximize", "minimize"]
        status, body = get(f"http://127.0.0.1:{port}/api/studies/{summary['study_id']}", deadline)
        served = json.loads(body)
        assert len(served["trials"]) == len(study.trials) > 0
        assert len(served["best_trials"]) == len(study.best_trials) > 0
        status, page = get(f"http://127.0.0.1:{port}/dashboard", deadline)
        assert status == 200 and b"<html" in page.lower()

        before = len(served["trials"])  # the search goes on while the dashboard runs: one more generation
        EvolutionarySearch(SearchSpace.load(DEMO_SPACE), CapacityAccuracyModel(), WidthLatencyModel(), storage,
                           population=6, generations=3, target_latency_ms=2.0).run(progress=None)
        stored = len(optuna.load_study(study_name="search", storage=storage).trials)
        assert stored >= before + 6
        served = 0
        while served != stored and time.monotonic() < deadline:  # the dashboard refreshes its cached trials
            time.sleep(0.5)
            status, body = get(f"http://127.0.0.1:{port}/api/studies/{summary['study_id']}", deadline)
            served = len(json.loads(body)["trials"])
        assert served == stored
    finally:
        server.terminate()
        server.wait(timeout=30)
    with pytest.raises(urllib.error.URLError):  # stopped: nothing listens there any more
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5)
