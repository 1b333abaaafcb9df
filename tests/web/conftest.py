"""web/ fixtures: the patients, devices and gateway the web tests read, and logged-in clients
(one user per role on each of two sites, from the ``server`` fixture's ``seed_demo``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from lab.homes import Device, HomeSpec, Site, provision_home
from lab.seed import seed_demo
from tests.support.web import (
    PASSWORD,
    PROGRAM,
    SITE_A,
    SITE_B,
    Client,
    Server,
    World,
    enrolled_patient,
    insert_episode,
    insert_reading,
    user,
)


@pytest.fixture(scope="session")
def world(server: Server) -> World:
    now = datetime.now(UTC)
    cuff = ("blood_pressure_monitor", "Acme", "BP-1")
    with psycopg.connect(server.conninfo) as conn:
        patient_a = provision_home(
            conn,
            HomeSpec(
                site=Site(SITE_A, "Site A"),
                program=PROGRAM,
                enrolled_at=now - timedelta(days=400),
                display_name="Zed Testpatient-A",
                mrn="WT-MRN-A-1",
                birth_date=date(1950, 2, 3),
                billing_practitioner="dr-x",
                gateway_id="wt-gw-a",
                gateway_label="home A",
                gateway_online=True,
                devices=(Device("wt-dev-a", *cuff),),
            ),
        ).patient_id
        patient_b = provision_home(
            conn,
            HomeSpec(
                site=Site(SITE_B, "Site B"),
                program=PROGRAM,
                enrolled_at=now - timedelta(days=400),
                display_name="Yara Testpatient-B",
                mrn="WT-MRN-B-1",
                billing_practitioner="dr-x",
                devices=(Device("serial:WT/1", *cuff),),
            ),
        ).patient_id
        ids = []
        for day in range(10):
            t = now - timedelta(days=day, hours=1)
            ids.append(
                insert_reading(
                    conn,
                    patient_a,
                    t,
                    {"systolic": 150 + day, "diastolic": 90, "pulse": 70},
                    flags=("irregular_pulse",) if day == 0 else (),
                )
            )
        insert_reading(
            conn, patient_a, now - timedelta(hours=3), {"glucose": 110.0}, kind="glucose"
        )
        insert_reading(
            conn,
            patient_a,
            now - timedelta(hours=4),
            {"glucose": 300.0},
            kind="glucose",
            flags=("control_solution",),
        )
        insert_reading(
            conn, patient_a, now - timedelta(hours=2), {"body_weight": 80.0}, kind="weight"
        )
        insert_reading(
            conn, patient_a, now - timedelta(days=1, hours=2), {"body_weight": 79.0}, kind="weight"
        )
        insert_reading(
            conn,
            patient_b,
            now - timedelta(hours=1),
            {"systolic": 130, "diastolic": 80},
            device_id="serial:WT/1",
        )
    return World(patient_a, patient_b, "wt-dev-a", "wt-gw-a", ids)


@pytest.fixture(scope="session")
def clients(server: Server) -> Iterator[dict[str, Client]]:
    made: dict[str, Client] = {}
    for role in ("care_manager", "clinician", "supervisor", "admin"):
        for site in (SITE_A, SITE_B):
            name = user(role, site)
            made[name] = Client(server.url, name)
    made["anonymous"] = Client(server.url)
    yield made
    for c in made.values():
        c.close()


@pytest.fixture
def new_client(server: Server) -> Iterator[Callable[[str | None], Client]]:
    """Make clients inside a test; they are closed even when the test fails."""
    made: list[Client] = []

    def make(username: str | None = None) -> Client:
        made.append(Client(server.url, username))
        return made[-1]

    yield make
    for c in made:
        c.close()


@dataclass(frozen=True)
class Home17:
    """A site of care of the issue-17 tests: one enrolled patient at home with a device and a
    gateway, and an open episode."""

    site: str
    patient: uuid.UUID
    device: str
    gateway: str
    episode: uuid.UUID


@pytest.fixture(scope="session")
def homes17(server: Server) -> dict[str, Home17]:
    """Two sites of their own (``wt-s17-a``, ``wt-s17-b``), one user per role on each, so that
    what the issue-17 tests count in the audit log is theirs alone."""
    made = {}
    for key in ("a", "b"):
        site = f"wt-s17-{key}"
        seed_demo(
            server.conninfo, site_id=site, site_name=site, program_id="wt-htn", password=PASSWORD
        )
        device, gateway = f"wt-s17-dev-{key}", f"wt-s17-gw-{key}"
        patient = enrolled_patient(
            server.conninfo,
            site,
            f"S17 Patient {key.upper()}",
            history_days=1,
            gateway_id=gateway,
            devices=(Device(device, "blood_pressure_monitor"),),
        )
        with psycopg.connect(server.conninfo) as conn:
            episode = insert_episode(conn, patient, site)
        made[key] = Home17(site, patient, device, gateway, episode)
    return made
