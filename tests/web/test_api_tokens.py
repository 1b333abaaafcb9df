"""Issue 17, finding 5: the life of an API token. It is for oneself (an admin's token for
another user is an explicit, audited impersonation), it expires by default (a setting of the
app), never in the past, and a new password or another role revokes it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from carebeacon.settings import Settings
from tests.support.web import Client, Server, serving, user
from tests.web.conftest import Home17
from web.app import create_app

pytestmark = pytest.mark.db

NewClient = Callable[[str | None], Client]


def _new_user(admin: Client, site: str, role: str = "care_manager") -> tuple[int, str]:
    name = f"wt.tok.{uuid.uuid4().hex[:8]}"
    made = admin.post(
        "/api/users",
        json={
            "username": name,
            "display_name": "Token Tester",
            "role": role,
            "password": "a-long-password-1",
            "sites": [site],
        },
    )
    assert made.status_code == 201, made.text
    return int(made.json()["id"]), name


def _own_token(new_client: NewClient, name: str) -> str:
    c = new_client(None)
    c.login(name, "a-long-password-1")
    me = c.get("/api/me").json()
    made = c.post(f"/api/users/{me['id']}/tokens", json={"name": "mine"})
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


def _bearer(new_client: NewClient, token: str) -> Client:
    c = new_client(None)
    c.http.headers["Authorization"] = f"Bearer {token}"
    return c


def test_a_token_expires_by_default_and_never_in_the_past(
    homes17: dict[str, Home17], new_client: NewClient
) -> None:
    cm = new_client(user("care_manager", homes17["a"].site))
    me = cm.get("/api/me").json()
    made = cm.post(f"/api/users/{me['id']}/tokens", json={"name": "no expiry given"})
    assert made.status_code == 201, made.text
    expires = datetime.fromisoformat(made.json()["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=90))) < timedelta(minutes=5)
    for past in (datetime.now(UTC) - timedelta(minutes=1), datetime(2020, 1, 1, tzinfo=UTC)):
        refused = cm.post(
            f"/api/users/{me['id']}/tokens",
            json={"name": "already expired", "expires_at": past.isoformat()},
        )
        assert refused.status_code == 422, refused.text
        assert [e["loc"] for e in refused.json()["errors"]] == [["body", "expires_at"]]


def test_the_default_lifetime_is_a_setting_of_the_app(
    settings: Settings, server: Server, homes17: dict[str, Home17]
) -> None:
    app = create_app(
        settings,
        conninfo=server.conninfo,
        provision_gateway=lambda gw, pw: None,
        token_lifetime=timedelta(days=7),
    )
    with serving(app) as url:
        cm = Client(url, user("care_manager", homes17["a"].site))
        try:
            me = cm.get("/api/me").json()
            made = cm.post(f"/api/users/{me['id']}/tokens", json={"name": "a week"})
        finally:
            cm.close()
    assert made.status_code == 201, made.text
    expires = datetime.fromisoformat(made.json()["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=5)


def test_a_token_for_another_user_is_an_explicit_audited_impersonation(
    homes17: dict[str, Home17], new_client: NewClient
) -> None:
    site = homes17["a"].site
    admin = new_client(user("admin", site))
    uid, name = _new_user(admin, site)
    plain = admin.post(f"/api/users/{uid}/tokens", json={"name": "for someone else"})
    assert plain.status_code == 403, plain.text
    cm = new_client(user("care_manager", site))
    assert cm.post(f"/api/users/{uid}/tokens", json={"name": "x"}).status_code == 403
    assert (
        cm.post(f"/api/users/{uid}/tokens", json={"name": "x", "impersonation": True}).status_code
        == 403
    )
    made = admin.post(f"/api/users/{uid}/tokens", json={"name": "acting", "impersonation": True})
    assert made.status_code == 201, made.text
    assert _bearer(new_client, made.json()["token"]).get("/api/me").json()["username"] == name
    supervisor = new_client(user("supervisor", site))
    rows = supervisor.get(
        "/api/audit", params={"username": user("admin", site), "limit": 500}
    ).json()["items"]
    actions = [r["action"] for r in rows if r["resource"] == f"token/{made.json()['id']}"]
    assert actions == ["create api token (impersonation)"]


@pytest.mark.parametrize(
    "change", [{"password": "another-long-password"}, {"role": "clinician"}], ids=str
)
def test_a_new_password_or_role_revokes_the_users_tokens(
    homes17: dict[str, Home17], new_client: NewClient, change: dict[str, str]
) -> None:
    site = homes17["a"].site
    admin = new_client(user("admin", site))
    uid, name = _new_user(admin, site)
    bearer = _bearer(new_client, _own_token(new_client, name))
    assert bearer.get("/api/me").status_code == 200
    assert admin.patch(f"/api/users/{uid}", json={"display_name": "renamed"}).status_code == 200
    assert bearer.get("/api/me").status_code == 200  # a new name is no reason
    assert admin.patch(f"/api/users/{uid}", json=change).status_code == 200
    assert bearer.get("/api/me").status_code == 401
