"""Enrollments of patients in programs, and their consent: enroll (admin, supervisor), record
consent given or withdrawn, the end, the billing practitioner, and a postpartum enrollment's
delivery date (it starts the postpartum window of the maternal_postpartum rules)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from web._access import Detail, PatientRef, patient_access
from web._admin._common import ADMIN_OR_SUPERVISOR, aware, one_row, update_record
from web._db import Row
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


class EnrollmentIn(BaseModel):
    program_id: str
    enrolled_at: datetime | None = None
    consent_given_at: datetime | None = None
    billing_practitioner: str | None = None
    delivery_date: date | None = _DELIVERY


class EnrollmentPatch(BaseModel):
    consent_given_at: datetime | None = None
    consent_withdrawn_at: datetime | None = None
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


async def _enrollment_first(body: EnrollmentIn) -> Detail:
    """The enrollment is validated before the patient is loaded (and audited)."""
    _check_delivery(body.delivery_date)
    return None


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
) -> Row:
    async with app_state(request).pool.connection() as conn:
        row = await one_row(
            conn,
            "INSERT INTO enrollments (patient_id, program_id, site_id, enrolled_at,"
            " consent_given_at, billing_practitioner, delivery_date)"
            " VALUES (%s, %s, %s, coalesce(%s, now()), %s, %s, %s) RETURNING *",
            (
                patient.id,
                body.program_id,
                patient.site_id,
                aware(body.enrolled_at),
                aware(body.consent_given_at),
                body.billing_practitioner,
                body.delivery_date,
            ),
        )
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
    return await update_record(
        request,
        principal,
        "enrollments",
        enrollment_id,
        "api change enrollment",
        "consent_given_at = coalesce(%s, consent_given_at),"
        " consent_withdrawn_at = coalesce(%s, consent_withdrawn_at),"
        " ended_at = coalesce(%s, ended_at),"
        " billing_practitioner = coalesce(%s, billing_practitioner),"
        " delivery_date = coalesce(%s, delivery_date)",
        (
            aware(body.consent_given_at),
            aware(body.consent_withdrawn_at),
            aware(body.ended_at),
            body.billing_practitioner,
            body.delivery_date,
        ),
        detail={"fields": sorted(body.model_fields_set)},
    )
