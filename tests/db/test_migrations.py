"""The foundation: the project's own TimescaleDB and migrations."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from db.migrations import MigrationError, apply_migrations, discover, timescale_features

pytestmark = pytest.mark.db


def test_timescaledb_is_the_real_extension(database: str) -> None:
    with psycopg.connect(database) as conn:
        row = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname='timescaledb'"
        ).fetchone()
        assert row is not None
        major, minor = (int(part) for part in str(row[0]).split(".")[:2])
        assert (major, minor) >= (2, 13)
        hypertables = {
            r[0]
            for r in conn.execute("SELECT hypertable_name FROM timescaledb_information.hypertables")
        }
        assert "readings" in hypertables
        features = timescale_features(conn)
        assert features["timescaledb"] is True
        # Debian's build is Apache-only; the licensed features must be detected as absent there.
        license_ = conn.execute("SELECT current_setting('timescaledb.license')").fetchone()
        assert features["compression"] is (license_ is not None and license_[0] == "timescale")


def test_migrations_are_idempotent(database: str) -> None:
    assert apply_migrations(database) == []


def test_changed_migration_is_refused(database: str, tmp_path: Path) -> None:
    for migration in discover():
        (tmp_path / f"{migration.version:03d}_{migration.name}.sql").write_text(migration.sql)
    first = discover()[0]
    (tmp_path / f"{first.version:03d}_{first.name}.sql").write_text(first.sql + "\n-- edited\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        apply_migrations(database, tmp_path)
