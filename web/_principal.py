"""Who is asking: the roles and the authenticated principal.

Its own module so that the audit log (which records principals) and authentication (which
makes them, and audits refusals) both depend on it rather than on each other.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

__all__ = ["Principal", "Role"]


class Role(enum.StrEnum):
    CARE_MANAGER = "care_manager"
    CLINICIAN = "clinician"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    username: str
    display_name: str
    role: Role
    sites: frozenset[str]
    via: Literal["session", "token"]
    csrf_token: str | None = None

    def may_see_site(self, site_id: str) -> bool:
        return site_id in self.sites
