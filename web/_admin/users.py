"""Users of the web app (admin): who am I, list the users of my sites, create, change (a change
of role, password or a disabling ends the user's sessions and revokes their API tokens)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, Field

from web._admin._common import ADMIN, ANY, one_row, page_of, sites_filter
from web._audit import audit, audit_denied
from web._db import Conn, Row
from web._paging import Page, page_params
from web._passwords import hash_password
from web._principal import Principal, Role
from web._schemas import MeOut, PageOf, UserOut
from web._state import app_state

__all__ = ["audit_site", "revoke_tokens", "router", "user_in_my_sites"]

router = APIRouter()


class UserIn(BaseModel):
    username: Annotated[str, Field(pattern=r"^[a-z0-9._@-]{2,64}$")]
    display_name: Annotated[str, Field(min_length=1, max_length=200)]
    role: Role
    password: Annotated[str, Field(min_length=10, max_length=200)]
    sites: list[str] = Field(default_factory=list)


class UserPatch(BaseModel):
    display_name: str | None = None
    role: Role | None = None
    password: Annotated[str | None, Field(min_length=10, max_length=200)] = None
    sites: list[str] | None = None
    disabled: bool | None = None


@router.get(
    "/me",
    response_model=MeOut,
    summary="Who am I (and my CSRF token, for session-authenticated writes)",
)
async def me(principal: Annotated[Principal, Depends(ANY)]) -> dict[str, Any]:
    return {
        "id": principal.user_id,
        "username": principal.username,
        "display_name": principal.display_name,
        "role": principal.role.value,
        "sites": sorted(principal.sites),
        "via": principal.via,
        "csrf_token": principal.csrf_token,
    }


_USER_SQL = (
    "SELECT u.id, u.username, u.display_name, u.role, u.disabled, u.created_at,"
    " coalesce((SELECT array_agg(site_id ORDER BY site_id) FROM web_user_sites s"
    " WHERE s.user_id = u.id), '{}') AS sites FROM web_users u"
)


@router.get("/users", response_model=PageOf[UserOut], summary="List users of my sites (admin)")
async def list_users(
    request: Request,
    principal: Annotated[Principal, Depends(ADMIN)],
    page: Annotated[Page, Depends(page_params)],
    role: Role | None = None,
    site_id: str | None = None,
) -> dict[str, Any]:
    sites = sites_filter(principal, site_id)
    return await page_of(
        request,
        _USER_SQL + " WHERE (%s::text IS NULL OR u.role = %s) AND EXISTS (SELECT 1 FROM"
        " web_user_sites s WHERE s.user_id = u.id AND s.site_id = ANY(%s)) ORDER BY u.id",
        [role, role, sites],
        page,
    )


async def _set_sites(conn: Conn, principal: Principal, user_id: int, sites: list[str]) -> None:
    foreign = set(sites) - principal.sites
    if foreign:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "you can only grant your own sites")
    await conn.execute(
        "DELETE FROM web_user_sites WHERE user_id = %s AND site_id = ANY(%s)",
        (user_id, sorted(principal.sites)),
    )
    for site in sites:
        await conn.execute(
            "INSERT INTO web_user_sites (user_id, site_id) VALUES (%s, %s)", (user_id, site)
        )


@router.post("/users", response_model=UserOut, status_code=201, summary="Create a user (admin)")
async def create_user(
    request: Request, body: UserIn, principal: Annotated[Principal, Depends(ADMIN)]
) -> Row:
    digest = await asyncio.to_thread(hash_password, body.password)
    async with app_state(request).pool.connection() as conn:
        row = await one_row(
            conn,
            "INSERT INTO web_users (username, display_name, role, password_hash)"
            " VALUES (%s, %s, %s, %s) RETURNING id",
            (body.username, body.display_name, body.role.value, digest),
        )
        await _set_sites(conn, principal, row["id"], body.sites)
        await audit(conn, principal, "create user", resource=f"user/{row['id']}")
        return await one_row(conn, _USER_SQL + " WHERE u.id = %s", (row["id"],))


async def user_in_my_sites(
    request: Request, conn: Conn, principal: Principal, user_id: int, action: str
) -> Row:
    """The user, if one of my sites' (or of none yet); 404 for an unknown user and for another
    site's alike (user ids are sequential: the answer must not tell which exist), audited."""
    cur = await conn.execute(_USER_SQL + " WHERE u.id = %s", (user_id,))
    row = await cur.fetchone()
    resource = f"user/{user_id}"
    if row is None:
        await audit_denied(request, principal, action, reason="not_found", resource=resource)
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such user")
    if row["sites"] and not set(row["sites"]) & principal.sites:
        await audit_denied(
            request, principal, action, reason="site", site_id=row["sites"][0], resource=resource
        )
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such user")
    return row


def audit_site(principal: Principal, user: Row) -> str | None:
    """The site an audit row about ``user`` is filed under: one of theirs I share (else
    theirs), so that the supervisors of that site see it."""
    shared = sorted(set(user["sites"]) & principal.sites) or sorted(user["sites"])
    return shared[0] if shared else None


async def revoke_tokens(conn: Conn, principal: Principal, user: Row, reason: str) -> None:
    """Revoke the user's live API tokens (audited, one row per token)."""
    cur = await conn.execute(
        "UPDATE web_api_tokens SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL"
        " RETURNING id",
        (user["id"],),
    )
    for token in await cur.fetchall():
        await audit(
            conn,
            principal,
            "revoke api token",
            site_id=audit_site(principal, user),
            resource=f"token/{token['id']}",
            detail={"reason": reason, "user": user["id"]},
        )


@router.patch("/users/{user_id}", response_model=UserOut, summary="Change a user (admin)")
async def patch_user(
    request: Request,
    user_id: int,
    body: UserPatch,
    principal: Annotated[Principal, Depends(ADMIN)],
) -> Row:
    """A new password, another role or a disabling ends the user's sessions and revokes their
    API tokens."""
    digest = await asyncio.to_thread(hash_password, body.password) if body.password else None
    async with app_state(request).pool.connection() as conn:
        before = await user_in_my_sites(request, conn, principal, user_id, "change user")
        await conn.execute(
            "UPDATE web_users SET display_name = coalesce(%s, display_name),"
            " role = coalesce(%s, role), password_hash = coalesce(%s, password_hash),"
            " disabled = coalesce(%s, disabled) WHERE id = %s",
            (
                body.display_name,
                body.role.value if body.role else None,
                digest,
                body.disabled,
                user_id,
            ),
        )
        if body.sites is not None:
            await _set_sites(conn, principal, user_id, body.sites)
        role_changed = body.role is not None and body.role.value != before["role"]
        if body.disabled or body.password or body.role:
            await conn.execute("DELETE FROM web_sessions WHERE user_id = %s", (user_id,))
        if body.disabled or body.password or role_changed:
            reason = "password" if body.password else "role" if role_changed else "disabled"
            await revoke_tokens(conn, principal, before, reason)
        await audit(
            conn,
            principal,
            "change user",
            site_id=audit_site(principal, before),
            resource=f"user/{user_id}",
            detail={"fields": sorted(body.model_fields_set)},
        )
        return await user_in_my_sites(request, conn, principal, user_id, "change user")
