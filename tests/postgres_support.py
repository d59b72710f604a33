"""A throwaway PostgreSQL server for the tests, started from the installed binaries.

The telemetry tests run against SQLite and a real PostgreSQL, so what works on one
machine is known to work on a shared database. :func:`start_postgres` makes a cluster in
a temporary directory (``initdb``), serves it on a free loopback port with durability
off (nothing here must survive a crash) and trust authentication on loopback, and hands
back a :class:`PostgresServer` that creates one fresh database per test.

``initdb`` refuses to run as root, so as root the cluster belongs to the ``postgres``
system user (made by Debian's ``postgresql`` package; created here when missing) and
every server command runs through ``runuser``. The server's time zone is deliberately
not UTC, so that a time read back in the session's zone is caught by the tests.
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SERVER_TIMEZONE", "PostgresServer", "find_bin_dir", "start_postgres",
           "unavailable"]

SERVER_TIMEZONE = "America/New_York"
_OWNER = "postgres"
_START_ATTEMPTS = 3


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", bin_dir.parent.name)) or (0,)


def find_bin_dir() -> Path | None:
    """Where ``initdb``, ``pg_ctl`` and ``postgres`` are: the newest Debian install under
    ``/usr/lib/postgresql/*/bin``, else the directory of ``initdb`` on PATH."""
    debian = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if (d / "initdb").is_file()]
    if debian:
        return max(debian, key=_version_key)
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def unavailable() -> str | None:
    """Why PostgreSQL tests cannot run here (None when they can)."""
    if find_bin_dir() is None:
        return ("PostgreSQL is not installed (no initdb under /usr/lib/postgresql/*/bin or on "
                "PATH); `make test` installs Debian's postgresql")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "the psycopg driver is not installed; run `make test` (or pip install -e .)"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _owner_prefix() -> list[str]:
    """The command prefix that runs a server command as a user initdb accepts: as root,
    ``runuser`` to ``postgres`` (made when missing); otherwise the current user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(_OWNER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", _OWNER], check=True,
                       capture_output=True)
    return ["runuser", "-u", _OWNER, "--"]


@dataclass
class PostgresServer:
    """A running throwaway cluster in ``root`` (data, socket and log), on ``port``."""

    root: Path
    port: int
    bin_dir: Path
    prefix: list[str]
    _names: itertools.count[int] = field(default_factory=itertools.count, repr=False)

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of ``database`` (superuser ``postgres``, trusted on loopback)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(sql.encode())

    def create_database(self) -> str:
        """A new empty database; returns its name (tests stay independent)."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        self._admin(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, ending any connection a test left open."""
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.prefix, str(self.bin_dir / "pg_ctl"), "-D",
                               str(self.root / "data"), *args], cwd=self.root,
                              capture_output=True, text=True, timeout=60, check=False)

    def stop(self) -> None:
        """Stop at once (nothing is worth a clean shutdown) and remove the directory."""
        try:
            self._pg_ctl("stop", "-m", "immediate", "-w")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _initdb(root: Path, bin_dir: Path, prefix: list[str]) -> None:
    done = subprocess.run(
        [*prefix, str(bin_dir / "initdb"), "-D", str(root / "data"), "-U", "postgres",
         "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
        cwd=root, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode:
        raise RuntimeError(f"initdb failed in {root}: {done.stderr.strip()}")


def _start(server: PostgresServer) -> subprocess.CompletedProcess[str]:
    settings = {"listen_addresses": "127.0.0.1", "port": str(server.port),
                "unix_socket_directories": str(server.root), "fsync": "off",
                "synchronous_commit": "off", "full_page_writes": "off",
                "timezone": SERVER_TIMEZONE}
    options = " ".join(f"-c {k}={shlex.quote(v)}" for k, v in settings.items())
    return server._pg_ctl("start", "-w", "-t", "30", "-l", str(server.root / "server.log"),
                          "-o", options)


def start_postgres() -> PostgresServer:
    """Make and start a cluster; the caller stops it with :meth:`PostgresServer.stop`.

    A free port can be taken between choosing and binding it, so the start is retried
    on another port."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise RuntimeError(unavailable())
    prefix = _owner_prefix()
    # under /tmp when the server runs as another user: $TMPDIR may be a folder it cannot reach
    root = Path(tempfile.mkdtemp(prefix="overlay-pg-", dir="/tmp" if prefix else None))
    try:
        if prefix:
            owner = pwd.getpwnam(_OWNER)
            os.chown(root, owner.pw_uid, owner.pw_gid)
        _initdb(root, bin_dir, prefix)
        for _ in range(_START_ATTEMPTS):
            server = PostgresServer(root, _free_port(), bin_dir, prefix)
            started = _start(server)
            if started.returncode == 0:
                return server
        log = (root / "server.log").read_text(errors="replace")[-2000:] \
            if (root / "server.log").exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {started.stderr.strip()}\n{log}")
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
