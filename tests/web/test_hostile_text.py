"""SQL injection and XSS in every free-text field are inert: stored verbatim, never executed,
rendered as text in the pages (parsed HTML, and Chromium's DOM), carried verbatim in JSON and
FHIR, and neutralised as spreadsheet formulas in the billing CSV.

Everything goes in through the real entry points (admin API, care-manager API and the queue's
HTML forms) on a site of its own (``wt-site-x``), so the other web tests' queues are untouched.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from urllib.parse import quote

import psycopg
import pytest

from tests.support.web import PASSWORD, SITE_A, Client, Server, insert_episode, insert_reading, user
from web._billing_routes import csv_cell

pytestmark = pytest.mark.db

SITE_X = "wt-site-x"
XSS = (
    "<script>window.__xss=1</script>"
    '"><img src=x onerror="window.__xss=2">'
    "'><svg onload=window.__xss=3></textarea><!--"
)
SQLI = "'); DROP TABLE patients; -- ' OR '1'='1"
FORMAT = "%s {0} {{7*7}}"


def hostile(field: str) -> str:
    text = f"{field}: {XSS}{SQLI} {FORMAT}"
    assert len(text) <= 200  # the shortest limit of the fields below
    return text


# fields with short limits, or that reach the billing CSV (formula injection)
MRN = '=HYPERLINK("http://x")<b>\'OR 1=1--'  # 64 characters at most
PRACTITIONER = "@SUM(1+1)*cmd|' /C calc'!A0" + XSS
DEVICE_ID = "dev-<img src=x onerror=alert(1)>'--"
DEVICE_TYPE = "<b>type</b>'; DROP TABLE devices;--"
FIELDS = {
    name: hostile(name)
    for name in (
        "site name",
        "program name",
        "user name",
        "patient name",
        "manufacturer",
        "model",
        "gateway label",
        "explanation",
        "threshold reason",
        "care-time note",
        "form care-time note",
        "snooze reason",
        "resolution note",
        "form resolution note",
        "acknowledge note",
    )
}


@dataclass(frozen=True)
class Hostile:
    patient: uuid.UUID
    open_episode: uuid.UUID
    snoozed: uuid.UUID
    resolved: uuid.UUID
    form_resolved: uuid.UUID
    cm: str


@pytest.fixture(scope="module")
def hostile_world(server: Server) -> Iterator[Hostile]:
    from lab.seed import seed_demo

    seed_demo(server.conninfo, site_id="wt-site-h", program_id="wt-htn", password=PASSWORD)
    made: list[Client] = []

    def client(name: str) -> Client:
        made.append(Client(server.url, name))
        return made[-1]

    admin = client(user("admin", "wt-site-h"))
    ok = admin.post(
        "/api/sites", json={"id": SITE_X, "name": FIELDS["site name"], "timezone": "UTC"}
    )
    assert ok.status_code == 201, ok.text
    admin = client(user("admin", "wt-site-h"))  # a fresh session works at the new site
    ok = admin.post(
        "/api/programs",
        json={"id": "wt-x-htn", "name": FIELDS["program name"], "template": "hypertension"},
    )
    assert ok.status_code == 201, ok.text
    cm = "wt.x.cm"
    ok = admin.post(
        "/api/users",
        json={
            "username": cm,
            "display_name": FIELDS["user name"],
            "role": "care_manager",
            "password": PASSWORD,
            "sites": [SITE_X],
        },
    )
    assert ok.status_code == 201, ok.text
    ok = admin.post(
        "/api/patients",
        json={"display_name": FIELDS["patient name"], "mrn": MRN, "site_id": SITE_X},
    )
    assert ok.status_code == 201, ok.text
    patient = uuid.UUID(ok.json()["id"])
    now = datetime.now(UTC)
    ok = admin.post(
        f"/api/patients/{patient}/enrollments",
        json={
            "program_id": "wt-x-htn",
            "enrolled_at": (now - timedelta(days=40)).isoformat(),
            "consent_given_at": (now - timedelta(days=40)).isoformat(),
            "billing_practitioner": PRACTITIONER,
        },
    )
    assert ok.status_code == 201, ok.text
    ok = admin.post(
        "/api/devices",
        json={
            "id": DEVICE_ID,
            "type": DEVICE_TYPE,
            "manufacturer": FIELDS["manufacturer"],
            "model": FIELDS["model"],
        },
    )
    assert ok.status_code == 201, ok.text
    ok = admin.post(
        "/api/assignments",
        json={
            "device_id": DEVICE_ID,
            "patient_id": str(patient),
            "valid_from": (now - timedelta(days=40)).isoformat(),
        },
    )
    assert ok.status_code == 201, ok.text
    ok = admin.post(
        "/api/gateways",
        json={"id": "wt-x-gw", "label": FIELDS["gateway label"], "patient_ids": [str(patient)]},
    )
    assert ok.status_code == 201, ok.text
    ok = admin.post(
        f"/api/patients/{patient}/thresholds",
        json={
            "parameter": "bp_high.level1_systolic",
            "value": 150,
            "reason": FIELDS["threshold reason"],
        },
    )
    assert ok.status_code in (200, 201), ok.text
    with psycopg.connect(server.conninfo) as conn:
        for day in range(1, 12):
            insert_reading(
                conn,
                patient,
                now - timedelta(days=day, hours=1),
                {"systolic": 150, "diastolic": 90, "pulse": 70},
                device_id=DEVICE_ID,
                gateway_id="wt-x-gw",
            )
        episodes = [  # one active episode per family and patient
            insert_episode(
                conn, patient, SITE_X, family=f, rule_id=f, explanation=FIELDS["explanation"]
            )
            for f in ("bp_high", "bp_low", "bp_mean", "glucose_high")
        ]
    nurse = client(cm)
    open_, snoozed, resolved, form_resolved = episodes
    started = (now - timedelta(hours=2)).isoformat()
    for path, body in (
        (
            f"/api/patients/{patient}/time-entries",
            {"started_at": started, "minutes": 12, "interactive": True},
        ),
        (f"/api/episodes/{open_}/claim", {}),
        (f"/api/episodes/{open_}/acknowledge", {"note": FIELDS["acknowledge note"]}),
        (
            f"/api/episodes/{snoozed}/snooze",
            {"reason": FIELDS["snooze reason"], "until": (now + timedelta(hours=3)).isoformat()},
        ),
        (
            f"/api/episodes/{resolved}/resolve",
            {"outcome": "contacted_no_change", "note": FIELDS["resolution note"]},
        ),
    ):
        if "time-entries" in path:
            body["note"] = FIELDS["care-time note"]
        resp = nurse.post(path, json=body)
        assert resp.status_code in (200, 201), (path, resp.text)
    # the queue's HTML forms (htmx posts form fields, CSRF in the form)
    for path, form in (
        (
            f"/queue/patients/{patient}/time",
            {"minutes": "7", "note": FIELDS["form care-time note"]},
        ),
        (
            f"/queue/episodes/{form_resolved}/resolve",
            {"outcome": "contacted_no_change", "note": FIELDS["form resolution note"]},
        ),
    ):
        resp = nurse.post(path, data=form, headers={"HX-Request": "true"})
        assert resp.status_code == 200, (path, resp.text)
    yield Hostile(patient, open_, snoozed, resolved, form_resolved, cm)
    for c in made:
        c.close()


# --- stored verbatim, never executed ----------------------------------------------------------


def test_every_field_is_stored_verbatim(server: Server, hostile_world: Hostile) -> None:
    h = hostile_world
    checks = [
        ("SELECT name FROM sites WHERE id = %s", SITE_X, FIELDS["site name"]),
        ("SELECT name FROM programs WHERE id = %s", "wt-x-htn", FIELDS["program name"]),
        ("SELECT display_name FROM web_users WHERE username = %s", h.cm, FIELDS["user name"]),
        ("SELECT display_name FROM patients WHERE id = %s", h.patient, FIELDS["patient name"]),
        ("SELECT mrn FROM patients WHERE id = %s", h.patient, MRN),
        (
            "SELECT billing_practitioner FROM enrollments WHERE patient_id = %s",
            h.patient,
            PRACTITIONER,
        ),
        ("SELECT type FROM devices WHERE id = %s", DEVICE_ID, DEVICE_TYPE),
        ("SELECT manufacturer FROM devices WHERE id = %s", DEVICE_ID, FIELDS["manufacturer"]),
        ("SELECT model FROM devices WHERE id = %s", DEVICE_ID, FIELDS["model"]),
        ("SELECT label FROM gateways WHERE id = %s", "wt-x-gw", FIELDS["gateway label"]),
        (
            "SELECT snooze_reason FROM alert_episodes WHERE id = %s",
            h.snoozed,
            FIELDS["snooze reason"],
        ),
        ("SELECT note FROM alert_episodes WHERE id = %s", h.resolved, FIELDS["resolution note"]),
        (
            "SELECT note FROM alert_episodes WHERE id = %s",
            h.form_resolved,
            FIELDS["form resolution note"],
        ),
    ]
    with psycopg.connect(server.conninfo) as conn:
        for sql, key, expected in checks:
            row = conn.execute(sql, (key,)).fetchone()
            assert row is not None, sql
            assert row[0] == expected, sql
        notes = {
            r[0]
            for r in conn.execute(
                "SELECT note FROM care_time_entries WHERE patient_id = %s", (h.patient,)
            )
        }
        assert notes == {FIELDS["care-time note"], FIELDS["form care-time note"]}
        reasons = [
            r[0]
            for r in conn.execute(
                "SELECT reason FROM alert_thresholds WHERE patient_id = %s", (h.patient,)
            )
        ]
        assert reasons == [FIELDS["threshold reason"]]


def test_sql_in_fields_and_filters_is_never_executed(
    server: Server, hostile_world: Hostile, clients: dict[str, Client]
) -> None:
    with psycopg.connect(server.conninfo) as conn:
        for table in ("patients", "devices", "web_users", "readings", "alert_episodes"):
            assert conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (table,)
        patients = conn.execute("SELECT count(*) FROM patients").fetchone()
    assert patients is not None
    assert patients[0] >= 1
    admin = Client(server.url, user("admin", "wt-site-h"))
    try:
        started = time.monotonic()
        for url, total in (
            ("/api/patients?mrn=" + quote("' OR '1'='1"), 0),
            ("/api/patients?mrn=" + quote("x'; SELECT pg_sleep(3); --"), 0),
            ("/api/patients?mrn=" + quote(MRN), 1),  # exact match: the hostile MRN itself
            ("/api/devices?type=" + quote("' OR 1=1 --"), 0),
            ("/api/devices?type=" + quote(DEVICE_TYPE), 1),
            ("/api/programs?template=" + quote("x' OR '1'='1"), 0),
            ("/api/audit?outcome=" + quote("' OR '1'='1"), 0),
        ):
            resp = admin.get(url)
            assert resp.status_code == 200, (url, resp.text)
            assert resp.json()["total"] == total, url
        assert time.monotonic() - started < 2.5  # no pg_sleep ran
        assert admin.get("/patients/by-mrn/" + quote("' OR '1'='1", safe="")).status_code == 404
        fhir = admin.get("/fhir/Observation?patient=" + quote("' OR 1=1 --"))
        assert fhir.status_code == 400
        assert fhir.json()["resourceType"] == "OperationOutcome"
    finally:
        admin.close()


# --- rendered as text ---------------------------------------------------------------------------


class _Page(HTMLParser):
    """Tags, attributes and text of a page, as a browser's tokenizer reads them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.chunks: list[str] = []
        self.feed(html)
        self.close()
        self.text = "".join(self.chunks)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)


def assert_inert(html: str, shown: list[str]) -> None:
    page = _Page(html)
    handlers = [(t, a) for t, attrs in page.tags for a in attrs if a.lower().startswith("on")]
    assert not handlers, handlers
    for tag, attrs in page.tags:
        if tag == "script":  # only our own files, or JSON data
            assert (attrs.get("src") or "").startswith("/static/") or (
                attrs.get("type") == "application/json"
            ), attrs
        assert not (tag == "img" and attrs.get("src") == "x")
        assert tag not in ("svg", "textarea"), tag
    for text in shown:  # verbatim: not markup, and no template evaluated "{{7*7}}"
        assert text in page.text, text[:40]


def test_the_html_check_catches_markup() -> None:
    """``assert_inert`` is not vacuous: the payload pasted unescaped fails it, escaped passes."""
    import html

    with pytest.raises(AssertionError):
        assert_inert(f"<p>{XSS}</p>", [])
    with pytest.raises(AssertionError):
        assert_inert(f'<p title="{FIELDS["model"]}">x</p>', [])
    assert_inert(f"<p>{html.escape(FIELDS['model'])}</p>", [FIELDS["model"]])


def test_queue_page_renders_hostile_text_as_text(server: Server, hostile_world: Hostile) -> None:
    cm = Client(server.url, hostile_world.cm)
    try:
        page = cm.get("/queue", headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert str(hostile_world.open_episode) in page.text
        assert_inert(
            page.text,
            [
                FIELDS["patient name"],
                MRN,
                FIELDS["site name"],
                FIELDS["explanation"],
                FIELDS["user name"],
            ],
        )
        rows = cm.get("/queue/rows", headers={"Accept": "text/html", "HX-Request": "true"})
        assert rows.status_code == 200
        assert_inert(rows.text, [FIELDS["patient name"], FIELDS["explanation"]])
    finally:
        cm.close()


def test_patient_page_renders_hostile_text_as_text(server: Server, hostile_world: Hostile) -> None:
    cm = Client(server.url, hostile_world.cm)
    try:
        page = cm.get(f"/patients/{hostile_world.patient}", headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert_inert(
            page.text,
            [
                FIELDS["patient name"],
                MRN,
                FIELDS["site name"],
                FIELDS["program name"],
                FIELDS["explanation"],
                FIELDS["resolution note"],
                FIELDS["threshold reason"],
                FIELDS["manufacturer"],
                FIELDS["model"],
                DEVICE_ID,
                DEVICE_TYPE,
                FIELDS["gateway label"],
            ],
        )
        chart = page.text.split('id="chart-data">', 1)[1].split("</script>", 1)[0]
        assert "<" not in chart.replace("<\\/", "")  # the embedded JSON cannot open a tag
    finally:
        cm.close()


def test_billing_page_renders_hostile_text_as_text(server: Server, hostile_world: Hostile) -> None:
    admin = Client(server.url, user("admin", "wt-site-h"))
    try:
        page = admin.get(f"/billing?site_id={SITE_X}", headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert_inert(page.text, [FIELDS["site name"], MRN])
    finally:
        admin.close()


def test_reflected_input_is_escaped(server: Server, clients: dict[str, Client]) -> None:
    anonymous = clients["anonymous"]
    target = "/patients/x?range=" + quote(XSS)
    page = anonymous.get(target, headers={"Accept": "text/html"})
    assert page.status_code in (401, 422)
    assert_inert(page.text, [])
    login = anonymous.get("/login?next=" + quote("/queue" + XSS))
    assert login.status_code == 200
    assert_inert(login.text, [])
    hidden = [a for t, a in _Page(login.text).tags if t == "input" and a.get("name") == "next"]
    assert hidden == [{"type": "hidden", "name": "next", "value": "/queue" + XSS}]


@pytest.mark.parametrize(
    "target",
    ["//evil.example/", "/\\evil.example/", "/\t/evil.example/", "https://evil.example/", "/%0a"],
)
def test_login_never_redirects_off_site(server: Server, target: str) -> None:
    """``/\\evil.example`` and ``/<tab>/evil.example`` would be ``//evil.example`` to a browser;
    Starlette's redirect percent-encodes them into local paths."""
    c = Client(server.url)
    try:
        page = c.http.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        resp = c.http.post(
            "/login",
            data={
                "username": user("care_manager", SITE_A),
                "password": PASSWORD,
                "csrf_token": token.group(1),
                "next": target,
            },
            headers={"Cookie": f"cb_login_csrf={page.cookies.get('cb_login_csrf')}"},
        )
        assert resp.status_code == 303
        location = resp.headers["location"]
        # a local path, which no browser reads as another host
        assert location.startswith("/")
        assert not location.startswith("//")
        assert location.isprintable()
        assert "\\" not in location
    finally:
        c.close()


# --- JSON, FHIR and CSV -------------------------------------------------------------------------


def test_api_and_fhir_carry_the_text_verbatim(server: Server, hostile_world: Hostile) -> None:
    h = hostile_world
    cm = Client(server.url, h.cm)
    try:
        patient = cm.get(f"/api/patients/{h.patient}").json()
        assert (patient["display_name"], patient["mrn"]) == (FIELDS["patient name"], MRN)
        entries = cm.get(f"/api/patients/{h.patient}/time-entries").json()["items"]
        assert {e["note"] for e in entries} == {
            FIELDS["care-time note"],
            FIELDS["form care-time note"],
        }
        resolved = cm.get(f"/api/episodes/{h.resolved}").json()
        assert resolved["note"] == FIELDS["resolution note"]
        fhir = cm.get(f"/fhir/Patient/{h.patient}")
        assert fhir.headers["content-type"].startswith("application/fhir+json")
        assert fhir.headers["x-content-type-options"] == "nosniff"
        body = fhir.json()
        (name,) = body["name"]
        assert name["text"] == FIELDS["patient name"]  # verbatim, as one text
        assert MRN in [i["value"] for i in body["identifier"]]
        devices = cm.get(f"/fhir/Device?patient={h.patient}").json()
        device = devices["entry"][0]["resource"]
        assert device["manufacturer"] == FIELDS["manufacturer"]
        assert device["identifier"][0]["value"] == DEVICE_ID
        assert device["id"].startswith("d-")  # not FHIR-legal as given: hashed
    finally:
        cm.close()


def test_billing_csv_neutralises_formulas(server: Server, hostile_world: Hostile) -> None:
    admin = Client(server.url, user("admin", "wt-site-h"))
    try:
        resp = admin.get(f"/billing/ledger.csv?site_id={SITE_X}")
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(resp.text)))
    finally:
        admin.close()
    mine = [r for r in rows if r["patient_id"] == str(hostile_world.patient)]
    assert mine
    for row in mine:
        assert row["mrn"] == "'" + MRN
        assert row["billing_practitioner"] == "'" + PRACTITIONER
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1+2", "'-1+2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("MRN-1", "MRN-1"),
        ("", ""),
        (12, 12),
        (None, None),
    ],
)
def test_csv_cell(value: object, written: object) -> None:
    assert csv_cell(value) == written


# --- a real browser runs none of it -------------------------------------------------------------


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.browser
@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian chromium not installed")
def test_chromium_runs_no_injected_script(server: Server, hostile_world: Hostile) -> None:
    from playwright.sync_api import Dialog, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
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
        try:
            page = browser.new_page()
            dialogs: list[str] = []

            def on_dialog(dialog: Dialog) -> None:
                dialogs.append(dialog.message)
                dialog.dismiss()

            page.on("dialog", on_dialog)
            page.goto(f"{server.url}/login")
            page.fill("input[name=username]", hostile_world.cm)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url("**/queue")
            for url in ("/queue", f"/patients/{hostile_world.patient}"):
                page.goto(server.url + url)
                page.wait_for_load_state("load")
                assert page.evaluate("typeof window.__xss") == "undefined", url
                injected = page.evaluate(
                    'document.querySelectorAll(\'[onerror],[onload],img[src="x"],svg,'
                    ' script:not([src]):not([type="application/json"])\').length'
                )
                assert injected == 0, url
                body = page.evaluate("document.body.innerText")
                assert FIELDS["patient name"] in body, url
            assert dialogs == []
        finally:
            browser.close()
