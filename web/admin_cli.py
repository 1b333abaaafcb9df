"""``carebeacon admin``: the operator's command line for users, API tokens, patients and gateways.

It talks to the database directly (``--database``, default ``CAREBEACON_PG_DATABASE``), as the
operator of the installation: no web login, no site scoping. What it changes is audited like the
API's changes, with no user and ``{"via": "cli"}`` in the detail. Secrets (a generated password,
a token, a gateway's MQTT password) are printed once, on their own line, and never stored
readable. Listings print one tab-separated row per record with a header line.

    carebeacon admin users list [--site S] [--role R]
    carebeacon admin users create USERNAME --role R --name "Display" --site S [--password-stdin]
    carebeacon admin users disable USERNAME
    carebeacon admin tokens list USERNAME
    carebeacon admin tokens create USERNAME --name N [--days D]
    carebeacon admin tokens revoke TOKEN_ID
    carebeacon admin patients list [--site S] [--mrn M]
    carebeacon admin gateways list
    carebeacon admin gateways provision ID [--label L] [--patient UUID ...]
    carebeacon admin gateways deprovision ID
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

import aiomqtt
import psycopg
from psycopg.rows import dict_row

from carebeacon import broker
from carebeacon.settings import Settings
from web._admin._common import ID_PATTERN
from web._admin.gateways import clear_retained_topics, deprovision, reserved_gateway_id
from web._audit import audit
from web._db import Conn
from web._passwords import hash_password, new_token, token_digest
from web._principal import Role

__all__ = ["main"]

_USERNAME = re.compile(r"^[a-z0-9._@-]{2,64}$")
_VIA: dict[str, object] = {"via": "cli"}
DEFAULT_TOKEN_DAYS = 90

Action = Callable[[Conn, Settings, argparse.Namespace], Awaitable[int]]


class _Refused(Exception):
    """What the operator asked cannot be done; the message says why (exit status 1)."""


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    print("\t".join(columns))
    for row in rows:
        cells = []
        for column in columns:
            value = row[column]
            if isinstance(value, list):
                value = ",".join(str(v) for v in value)
            cells.append("" if value is None else str(value))
        print("\t".join(cells))


async def _user(conn: Conn, username: str) -> dict[str, Any]:
    cur = await conn.execute(
        "SELECT id, username, role, disabled FROM web_users WHERE username = %s", (username,)
    )
    row = await cur.fetchone()
    if row is None:
        raise _Refused(f"no user {username!r}")
    return row


# --- users ------------------------------------------------------------------------------------


async def _users_list(conn: Conn, settings: Settings, args: argparse.Namespace) -> int:
    cur = await conn.execute(
        "SELECT u.id, u.username, u.display_name, u.role, u.disabled,"
        " coalesce((SELECT array_agg(site_id ORDER BY site_id) FROM web_user_sites s"
        " WHERE s.user_id = u.id), '{}') AS sites FROM web_users u"
        " WHERE (%s::text IS NULL OR u.role = %s)"
        " AND (%s::text IS NULL OR EXISTS (SELECT 1 FROM web_user_sites s"
        "  WHERE s.user_id = u.id AND s.site_id = %s)) ORDER BY u.username",
        (args.role, args.role, args.site, args.site),
    )
    _table(await cur.fetchall(), ("id", "username", "display_name", "role", "disabled", "sites"))
    return 0


async def _users_create(conn: Conn, settings: Settings, args: argparse.Namespace) -> int:
    if not _USERNAME.match(args.username):
        raise _Refused("a username is 2-64 of a-z 0-9 . _ @ -")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        generated = False
    else:
        password, generated = secrets.token_urlsafe(18), True
    if len(password) < 10:
        raise _Refused("a password is at least 10 characters")
    if (
        await (
            await conn.execute("SELECT 1 FROM web_users WHERE username = %s", (args.username,))
        ).fetchone()
    ) is not None:
        raise _Refused(f"user {args.username!r} exists")
    cur = await conn.execute("SELECT id FROM sites WHERE id = ANY(%s)", (args.site,))
    unknown = set(args.site) - {row["id"] for row in await cur.fetchall()}
    if unknown:
        raise _Refused(f"no site {sorted(unknown)[0]!r}")
    digest = await asyncio.to_thread(hash_password, password)
    cur = await conn.execute(
        "INSERT INTO web_users (username, display_name, role, password_hash)"
        " VALUES (%s, %s, %s, %s) RETURNING id",
        (args.username, args.name, args.role, digest),
    )
    row = await cur.fetchone()
    assert row is not None
    for site in args.site:
        await conn.execute(
            "INSERT INTO web_user_sites (user_id, site_id) VALUES (%s, %s)", (row["id"], site)
        )
    await audit(
        conn, None, "create user", site_id=args.site[0], resource=f"user/{row['id']}", detail=_VIA
    )
    print(f"user {args.username} created (id {row['id']})")
    if generated:
        print("password (shown once):", file=sys.stderr)
        print(password)
    return 0


async def _users_disable(conn: Conn, settings: Settings, args: argparse.Namespace) -> int:
    """Disabled; their sessions end and their live API tokens are revoked (as in the API)."""
    user = await _user(conn, args.username)
    await conn.execute("UPDATE web_users SET disabled = true WHERE id = %s", (user["id"],))
    await conn.execute("DELETE FROM web_sessions WHERE user_id = %s", (user["id"],))
    cur = await conn.execute(
        "UPDATE web_api_tokens SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL"
        " RETURNING id",
        (user["id"],),
    )
    revoked = await cur.fetchall()
    for token in revoked:
        await audit(
            conn,
            None,
            "revoke api token",
            resource=f"token/{token['id']}",
            detail={**_VIA, "reason": "disabled", "user": user["id"]},
        )
    await audit(
        conn,
        None,
        "change user",
        resource=f"user/{user['id']}",
        detail={**_VIA, "fields": ["disabled"]},
    )
    print(f"user {args.username} disabled; {len(revoked)} API token(s) revoked")
    return 0


# --- tokens -----------------------------------------------------------------------------------


async def _tokens_list(conn: Conn, settings: Settings, args: argparse.Namespace) -> int:
    user = await _user(conn, args.username)
    cur = await conn.execute(
        "SELECT id, name, created_at, expires_at, revoked_at, last_used_at FROM web_api_tokens"
        " WHERE user_id = %s ORDER BY id",
        (user["id"],),
    )
    _table(
        await cur.fetchall(),
        ("id", "name", "created_at", "expires_at", "revoked_at", "last_used_at"),
    )
    return 0


async def _tokens_create(conn: Conn, settings: Settings, args: argparse.Namespace) -> int:
    if args.days < 1:
        raise _Refused("--days must be at least 1")
    user = await _user(conn, args.username)
    if user["disabled"]:
        raise _Refused(f"user {args.username!r} is disabled")
    token = new_token("cbt_")
    cur = await conn.execute(
        "INSERT INTO web_api_tokens (user_id, name, token_hash, expires_at)"
        " VALUES (%s, %s, %s, now() + %s) RETURNING id, expires_at",
        (user["id"], args.name, token_digest(token), timedelta(days=args.days)),
    )
    row = await cur.fetchone()
    assert row is not None
    await audit(
        conn,
        None,
        "create api token",
        resource=f"token/{row['id']}",
        detail={**_VIA, "user": user["id"]},
    )
    print(
        f"token {row['id']} for {args.username}, expires {row['expires_at']:%Y-%m-%d}; shown once:",
        file=sys.stderr,
    )
    print(token)
    return 0


async def _tokens_revoke(conn: Conn, settings: Settings, args: argparse.Namespace) -> int:
    cur = await conn.execute(
        "UPDATE web_api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s"
        " RETURNING id",
        (args.token_id,),
    )
    if await cur.fetchone() is None:
        raise _Refused(f"no token {args.token_id}")
    await audit(conn, None, "revoke api token", resource=f"token/{args.token_id}", detail=_VIA)
    print(f"token {args.token_id} revoked")
    return 0


# --- patients ---------------------------------------------------------------------------------


async def _patients_list(conn: Conn, settings: Settings, args: argparse.Namespace) -> int:
    cur = await conn.execute(
        "SELECT id, mrn, display_name, site_id, risk_tier FROM patients"
        " WHERE (%s::text IS NULL OR site_id = %s) AND (%s::text IS NULL OR mrn = %s)"
        " ORDER BY site_id, display_name, id",
        (args.site, args.site, args.mrn, args.mrn),
    )
    rows = await cur.fetchall()
    await audit(conn, None, "list patients", site_id=args.site, detail={**_VIA, "rows": len(rows)})
    _table(rows, ("id", "mrn", "display_name", "site_id", "risk_tier"))
    return 0


# --- gateways ---------------------------------------------------------------------------------


async def _gateways_list(conn: Conn, settings: Settings, args: argparse.Namespace) -> int:
    cur = await conn.execute(
        "SELECT g.id, g.label, g.online, g.status_at,"
        " (SELECT count(*) FROM gateway_patients gp WHERE gp.gateway_id = g.id) AS patients"
        " FROM gateways g ORDER BY g.id"
    )
    _table(await cur.fetchall(), ("id", "label", "online", "status_at", "patients"))
    return 0


async def _gateways_provision(conn: Conn, settings: Settings, args: argparse.Namespace) -> int:
    if not re.match(ID_PATTERN, args.gateway_id):
        raise _Refused(f"a gateway id matches {ID_PATTERN}")
    if reserved_gateway_id(settings, args.gateway_id):
        raise _Refused("that id is reserved for the broker's own users")
    cur = await conn.execute("SELECT 1 FROM gateways WHERE id = %s", (args.gateway_id,))
    if await cur.fetchone() is not None:
        raise _Refused(f"gateway {args.gateway_id!r} exists")
    await conn.execute(
        "INSERT INTO gateways (id, label) VALUES (%s, %s)", (args.gateway_id, args.label)
    )
    for patient in args.patient:
        cur = await conn.execute("SELECT 1 FROM patients WHERE id = %s", (patient,))
        if await cur.fetchone() is None:
            raise _Refused(f"no patient {patient}")
        await conn.execute(
            "INSERT INTO gateway_patients (gateway_id, patient_id) VALUES (%s, %s)",
            (args.gateway_id, patient),
        )
    try:  # gateway ids are global on a shared broker: nothing left under this id is inherited
        await clear_retained_topics(settings, args.gateway_id)
    except aiomqtt.MqttError:
        raise _Refused(
            "the broker could not be reached to clear the id's retained topics"
        ) from None
    password = secrets.token_urlsafe(24)
    await asyncio.to_thread(broker.provision_gateway_credentials, args.gateway_id, password)
    await audit(conn, None, "provision gateway", resource=f"gateway/{args.gateway_id}", detail=_VIA)
    print(
        f"gateway {args.gateway_id} provisioned; MQTT username {args.gateway_id}, "
        "password shown once:",
        file=sys.stderr,
    )
    print(password)
    return 0


async def _gateways_deprovision(conn: Conn, settings: Settings, args: argparse.Namespace) -> int:
    try:
        found = await deprovision(settings, conn, args.gateway_id)
    except aiomqtt.MqttError:
        raise _Refused(
            "the broker could not be reached to clear the retained topics; the login is "
            "removed, the gateway is kept: try again"
        ) from None
    if not found:
        raise _Refused(f"no gateway {args.gateway_id!r} (its broker login, if any, is removed)")
    await audit(
        conn, None, "deprovision gateway", resource=f"gateway/{args.gateway_id}", detail=_VIA
    )
    print(f"gateway {args.gateway_id} deprovisioned")
    return 0


# --- the command line -------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database", help="database name (default: CAREBEACON_PG_DATABASE)")
    parser = argparse.ArgumentParser(
        prog="carebeacon admin",
        description="users, API tokens, patients and gateways, on the database directly",
    )
    resources = parser.add_subparsers(dest="resource", required=True)

    def action(group: Any, name: str, func: Action, help_: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(name, parents=[common], help=help_)
        sub.set_defaults(func=func)
        return sub

    users = resources.add_parser("users", help="web users").add_subparsers(
        dest="action", required=True
    )
    sub = action(users, "list", _users_list, "list users")
    sub.add_argument("--site")
    sub.add_argument("--role", choices=[r.value for r in Role])
    sub = action(users, "create", _users_create, "create a user (prints a generated password)")
    sub.add_argument("username")
    sub.add_argument("--role", required=True, choices=[r.value for r in Role])
    sub.add_argument("--name", required=True, help="display name")
    sub.add_argument("--site", action="append", required=True, help="a site (repeatable)")
    sub.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    sub = action(users, "disable", _users_disable, "disable a user (ends sessions and tokens)")
    sub.add_argument("username")

    tokens = resources.add_parser("tokens", help="API tokens").add_subparsers(
        dest="action", required=True
    )
    sub = action(tokens, "list", _tokens_list, "a user's tokens (never the token itself)")
    sub.add_argument("username")
    sub = action(tokens, "create", _tokens_create, "create a token for a user (printed once)")
    sub.add_argument("username")
    sub.add_argument("--name", required=True)
    sub.add_argument("--days", type=int, default=DEFAULT_TOKEN_DAYS)
    sub = action(tokens, "revoke", _tokens_revoke, "revoke a token by its id")
    sub.add_argument("token_id", type=int)

    patients = resources.add_parser("patients", help="patients").add_subparsers(
        dest="action", required=True
    )
    sub = action(patients, "list", _patients_list, "list patients (audited)")
    sub.add_argument("--site")
    sub.add_argument("--mrn")

    gateways = resources.add_parser("gateways", help="home gateways").add_subparsers(
        dest="action", required=True
    )
    action(gateways, "list", _gateways_list, "list gateways")
    sub = action(gateways, "provision", _gateways_provision, "create a gateway and its login")
    sub.add_argument("gateway_id")
    sub.add_argument("--label")
    sub.add_argument("--patient", action="append", type=uuid.UUID, default=[])
    sub = action(
        gateways, "deprovision", _gateways_deprovision, "remove its login, retained topics, row"
    )
    sub.add_argument("gateway_id")
    return parser


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    conn = await psycopg.AsyncConnection.connect(
        settings.pg_conninfo(), row_factory=dict_row, application_name="carebeacon-admin"
    )
    async with conn:
        try:
            async with conn.transaction():
                func: Action = args.func
                return await func(conn, settings, args)
        except _Refused as why:
            print(f"carebeacon admin: {why}", file=sys.stderr)
            return 1


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.from_env()
    if args.database:
        settings = settings.model_copy(update={"pg_database": args.database})
    return asyncio.run(_run(settings, args))
