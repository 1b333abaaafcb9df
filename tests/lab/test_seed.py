"""The seeding entry point other engineers call for the demo."""

from __future__ import annotations

import pytest

from lab.seed import main, seed_demo
from tests.support.web import Client, Server

pytestmark = pytest.mark.db


def test_seed_demo_is_idempotent_and_users_can_log_in(server: Server) -> None:
    first = seed_demo(server.conninfo, site_id="wt-demo", program_id="wt-htn")
    assert sorted(first.users.values()) == ["admin", "care_manager", "clinician", "supervisor"]
    assert set(first.passwords) == set(first.users)
    again = seed_demo(server.conninfo, site_id="wt-demo", program_id="wt-htn")
    assert again.users == first.users
    assert again.passwords == {}  # existing users keep their passwords
    c = Client(server.url)
    try:
        resp = c.login("cm.wt-demo", first.passwords["cm.wt-demo"])
        assert resp.status_code == 303
        assert c.get("/api/me").json()["sites"] == ["wt-demo"]
    finally:
        c.close()


def test_seed_command_takes_the_password_from_the_environment(
    server: Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    database = server.conninfo.rsplit("/", 1)[1]
    monkeypatch.setenv("CAREBEACON_PG_DATABASE", database)
    monkeypatch.setenv("CAREBEACON_SEED_PASSWORD", "env-chosen-password")
    assert main(["--site", "wt-cli", "--program", "wt-htn"]) == 0
    out = capsys.readouterr().out
    assert "cm.wt-cli" in out
    assert "env-chosen-password" in out
    assert main(["--site", "wt-cli", "--program", "wt-htn"]) == 0
    assert "(unchanged)" in capsys.readouterr().out
