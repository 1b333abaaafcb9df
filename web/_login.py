"""Log in and out (HTML form). A pre-session cookie guards the login form against CSRF."""

from __future__ import annotations

import hmac
import logging
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from web._audit import audit_denied
from web._auth import SESSION_COOKIE, create_session, end_session
from web._passwords import new_token, verify_password
from web._state import app_state

__all__ = ["login_page", "router"]

logger = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
_LOGIN_CSRF_COOKIE = "cb_login_csrf"
LOCKOUT_FAILURES = 10
LOCKOUT_WINDOW = timedelta(minutes=15)


def _safe_next(next_url: str | None) -> str:
    if next_url and next_url.startswith("/") and not next_url.startswith("//"):
        return next_url
    return "/queue"


def login_page(
    request: Request, *, status_code: int = 200, next_url: str | None = None, error: str = ""
) -> Response:
    state = app_state(request)
    token = new_token()
    response = state.templates.TemplateResponse(
        request,
        "login.html",
        {"csrf": token, "next": _safe_next(next_url), "error": error, "principal": None},
        status_code=status_code,
    )
    response.set_cookie(
        _LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        secure=state.secure_cookies,
        samesite="strict",
        path="/login",
        max_age=3600,
    )
    return response


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    return login_page(request, next_url=next)


@router.post("/login")
async def login(
    request: Request,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/queue",
) -> Response:
    state = app_state(request)
    expected = request.cookies.get(_LOGIN_CSRF_COOKIE, "")
    name = username.strip().lower()[:64]
    async with state.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id, password_hash FROM web_users WHERE username = %s AND NOT disabled",
            (name,),
        )
        row = await cur.fetchone()
    user_id = row["id"] if row else None
    if not expected or not hmac.compare_digest(expected, csrf_token):
        await audit_denied(request, None, "login", reason="csrf", username=name, user_id=user_id)
        return login_page(request, status_code=403, next_url=next, error="Form expired, try again.")
    async with state.pool.connection() as conn:
        # the lockout lifts when the LOCKOUT_FAILURES-th latest failure leaves the window
        cur = await conn.execute(
            "SELECT ceil(extract(epoch FROM at + %s - now()))::int AS wait FROM audit_events"
            " WHERE action = 'login' AND outcome = 'denied' AND username = %s"
            " AND detail ->> 'reason' = 'credentials' AND at > now() - %s"
            " ORDER BY at DESC OFFSET %s LIMIT 1",
            (LOCKOUT_WINDOW, name, LOCKOUT_WINDOW, LOCKOUT_FAILURES - 1),
        )
        locked = await cur.fetchone()
    if locked is not None:
        logger.warning("login locked out after repeated failures")
        await audit_denied(request, None, "login", reason="lockout", username=name, user_id=user_id)
        response = login_page(
            request,
            status_code=429,
            next_url=next,
            error="Too many failed attempts. Wait 15 minutes or ask an admin.",
        )
        response.headers["Retry-After"] = str(max(1, locked["wait"]))
        return response
    ok = verify_password(row["password_hash"] if row else None, password)
    if not ok or row is None:
        await audit_denied(
            request, None, "login", reason="credentials", username=name, user_id=user_id
        )
        logger.info("login failed")
        return login_page(
            request, status_code=401, next_url=next, error="Wrong username or password."
        )
    async with state.pool.connection() as conn:
        token, _csrf = await create_session(conn, row["id"])
        await conn.execute(
            "INSERT INTO audit_events (user_id, username, action, outcome)"
            " VALUES (%s, %s, 'login', 'allowed')",
            (row["id"], name),
        )
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        secure=state.secure_cookies,
        samesite="lax",
        path="/",
    )
    response.delete_cookie(_LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        async with app_state(request).pool.connection() as conn:
            await end_session(conn, token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
