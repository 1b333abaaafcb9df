"""What the app holds for its requests: the pool, templates, settings, the broker provisioner."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from fastapi import Request
from fastapi.templating import Jinja2Templates
from psycopg_pool import AsyncConnectionPool

from carebeacon.settings import Settings
from web._db import Conn

__all__ = ["AppState", "Provisioner", "app_state"]

Provisioner = Callable[[str, str], None]


@dataclass(slots=True)
class AppState:
    settings: Settings
    pool: AsyncConnectionPool[Conn]
    templates: Jinja2Templates
    provision_gateway: Provisioner
    secure_cookies: bool = True
    #: how long an API token lives when its creator names no expiry
    token_lifetime: timedelta = timedelta(days=90)
    extra: dict[str, object] = field(default_factory=dict)


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.cb
    return state
