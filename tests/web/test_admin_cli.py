"""Issue 16: ``carebeacon admin`` — users, API tokens, patients and gateways from the command
line, on the database named by ``--database`` (as every database-using subcommand takes it).

What the command line creates is checked through the product's other doors: a user it creates
logs in to the web app, a token it prints authenticates the API, a gateway it provisions logs in
to the real broker (and no longer does once deprovisioned)."""

from __future__ import annotations

import asyncio
import io
import ssl
import uuid

import aiomqtt
import httpx
import psycopg
import pytest

from carebeacon.cli import main
from carebeacon.settings import Settings
from tests.support.broker import Login, wait_login
from tests.support.web import SITE_A, SITE_B, Client, Server, World, audit_rows, user

pytestmark = pytest.mark.db


def _admin(server: Server, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    database = server.conninfo.rsplit("/", 1)[1]
    code = main(["admin", *args, "--database", database])
    out, err = capsys.readouterr()
    return code, out, err


def _rows(out: str) -> list[dict[str, str]]:
    header, *lines = out.splitlines()
    columns = header.split("\t")
    return [dict(zip(columns, line.split("\t"), strict=True)) for line in lines]


def _me(server: Server, token: str) -> httpx.Response:
    return httpx.get(f"{server.url}/api/me", headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize(
    "command",
    [
        ["migrate"],
        ["scheduler"],
        ["ingest"],
        ["web"],
        *(
            ["admin", *leaf]
            for leaf in (
                ["users", "list"],
                ["users", "create"],
                ["users", "disable"],
                ["tokens", "list"],
                ["tokens", "create"],
                ["tokens", "revoke"],
                ["patients", "list"],
                ["gateways", "list"],
                ["gateways", "provision"],
                ["gateways", "deprovision"],
            )
        ),
    ],
    ids=" ".join,
)
def test_every_database_command_takes_database(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, "--help"]) == 0
    assert "--database" in capsys.readouterr().out


def test_users_create_list_disable(
    server: Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"cli.{uuid.uuid4().hex[:6]}"
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-cli-password\n"))
    code, out, err = _admin(
        server,
        capsys,
        *("users", "create", name, "--role", "clinician", "--name", "Cli Clinician"),
        *("--site", SITE_A, "--password-stdin"),
    )
    assert code == 0, err
    assert "a-long-cli-password" not in out + err
    web = Client(server.url)
    try:
        web.login(name, "a-long-cli-password")
        me = web.get("/api/me")
        assert me.status_code == 200
        assert (me.json()["role"], me.json()["sites"]) == ("clinician", [SITE_A])
    finally:
        web.close()

    code, out, _ = _admin(server, capsys, "users", "list", "--site", SITE_A, "--role", "clinician")
    listed = {row["username"]: row for row in _rows(out)}
    assert listed[name]["sites"] == SITE_A
    assert listed[name]["disabled"] == "False"
    assert user("clinician", SITE_A) in listed
    assert user("clinician", SITE_B) not in listed
    code, out, _ = _admin(server, capsys, "users", "list", "--site", SITE_B)
    assert name not in {row["username"] for row in _rows(out)}

    # a generated password is printed once, on stdout's only line
    generated = f"cli.{uuid.uuid4().hex[:6]}"
    code, out, err = _admin(
        server,
        capsys,
        "users",
        "create",
        generated,
        "--role",
        "admin",
        "--name",
        "G",
        "--site",
        SITE_B,
    )
    assert code == 0, err
    password = out.splitlines()[-1]
    web = Client(server.url)
    try:
        web.login(generated, password)
        assert web.get("/api/me").json()["username"] == generated
    finally:
        web.close()

    code, _, err = _admin(
        server,
        capsys,
        "users",
        "create",
        name,
        "--role",
        "admin",
        "--name",
        "Again",
        "--site",
        SITE_A,
    )
    assert (code, "exists" in err) == (1, True)

    code, out, _ = _admin(server, capsys, "users", "disable", name)
    assert code == 0
    web = Client(server.url)
    try:
        web.login(name, "a-long-cli-password")
        assert web.get("/api/me").status_code == 401
    finally:
        web.close()
    code, out, _ = _admin(server, capsys, "users", "list", "--site", SITE_A)
    assert {row["username"]: row["disabled"] for row in _rows(out)}[name] == "True"
    assert any(
        row["detail"] == {"via": "cli"} for row in audit_rows(server.conninfo, action="create user")
    )


def test_tokens_create_list_revoke(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    owner = user("supervisor", SITE_A)
    code, out, err = _admin(
        server, capsys, "tokens", "create", owner, "--name", "cron", "--days", "2"
    )
    assert code == 0, err
    (token,) = out.splitlines()
    assert token.startswith("cbt_")
    me = _me(server, token)
    assert me.status_code == 200
    assert me.json()["username"] == owner

    code, out, _ = _admin(server, capsys, "tokens", "list", owner)
    (listed,) = [row for row in _rows(out) if row["name"] == "cron" and not row["revoked_at"]]
    assert token not in out
    code, out, _ = _admin(server, capsys, "tokens", "revoke", listed["id"])
    assert code == 0
    assert _me(server, token).status_code == 401
    code, _, err = _admin(server, capsys, "tokens", "revoke", "999999999")
    assert (code, "no token" in err) == (1, True)
    code, _, err = _admin(server, capsys, "tokens", "create", "nobody.here", "--name", "x")
    assert (code, "no user" in err) == (1, True)


def test_patients_list(server: Server, world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _admin(server, capsys, "patients", "list", "--site", SITE_A)
    assert code == 0
    rows = _rows(out)
    assert str(world.patient_a) in {row["id"] for row in rows}
    assert str(world.patient_b) not in {row["id"] for row in rows}
    assert {row["site_id"] for row in rows} == {SITE_A}
    code, out, _ = _admin(server, capsys, "patients", "list", "--mrn", "WT-MRN-B-1")
    assert [row["id"] for row in _rows(out)] == [str(world.patient_b)]


@pytest.mark.broker
def test_gateways_provision_list_deprovision(
    server: Server, world: World, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway_id = f"gwc-{uuid.uuid4().hex[:10]}"
    code, out, err = _admin(
        server,
        capsys,
        "gateways",
        "provision",
        gateway_id,
        "--label",
        "cli home",
        "--patient",
        str(world.patient_a),
    )
    assert code == 0, err
    (password,) = out.splitlines()
    login = Login(gateway_id, password)
    asyncio.run(wait_login(settings, login))
    code, out, _ = _admin(server, capsys, "gateways", "list")
    (row,) = [r for r in _rows(out) if r["id"] == gateway_id]
    assert (row["label"], row["patients"]) == ("cli home", "1")
    code, _, err = _admin(server, capsys, "gateways", "provision", gateway_id)
    assert (code, "exists" in err) == (1, True)
    code, _, err = _admin(server, capsys, "gateways", "provision", "Admin")
    assert (code, "reserved" in err) == (1, True)

    code, out, err = _admin(server, capsys, "gateways", "deprovision", gateway_id)
    assert code == 0, err
    with psycopg.connect(server.conninfo) as conn:
        assert (
            conn.execute("SELECT 1 FROM gateways WHERE id = %s", (gateway_id,)).fetchone() is None
        )
    assert asyncio.run(_refused_within(settings, login)), "the login still works"
    code, _, err = _admin(server, capsys, "gateways", "deprovision", gateway_id)
    assert (code, "no gateway" in err) == (1, True)


async def _refused_within(settings: Settings, login: Login, deadline: float = 10.0) -> bool:
    """Whether the broker refuses the login within the deadline (it rereads its files on
    SIGHUP)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while loop.time() < end:
        try:
            async with aiomqtt.Client(
                settings.mqtt_host,
                settings.mqtt_tls_port,
                username=login.gateway_id,
                password=login.password,
                tls_context=ssl.create_default_context(cafile=settings.mqtt_ca_file),
                protocol=aiomqtt.ProtocolVersion.V5,
            ):
                pass
        except aiomqtt.MqttError:
            return True
        await asyncio.sleep(0.3)
    return False
