"""Authentication: sessions, API tokens, CSRF, and the role check.

A request is authenticated either by the ``cb_session`` cookie (a random token; the database
keeps its SHA-256) or by ``Authorization: Bearer <api token>``. A state-changing request made
with a session must carry the session's CSRF token (form field ``csrf_token`` or header
``X-CSRF-Token``); API tokens are not sent by browsers on their own, so they need none.

Who may touch which patient or site of care is ``web._access``.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Literal

from fastapi import HTTPException, Request, status

from web._audit import audit, audit_denied
from web._db import Conn
from web._passwords import new_token, token_digest
from web._principal import Principal, Role
from web._state import app_state

__all__ = [
    "SESSION_COOKIE",
    "PrincipalDependency",
    "authenticate",
    "create_session",
    "end_session",
    "require",
]

SESSION_COOKIE = "cb_session"
SESSION_ABSOLUTE = timedelta(hours=8)
SESSION_IDLE = timedelta(minutes=30)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ALL_ROLES = frozenset(Role)

#: what :func:`require` returns: a dependency giving the authenticated, role-checked principal
PrincipalDependency = Callable[[Request], Awaitable[Principal]]


class NotAuthenticated(HTTPException):
    def __init__(self) -> None:
        super().__init__(
            status.HTTP_401_UNAUTHORIZED,
            "authentication required",
            headers={"WWW-Authenticate": 'Bearer realm="carebeacon"'},
        )


_PRINCIPAL_SQL = """
SELECT u.id, u.username, u.display_name, u.role,
       coalesce((SELECT array_agg(site_id) FROM web_user_sites us WHERE us.user_id = u.id),
                '{}') AS sites
FROM web_users u WHERE u.id = %s AND NOT u.disabled
"""


async def _load_principal(
    conn: Conn, user_id: int, via: Literal["session", "token"], csrf: str | None
) -> Principal | None:
    cur = await conn.execute(_PRINCIPAL_SQL, (user_id,))
    row = await cur.fetchone()
    if row is None:
        return None
    return Principal(
        user_id=row["id"],
        username=row["username"],
        display_name=row["display_name"],
        role=Role(row["role"]),
        sites=frozenset(row["sites"]),
        via=via,
        csrf_token=csrf,
    )


async def _from_session(conn: Conn, token: str) -> Principal | None:
    cur = await conn.execute(
        "UPDATE web_sessions SET last_seen_at = now() WHERE token_hash = %s"
        " AND expires_at > now() AND last_seen_at > now() - %s"
        " RETURNING user_id, csrf_token",
        (token_digest(token), SESSION_IDLE),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return await _load_principal(conn, row["user_id"], "session", row["csrf_token"])


async def _from_api_token(conn: Conn, token: str) -> Principal | None:
    cur = await conn.execute(
        "UPDATE web_api_tokens SET last_used_at = now() WHERE token_hash = %s"
        " AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"
        " RETURNING user_id",
        (token_digest(token),),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return await _load_principal(conn, row["user_id"], "token", None)


async def _csrf_ok(request: Request, expected: str) -> bool:
    supplied = request.headers.get("x-csrf-token")
    if supplied is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get("csrf_token")
            supplied = value if isinstance(value, str) else None
    return supplied is not None and hmac.compare_digest(supplied, expected)


async def authenticate(request: Request) -> Principal:
    """The dependency behind every protected route: 401 without a valid session or token,
    403 on a state-changing session request without the CSRF token."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    state = app_state(request)
    principal: Principal | None = None
    header = request.headers.get("authorization", "")
    async with state.pool.connection() as conn:
        if header.lower().startswith("bearer "):
            principal = await _from_api_token(conn, header[7:].strip())
        else:
            cookie = request.cookies.get(SESSION_COOKIE)
            if cookie:
                principal = await _from_session(conn, cookie)
    if principal is None:
        raise NotAuthenticated()
    if (
        principal.via == "session"
        and request.method not in _SAFE_METHODS
        and not await _csrf_ok(request, principal.csrf_token or "")
    ):
        await audit_denied(
            request, principal, f"{request.method} {request.url.path}", reason="csrf"
        )
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or invalid CSRF token")
    request.state.principal = principal
    return principal


def require(*roles: Role) -> PrincipalDependency:
    """A dependency: authenticated, and one of ``roles`` (403 otherwise, audit-logged)."""
    allowed = frozenset(roles) or ALL_ROLES

    async def dependency(request: Request) -> Principal:
        principal = await authenticate(request)
        if principal.role not in allowed:
            async with app_state(request).pool.connection() as conn:
                await audit(
                    conn,
                    principal,
                    f"{request.method} {request.url.path}",
                    outcome="denied",
                    detail={"reason": "role"},
                )
            raise HTTPException(status.HTTP_403_FORBIDDEN, "your role may not do this")
        return principal

    return dependency


async def create_session(conn: Conn, user_id: int) -> tuple[str, str]:
    """A new session for ``user_id``: (cookie token, CSRF token)."""
    token, csrf = new_token(), new_token()
    await conn.execute(
        "INSERT INTO web_sessions (token_hash, user_id, csrf_token, expires_at)"
        " VALUES (%s, %s, %s, now() + %s)",
        (token_digest(token), user_id, csrf, SESSION_ABSOLUTE),
    )
    return token, csrf


async def end_session(conn: Conn, token: str) -> None:
    await conn.execute("DELETE FROM web_sessions WHERE token_hash = %s", (token_digest(token),))
