"""Numbered plain-SQL migrations with a checksum table.

Files live in ``db/sql/NNN_name.sql`` and run in order, each in its own transaction, under
an advisory lock so that concurrent runners wait for each other. An applied file whose content
changed is refused (``MigrationError``): write a new migration instead.

Markers are comment lines at the top of a file:

- ``-- requires: timescale_license``: the file uses Timescale-licensed features (compression,
  continuous aggregates, job policies); it is applied only where the running TimescaleDB has
  them, and stays pending otherwise.
- ``-- carebeacon: no-transaction``: the file runs outside a transaction, one statement at a
  time, for statements that refuse a transaction block or commit on their own: ``CREATE INDEX
  CONCURRENTLY`` on a plain table, and on a hypertable ``CREATE INDEX … WITH
  (timescaledb.transaction_per_chunk)`` (one transaction per chunk, so ingest waits only for
  the chunk being indexed, not for the whole table). Statements end with ``;`` at the end of a
  line and have no dollar quoting; each must be safe to run again (``IF NOT EXISTS``), because
  a failure leaves the ones before it applied. The file is recorded only when every statement
  succeeded and no index is left invalid (a failed concurrent or per-chunk build leaves one:
  drop it, then run ``carebeacon migrate`` again).
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
_DOLLAR_QUOTE = re.compile(r"\$[A-Za-z_]*\$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str
    checksum: str
    requires_license: bool
    no_transaction: bool = False

    def statements(self) -> list[str]:
        """A no-transaction file's statements, in order."""
        if _DOLLAR_QUOTE.search(self.sql):
            raise MigrationError(
                f"migration {self.version:03d}_{self.name} is marked no-transaction and has "
                "dollar quoting; put functions in a transactional migration"
            )
        statements: list[str] = []
        current: list[str] = []
        for line in self.sql.splitlines():
            if not current and (not line.strip() or line.lstrip().startswith("--")):
                continue
            current.append(line)
            if line.rstrip().endswith(";"):
                statements.append("\n".join(current))
                current = []
        if any(line.strip() and not line.lstrip().startswith("--") for line in current):
            raise MigrationError(
                f"migration {self.version:03d}_{self.name}: the last statement has no ';'"
            )
        return statements


REQUIRES_LICENSE = "-- requires: timescale_license"
NO_TRANSACTION = "-- carebeacon: no-transaction"


def _markers(text: str) -> set[str]:
    """The comment lines at the top of a migration file."""
    markers: set[str] = set()
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        markers.add(line.strip())
    return markers


def discover(directory: Path = SQL_DIR) -> list[Migration]:
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"migration file name {path.name!r} is not NNN_name.sql")
        text = path.read_text(encoding="utf-8")
        markers = _markers(text)
        found.append(
            Migration(
                version=int(match.group(1)),
                name=match.group(2),
                sql=text,
                checksum=hashlib.sha256(text.encode()).hexdigest(),
                requires_license=REQUIRES_LICENSE in markers,
                no_transaction=NO_TRANSACTION in markers,
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
                    if migration.no_transaction:
                        _apply_outside_transaction(conn, migration)
                    else:
                        with conn.transaction():
                            conn.execute(migration.sql.encode())
                            _record(conn, migration)
                except psycopg.Error as exc:
                    raise MigrationError(
                        f"migration {migration.version:03d}_{migration.name} failed: {exc}"
                    ) from exc
                applied_now.append(f"{migration.version:03d}_{migration.name}")
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now


def _record(conn: psycopg.Connection[tuple[object, ...]], migration: Migration) -> None:
    conn.execute(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
        (migration.version, migration.name, migration.checksum),
    )


def _apply_outside_transaction(
    conn: psycopg.Connection[tuple[object, ...]], migration: Migration
) -> None:
    """Each statement on its own (the connection is in autocommit), then the check that no index
    was left invalid, then the record."""
    for statement in migration.statements():
        conn.execute(statement.encode())
    invalid = [
        str(name)
        for (name,) in conn.execute(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid ORDER BY 1"
        )
    ]
    if invalid:
        raise MigrationError(
            f"migration {migration.version:03d}_{migration.name} left invalid indexes "
            f"({', '.join(invalid)}): drop them and run the migrations again"
        )
    _record(conn, migration)


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
