"""Continuous archiving and restore of the project's PostgreSQL with pgBackRest (2.55, from the
trixie root, run in it like PostgreSQL itself).

PostgreSQL hands every finished WAL segment to ``pgbackrest archive-push`` (``archive_command``;
``archive_timeout`` closes a segment at least once a minute while anything is written), and
``carebeacon services backup`` takes a base backup (full the first time, then incremental).
``carebeacon services restore`` puts back the latest backup and replays the archived WAL to its
end: every transaction whose WAL was archived is back. What a lost disk can cost is the WAL not
yet archived — at most ``archive_timeout`` (60 s) of commits.

The repository defaults to ``/var/lib/carebeacon/pgbackrest`` inside the root, next to the data
directory: enough to undo a destroyed data directory, not a lost disk. In production point
``repo1-path`` at another disk (or ``repo1-type=s3``/``sftp``) in the rendered
``pgbackrest.conf``.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = ["Archive", "BackupError"]


class BackupError(RuntimeError):
    """A pgBackRest command failed; ``output`` holds what it said."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


@dataclass(frozen=True, slots=True)
class Archive:
    """One cluster's archive: where its data directory, socket and repository are *inside* the
    trixie ``root``, and the ``postgres`` user of the root that runs PostgreSQL and pgBackRest."""

    root: Path
    uid: int
    gid: int
    data: PurePosixPath
    socket_dir: PurePosixPath
    port: int
    user: str
    repository: PurePosixPath
    stanza: str = "carebeacon"
    archive_timeout_seconds: int = 60

    @property
    def config(self) -> PurePosixPath:
        return self.repository / "pgbackrest.conf"

    def outside(self, path: PurePosixPath) -> Path:
        """A path of the root as the host sees it."""
        return self.root / str(path).lstrip("/")

    def postgresql_settings(self) -> str:
        """The lines of ``postgresql.conf`` that archive every WAL segment."""
        return (
            "# continuous archiving with pgBackRest (`carebeacon services backup`)\n"
            "archive_mode = on\n"
            f"archive_command = 'pgbackrest --config={self.config} --stanza={self.stanza}"
            " archive-push %p'\n"
            f"archive_timeout = {self.archive_timeout_seconds}\n"
        )

    def render_config(self) -> str:
        return (
            "[global]\n"
            f"repo1-path={self.repository}/repo\n"
            "repo1-retention-full=2\n"
            f"lock-path={self.repository}/lock\n"
            f"log-path={self.repository}/log\n"
            "log-level-file=info\n"
            "log-level-console=warn\n"
            "compress-type=zst\n"
            "start-fast=y\n"
            "delta=y\n"
            "\n"
            f"[{self.stanza}]\n"
            f"pg1-path={self.data}\n"
            f"pg1-port={self.port}\n"
            f"pg1-socket-path={self.socket_dir}\n"
            f"pg1-user={self.user}\n"
        )

    def write_config(self) -> None:
        """The repository's folders and ``pgbackrest.conf``, owned by the root's postgres."""
        for sub in ("", "repo", "lock", "log"):
            path = self.outside(self.repository / sub if sub else self.repository)
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, self.uid, self.gid)
            path.chmod(0o700)
        config = self.outside(self.config)
        config.write_text(self.render_config(), encoding="utf-8")
        os.chown(config, self.uid, self.gid)
        config.chmod(0o600)

    def run(self, *argv: str) -> str:
        """``pgbackrest --config=… --stanza=… argv…`` in the root as its postgres user."""
        done = subprocess.run(
            [
                "/usr/sbin/chroot",
                f"--userspec={self.uid}:{self.gid}",
                str(self.root),
                "/usr/bin/pgbackrest",
                f"--config={self.config}",
                f"--stanza={self.stanza}",
                *argv,
            ],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/var/lib/postgresql"},
            check=False,
        )
        if done.returncode != 0:
            raise BackupError(
                f"pgbackrest {argv[0]} failed (exit {done.returncode})", done.stdout + done.stderr
            )
        return done.stdout

    @property
    def initialised(self) -> bool:
        return self.outside(self.repository / "repo" / "backup" / self.stanza).is_dir()

    def ensure_stanza(self) -> None:
        """Create the stanza once (the cluster must be running)."""
        if not self.initialised:
            self.run("stanza-create")

    def backup(self, kind: str = "incr") -> str:
        """A base backup (``full``, ``diff`` or ``incr``; an ``incr`` with no full before it
        is a full one); returns ``pgbackrest info``."""
        self.ensure_stanza()
        self.run("backup", f"--type={kind}")
        return self.run("info")

    def has_backup(self) -> bool:
        return self.initialised and "full backup:" in self.run("info")

    def restore(self) -> None:
        """The latest backup into the (stopped) cluster's data directory, set to replay the
        archived WAL to its end when PostgreSQL starts. The directory must be empty or absent:
        the caller moves a damaged one aside."""
        if not self.has_backup():
            raise BackupError("no backup in the repository: nothing to restore from")
        data = self.outside(self.data)
        if data.exists() and any(data.iterdir()):
            raise BackupError(f"{data} is not empty: move it aside first")
        data.mkdir(parents=True, exist_ok=True)
        os.chown(data, self.uid, self.gid)
        data.chmod(0o700)
        self.run("restore")
