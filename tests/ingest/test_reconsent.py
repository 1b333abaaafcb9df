"""Re-consent through the API (issue 18, finding 5): consent is a history of events, and ingest,
alerts and the billing ledger read the same history.

CMS requires the patient's consent before RPM services are furnished (CY2021 PFS final rule,
CMS-1734-F, 85 FR 84472); a patient who withdrew and consents again is monitored again from
the new consent on, and the earlier consent stays on record (the service before the withdrawal
was consented)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from ingest.store import Message, StoreResult, store_messages
from lab.homes import Device, HomeSpec, Site, provision_home
from tests.support.readings import batch, bp_reading, topic
from tests.support.web import PROGRAM, SITE_A, Client, Server, user

pytestmark = pytest.mark.db


async def _store(conninfo: str, gateway: str, cuff: str, at: datetime) -> StoreResult:
    reading = bp_reading(cuff, measured_at=at.astimezone(UTC).replace(tzinfo=None))
    async with await psycopg.AsyncConnection.connect(conninfo) as conn, conn.transaction():
        return await store_messages(
            conn,
            [Message(topic(gateway), batch(gateway, [reading]))],
            now=at + timedelta(seconds=1),
        )


def _field(resp_json: dict[str, object]) -> list[object]:
    errors = resp_json["errors"]
    assert isinstance(errors, list)
    return [e["loc"][-1] for e in errors if isinstance(e, dict)]


async def test_withdraw_then_consent_again(server: Server) -> None:
    tag = uuid.uuid4().hex[:8]
    gateway, cuff = f"gw-rc-{tag}", f"cuff-rc-{tag}"
    enrolled = datetime.now(UTC).replace(microsecond=0) - timedelta(days=20)
    with psycopg.connect(server.conninfo) as conn:
        pid = provision_home(
            conn,
            HomeSpec(
                site=Site(SITE_A, "Site A"),
                program=PROGRAM,
                enrolled_at=enrolled,
                display_name=f"Reconsent {tag}",
                gateway_id=gateway,
                devices=(Device(cuff, "blood_pressure_monitor"),),
            ),
        ).patient_id
        row = conn.execute("SELECT id FROM enrollments WHERE patient_id = %s", (pid,)).fetchone()
        assert row is not None
        eid = row[0]
    sup = Client(server.url, user("supervisor", SITE_A))
    try:
        withdrawn = datetime.now(UTC) - timedelta(minutes=30)
        resp = sup.patch(
            f"/api/enrollments/{eid}",
            json={"consent_withdrawn_at": withdrawn.isoformat(), "consent_document": "call note 1"},
        )
        assert resp.status_code == 200, resp.text
        during = await _store(server.conninfo, gateway, cuff, withdrawn + timedelta(minutes=5))
        assert during.quarantined == {"no_consent": 1}

        # a withdrawal is not undone by erasing it, and consent dates are not in the future
        for body, name in (
            ({"consent_withdrawn_at": None}, "consent_withdrawn_at"),
            ({"consent_withdrawn_at": "2999-01-01T00:00:00Z"}, "consent_withdrawn_at"),
            ({"consent_given_at": "2999-01-01T00:00:00Z"}, "consent_given_at"),
        ):
            bad = sup.patch(f"/api/enrollments/{eid}", json=body)
            assert bad.status_code == 422, (body, bad.text)
            assert name in _field(bad.json())

        again = datetime.now(UTC)
        resp = sup.patch(
            f"/api/enrollments/{eid}",
            json={"consent_given_at": again.isoformat(), "consent_document": "form 2"},
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["consent_withdrawn_at"] is None  # in force again
        after = await _store(server.conninfo, gateway, cuff, again + timedelta(seconds=2))
        assert after.quarantined == {}
        assert sum(after.stored.values()) == 1

        with psycopg.connect(server.conninfo) as conn:
            events = conn.execute(
                "SELECT kind, at, recorded_by, document_ref FROM consent_events"
                " WHERE enrollment_id = %s ORDER BY at, id",
                (eid,),
            ).fetchall()
            windows = conn.execute(
                "SELECT given_at, withdrawn_at FROM consent_windows WHERE enrollment_id = %s"
                " ORDER BY given_at",
                (eid,),
            ).fetchall()
            state = conn.execute("SELECT consent_state(%s, now())", (eid,)).fetchone()
        # the history: the first consent kept, the withdrawal, the new consent, with who and what
        assert [e[0] for e in events] == ["given", "withdrawn", "given"]
        assert events[0][1] == enrolled
        assert [e[2:] for e in events[1:]] == [
            (user("supervisor", SITE_A), "call note 1"),
            (user("supervisor", SITE_A), "form 2"),
        ]
        assert windows == [(enrolled, withdrawn), (again, None)]
        # alerts read the same history: the patient is enrolled (not withdrawn) now
        assert state == ("given",)
    finally:
        sup.close()
