"""What the admin API's resources share: the role checks, paging of a query, site filters and
the refusal of naive timestamps."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import HTTPException, Request, status

from web._access import Detail, check_record_access
from web._auth import require
from web._db import Conn, Row
from web._paging import Page, paged
from web._principal import Principal, Role
from web._state import app_state

__all__ = [
    "ADMIN",
    "ADMIN_OR_SUPERVISOR",
    "ANY",
    "CARE",
    "ID_PATTERN",
    "aware",
    "fetch_page",
    "one_row",
    "page_of",
    "sites_filter",
    "update_record",
]

ADMIN = require(Role.ADMIN)
ADMIN_OR_SUPERVISOR = require(Role.ADMIN, Role.SUPERVISOR)
CARE = require(Role.CARE_MANAGER, Role.CLINICIAN, Role.SUPERVISOR)
ANY = require()

#: ids chosen by people (sites, programs, gateways)
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


def aware(t: datetime | None) -> datetime | None:
    if t is not None and t.tzinfo is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "timestamps need a UTC offset")
    return t


async def fetch_page(conn: Conn, sql: str, params: list[Any], page: Page) -> tuple[list[Row], int]:
    """One page of ``sql``'s rows and the count of all of them."""
    cur = await conn.execute(f"SELECT count(*) AS n FROM ({sql}) q", params)
    total_row = await cur.fetchone()
    cur = await conn.execute(sql + " LIMIT %s OFFSET %s", [*params, page.limit, page.offset])
    return await cur.fetchall(), int(total_row["n"] if total_row else 0)


async def page_of(request: Request, sql: str, params: list[Any], page: Page) -> dict[str, Any]:
    """A list response: one page of ``sql``'s rows, their total and the next page's link."""
    async with app_state(request).pool.connection() as conn:
        rows, total = await fetch_page(conn, sql, params, page)
    return paged(request, rows, total, page)


async def one_row(conn: Conn, sql: str, params: tuple[Any, ...]) -> Row:
    """The row a statement returns (an ``INSERT`` or ``UPDATE … RETURNING`` that must)."""
    cur = await conn.execute(sql, params)
    row = await cur.fetchone()
    assert row is not None
    return row


def sites_filter(principal: Principal, site_id: str | None) -> list[str]:
    """``site_id`` if it is one of mine (403 otherwise), else all my sites."""
    if site_id is not None:
        if site_id not in principal.sites:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this site of care is not yours")
        return [site_id]
    return sorted(principal.sites)


async def update_record(
    request: Request,
    principal: Principal,
    table: Literal["enrollments", "device_assignments"],
    record_id: int,
    action: str,
    assignments: str,
    params: tuple[Any, ...],
    *,
    detail: Detail = None,
) -> Row:
    """Change one of a patient's records (``SET assignments``) after the access check on its
    patient (:func:`web._access.check_record_access`); the record as it is now."""
    await check_record_access(request, principal, table, record_id, action, detail=detail)
    async with app_state(request).pool.connection() as conn:
        return await one_row(
            conn,
            f"UPDATE {table} SET {assignments} WHERE id = %s RETURNING *",
            (*params, record_id),
        )
