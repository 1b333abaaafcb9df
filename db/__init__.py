"""db: the schema of every package — numbered plain-SQL migrations (``db/sql``) and their runner.

Owned by no single consumer: ingest, alerts and web each have their tables here. No business
logic: ``carebeacon migrate`` applies what is pending.
"""

from db.errors import MigrationError, SchemaError
from db.migrations import apply_migrations, discover, timescale_features

__all__ = ["MigrationError", "SchemaError", "apply_migrations", "discover", "timescale_features"]
