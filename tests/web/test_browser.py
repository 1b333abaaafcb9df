"""Chromium (Debian's, through Playwright): log in, see a new episode appear live, acknowledge
and resolve it, open the patient and see the charts render. Screenshots go to
``test-artifacts/``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.web import (
    PASSWORD,
    SITE_A,
    Server,
    World,
    crisis_through_alerts,
    enrolled_patient,
    user,
)

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = [
    pytest.mark.db,
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian chromium not installed"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    yield pg
    context.close()


def test_queue_to_patient(page: Page, server: Server, world: World) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    failed: list[str] = []
    # the event stream is cut when the page navigates away: not a failure
    page.on(
        "requestfailed", lambda r: None if r.url.endswith("/queue/events") else failed.append(r.url)
    )
    page.on("pageerror", lambda e: failed.append(str(e)))
    page.on(
        "console",
        lambda m: failed.append(m.text) if "Content Security Policy" in m.text else None,
    )

    patient = enrolled_patient(server.conninfo, SITE_A, "Browser Patient")
    page.goto(f"{server.url}/queue")
    page.fill("input[name=username]", user("care_manager", SITE_A))
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_contain_text("My queue")
    expect(page.locator("#live-state")).to_have_text("live", timeout=10_000)

    # a BP crisis and its repeat go through alerts/ as ingest would run it
    crisis_through_alerts(server.conninfo, patient)
    with psycopg.connect(server.conninfo) as conn:
        found = conn.execute(
            "SELECT id FROM alert_episodes WHERE patient_id = %s AND family = 'bp_crisis'",
            (patient,),
        ).fetchone()
    assert found is not None
    eid = found[0]
    row = page.locator(f"#ep-{eid}")
    expect(row).to_be_visible(timeout=10_000)
    expect(row).to_contain_text("184/102")
    expect(row).to_contain_text("Browser Patient")
    page.screenshot(path=str(ARTIFACTS / "queue.png"), full_page=True)

    row.locator("button.ack").click()
    expect(row).to_contain_text("acknowledged")
    row.locator("button.time").click()
    dialog = page.locator("#dlg-time")
    dialog.locator("input[name=minutes]").fill("12")
    dialog.locator("input[name=interactive]").check()
    dialog.locator("button[type=submit]").click()
    expect(page.locator("#flash")).to_contain_text("Logged 12 min incl. live interactive")
    row.locator("button.resolve").click()
    dialog = page.locator("#dlg-resolve")
    dialog.locator("select[name=outcome]").select_option("clinician_notified")
    dialog.locator("input[name=note]").fill("told Dr X")
    dialog.locator("button[type=submit]").click()
    expect(page.locator("#flash")).to_contain_text("resolve done")
    # once resolved it leaves the queue (the live refresh drops the row)
    expect(page.locator(f"#ep-{eid}")).to_have_count(0, timeout=10_000)
    with psycopg.connect(server.conninfo) as conn:
        row_state = conn.execute(
            "SELECT state, outcome, note FROM alert_episodes WHERE id = %s", (eid,)
        ).fetchone()
    assert row_state == ("resolved", "clinician_notified", "told Dr X")

    page.goto(f"{server.url}/patients/{patient}?range=30d")
    expect(page.locator("body")).to_have_attribute("data-charts-rendered", "4")
    expect(page.locator("#chart-bp canvas")).to_have_count(1)
    expect(page.locator("#chart-bp")).to_have_attribute("data-rendered", "chart")
    expect(page.locator("#chart-weight")).to_have_attribute("data-rendered", "chart")
    expect(page.locator("#kpi-bp7")).to_contain_text("mmHg")
    expect(page.locator("#readings")).to_contain_text("184/102 mmHg")
    expect(page.locator("#kpi-time")).to_contain_text("12 min")
    page.screenshot(path=str(ARTIFACTS / "patient.png"), full_page=True)

    page.click("a[data-range='1y']")
    expect(page.locator("body")).to_have_attribute("data-charts-rendered", "4")
    assert not failed, failed


def test_api_docs_render_offline(page: Page, server: Server) -> None:
    external: list[str] = []
    page.on(
        "request",
        lambda r: external.append(r.url) if not r.url.startswith(server.url) else None,
    )
    page.goto(f"{server.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("CareBeacon")
    expect(page.locator("#operations-tag-FHIR_R4")).to_be_visible()
    assert not external, external
