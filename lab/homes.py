"""Provisioned homes: a patient at home with their gateway and devices, as the product sees them.

One home is a patient of a site of care, enrolled in a program (with consent, unless said
otherwise), served by a home gateway, with devices assigned to them for the enrollment's
period: rows in ``sites``, ``programs``, ``patients``, ``enrollments``, ``gateways``,
``gateway_patients``, ``devices`` and ``device_assignments``. The demo, the benchmarks, the
generated population and the tests all provision their homes here::

    with psycopg.connect(conninfo) as conn:
        home = provision_home(
            conn,
            HomeSpec(
                site=Site("site-a", "Site A"),
                program=Program("htn", "Hypertension", "hypertension"),
                enrolled_at=since,
                gateway_id="gw-1",
                devices=(Device("cuff-1", "blood_pressure_monitor"),),
            ),
            broker_login=True,  # the gateway will connect: a broker login, password returned
        )

:func:`provision_home` writes in the caller's transaction (it never commits);
:func:`provision_home_async` does the same on an async connection (the alert tests work in one
rolled-back transaction); :func:`provision_homes_bulk` writes thousands with COPY (the
generated population). Sites and programs are created when missing and left as they are
otherwise.

:func:`gateway_running` runs the real gateway (:func:`gateway.service.run`, unmodified) on an
emulated radio (:class:`lab.emulation.EmulatedAir`): the demo's homes and the end-to-end tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:
    from gateway.clock import ClockSync
    from gateway.config import GatewayConfig
    from lab.emulation import EmulatedAir

__all__ = [
    "Device",
    "HomeSpec",
    "Program",
    "ProvisionedHome",
    "Site",
    "gateway_running",
    "provision_home",
    "provision_home_async",
    "provision_homes_bulk",
]


@dataclass(frozen=True, slots=True)
class Site:
    """A site of care (created when missing)."""

    id: str
    name: str
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class Program:
    """A monitoring program; ``template`` names the alert rules' template (created when missing)."""

    id: str
    name: str
    template: str


@dataclass(frozen=True, slots=True)
class Device:
    """A home device; ``type`` as the gateway reports it (``blood_pressure_monitor``,
    ``weight_scale``, ``glucose_meter``…)."""

    id: str
    type: str
    manufacturer: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HomeSpec:
    """What to provision. The devices are assigned to the patient from ``enrolled_at`` until
    ``ended_at``; consent is given at enrollment unless ``consent`` is false. A gateway starts
    offline and never heard from unless ``gateway_online`` / ``gateway_status`` /
    ``status_at`` say otherwise."""

    site: Site
    program: Program
    enrolled_at: datetime
    display_name: str = "Test Patient"
    patient_id: uuid.UUID = field(default_factory=uuid.uuid4)
    mrn: str | None = None
    birth_date: date | None = None
    risk_tier: int = 2
    consent: bool = True
    ended_at: datetime | None = None
    billing_practitioner: str | None = None
    gateway_id: str | None = None
    gateway_label: str | None = None
    gateway_online: bool = False
    gateway_status: Mapping[str, Any] | None = None
    status_at: datetime | None = None
    devices: tuple[Device, ...] = ()


@dataclass(frozen=True, slots=True)
class ProvisionedHome:
    """The ids of a provisioned home; ``gateway_password`` when a broker login was made."""

    patient_id: uuid.UUID
    gateway_id: str | None
    device_ids: tuple[str, ...]
    gateway_password: str | None = None


_SITE = "INSERT INTO sites (id, name, timezone) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"
_PROGRAM = "INSERT INTO programs (id, name, template) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"
_PATIENT = (
    "INSERT INTO patients (id, display_name, mrn, birth_date, site_id, risk_tier)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
)
_ENROLLMENT = (
    "INSERT INTO enrollments (patient_id, program_id, site_id, enrolled_at, ended_at,"
    " consent_given_at, billing_practitioner) VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
# a gateway may serve a household: the second patient's home reuses it
_GATEWAY = (
    "INSERT INTO gateways (id, label, status, online, status_at) VALUES (%s, %s, %s, %s, %s)"
    " ON CONFLICT (id) DO NOTHING"
)
_GATEWAY_PATIENT = (
    "INSERT INTO gateway_patients (gateway_id, patient_id) VALUES (%s, %s) ON CONFLICT DO NOTHING"
)
_DEVICE = "INSERT INTO devices (id, type, manufacturer, model) VALUES (%s, %s, %s, %s)"
_ASSIGNMENT = (
    "INSERT INTO device_assignments (device_id, patient_id, valid_from, valid_to)"
    " VALUES (%s, %s, %s, %s)"
)

_Row = tuple[Any, ...]


def _rows(spec: HomeSpec) -> list[tuple[str, _Row]]:
    """The statements that provision ``spec``, in order (each table after the ones it names)."""
    out: list[tuple[str, _Row]] = [
        (_SITE, (spec.site.id, spec.site.name, spec.site.timezone)),
        (_PROGRAM, (spec.program.id, spec.program.name, spec.program.template)),
        (
            _PATIENT,
            (
                spec.patient_id,
                spec.display_name,
                spec.mrn,
                spec.birth_date,
                spec.site.id,
                spec.risk_tier,
            ),
        ),
        (
            _ENROLLMENT,
            (
                spec.patient_id,
                spec.program.id,
                spec.site.id,
                spec.enrolled_at,
                spec.ended_at,
                spec.enrolled_at if spec.consent else None,
                spec.billing_practitioner,
            ),
        ),
    ]
    if spec.gateway_id is not None:
        status = (
            json.dumps(spec.gateway_status, separators=(",", ":"))
            if spec.gateway_status is not None
            else None
        )
        out.append(
            (
                _GATEWAY,
                (
                    spec.gateway_id,
                    spec.gateway_label,
                    status,
                    spec.gateway_online,
                    spec.status_at,
                ),
            )
        )
        out.append((_GATEWAY_PATIENT, (spec.gateway_id, spec.patient_id)))
    for device in spec.devices:
        out.append((_DEVICE, (device.id, device.type, device.manufacturer, device.model)))
        out.append((_ASSIGNMENT, (device.id, spec.patient_id, spec.enrolled_at, spec.ended_at)))
    return out


def _provisioned(spec: HomeSpec, password: str | None = None) -> ProvisionedHome:
    return ProvisionedHome(
        spec.patient_id, spec.gateway_id, tuple(d.id for d in spec.devices), password
    )


def provision_home(
    conn: psycopg.Connection[Any], spec: HomeSpec, *, broker_login: bool = False
) -> ProvisionedHome:
    """Provision one home in the caller's transaction. With ``broker_login``, the gateway also
    gets a login on the project's Mosquitto (:func:`carebeacon.broker.provision_gateway_credentials`,
    a fresh password, returned): the broker takes it once it has reloaded its password file."""
    if broker_login and spec.gateway_id is None:
        raise ValueError("a broker login needs a gateway")
    with conn.cursor() as cur:
        for statement, params in _rows(spec):
            cur.execute(statement, params)
    password = None
    if broker_login and spec.gateway_id is not None:
        from carebeacon.broker import provision_gateway_credentials

        password = secrets.token_urlsafe(18)
        provision_gateway_credentials(spec.gateway_id, password)
    return _provisioned(spec, password)


async def provision_home_async(
    conn: psycopg.AsyncConnection[Any], spec: HomeSpec
) -> ProvisionedHome:
    """:func:`provision_home` on an async connection, in the caller's transaction."""
    async with conn.cursor() as cur:
        for statement, params in _rows(spec):
            await cur.execute(statement, params)
    return _provisioned(spec)


def _copy(conn: psycopg.Connection[Any], table: str, columns: str, rows: Iterable[_Row]) -> int:
    written = 0
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            written += 1
    return written


def provision_homes_bulk(
    conn: psycopg.Connection[Any], specs: Sequence[HomeSpec]
) -> dict[str, int]:
    """Provision many homes with COPY, in the caller's transaction: the same rows as
    :func:`provision_home` (each gateway serves one home here). Returns the rows written per
    table (sites and programs not counted)."""
    with conn.cursor() as cur:
        for site in {s.site for s in specs}:
            cur.execute(_SITE, (site.id, site.name, site.timezone))
        for program in {s.program for s in specs}:
            cur.execute(_PROGRAM, (program.id, program.name, program.template))
    homes = [_rows(spec) for spec in specs]

    def rows_of(statement: str) -> list[_Row]:
        return [params for home in homes for sql, params in home if sql == statement]

    return {
        "patients": _copy(
            conn,
            "patients",
            "id, display_name, mrn, birth_date, site_id, risk_tier",
            rows_of(_PATIENT),
        ),
        "enrollments": _copy(
            conn,
            "enrollments",
            "patient_id, program_id, site_id, enrolled_at, ended_at, consent_given_at,"
            " billing_practitioner",
            rows_of(_ENROLLMENT),
        ),
        "gateways": _copy(
            conn, "gateways", "id, label, status, online, status_at", rows_of(_GATEWAY)
        ),
        "gateway_patients": _copy(
            conn, "gateway_patients", "gateway_id, patient_id", rows_of(_GATEWAY_PATIENT)
        ),
        "devices": _copy(conn, "devices", "id, type, manufacturer, model", rows_of(_DEVICE)),
        "device_assignments": _copy(
            conn,
            "device_assignments",
            "device_id, patient_id, valid_from, valid_to",
            rows_of(_ASSIGNMENT),
        ),
    }


@contextlib.asynccontextmanager
async def gateway_running(
    config: GatewayConfig, air: EmulatedAir, *, clock_sync: ClockSync | None = None
) -> AsyncIterator[asyncio.Task[None]]:
    """The real gateway (:func:`gateway.service.run`, unmodified) with the emulated radio's
    bleak backends injected; stopped (drained, as on SIGTERM) when the block ends. The
    emulated devices keep this machine's time, so by default the gateway is told its clock is
    synchronised (``clock_sync``: the kernel's answer, injected)."""
    from gateway.clock import TIME_OK
    from gateway.clock import ClockSync as _ClockSync
    from gateway.service import run

    if clock_sync is None:
        clock_sync = _ClockSync(adjtimex=lambda: TIME_OK)

    stop = asyncio.Event()
    task = asyncio.create_task(
        run(
            config,
            scanner_backend=air.scanner_backend,
            client_backend=air.client_backend,
            stop=stop,
            clock_sync=clock_sync,
        )
    )
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
