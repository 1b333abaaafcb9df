"""The quarantine (supervisors and admins): what ingest refused and why, with a redacted sample
of each payload, and release after a configuration fix.

Scope: a quarantined row belongs to the sites of the gateway and device involved (the sites
of the patients the gateway serves and of the patients the device was ever assigned to). A row
is listed to someone all of whose sites include every one of them; a row with no site at all
(an unknown gateway, or a gateway serving nobody with an unknown device) is listed to admins
only. Every list is audited.

The sample never shows a reading's values: the stored payload is parsed as JSON and rebuilt
with its keys, every number replaced by ``#``, every digit in a string replaced by ``#``, the
``raw`` GATT data dropped (``"…"``), and lists cut to their first 3 items; the result is cut to
:data:`SAMPLE_CHARS` characters. A payload that is not JSON (or was truncated when it was
quarantined) shows its first :data:`OPAQUE_CHARS` characters with every letter and digit masked.

Release: a row whose cause was configuration (:data:`RELEASABLE`) may be released once the
configuration is fixed. The web app does not store readings (ingest does): the release only
marks the row ``release_requested_at``; ingest's release task re-runs the stored payload through
its own validation and storage path and records ``released_at`` and the outcome.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from pydantic import BaseModel

from web._access import check_site_access
from web._admin._common import ADMIN_OR_SUPERVISOR
from web._audit import audit, audit_denied
from web._db import Row
from web._field_errors import field_error
from web._paging import Page, page_params, paged
from web._principal import Principal, Role
from web._schemas import PageOf
from web._state import app_state

__all__ = [
    "OPAQUE_CHARS",
    "RELEASABLE",
    "SAMPLE_CHARS",
    "FilterDependency",
    "QuarantineFilter",
    "QuarantineOut",
    "list_quarantine",
    "redacted_sample",
    "router",
]

router = APIRouter()

#: causes that a configuration change (a device registered, assigned, let onto the gateway, a
#: consent recorded) can fix, so that the same payload would then be stored
RELEASABLE = frozenset(
    {"unknown_device", "device_not_assigned", "device_not_on_gateway", "no_consent"}
)
SAMPLE_CHARS = 256
OPAQUE_CHARS = 32

_DIGIT = re.compile(r"[0-9]")
_ALNUM = re.compile(r"[0-9A-Za-z]")


def _redact(value: Any, key: str | None = None) -> Any:
    if key == "raw":
        return "…"
    if isinstance(value, dict):
        return {str(k): _redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value[:3]] + (["…"] if len(value) > 3 else [])
    if isinstance(value, int | float):  # bool is an int
        return "#"
    if isinstance(value, str):
        return _DIGIT.sub("#", value)
    return value  # None


def redacted_sample(payload: bytes) -> str:
    """A short sample of a quarantined payload with no values in it (see the module)."""
    try:
        parsed = json.loads(payload)
    except (ValueError, RecursionError):
        text = payload[: OPAQUE_CHARS * 4].decode("utf-8", "replace")[:OPAQUE_CHARS]
        return _ALNUM.sub("#", text)
    sample = json.dumps(_redact(parsed), ensure_ascii=False, separators=(",", ":"))
    return sample if len(sample) <= SAMPLE_CHARS else sample[: SAMPLE_CHARS - 1] + "…"


class QuarantineOut(BaseModel):
    id: int
    quarantined_at: datetime
    reason: str
    detail: str
    gateway_id: str | None
    device_id: str | None
    reading_id: str | None
    summary: bool
    occurrences: int
    payload_bytes: int | None
    sample: str
    releasable: bool
    release_requested_at: datetime | None
    released_at: datetime | None
    release_outcome: str | None


class QuarantineFilter(BaseModel):
    site_id: str | None = None
    reason: str | None = None
    gateway_id: str | None = None
    since: datetime | None = None


#: each row with the sites it belongs to (see the module docstring)
_SCOPED = """
SELECT q.*, ARRAY(
    SELECT p.site_id FROM gateway_patients gp JOIN patients p ON p.id = gp.patient_id
    WHERE gp.gateway_id = q.gateway_id
    UNION
    SELECT p.site_id FROM device_assignments da JOIN patients p ON p.id = da.patient_id
    WHERE da.device_id = q.device_id) AS sites
FROM quarantine q
"""

_VISIBLE = (
    "((cardinality(s.sites) > 0 AND s.sites <@ %(mine)s::text[])"
    " OR (cardinality(s.sites) = 0 AND %(admin)s))"
)

_COLUMNS = (
    "s.id, s.quarantined_at, s.reason, s.detail, s.gateway_id, s.device_id,"
    " s.reading_id::text AS reading_id, s.summary, s.occurrences, s.payload_bytes, s.payload,"
    " s.release_requested_at, s.released_at, s.release_outcome"
)


def _out(row: Row) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k != "payload"}
    out["sample"] = redacted_sample(bytes(row["payload"]))
    out["releasable"] = row["reason"] in RELEASABLE and not row["summary"]
    return out


async def list_quarantine(
    request: Request, principal: Principal, where: QuarantineFilter, page: Page, action: str
) -> dict[str, Any]:
    """One page of the quarantined rows ``principal`` may see, newest first (audited)."""
    if where.site_id is not None:
        await check_site_access(request, principal, where.site_id, action)
    params: dict[str, Any] = {
        "mine": sorted(principal.sites),
        "admin": principal.role == Role.ADMIN and where.site_id is None,
        "site": where.site_id,
        "reason": where.reason,
        "gateway": where.gateway_id,
        "since": where.since,
    }
    sql = (
        f"SELECT {_COLUMNS} FROM ({_SCOPED}) s WHERE {_VISIBLE}"
        " AND (%(site)s::text IS NULL OR %(site)s::text = ANY(s.sites))"
        " AND (%(reason)s::text IS NULL OR s.reason = %(reason)s::text)"
        " AND (%(gateway)s::text IS NULL OR s.gateway_id = %(gateway)s::text)"
        " AND (%(since)s::timestamptz IS NULL OR s.quarantined_at >= %(since)s::timestamptz)"
        " ORDER BY s.quarantined_at DESC, s.id DESC"
    )
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute(f"SELECT count(*) AS n FROM ({sql}) q", params)
        total_row = await cur.fetchone()
        cur = await conn.execute(
            sql + " LIMIT %(limit)s OFFSET %(offset)s",
            {**params, "limit": page.limit, "offset": page.offset},
        )
        rows = await cur.fetchall()
        await audit(
            conn,
            principal,
            action,
            site_id=where.site_id,
            detail={
                "reason": where.reason,
                "gateway_id": where.gateway_id,
                "rows": len(rows),
            },
        )
    return paged(request, [_out(r) for r in rows], int(total_row["n"] if total_row else 0), page)


#: an instant with its offset (a number, which pydantic would read as Unix time, is refused)
_INSTANT = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$"


def _filter(
    site_id: str | None = None,
    reason: Annotated[str | None, Query(max_length=64)] = None,
    gateway_id: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[
        str | None,
        Query(pattern=_INSTANT, description="ISO 8601 instant with a UTC offset"),
    ] = None,
) -> QuarantineFilter:
    at = None
    if since is not None:
        try:
            at = datetime.fromisoformat(since)
        except ValueError:
            raise field_error("since", "not an ISO 8601 instant", where="query") from None
    return QuarantineFilter(site_id=site_id, reason=reason, gateway_id=gateway_id, since=at)


FilterDependency = Annotated[QuarantineFilter, Depends(_filter)]


@router.get(
    "/quarantine",
    response_model=PageOf[QuarantineOut],
    summary="Quarantined messages of my sites, with a redacted sample (supervisor, admin)",
)
async def get_quarantine(
    request: Request,
    principal: Annotated[Principal, Depends(ADMIN_OR_SUPERVISOR)],
    page: Annotated[Page, Depends(page_params)],
    where: FilterDependency,
) -> dict[str, Any]:
    return await list_quarantine(request, principal, where, page, "api quarantine list")


@router.post(
    "/quarantine/{quarantine_id}/release",
    response_model=QuarantineOut,
    summary="Ask ingest to store a quarantined reading again after a configuration fix",
)
async def release(
    request: Request,
    quarantine_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    principal: Annotated[Principal, Depends(ADMIN_OR_SUPERVISOR)],
) -> dict[str, Any]:
    """404 for an unknown row and for one not visible to me (both audited); 409 for a row whose
    cause was not configuration, a summary row, or one already stored by a release."""
    action = "api quarantine release"
    resource = f"quarantine/{quarantine_id}"
    params = {
        "mine": sorted(principal.sites),
        "admin": principal.role == Role.ADMIN,
        "id": quarantine_id,
    }
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute(
            f"SELECT s.id, s.reason, s.summary, s.released_at, s.release_outcome"
            f" FROM ({_SCOPED} WHERE q.id = %(id)s) s WHERE {_VISIBLE}",
            params,
        )
        row = await cur.fetchone()
    if row is None:
        await audit_denied(request, principal, action, reason="not_found", resource=resource)
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such quarantined message")
    if row["reason"] not in RELEASABLE or row["summary"]:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "only a single reading quarantined for its configuration can be released",
        )
    if row["release_outcome"] == "stored":
        raise HTTPException(status.HTTP_409_CONFLICT, "already released and stored")
    async with app_state(request).pool.connection() as conn:
        await conn.execute(
            "UPDATE quarantine SET release_requested_at = now(), release_requested_by = %s,"
            " released_at = NULL, release_outcome = NULL WHERE id = %s",
            (principal.user_id, quarantine_id),
        )
        cur = await conn.execute(
            f"SELECT {_COLUMNS} FROM quarantine s WHERE s.id = %s", (quarantine_id,)
        )
        updated = await cur.fetchone()
        await audit(conn, principal, action, resource=resource, detail={"reason": row["reason"]})
    assert updated is not None
    return _out(updated)
