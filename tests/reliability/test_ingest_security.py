"""Ingest over the real broker refuses what it must not store:

- consent withdrawn → the patient's new readings (a hypertensive crisis among them) land in
  quarantine as ``no_consent``: nothing stored, no episode;
- gateway A sending the readings of B's cuff in its own topic → ``device_not_on_gateway``:
  nothing stored for B, no episode for B.

A control home with consent, sent the same crisis, gets it stored and an episode opened: the
refusals above are consent and gateway checks, not a crisis that would not have alerted anyway.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
import psycopg
import pytest

from tests.support.db import count
from tests.support.homes import Home, register_home
from tests.support.readings import batch, bp_reading, topic
from tests.support.waiting import eventually

pytestmark = [pytest.mark.db, pytest.mark.broker]


def _crisis(cuff: str) -> list[dict[str, Any]]:
    """A crisis and its re-measure five minutes later, then a plain reading."""
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    return [
        bp_reading(cuff, systolic=192, diastolic=124, measured_at=now - timedelta(minutes=6)),
        bp_reading(cuff, systolic=190, diastolic=122, measured_at=now - timedelta(minutes=1)),
        bp_reading(cuff, systolic=128, diastolic=80, measured_at=now),
    ]


def _ids(readings: list[dict[str, Any]]) -> list[uuid.UUID]:
    return [uuid.UUID(r["id"]) for r in readings]


def _stored(conninfo: str, ids: list[uuid.UUID]) -> int:
    return count(conninfo, "SELECT count(*) FROM reading_receipts WHERE id = ANY(%s)", ids)


def _quarantined(conninfo: str, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT reading_id, reason FROM quarantine WHERE reading_id = ANY(%s)", (ids,)
        ).fetchall()
    return {r[0]: r[1] for r in rows}


def _episodes(conninfo: str, patient: uuid.UUID) -> int:
    return count(conninfo, "SELECT count(*) FROM alert_episodes WHERE patient_id = %s", patient)


async def test_consent_withdrawn_quarantines_new_readings_and_alerts_nothing(
    ingest_running: object, publisher: aiomqtt.Client, database: str
) -> None:
    withdrawn, control = register_home(database), register_home(database)
    before = bp_reading(withdrawn.cuff_id)
    await publisher.publish(
        topic(withdrawn.gateway_id), batch(withdrawn.gateway_id, [before]), qos=1
    )
    await eventually(lambda: _stored(database, _ids([before])) == 1)  # consent on file: stored
    with psycopg.connect(database) as conn:
        conn.execute(
            "UPDATE enrollments SET consent_withdrawn_at = now() - interval '1 second'"
            " WHERE patient_id = %s",
            (withdrawn.patient_id,),
        )
    refused, allowed = _crisis(withdrawn.cuff_id), _crisis(control.cuff_id)
    await publisher.publish(
        topic(withdrawn.gateway_id), batch(withdrawn.gateway_id, refused), qos=1
    )
    await publisher.publish(topic(control.gateway_id), batch(control.gateway_id, allowed), qos=1)
    await eventually(lambda: len(_quarantined(database, _ids(refused))) == 3)
    await eventually(lambda: _stored(database, _ids(allowed)) == 3)
    await eventually(lambda: _episodes(database, control.patient_id) >= 1)

    assert set(_quarantined(database, _ids(refused)).values()) == {"no_consent"}
    assert _stored(database, _ids(refused)) == 0
    assert (
        count(database, "SELECT count(*) FROM readings WHERE patient_id = %s", withdrawn.patient_id)
        == 3  # the one reading from before the withdrawal, three values
    )
    assert _episodes(database, withdrawn.patient_id) == 0
    with psycopg.connect(database) as conn:
        families = {
            r[0]
            for r in conn.execute(
                "SELECT family FROM alert_episodes WHERE patient_id = %s", (control.patient_id,)
            )
        }
    assert "bp_crisis" in families


async def test_gateway_cannot_pass_off_another_homes_device(
    ingest_running: object, publisher: aiomqtt.Client, database: str, home: Home
) -> None:
    victim = register_home(database)
    forged = _crisis(victim.cuff_id)  # B's cuff, in A's topic, A's gateway id in the batch
    own = bp_reading(home.cuff_id)
    await publisher.publish(topic(home.gateway_id), batch(home.gateway_id, [*forged, own]), qos=1)
    await eventually(lambda: _stored(database, _ids([own])) == 1)
    await eventually(lambda: len(_quarantined(database, _ids(forged))) == 3)

    assert set(_quarantined(database, _ids(forged)).values()) == {"device_not_on_gateway"}
    assert _stored(database, _ids(forged)) == 0
    assert (
        count(
            database,
            "SELECT count(*) FROM reading_receipts WHERE patient_id = %s",
            victim.patient_id,
        )
        == 0
    )
    assert _episodes(database, victim.patient_id) == 0
    # the good neighbour is stored against A's own patient
    with psycopg.connect(database) as conn:
        row = conn.execute(
            "SELECT patient_id, gateway_id FROM reading_receipts WHERE id = %s",
            (uuid.UUID(own["id"]),),
        ).fetchone()
    assert row == (home.patient_id, home.gateway_id)
