"""The audit log: every view of patient data and every denied attempt, with who, what, when.

Rows carry ids only; the log never copies patient values. Denied attempts are written on their
own connection so that the request's rollback cannot erase them.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Literal

from fastapi import Request
from psycopg.types.json import Jsonb

from web._db import Conn
from web._principal import Principal
from web._state import app_state

__all__ = ["audit", "audit_denied"]

logger = logging.getLogger(__name__)
#: an action may hold a request path, and a path a patient's id: the log line masks ids
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

Outcome = Literal["allowed", "denied"]


async def audit(
    conn: Conn,
    principal: Principal | None,
    action: str,
    *,
    outcome: Outcome = "allowed",
    patient_id: uuid.UUID | None = None,
    site_id: str | None = None,
    resource: str | None = None,
    detail: dict[str, object] | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO audit_events (user_id, username, action, outcome, patient_id, site_id,"
        " resource, detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (
            principal.user_id if principal else None,
            principal.username if principal else None,
            action,
            outcome,
            patient_id,
            site_id,
            resource,
            Jsonb(detail) if detail is not None else None,
        ),
    )
    if outcome == "denied":
        logger.warning(
            "access denied: user=%s action=%s",
            principal.user_id if principal else None,
            _UUID.sub("<id>", action),
        )


async def audit_denied(
    request: Request,
    principal: Principal | None,
    action: str,
    *,
    reason: str,
    username: str | None = None,
    user_id: int | None = None,
    patient_id: uuid.UUID | None = None,
    site_id: str | None = None,
    resource: str | None = None,
) -> None:
    """A ``denied`` row on a connection of its own (committed whatever the request does next),
    with its ``reason``. Without a principal (a login), ``username``/``user_id`` name whom the
    attempt was for."""
    detail: dict[str, object] = {"reason": reason}
    async with app_state(request).pool.connection() as conn:
        if principal is not None:
            await audit(
                conn,
                principal,
                action,
                outcome="denied",
                patient_id=patient_id,
                site_id=site_id,
                resource=resource,
                detail=detail,
            )
            return
        await conn.execute(
            "INSERT INTO audit_events (user_id, username, action, outcome, patient_id, site_id,"
            " resource, detail) VALUES (%s, %s, %s, 'denied', %s, %s, %s, %s)",
            (user_id, username, action, patient_id, site_id, resource, Jsonb(detail)),
        )
        logger.warning("access denied: user=%s action=%s", user_id, _UUID.sub("<id>", action))
