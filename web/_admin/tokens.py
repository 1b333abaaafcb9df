"""API tokens (``Authorization: Bearer cbt_…``): created for a user (shown once, only the
SHA-256 is kept), revoked."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, Field

from web._admin._common import ANY, aware, one_row
from web._admin.users import user_in_my_sites
from web._audit import audit
from web._passwords import new_token, token_digest
from web._principal import Principal, Role
from web._schemas import TokenOut
from web._state import app_state

__all__ = ["router"]

router = APIRouter()


class TokenIn(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    expires_at: datetime | None = None


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
    """The token is returned once; only its SHA-256 is stored. Admins may create tokens for
    users of their sites, others only for themselves."""
    if principal.role != Role.ADMIN and user_id != principal.user_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "you can only create your own tokens")
    token = new_token("cbt_")
    async with app_state(request).pool.connection() as conn:
        await user_in_my_sites(conn, principal, user_id)
        row = await one_row(
            conn,
            "INSERT INTO web_api_tokens (user_id, name, token_hash, expires_at)"
            " VALUES (%s, %s, %s, %s) RETURNING id, name, created_at, expires_at",
            (user_id, body.name, token_digest(token), aware(body.expires_at)),
        )
        await audit(conn, principal, "create api token", resource=f"user/{user_id}")
    return {**row, "token": token}


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke an API token")
async def revoke_token(
    request: Request, token_id: int, principal: Annotated[Principal, Depends(ANY)]
) -> None:
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute("SELECT user_id FROM web_api_tokens WHERE id = %s", (token_id,))
        row = await cur.fetchone()
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such token")
        if principal.role != Role.ADMIN and row["user_id"] != principal.user_id:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "not your token")
        if principal.role == Role.ADMIN:
            await user_in_my_sites(conn, principal, row["user_id"])
        await conn.execute(
            "UPDATE web_api_tokens SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL",
            (token_id,),
        )
        await audit(conn, principal, "revoke api token", resource=f"token/{token_id}")
