"""Enrollments of patients in programs, and their consent: enroll (admin, supervisor), record
consent given or withdrawn, the end, the billing practitioner, and a postpartum enrollment's
delivery date (it starts the postpartum window of the maternal_postpartum rules).

Consent is an append-only history (``consent_events``, migration 060): each consent given or
withdrawn is an event with who recorded it and the consent document; given again after a
withdrawal opens a new window (re-consent). A consent instant in the future is refused, and a
withdrawal is never undone (``consent_withdrawn_at: null`` is refused: record a new consent)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from web._access import Detail, PatientRef, patient_access
from web._admin._common import ADMIN_OR_SUPERVISOR, aware, one_row, update_record
from web._db import Conn, Row
from web._field_errors import field_error
from web._principal import Principal
from web._schemas import EnrollmentOut
from web._state import app_state

__all__ = ["router"]

router = APIRouter()


_DELIVERY = Field(
    default=None,
    description="maternal_postpartum: the delivery date; the postpartum thresholds hold from it "
    "for the postpartum window (6 weeks unless the postpartum_end.weeks threshold says up to 12)",
)


_CONSENT_DOCUMENT = Field(
    default=None,
    max_length=500,
    description="consent_given_at / consent_withdrawn_at: the consent document or note",
)
#: a consent instant may be this far ahead of the server's clock (the client's clock drifts)
CONSENT_CLOCK_SLACK = timedelta(minutes=5)


class EnrollmentIn(BaseModel):
    program_id: str
    enrolled_at: datetime | None = None
    consent_given_at: datetime | None = None
    consent_document: str | None = _CONSENT_DOCUMENT
    billing_practitioner: str | None = None
    delivery_date: date | None = _DELIVERY


class EnrollmentPatch(BaseModel):
    consent_given_at: datetime | None = None
    consent_withdrawn_at: datetime | None = None
    consent_document: str | None = _CONSENT_DOCUMENT
    ended_at: datetime | None = None
    billing_practitioner: str | None = None
    delivery_date: date | None = _DELIVERY


def _check_delivery(delivery: date | None) -> None:
    """A delivery date is in the past year (a day of slack for the patient's time zone)."""
    if delivery is None:
        return
    today = datetime.now(UTC).date()
    if delivery > today + timedelta(days=1):
        raise field_error("delivery_date", "a delivery date cannot be in the future")
    if delivery < today - timedelta(days=366):
        raise field_error("delivery_date", "a delivery date more than a year ago")


def _check_consent(body: EnrollmentIn | EnrollmentPatch) -> None:
    """Consent instants are not in the future; a withdrawal is not undone by ``null``."""
    now = datetime.now(UTC)
    for name in ("consent_given_at", "consent_withdrawn_at"):
        if name not in body.model_fields_set:
            continue
        value = aware(getattr(body, name))
        if value is None:
            raise field_error(
                name,
                "consent history is not erased: record consent_given_at for a new consent,"
                " consent_withdrawn_at for a withdrawal",
            )
        if value > now + CONSENT_CLOCK_SLACK:
            raise field_error(name, "a consent date cannot be in the future")


async def _enrollment_first(body: EnrollmentIn) -> Detail:
    """The enrollment is validated before the patient is loaded (and audited)."""
    _check_delivery(body.delivery_date)
    _check_consent(body)
    return None


async def _record_consent(
    conn: Conn,
    enrollment_id: int,
    kind: Literal["given", "withdrawn"],
    at: datetime,
    principal: Principal,
    document: str | None,
) -> None:
    """Append a consent event; a withdrawal needs consent in force at its instant."""
    cur = await conn.execute(
        "INSERT INTO consent_events (enrollment_id, kind, at, recorded_by, document_ref)"
        " SELECT %s, %s, %s, %s, %s"
        " WHERE %s = 'given' OR consent_state(%s, %s) IS NOT DISTINCT FROM 'given'"
        " RETURNING id",
        (enrollment_id, kind, at, principal.username, document, kind, enrollment_id, at),
    )
    if await cur.fetchone() is None:
        raise field_error("consent_withdrawn_at", "no consent in force at that time to withdraw")


@router.post(
    "/patients/{patient_id}/enrollments",
    response_model=EnrollmentOut,
    status_code=201,
    summary="Enroll a patient in a program",
)
async def create_enrollment(
    request: Request,
    body: EnrollmentIn,
    patient: Annotated[
        PatientRef,
        Depends(
            patient_access("api enroll patient", ADMIN_OR_SUPERVISOR, detail=_enrollment_first)
        ),
    ],
    principal: Annotated[Principal, Depends(ADMIN_OR_SUPERVISOR)],
) -> Row:
    async with app_state(request).pool.connection() as conn, conn.transaction():
        row = await one_row(
            conn,
            "INSERT INTO enrollments (patient_id, program_id, site_id, enrolled_at,"
            " billing_practitioner, delivery_date)"
            " VALUES (%s, %s, %s, coalesce(%s, now()), %s, %s) RETURNING *",
            (
                patient.id,
                body.program_id,
                patient.site_id,
                aware(body.enrolled_at),
                body.billing_practitioner,
                body.delivery_date,
            ),
        )
        if body.consent_given_at is not None:
            await _record_consent(
                conn,
                row["id"],
                "given",
                body.consent_given_at,
                principal,
                body.consent_document,
            )
            row = await one_row(conn, "SELECT * FROM enrollments WHERE id = %s", (row["id"],))
    return row


@router.patch(
    "/enrollments/{enrollment_id}",
    response_model=EnrollmentOut,
    summary="Record consent, withdrawal, end, practitioner",
)
async def patch_enrollment(
    request: Request,
    enrollment_id: int,
    body: EnrollmentPatch,
    principal: Annotated[Principal, Depends(ADMIN_OR_SUPERVISOR)],
) -> Row:
    _check_delivery(body.delivery_date)
    _check_consent(body)
    row = await update_record(
        request,
        principal,
        "enrollments",
        enrollment_id,
        "api change enrollment",
        "ended_at = coalesce(%s, ended_at),"
        " billing_practitioner = coalesce(%s, billing_practitioner),"
        " delivery_date = coalesce(%s, delivery_date)",
        (aware(body.ended_at), body.billing_practitioner, body.delivery_date),
        detail={"fields": sorted(body.model_fields_set)},
    )
    events: list[tuple[Literal["given", "withdrawn"], datetime]] = []
    if body.consent_withdrawn_at is not None:
        events.append(("withdrawn", body.consent_withdrawn_at))
    if body.consent_given_at is not None:
        events.append(("given", body.consent_given_at))
    if not events:
        return row
    events.sort(key=lambda e: e[1])
    async with app_state(request).pool.connection() as conn, conn.transaction():
        for kind, at in events:
            await _record_consent(conn, enrollment_id, kind, at, principal, body.consent_document)
        return await one_row(conn, "SELECT * FROM enrollments WHERE id = %s", (enrollment_id,))
