"""Issue 15, item 9 (web): thresholds a clinician cannot get wrong, shown with their effective
value, version and validity window; a future override is scheduled, never listed as active;
refusals are 422 naming the field. Real server, real database."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.web import SITE_A, Client, Server, enrolled_patient, user

pytestmark = pytest.mark.db

CLIN_A = user("clinician", SITE_A)


def _loc(resp: httpx.Response) -> list[Any]:
    assert resp.status_code == 422, resp.text
    errors = resp.json()["errors"]
    assert isinstance(errors, list), resp.text
    return list(errors[0]["loc"])


def test_field_errors_of_an_override_order(server: Server, clients: dict[str, Client]) -> None:
    pid = enrolled_patient(server.conninfo, SITE_A, "Threshold Fields", history_days=1)
    clin = clients[CLIN_A]
    url = f"/api/patients/{pid}/thresholds"
    unknown = clin.post(url, json={"parameter": "no_such.rule", "value": 1, "reason": "x"})
    assert _loc(unknown) == ["body", "parameter"]
    naive = clin.post(
        url,
        json={
            "parameter": "bp_high.level1_systolic",
            "value": 150,
            "reason": "x",
            "valid_from": "2030-01-01T00:00:00",
        },
    )
    assert _loc(naive) == ["body", "valid_from"]
    now = datetime.now(UTC)
    backwards = clin.post(
        url,
        json={
            "parameter": "bp_high.level1_systolic",
            "value": 150,
            "reason": "x",
            "valid_from": (now + timedelta(days=2)).isoformat(),
            "valid_until": (now + timedelta(days=1)).isoformat(),
        },
    )
    assert _loc(backwards) == ["body", "valid_until"]


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("bp_crisis.systolic", 0),  # put a critical "crisis" on 118/76
        ("bp_crisis.diastolic", 0),
        ("bp_crisis.systolic", 1800),  # would silence every crisis
        ("bp_crisis.systolic", 120),  # below its own clear band (a crisis at a normal BP)
        ("glucose_low.level1", -5),
    ],
)
def test_physiologically_impossible_overrides_are_refused(
    server: Server, clients: dict[str, Client], parameter: str, value: float
) -> None:
    """alerts.InvalidThreshold (alerts-rules) reaches the clinician as a 422 on ``value``; the
    value is never stored, and the effective threshold does not change."""
    pid = enrolled_patient(server.conninfo, SITE_A, "Threshold Ranges", history_days=1)
    clin = clients[CLIN_A]
    url = f"/api/patients/{pid}/thresholds"
    before = clin.get(url).json()
    resp = clin.post(url, json={"parameter": parameter, "value": value, "reason": "typo"})
    assert _loc(resp) == ["body", "value"]
    after = clin.get(url).json()
    assert after["effective"] == before["effective"]
    assert not [h for h in after["history"] if h["parameter"] == parameter]


def test_future_override_is_scheduled_not_active(
    server: Server, clients: dict[str, Client]
) -> None:
    pid = enrolled_patient(server.conninfo, SITE_A, "Threshold Future", history_days=1)
    clin = clients[CLIN_A]
    url = f"/api/patients/{pid}/thresholds"
    default = clin.get(url).json()["effective"]["bp_high"]["level1_systolic"]
    assert default["version_id"] is None
    now = datetime.now(UTC)
    current = clin.post(
        url,
        json={
            "parameter": "bp_high.level1_diastolic",
            "value": 95,
            "reason": "CKD, tighter now",
            "valid_until": (now + timedelta(days=30)).isoformat(),
        },
    )
    assert current.status_code == 201, current.text
    starts = now + timedelta(days=7)
    future = clin.post(
        url,
        json={
            "parameter": "bp_high.level1_systolic",
            "value": 150,
            "reason": "after the titration visit",
            "valid_from": starts.isoformat(),
        },
    )
    assert future.status_code == 201, future.text
    view = clin.get(url).json()
    systolic = view["effective"]["bp_high"]["level1_systolic"]
    assert systolic["value"] == default["value"]  # not yet
    assert systolic["version_id"] is None
    diastolic = view["effective"]["bp_high"]["level1_diastolic"]
    assert diastolic["value"] == 95
    assert diastolic["version_id"] == current.json()["id"]
    assert diastolic["valid_until"] is not None
    assert datetime.fromisoformat(diastolic["valid_until"]) > now + timedelta(days=29)
    status = {h["id"]: h["status"] for h in view["history"]}
    assert status[future.json()["id"]] == "scheduled"
    assert status[current.json()["id"]] == "active"

    panel = clin.get(f"/api/patients/{pid}/thresholds.html", headers={"Accept": "text/html"})
    assert panel.status_code == 200
    text = panel.text
    scheduled = re.search(r'<table class="thresholds-scheduled">.*?</table>', text, re.S)
    active = re.search(r'<table class="thresholds-active">.*?</table>', text, re.S)
    assert scheduled is not None
    assert "after the titration visit" in scheduled.group(0)
    assert starts.strftime("%Y-%m-%d") in scheduled.group(0)
    assert active is not None
    assert "after the titration visit" not in active.group(0)
    row = re.search(r'<tr data-parameter="bp_high.level1_diastolic">.*?</tr>', text, re.S)
    assert row is not None
    assert f"#{current.json()['id']}" in row.group(0)
    assert "open-ended" not in row.group(0)  # its window ends in 30 days
    default_row = re.search(r'<tr data-parameter="bp_high.level1_systolic">.*?</tr>', text, re.S)
    assert default_row is not None
    assert "template default" in default_row.group(0)

    page = clin.get(f"/patients/{pid}", headers={"Accept": "text/html"}).text
    assert f'hx-get="/api/patients/{pid}/thresholds.html"' in page
    assert starts.strftime("%Y-%m-%d") in page  # the window of the scheduled order is shown


def test_panel_is_refused_for_another_site(server: Server, clients: dict[str, Client]) -> None:
    pid = enrolled_patient(server.conninfo, SITE_A, "Threshold Foreign", history_days=1)
    other = clients[user("clinician", "wt-site-b")]
    assert other.get(f"/api/patients/{pid}/thresholds.html").status_code == 403
