"""The alert tests' helpers: readings, the pure engine for one patient (:class:`Sim`), patients
and a stored-reading writer."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from alerts import StoredReading, evaluate_readings
from alerts._engine import Book, PatientContext, evaluate_patient, evaluate_periodic
from alerts._history import History
from alerts._programs import Override, resolve_thresholds
from lab.homes import HomeSpec, Program, Site, provision_home_async

__all__ = ["T0", "UNITS", "Sim", "bp", "glucose", "make_patient", "reading", "store", "weight"]

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
_seq = itertools.count(1)

UNITS = {
    "systolic": "mm[Hg]",
    "diastolic": "mm[Hg]",
    "mean_arterial": "mm[Hg]",
    "pulse": "/min",
    "glucose": "mg/dL",
    "body_weight": "kg",
}


def reading(
    patient: uuid.UUID,
    type_: str,
    at: datetime,
    values: Mapping[str, float],
    *,
    flags: Sequence[str] = (),
    received_at: datetime | None = None,
    reading_id: uuid.UUID | None = None,
    device: str = "dev-1",
    gateway: str = "gw-1",
) -> StoredReading:
    return StoredReading(
        reading_id=reading_id or uuid.uuid4(),
        patient_id=patient,
        type=type_,
        time=at,
        received_at=received_at or at,
        device_id=device,
        gateway_id=gateway,
        flags=tuple(flags),
        values=dict(values),
    )


def bp(patient: uuid.UUID, at: datetime, sys_: float, dia: float, **kw: Any) -> StoredReading:
    return reading(
        patient, "blood_pressure", at, {"systolic": sys_, "diastolic": dia, "pulse": 70.0}, **kw
    )


def glucose(patient: uuid.UUID, at: datetime, mg_dl: float | None, **kw: Any) -> StoredReading:
    return reading(patient, "glucose", at, {} if mg_dl is None else {"glucose": mg_dl}, **kw)


def weight(patient: uuid.UUID, at: datetime, kg: float, **kw: Any) -> StoredReading:
    return reading(patient, "body_weight", at, {"body_weight": kg}, **kw)


class Sim:
    """The pure engine for one patient, fed readings as they arrive (no database)."""

    def __init__(
        self,
        template: str,
        *,
        risk_tier: int = 2,
        overrides: Sequence[Override] = (),
        patient: uuid.UUID | None = None,
    ) -> None:
        self.patient = patient or uuid.uuid4()
        self.ctx = PatientContext(
            patient_id=self.patient,
            site_id="site-a",
            program_id=template,
            risk_tier=risk_tier,
            thresholds=resolve_thresholds(template, template, list(overrides)),
        )
        self.history = History()
        self.book = Book()
        self.all_events: list[Any] = []
        self.episodes: dict[uuid.UUID, Any] = {}

    def feed(self, readings: Sequence[StoredReading], now: datetime | None = None) -> None:
        at = now or max(r.received_at for r in readings)
        self.book.changed.clear()
        self.book.new.clear()
        self.book.events.clear()
        evaluate_patient(self.ctx, self.history, self.book, readings, at)
        self.all_events.extend(self.book.events)
        self.episodes.update(self.book.changed)

    def periodic(self, at: datetime) -> None:
        """What the scheduler does every PERIOD: the periodic rules (7-day mean) as of ``at``."""
        self.book.changed.clear()
        self.book.new.clear()
        self.book.events.clear()
        evaluate_periodic(self.ctx, self.history, self.book, at, at)
        self.all_events.extend(self.book.events)
        self.episodes.update(self.book.changed)

    def bp(self, at: datetime, s: float, d: float, **kw: Any) -> None:
        self.feed([bp(self.patient, at, s, d, **kw)])

    def kinds(self) -> list[tuple[str, str]]:
        fam = {e.id: e.family for e in self.episodes.values()}
        return [(fam[e.episode_id], e.kind) for e in self.all_events]

    def active(self, family: str) -> Any:
        """The active episode of ``family`` (a per-device technical item: any device's)."""
        found = self.book.active.get(family)
        if found is None:
            found = next((e for e in self.book.active.values() if e.family == family), None)
        return found


async def make_patient(
    conn: psycopg.AsyncConnection[Any],
    template: str,
    *,
    risk_tier: int = 2,
    site: str = "site-a",
    gateway: str | None = None,
) -> uuid.UUID:
    """A consenting patient of the ``<template>-prog`` program since 30 days before
    :data:`T0`, at ``site`` (New York time); with ``gateway``, served by it (online at T0)."""
    home = await provision_home_async(
        conn,
        HomeSpec(
            site=Site(site, site, "America/New_York"),
            program=Program(f"{template}-prog", template, template),
            enrolled_at=T0 - timedelta(days=30),
            risk_tier=risk_tier,
            gateway_id=gateway,
            gateway_online=gateway is not None,
            status_at=T0 if gateway is not None else None,
        ),
    )
    return home.patient_id


async def store(
    conn: psycopg.AsyncConnection[Any],
    readings: Sequence[StoredReading],
    *,
    now: datetime | None = None,
    evaluate: bool = True,
) -> list[StoredReading]:
    """What ingest does: insert receipts and values (skipping known ids), then evaluate the
    readings that were actually inserted, in the same transaction."""
    inserted: list[StoredReading] = []
    async with conn.cursor() as cur:
        for r in readings:
            await cur.execute(
                "INSERT INTO reading_receipts (id, patient_id, type, time, received_at,"
                " device_id, gateway_id, sequence, flags) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)"
                " ON CONFLICT (id) DO NOTHING RETURNING id",
                (
                    r.reading_id,
                    r.patient_id,
                    r.type,
                    r.time,
                    r.received_at,
                    r.device_id,
                    r.gateway_id,
                    next(_seq),
                    list(r.flags),
                ),
            )
            if await cur.fetchone() is None:
                continue
            for code, value in r.values.items():
                await cur.execute(
                    "INSERT INTO readings (time, patient_id, code, value, unit, reading_id,"
                    " device_id, gateway_id, received_at, flags)"
                    " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    (
                        r.time,
                        r.patient_id,
                        code,
                        value,
                        UNITS.get(code, ""),
                        r.reading_id,
                        r.device_id,
                        r.gateway_id,
                        r.received_at,
                        list(r.flags),
                    ),
                )
            inserted.append(r)
    if evaluate:
        await evaluate_readings(conn, inserted, now=now)
    return inserted
