"""A real PostgreSQL server for tests: Debian's binaries, a cluster in a temporary folder, loopback only.

`running_server` runs ``initdb`` into a new folder under the system's temporary folder, starts
``postgres`` on a free TCP port of 127.0.0.1 (``trust`` authentication, no other address) and
yields a `Server` whose ``create_database`` gives each test its own database; at the end it
stops the server (``pg_ctl stop -m immediate``) and deletes the folder. PostgreSQL refuses
to run as root, so as root the server runs as the ``postgres`` system user Debian's package
creates (or ``nobody``) through ``runuser``. `missing` says why no server can be started here;
the ``postgres`` fixture of tests/search/conftest.py skips with it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

SUPERUSER = "mobileseg"
DRIVER = "psycopg2"


def binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/VERSION/bin`` holding ``initdb``, ``pg_ctl`` and ``postgres``, or None."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/postgres")]
    found = [folder for folder in found if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file()]
    return max(found, key=lambda folder: int(folder.parent.name), default=None)


def _server_user() -> str | None:
    """The user the server runs as: None for the current one, else an unprivileged system user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and neither the postgres nor the nobody user exists to run the server")


def missing() -> str | None:
    """Why a server cannot be started here (the reason a test skips with), or None."""
    if binaries() is None:
        return "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin; Debian package postgresql)"
    try:
        __import__(DRIVER)
    except ImportError:
        return f"the PostgreSQL driver {DRIVER} is not installed (pip install -r requirements.txt)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser (util-linux) to start PostgreSQL as another user"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(user: str | None, folder: Path, *command: str | Path) -> None:
    """Run ``command`` as ``user`` in ``folder`` (which that user can enter, unlike, maybe, the current one)."""
    prefix = ["runuser", "-u", user, "--"] if user else []
    done = subprocess.run([*prefix, *map(str, command)], cwd=folder, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} exited {done.returncode}: {done.stderr.strip()[-2000:]}")


class Server:
    """A running server: ``port`` on 127.0.0.1, `SUPERUSER` without a password."""

    def __init__(self, port: int):
        self.port = port

    def connect(self, database: str = "postgres"):
        """A psycopg2 connection to ``database``."""
        import psycopg2

        return psycopg2.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname=database)

    def create_database(self, name: str) -> str:
        """Create the empty database ``name``; its SQLAlchemy URL."""
        connection = self.connect()
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return f"postgresql+{DRIVER}://{SUPERUSER}@127.0.0.1:{self.port}/{name}"


@contextlib.contextmanager
def running_server(timeout: float = 60.0) -> Iterator[Server]:
    """Start a throw-away server; yields it; stops it and deletes its folder.

    Raises:
        RuntimeError: ``initdb`` or the server failed (with its output), or the server did not
            accept connections within ``timeout`` seconds.
    """
    import psycopg2

    bin_dir, user = binaries(), _server_user()
    folder = Path(tempfile.mkdtemp(prefix="mobileseg_pg_"))
    if user:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    data, server = folder / "data", Server(_free_port())
    try:
        _run(user, folder, bin_dir / "initdb", "-D", data, "-U", SUPERUSER, "--auth=trust", "--no-sync", "-E", "UTF8")
        options = f"-c listen_addresses=127.0.0.1 -p {server.port} -k {folder} -c fsync=off -c max_connections=40"
        _run(user, folder, bin_dir / "pg_ctl", "start", "-D", data, "-l", folder / "server.log", "-w",
             "-t", str(int(timeout)), "-o", options)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    server.connect().close()
                    break
                except psycopg2.OperationalError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"PostgreSQL on 127.0.0.1:{server.port} did not accept connections in "
                                           f"{timeout:g} s") from None
                    time.sleep(0.2)
            yield server
        finally:
            _run(user, folder, bin_dir / "pg_ctl", "stop", "-D", data, "-m", "immediate", "-w")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
