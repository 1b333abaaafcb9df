"""The patient page's device panel shows a gateway's ``pairing_required`` for a device."""

from __future__ import annotations

import json

import psycopg
import pytest

from tests.support.web import SITE_A, Client, Server, World, user

pytestmark = pytest.mark.db


def test_device_waiting_for_pairing_is_flagged(
    server: Server, clients: dict[str, Client], world: World
) -> None:
    status = {
        "schema": "carebeacon.status/1",
        "gateway_id": world.gateway_a,
        "state": "online",
        "devices": [
            {
                "id": world.device_a,
                "type": "blood_pressure_monitor",
                "pairing_required_since": "2026-12-05T08:30:00Z",
            }
        ],
        "alarms": ["pairing_required"],
    }
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT status FROM gateways WHERE id = %s", (world.gateway_a,))
        before = row.fetchone()
        assert before is not None
        conn.execute(
            "UPDATE gateways SET status = %s WHERE id = %s",
            (json.dumps(status), world.gateway_a),
        )
        try:
            html = clients[user("clinician", SITE_A)].get(f"/patients/{world.patient_a}").text
            conn.execute(
                "UPDATE gateways SET status = %s WHERE id = %s",
                (json.dumps({**status, "devices": [], "alarms": []}), world.gateway_a),
            )
            cleared = clients[user("clinician", SITE_A)].get(f"/patients/{world.patient_a}").text
        finally:
            conn.execute(
                "UPDATE gateways SET status = %s WHERE id = %s",
                (None if before[0] is None else json.dumps(before[0]), world.gateway_a),
            )
    assert "pairing required since 2026-12-05 08:30 UTC" in html
    assert "pairing required since" not in cleared
