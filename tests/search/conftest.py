"""Fixtures of the search's tests: ``postgres``, one real PostgreSQL server for the session."""

import pytest

from tests.search.postgres_server import missing, running_server


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for the session (`tests.search.postgres_server.Server`); skips, naming what is
    missing, where none can run."""
    reason = missing()
    if reason:
        pytest.skip(reason)
    with running_server() as server:
        yield server
