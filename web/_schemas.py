"""Response shapes of the admin API (they make ``/openapi.json`` say what comes back)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Generic, TypeVar

from pydantic import BaseModel

__all__ = [
    "AssignmentOut",
    "AuditOut",
    "CredentialsOut",
    "DeviceOut",
    "EnrollmentOut",
    "EpisodeDetail",
    "EpisodeEventOut",
    "EpisodeOut",
    "EpisodeSummary",
    "GatewayOut",
    "GatewayProvisioned",
    "MeOut",
    "PageOf",
    "PatientDetail",
    "PatientOut",
    "ProgramOut",
    "SiteOut",
    "TimeEntryOut",
    "TokenOut",
    "UserOut",
]

T = TypeVar("T")


class PageOf(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int
    next: str | None


class MeOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: str
    sites: list[str]
    via: str
    csrf_token: str | None


class SiteOut(BaseModel):
    id: str
    name: str
    timezone: str
    created_at: datetime


class ProgramOut(BaseModel):
    id: str
    name: str
    template: str
    created_at: datetime


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: str
    disabled: bool
    created_at: datetime
    sites: list[str]


class TokenOut(BaseModel):
    id: int
    name: str
    created_at: datetime
    expires_at: datetime | None
    token: str


class PatientOut(BaseModel):
    id: uuid.UUID
    mrn: str | None
    display_name: str
    birth_date: date | None
    site_id: str
    risk_tier: int
    created_at: datetime


class EnrollmentOut(BaseModel):
    id: int
    patient_id: uuid.UUID
    program_id: str
    site_id: str
    enrolled_at: datetime
    ended_at: datetime | None
    consent_given_at: datetime | None
    consent_withdrawn_at: datetime | None
    billing_practitioner: str | None
    delivery_date: date | None = None


class PatientDetail(PatientOut):
    enrollments: list[EnrollmentOut]


class DeviceOut(BaseModel):
    id: str
    type: str
    manufacturer: str | None
    model: str | None
    created_at: datetime


class AssignmentOut(BaseModel):
    id: int
    device_id: str
    patient_id: uuid.UUID
    user_index: int | None
    valid_from: datetime
    valid_to: datetime | None


class GatewayOut(BaseModel):
    id: str
    label: str | None
    online: bool
    status_at: datetime | None
    last_seen_at: datetime | None = None  # any message from it (readings or status)
    created_at: datetime
    software_version: str | None
    patients: int


class GatewayProvisioned(BaseModel):
    id: str
    label: str | None
    created_at: datetime
    patient_ids: list[uuid.UUID]
    mqtt_username: str
    mqtt_password: str  # shown once


class CredentialsOut(BaseModel):
    mqtt_username: str
    mqtt_password: str  # shown once


class TimeEntryOut(BaseModel):
    id: int
    started_at: datetime
    seconds: int
    interactive: bool
    episode_id: uuid.UUID | None
    note: str | None = None
    username: str | None = None


class AuditOut(BaseModel):
    id: int
    at: datetime
    user_id: int | None
    username: str | None
    action: str
    outcome: str
    patient_id: uuid.UUID | None
    site_id: str | None
    resource: str | None
    reason: str | None = None


class EpisodeSummary(BaseModel):
    """A row of the queue."""

    id: uuid.UUID
    patient_id: uuid.UUID
    display_name: str
    mrn: str | None
    risk_tier: int
    site_id: str | None
    site_name: str
    program_id: str | None
    program_name: str | None
    family: str
    rule_id: str
    state: str
    severity: str
    priority: int
    opened_at: datetime
    last_at: datetime
    updated_at: datetime
    explanation: str
    sla_due_at: datetime | None
    sla_state: str
    escalation_level: int
    assignee: str | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None


class EpisodeOut(BaseModel):
    id: uuid.UUID
    patient_id: uuid.UUID
    site_id: str | None
    program_id: str | None
    family: str
    rule_id: str
    state: str
    severity: str
    priority: int
    opened_at: datetime
    last_at: datetime
    updated_at: datetime
    explanation: str
    value_code: str
    worst_value: float
    count: int
    sla_due_at: datetime | None
    sla_state: str
    escalation_level: int
    assignee: str | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    outcome: str | None
    note: str | None
    snoozed_until: datetime | None
    snooze_reason: str | None
    threshold_version: str


class EpisodeEventOut(BaseModel):
    at: datetime
    kind: str
    actor: str
    from_state: str | None
    to_state: str | None
    detail: dict[str, object]


class EpisodeDetail(EpisodeOut):
    events: list[EpisodeEventOut]
