"""Issue 17, finding 6: a gateway's id is its broker username, so the broker's own names are
refused: the server side's usernames (``ingest``, ``admin`` and whatever the settings call
them), ingest's client ids, and names the broker gives a meaning (``$…``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from carebeacon.settings import Settings
from tests.support.web import Client, Server, user
from tests.web.conftest import Home17

pytestmark = pytest.mark.db


def test_reserved_gateway_ids_are_refused_naming_the_field(
    settings: Settings,
    server: Server,
    homes17: dict[str, Home17],
    new_client: Callable[[str | None], Client],
) -> None:
    admin = new_client(user("admin", homes17["a"].site))
    reserved = [
        "ingest",
        "admin",
        "Ingest",
        "ADMIN",
        settings.mqtt_ingest_user,
        settings.mqtt_admin_user,
        settings.ingest_client_id,
        "ingest-somehost",
        "$SYS",
        "gw$1",
        "gw/1",
        "gw+",
        "#",
    ]
    table = []
    for name in reserved:
        resp = admin.post("/api/gateways", json={"id": name})
        table.append(f"{name}: {resp.status_code}")
        assert resp.status_code == 422, (name, resp.text)
        assert [e["loc"] for e in resp.json()["errors"]] == [["body", "id"]], name
        assert name not in [gw for gw, _ in server.provisioned]
    print("; ".join(table))
    ok = admin.post("/api/gateways", json={"id": "wt-s17-home-gw"})
    assert ok.status_code == 201, ok.text
