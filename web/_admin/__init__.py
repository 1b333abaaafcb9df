"""The admin JSON API (``/api``), one module per resource: sites, programs, users and API tokens;
patients, enrollments and consent; devices and time-bounded device assignments; gateways
(provisioning creates the broker login and returns its password once); care-management time
entries; the audit log; the quarantine (a redacted view, and release after a configuration fix).

Lists are paginated (``limit``/``offset`` → ``items``/``total``/``next``) and filterable.
Errors are JSON ``{"detail": …}``: 401 unauthenticated, 403 role or site, 404 unknown id,
409 conflict (duplicate, overlapping assignment), 422 invalid input.
"""

from __future__ import annotations

from fastapi import APIRouter

from web._admin import (
    assignments,
    audit_log,
    devices,
    enrollments,
    gateways,
    patients,
    programs,
    quarantine,
    sites,
    time_entries,
    tokens,
    users,
)

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["admin"])
for _resource in (
    users,
    sites,
    programs,
    tokens,
    patients,
    enrollments,
    devices,
    assignments,
    gateways,
    quarantine,
    time_entries,
    audit_log,
):
    router.include_router(_resource.router)
