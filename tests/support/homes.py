"""The home of the ingest and reliability tests: a patient with consent (unless said otherwise)
in a hypertension program, their gateway, a BP cuff and a scale; provisioned with
:func:`lab.homes.provision_home`."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from lab.homes import Device, HomeSpec, Program, Site, provision_home

__all__ = ["Home", "register_home"]

SITE = Site("site-a", "Site A")
PROGRAM = Program("htn", "Hypertension", "hypertension")


@dataclass(frozen=True)
class Home:
    """One patient at home: a gateway, a BP cuff and a scale assigned to them, consent on file."""

    gateway_id: str
    patient_id: uuid.UUID
    cuff_id: str
    scale_id: str
    password: str | None = None  # the gateway's broker login, when it has one


def register_home(conninfo: str, *, consent: bool = True, broker_login: bool = False) -> Home:
    """A new home (fresh ids); with ``broker_login``, its gateway may log in to the project's
    Mosquitto (once the broker has reloaded its password file)."""
    tag = uuid.uuid4().hex[:8]
    home = Home(f"gw-{tag}", uuid.uuid4(), f"cuff-{tag}", f"scale-{tag}")
    with psycopg.connect(conninfo) as conn:
        provisioned = provision_home(
            conn,
            HomeSpec(
                site=SITE,
                program=PROGRAM,
                enrolled_at=datetime.now(UTC) - timedelta(days=30),
                patient_id=home.patient_id,
                display_name=f"Test Patient {tag}",
                consent=consent,
                gateway_id=home.gateway_id,
                devices=(
                    Device(home.cuff_id, "blood_pressure_monitor"),
                    Device(home.scale_id, "weight_scale"),
                ),
            ),
            broker_login=broker_login,
        )
    return dataclasses.replace(home, password=provisioned.gateway_password)
