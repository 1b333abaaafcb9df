"""Numbered plain-SQL migrations with a checksum table.

Files live in ``db/sql/NNN_name.sql`` and run in order, each in its own transaction, under
an advisory lock so that concurrent runners wait for each other. An applied file whose content
changed is refused (``MigrationError``): write a new migration instead.

A file whose first line is ``-- requires: timescale_license`` uses Timescale-licensed features
(compression, continuous aggregates, job policies); it is applied only where the running
TimescaleDB has them, and stays pending otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg

from db.errors import MigrationError

__all__ = [
    "Migration",
    "MigrationError",
    "apply_migrations",
    "discover",
    "main",
    "timescale_features",
]

SQL_DIR = Path(__file__).with_name("sql")
_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x43415245  # "CARE"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str
    checksum: str
    requires_license: bool


def discover(directory: Path = SQL_DIR) -> list[Migration]:
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"migration file name {path.name!r} is not NNN_name.sql")
        text = path.read_text(encoding="utf-8")
        found.append(
            Migration(
                version=int(match.group(1)),
                name=match.group(2),
                sql=text,
                checksum=hashlib.sha256(text.encode()).hexdigest(),
                requires_license=text.startswith("-- requires: timescale_license"),
            )
        )
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return found


def timescale_features(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, bool]:
    """What the running TimescaleDB offers: the Apache build lacks the licensed features."""
    row = conn.execute(
        "SELECT current_setting('timescaledb.license', true), "
        "EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
    ).fetchone()
    license_, installed = row or (None, False)
    licensed = bool(installed) and license_ == "timescale"
    return {
        "timescaledb": bool(installed),
        "compression": licensed,
        "continuous_aggregates": licensed,
        "job_policies": licensed,
    }


def apply_migrations(conninfo: str, directory: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations; returns the names applied."""
    migrations = discover(directory)
    applied_now: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {
                int(v): str(c)
                for v, c in conn.execute("SELECT version, checksum FROM schema_migrations")
            }
            licensed: bool | None = None
            for migration in migrations:
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version:03d}_{migration.name} was changed after "
                            "it was applied; add a new migration instead"
                        )
                    continue
                if migration.requires_license:
                    if licensed is None:
                        licensed = timescale_features(conn)["compression"]
                    if not licensed:
                        continue
                try:
                    with conn.transaction():
                        conn.execute(migration.sql.encode())
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum)"
                            " VALUES (%s, %s, %s)",
                            (migration.version, migration.name, migration.checksum),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(
                        f"migration {migration.version:03d}_{migration.name} failed: {exc}"
                    ) from exc
                applied_now.append(f"{migration.version:03d}_{migration.name}")
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now


def main(argv: list[str]) -> int:
    from carebeacon.logs import configure_logging
    from carebeacon.settings import Settings

    parser = argparse.ArgumentParser(
        prog="carebeacon migrate", description="apply database migrations"
    )
    parser.add_argument("--database", help="database name (default: CAREBEACON_PG_DATABASE)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    configure_logging(settings.log_level, json=settings.log_format == "json")
    try:
        applied = apply_migrations(settings.pg_conninfo(args.database))
    except MigrationError as exc:
        print(f"carebeacon migrate: {exc}", file=sys.stderr)
        return 1
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0
