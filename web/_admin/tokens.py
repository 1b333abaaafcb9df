"""API tokens (``Authorization: Bearer cbt_…``): created (shown once, only the SHA-256 is
kept), revoked.

A token is for oneself. An admin may create one for another user of their sites only by saying
so (``"impersonation": true``), and that is audited as impersonation. Every token expires: at
``expires_at`` (in the future) or after the app's default lifetime (``carebeacon web
--token-days``, 90 days unless set). A new password, another role or a disabling revokes a
user's tokens (web/_admin/users.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, Field

from web._admin._common import ANY, aware, one_row
from web._admin.users import audit_site, user_in_my_sites
from web._audit import audit, audit_denied
from web._field_errors import field_error
from web._passwords import new_token, token_digest
from web._principal import Principal, Role
from web._schemas import TokenOut
from web._state import app_state

__all__ = ["router"]

router = APIRouter()


class TokenIn(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    expires_at: datetime | None = Field(
        default=None, description="when it stops working (future; default: the app's lifetime)"
    )
    impersonation: bool = Field(
        default=False,
        description="admin: create a token that acts as another user of my sites (audited)",
    )


@router.post(
    "/users/{user_id}/tokens",
    response_model=TokenOut,
    status_code=201,
    summary="Create an API token",
)
async def create_token(
    request: Request,
    user_id: int,
    body: TokenIn,
    principal: Annotated[Principal, Depends(ANY)],
) -> dict[str, Any]:
    """The token is returned once; only its SHA-256 is stored. A token for another user is an
    admin's explicit impersonation (``impersonation: true``), audited as such."""
    action = "create api token"
    state = app_state(request)
    expires = aware(body.expires_at)
    if expires is not None and expires <= datetime.now(UTC):
        raise field_error("expires_at", "an expiry must be in the future")
    if user_id != principal.user_id and not (principal.role == Role.ADMIN and body.impersonation):
        await audit_denied(
            request, principal, action, reason="impersonation", resource=f"user/{user_id}"
        )
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "a token is for yourself (an admin may impersonate with impersonation: true)",
        )
    token = new_token("cbt_")
    async with state.pool.connection() as conn:
        owner = await user_in_my_sites(request, conn, principal, user_id, action)
        row = await one_row(
            conn,
            "INSERT INTO web_api_tokens (user_id, name, token_hash, expires_at)"
            " VALUES (%s, %s, %s, coalesce(%s, now() + %s))"
            " RETURNING id, name, created_at, expires_at",
            (user_id, body.name, token_digest(token), expires, state.token_lifetime),
        )
        impersonating = user_id != principal.user_id
        await audit(
            conn,
            principal,
            "create api token (impersonation)" if impersonating else action,
            site_id=audit_site(principal, owner),
            resource=f"token/{row['id']}",
            detail={"user": user_id, "impersonation": impersonating},
        )
    return {**row, "token": token}


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke an API token")
async def revoke_token(
    request: Request, token_id: int, principal: Annotated[Principal, Depends(ANY)]
) -> None:
    """Mine, or (admin) one of a user of my sites; 404 for any other as for an unknown one."""
    action = "revoke api token"
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute("SELECT user_id FROM web_api_tokens WHERE id = %s", (token_id,))
        row = await cur.fetchone()
        resource = f"token/{token_id}"
        if row is None or (principal.role != Role.ADMIN and row["user_id"] != principal.user_id):
            reason = "not_found" if row is None else "not_yours"
            await audit_denied(request, principal, action, reason=reason, resource=resource)
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such token")
        try:
            owner = await user_in_my_sites(request, conn, principal, row["user_id"], action)
        except HTTPException:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such token") from None
        await conn.execute(
            "UPDATE web_api_tokens SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL",
            (token_id,),
        )
        await audit(
            conn, principal, action, site_id=audit_site(principal, owner), resource=resource
        )
