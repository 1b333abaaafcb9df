"""A private PostgreSQL 17 + TimescaleDB cluster that a test may restart (or crash) at will.

It runs from the project's trixie root (``carebeacon services``: :data:`PG_BIN`, ``_in_root``)
with its own data directory, socket directory and port, so the shared TimescaleDB on 55432 is
never touched. initdb + start take about a second.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg

from db.migrations import apply_migrations
from lab.services import PG_BIN, _in_root, _root_dir, _root_postgres_ids
from tests.support.network import free_port

__all__ = ["PrivateTimescale", "log_tail", "private_timescale"]


class PrivateTimescale:
    user = "carebeacon"

    def __init__(self) -> None:
        self.root = _root_dir()
        if not (self.root / PG_BIN.lstrip("/") / "postgres").exists():
            raise FileNotFoundError("no trixie root: run `carebeacon services up` once")
        self.name = f"cbtest-pg-{uuid.uuid4().hex[:8]}"
        self.inside = f"/tmp/{self.name}"  # noqa: S108 - inside the trixie root, ours alone
        self.outside = self.root / self.inside.lstrip("/")
        self.port = free_port()
        self.password = secrets.token_urlsafe(18)

    def _pg(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return _in_root(self.root, *argv)

    def init(self) -> None:
        uid, gid = _root_postgres_ids(self.root)
        self.outside.mkdir(parents=True)
        (self.outside / "run").mkdir()
        pwfile = self.outside / "pw"
        pwfile.write_text(self.password + "\n", encoding="utf-8")
        for path in (self.outside, self.outside / "run", pwfile):
            os.chown(path, uid, gid)
        pwfile.chmod(0o600)
        self._pg(
            f"{PG_BIN}/initdb",
            "-D",
            f"{self.inside}/data",
            "-U",
            self.user,
            f"--pwfile={self.inside}/pw",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        pwfile.unlink()
        with (self.outside / "data" / "postgresql.conf").open("a", encoding="utf-8") as fh:
            fh.write(
                "\nlisten_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.inside}/run'\n"
                "shared_preload_libraries = 'timescaledb'\n"
                "timescaledb.telemetry_level = off\n"
                "shared_buffers = 128MB\n"
                "log_min_messages = warning\n"
            )

    def start(self) -> None:
        self._pg(
            f"{PG_BIN}/pg_ctl",
            "-D",
            f"{self.inside}/data",
            "-l",
            f"{self.inside}/postgresql.log",
            "-w",
            "-t",
            "60",
            "start",
        )
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if time.monotonic() > deadline:
                raise AssertionError("private TimescaleDB did not open its port")
            time.sleep(0.05)

    def stop(self, mode: str = "fast") -> None:
        """``fast``: a clean shutdown; ``immediate``: a crash (WAL recovery on the next start)."""
        _in_root(
            self.root,
            f"{PG_BIN}/pg_ctl",
            "-D",
            f"{self.inside}/data",
            "-m",
            mode,
            "-w",
            "stop",
            check=False,
        )

    def restart(self, *, mode: str = "immediate", down_seconds: float = 0.0) -> None:
        self.stop(mode)
        time.sleep(down_seconds)
        self.start()

    def conninfo(self, database: str = "postgres", port: int | None = None) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{port or self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        conninfo = self.conninfo(name)
        apply_migrations(conninfo)
        return conninfo

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.outside, ignore_errors=True)


@contextlib.contextmanager
def private_timescale() -> Iterator[PrivateTimescale]:
    cluster = PrivateTimescale()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


def log_tail(cluster: PrivateTimescale, lines: int = 20) -> str:
    path: Path = cluster.outside / "postgresql.log"
    if not path.exists():
        return ""
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
