"""Site isolation: who may touch which patient or site of care.

Every role is scoped to sites of care. Touching a patient outside one's sites answers 403 and
writes a ``denied`` audit event; an unknown patient answers 404 (audited as well); an allowed
view is audit-logged here too, so that no route can forget it.

- A route with a ``patient_id`` in its path takes :func:`patient_access` as a dependency: the
  patient is loaded and checked before the route runs.
- A route with the id of one of a patient's records in its path (an enrollment, a device
  assignment) calls :func:`check_record_access` (404 for another site's record as for an
  unknown one: those ids are sequential); one that finds its patient elsewhere (a body
  field, an episode, a FHIR search parameter) calls :func:`check_patient_access`.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the annotations of the
# dependency that :func:`patient_access` builds, and they name the factory's arguments.

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request, status

from web._audit import audit, audit_denied
from web._auth import PrincipalDependency
from web._principal import Principal
from web._state import app_state

__all__ = [
    "Detail",
    "PatientRef",
    "check_patient_access",
    "check_record_access",
    "check_site_access",
    "patient_access",
]

#: what an audit row adds about the access (ids and parameters, never patient values)
Detail = dict[str, object] | None


@dataclass(frozen=True, slots=True)
class PatientRef:
    id: uuid.UUID
    site_id: str
    display_name: str
    mrn: str | None


async def check_site_access(
    request: Request, principal: Principal, site_id: str, action: str
) -> None:
    if principal.may_see_site(site_id):
        return
    async with app_state(request).pool.connection() as conn:
        await audit(
            conn, principal, action, outcome="denied", site_id=site_id, detail={"reason": "site"}
        )
    raise HTTPException(status.HTTP_403_FORBIDDEN, "this site of care is not yours")


async def check_patient_access(
    request: Request,
    principal: Principal,
    patient_id: uuid.UUID,
    action: str,
    *,
    detail: Detail = None,
) -> PatientRef:
    """Load the patient's site and check it is one of the principal's: 404 for an unknown
    patient, 403 for another site's; both audited as ``denied``, an allowed access as
    ``allowed``."""
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id, site_id, display_name, mrn FROM patients WHERE id = %s", (patient_id,)
        )
        row = await cur.fetchone()
        if row is None:
            await audit(
                conn,
                principal,
                action,
                outcome="denied",
                patient_id=patient_id,
                detail={"reason": "not_found"},
            )
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such patient")
        site_id: str = row["site_id"]
        allowed = principal.may_see_site(site_id)
        await audit(
            conn,
            principal,
            action,
            outcome="allowed" if allowed else "denied",
            patient_id=patient_id,
            site_id=site_id,
            detail=detail if allowed else {**(detail or {}), "reason": "site"},
        )
    if not allowed:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this patient is not at one of your sites")
    return PatientRef(
        id=row["id"], site_id=site_id, display_name=row["display_name"], mrn=row["mrn"]
    )


#: the patients' records that routes address by their own id, and what a 404 calls them
_RECORDS = {"enrollments": "enrollment", "device_assignments": "assignment"}


async def check_record_access(
    request: Request,
    principal: Principal,
    table: Literal["enrollments", "device_assignments"],
    record_id: int,
    action: str,
    *,
    detail: Detail = None,
) -> PatientRef:
    """The patient a record belongs to, checked as by :func:`check_patient_access` (and
    audited so); 404 for an unknown record and for another site's alike: record ids are
    sequential, and the answer must not tell which exist."""
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute(f"SELECT patient_id FROM {table} WHERE id = %s", (record_id,))
        found = await cur.fetchone()
    missing = HTTPException(status.HTTP_404_NOT_FOUND, f"no such {_RECORDS[table]}")
    if found is None:
        await audit_denied(request, principal, action, reason="not_found")
        raise missing
    try:
        return await check_patient_access(
            request, principal, found["patient_id"], action, detail=detail
        )
    except HTTPException as exc:
        if exc.status_code == status.HTTP_403_FORBIDDEN:
            raise missing from None
        raise


async def _no_detail() -> Detail:
    return None


def patient_access(
    action: str,
    who: PrincipalDependency,
    *,
    detail: Callable[..., Awaitable[Detail]] = _no_detail,
) -> Callable[..., Awaitable[PatientRef]]:
    """The dependency of a route with ``patient_id`` in its path: the principal as ``who``
    gives it (pass the route's own ``require(…)`` so that it runs once), then the patient,
    checked and audited as ``action`` (by :func:`check_patient_access`). ``detail`` is a
    dependency giving the audit row's detail from the request's other parameters; as a
    dependency it is validated, and may refuse the request, before the patient is loaded."""

    async def dependency(
        request: Request,
        patient_id: uuid.UUID,
        principal: Annotated[Principal, Depends(who)],
        extra: Annotated[Detail, Depends(detail)],
    ) -> PatientRef:
        return await check_patient_access(request, principal, patient_id, action, detail=extra)

    return dependency
