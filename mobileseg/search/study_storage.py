"""Where a search's Optuna study is stored: the run folder's SQLite file or a database server.

A study lives in any Optuna RDB URL: ``sqlite:///runs/NAME/study.db`` by default
(`default_storage`), or a server such as ``postgresql://user:password@host/db`` (with a
driver installed, e.g. ``psycopg2-binary``) for several workers on one study.

Workers started together on a new database all create Optuna's tables and its version
row at once; on PostgreSQL all but one fail (``duplicate key value violates unique
constraint "pg_type_typname_nsp_index"``). `open_storage` tries again when that happens,
so the workers of one study may be started at the same moment.

Example:
    >>> import tempfile
    >>> url = default_storage(tempfile.mkdtemp())
    >>> open_study(url, "search").study_name, hide_password("postgresql://me:secret@db.example/search")
    ('search', 'postgresql://me:***@db.example/search')
"""

from __future__ import annotations

import contextlib
import time
import warnings
from pathlib import Path

import optuna

DIRECTIONS = ("maximize", "minimize")  # (miou, latency_ms)
STUDY_FILE = "study.db"
RACE_ATTEMPTS = 10
"""Tries at opening a storage whose tables other workers are creating at the same moment."""


def default_storage(run_dir: str | Path) -> str:
    """The SQLite URL of a run folder's study: ``sqlite:///RUN_DIR/study.db`` (folder created).

    Example:
        >>> import tempfile
        >>> default_storage(tempfile.mkdtemp()).endswith("/study.db")
        True
    """
    path = Path(run_dir).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path / STUDY_FILE}"


def hide_password(url: str | None) -> str:
    """A storage URL fit for logs and files.

    Example:
        >>> hide_password("postgresql://me:secret@db.example/search"), hide_password(None)
        ('postgresql://me:***@db.example/search', 'in-memory')
    """
    if url is None:
        return "in-memory"
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL sqlalchemy knows: keep only the scheme
        return url.split("://", 1)[0] + "://..."


def open_storage(url: str, attempts: int = RACE_ATTEMPTS) -> optuna.storages.RDBStorage:
    """Optuna's storage at ``url``, its tables created when missing.

    A worker that loses the race to create the tables (an ``IntegrityError`` or
    ``ProgrammingError`` from the database, or SQLite's ``table ... already exists``) tries
    again after a short pause, up to ``attempts`` times; any other error (no driver, no
    server there) is raised at once. SQLite waits up to a minute for a lock another
    process holds.
    """
    import sqlalchemy.exc

    kwargs = {"engine_kwargs": {"connect_args": {"timeout": 60}}} if url.startswith("sqlite:") else {}
    for attempt in range(1, attempts + 1):
        try:
            return optuna.storages.RDBStorage(url, **kwargs)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError, sqlalchemy.exc.OperationalError) \
                as error:
            lost_race = not isinstance(error, sqlalchemy.exc.OperationalError) or "already exists" in str(error)
            if attempt == attempts or not lost_race:
                raise
            time.sleep(0.2 * attempt)


def open_study(url: str | None, name: str) -> optuna.Study:
    """Create or load the study ``name`` (two objectives, `DIRECTIONS`); ``url`` None keeps it in memory."""
    storage = None if url is None else open_storage(url)
    with quiet_optuna():
        return optuna.create_study(storage=storage, study_name=name, directions=list(DIRECTIONS),
                                   load_if_exists=True)


@contextlib.contextmanager
def quiet_optuna():
    """Optuna's per-trial INFO lines and experimental-feature warnings off, restored after."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)
