"""The ingest fixtures, shared with the reliability tests."""

from tests.ingest.conftest import (  # noqa: F401 - fixtures are found by name
    home,
    ingest_config,
    ingest_running,
    publisher,
    share_group,
)
