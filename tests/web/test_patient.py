"""The patient page's numbers: ranges and downsampling, 7-day BP average, time in range, weight
change, and a chatty device that is averaged rather than drawn point by point."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.support.web import SITE_A, Client, Server, World, user

pytestmark = pytest.mark.db


def _chart_data(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', html)
    assert match is not None
    data: dict[str, Any] = json.loads(match.group(1))
    return data


@pytest.mark.parametrize(
    ("range_", "label", "bp_points"),
    [("7d", None, 7), ("30d", None, 10), ("90d", "6 h", 10), ("1y", "1 day", 10)],
)
def test_ranges(
    clients: dict[str, Client], world: World, range_: str, label: str | None, bp_points: int
) -> None:
    page = clients[user("clinician", SITE_A)].get(
        f"/patients/{world.patient_a}?range={range_}", headers={"Accept": "text/html"}
    )
    assert page.status_code == 200
    data = _chart_data(page.text)
    assert data["bucketed"] is (label is not None)
    assert len(data["series"]["bp"]["t"]) == bp_points
    if label:
        assert f"averaged per {label}" in page.text
    # the control-solution glucose (300) is never drawn
    assert 300.0 not in data["series"]["glucose"]["glucose"]


def test_kpis(clients: dict[str, Client], world: World) -> None:
    html = clients[user("clinician", SITE_A)].get(f"/patients/{world.patient_a}?range=30d").text
    # BP of the last 7 days: systolic 150..156 (mean 153), diastolic 90
    assert re.search(r'id="kpi-bp7">7-day BP average<b>153/90 mmHg', html)
    assert "100.0 %" in html  # one glucose of 110 mg/dL: in range
    assert "1-day +1.0 kg" in html  # 80.0 now, 79.0 a day before


def test_a_chatty_device_is_averaged(server: Server, clients: dict[str, Client]) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(server.conninfo) as conn:
        row = conn.execute(
            "INSERT INTO patients (display_name, site_id) VALUES ('Cgm Person', %s) RETURNING id",
            (SITE_A,),
        ).fetchone()
        assert row is not None
        pid = row[0]
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY readings (time, patient_id, code, value, unit, reading_id, device_id,"
                " gateway_id, received_at) FROM STDIN"
            ) as copy,
        ):
            for i in range(9000):  # one a minute for 6 days and more
                t = now - timedelta(minutes=i)
                copy.write_row(
                    (t, pid, "glucose", 100 + i % 50, "mg/dL", uuid.uuid4(), "cgm", "g", t)
                )
    page = clients[user("clinician", SITE_A)].get(f"/patients/{pid}?range=7d")
    assert page.status_code == 200
    assert "averaged per 30 min" in page.text
    assert len(_chart_data(page.text)["series"]["glucose"]["t"]) <= 7 * 48 + 1


def test_readings_table_lists_each_readings_values(
    clients: dict[str, Client], world: World
) -> None:
    html = clients[user("clinician", SITE_A)].get(f"/patients/{world.patient_a}?range=1y").text
    rows = re.findall(r"<td>([^<]*(?:mmHg|mg/dL|kg)[^<]*)</td>", html)
    # 10 BP readings (150..159 / 90, pulse 70), 2 glucose (one control solution), 2 weights
    assert sorted(r for r in rows if "mmHg" in r) == sorted(
        f"{150 + day}/90 mmHg · 70 /min" for day in range(10)
    )
    assert sorted(r for r in rows if "mg/dL" in r) == ["110 mg/dL", "300 mg/dL"]
    assert sorted(r for r in rows if r.endswith("kg")) == ["79.0 kg", "80.0 kg"]
