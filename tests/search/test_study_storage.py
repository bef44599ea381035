"""Where a study is stored: URLs for logs, the run folder's SQLite file, a real PostgreSQL server opened by
several workers at the same moment (tests/search/postgres_server.py; skipped where no server can run)."""

import threading
import time

import optuna
import pytest
import sqlalchemy.exc

from mobileseg.search.study_storage import default_storage, hide_password, open_storage, open_study


def test_storage_urls_hide_passwords():
    assert hide_password("postgresql://me:secret@db/search") == "postgresql://me:***@db/search"
    assert hide_password("sqlite:///runs/a/study.db") == "sqlite:///runs/a/study.db"
    assert hide_password(None) == "in-memory"


def test_a_run_folder_study_is_created_then_loaded(tmp_path):
    url = default_storage(tmp_path / "run")
    assert url == f"sqlite:///{(tmp_path / 'run' / 'study.db').resolve()}" and (tmp_path / "run").is_dir()
    open_study(url, "search").set_user_attr("mark", 1)
    assert open_study(url, "search").user_attrs == {"mark": 1}


def at_once(count, work):
    """Run ``work()`` in ``count`` threads released together; the errors they raised."""
    barrier, errors = threading.Barrier(count), []

    def run():
        barrier.wait()
        try:
            work()
        except Exception as error:  # noqa: BLE001 - reported by the caller's assertion
            errors.append(f"{type(error).__name__}: {str(error).splitlines()[0]}")

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


def test_workers_opening_a_new_postgresql_database_at_once_all_get_one_study(postgres):
    """Unretried, most of the four lose the race to create Optuna's tables (duplicate key in pg_type)."""
    url = postgres.create_database("race_tables")
    assert at_once(4, lambda: optuna.study.get_all_study_names(storage=open_storage(url))) == []
    url = postgres.create_database("race_study")
    assert at_once(4, lambda: open_study(url, "search")) == []
    assert optuna.study.get_all_study_names(storage=open_storage(url)) == ["search"]


def test_workers_opening_a_new_sqlite_file_at_once_all_get_one_study(tmp_path):
    """Unretried, the losers get SQLite's ``table studies already exists``."""
    url = default_storage(tmp_path)
    assert at_once(4, lambda: open_study(url, "search")) == []
    assert optuna.study.get_all_study_names(storage=open_storage(url)) == ["search"]


def test_a_server_that_is_not_there_fails_at_once():
    started = time.monotonic()
    with pytest.raises(sqlalchemy.exc.OperationalError):
        open_storage("postgresql+psycopg2://me@127.0.0.1:1/search")
    assert time.monotonic() - started < 5  # not tried again
