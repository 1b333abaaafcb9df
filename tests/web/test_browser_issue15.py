"""Chromium (Debian's, through Playwright), issue 15 item 9 end to end: the resolve dialog of a
critical episode preselects nothing, offers no system-only outcome, refuses to close without a
note (the field is named) and has no Snooze; the patient page shows each threshold with its
version and validity window, a future override as scheduled."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.web import (
    PASSWORD,
    SITE_A,
    Client,
    Server,
    enrolled_patient,
    insert_episode,
    user,
)

CHROMIUM = "/usr/bin/chromium"

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
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert not errors, errors


def _login(page: Page, server: Server, username: str, path: str) -> None:
    page.goto(f"{server.url}{path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_critical_episode_dialog(page: Page, server: Server) -> None:
    patient = enrolled_patient(server.conninfo, SITE_A, "Browser Critical", history_days=1)
    with psycopg.connect(server.conninfo) as conn:
        eid = insert_episode(
            conn,
            patient,
            SITE_A,
            family="bp_crisis",
            rule_id="bp_crisis",
            severity="critical",
            priority=1,
            explanation="Blood pressure 172/114 confirmed by a repeat of 170/112 within 15 min",
        )
    _login(page, server, user("care_manager", SITE_A), "/queue")
    row = page.locator(f"#ep-{eid}")
    expect(row).to_be_visible(timeout=10_000)
    expect(row.locator("button.snooze")).to_have_count(0)
    row.locator("button.resolve").click()
    dialog = page.locator("#dlg-resolve")
    select = dialog.locator("select[name=outcome]")
    expect(select).to_have_value("")
    offered = select.locator("option").evaluate_all("(os) => os.map((o) => o.value)")
    assert "auto_cleared" not in offered
    assert "not_confirmed" not in offered
    select.select_option("referred_to_ed")
    dialog.locator("button[type=submit]").click()
    expect(page.locator("#flash")).to_contain_text("note:")
    expect(row).to_be_visible()
    row.locator("button.resolve").click()
    select.select_option("referred_to_ed")
    dialog.locator("input[name=note]").fill("sent to L&D triage")
    dialog.locator("button[type=submit]").click()
    expect(page.locator("#flash")).to_contain_text("resolve done")
    with psycopg.connect(server.conninfo) as conn:
        state = conn.execute(
            "SELECT state, outcome, note FROM alert_episodes WHERE id = %s", (eid,)
        ).fetchone()
    assert state == ("resolved", "referred_to_ed", "sent to L&D triage")


def test_patient_page_thresholds_with_version_and_window(page: Page, server: Server) -> None:
    patient = enrolled_patient(server.conninfo, SITE_A, "Browser Thresholds", history_days=2)
    clinician = Client(server.url, user("clinician", SITE_A))
    starts = datetime.now(UTC) + timedelta(days=10)
    try:
        resp = clinician.post(
            f"/api/patients/{patient}/thresholds",
            json={
                "parameter": "bp_high.level1_systolic",
                "value": 150,
                "reason": "after the titration visit",
                "valid_from": starts.isoformat(),
            },
        )
        assert resp.status_code == 201, resp.text
    finally:
        clinician.close()
    _login(page, server, user("clinician", SITE_A), f"/patients/{patient}")
    panel = page.locator("#thresholds-effective")
    expect(panel.locator("table.thresholds-effective")).to_be_visible(timeout=10_000)
    scheduled = panel.locator("table.thresholds-scheduled")
    expect(scheduled).to_contain_text("after the titration visit")
    expect(scheduled).to_contain_text(starts.strftime("%Y-%m-%d"))
    effective = panel.locator('tr[data-parameter="bp_high.level1_systolic"]')
    expect(effective).to_contain_text("template default")
    expect(panel.locator("table.thresholds-active")).to_have_count(0)
