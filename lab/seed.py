"""Seed a site of care, a program and one user per role, for the demo and for tests.

From Python (other packages, the demo)::

    from lab.seed import seed_demo
    accounts = seed_demo(settings.pg_conninfo())      # idempotent
    accounts.passwords["cm.demo"]                       # the generated password, shown once

or from a shell (passwords are never taken from the command line: set
``CAREBEACON_SEED_PASSWORD`` to choose one for every seeded user, else they are generated and
printed once)::

    .venv/bin/python -m lab.seed [--site demo-clinic] [--timezone America/New_York]

Users are ``cm.<site>`` (care_manager), ``clin.<site>`` (clinician), ``sup.<site>``
(supervisor) and ``admin.<site>`` (admin), all scoped to the site. Re-running keeps existing
users and their passwords unless ``reset_passwords=True``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

import psycopg

from carebeacon.settings import Settings
from web._passwords import hash_password

__all__ = ["SeededAccounts", "create_user", "main", "seed_demo"]

ROLES = ("care_manager", "clinician", "supervisor", "admin")
_PREFIX = {"care_manager": "cm", "clinician": "clin", "supervisor": "sup", "admin": "admin"}


@dataclass(slots=True)
class SeededAccounts:
    site_id: str
    program_id: str
    users: dict[str, str] = field(default_factory=dict)  # username -> role
    passwords: dict[str, str] = field(default_factory=dict)  # only users created or reset now


def create_user(
    conn: psycopg.Connection[tuple[object, ...]],
    username: str,
    password: str,
    role: str,
    sites: Iterable[str],
    *,
    display_name: str | None = None,
    reset_password: bool = True,
) -> int:
    """Create or update a user with ``role`` on ``sites``; returns the user id."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    digest = hash_password(password)
    update = "password_hash = EXCLUDED.password_hash, " if reset_password else ""
    row = conn.execute(
        "INSERT INTO web_users (username, display_name, role, password_hash)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (username) DO UPDATE SET "
        + update
        + "role = EXCLUDED.role RETURNING id",
        (username, display_name or username, role, digest),
    ).fetchone()
    assert row is not None
    user_id = int(str(row[0]))
    for site in sites:
        conn.execute(
            "INSERT INTO web_user_sites (user_id, site_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (user_id, site),
        )
    return user_id


def seed_demo(
    conninfo: str,
    *,
    site_id: str = "demo-clinic",
    site_name: str = "Demo Clinic",
    timezone: str = "America/New_York",
    program_id: str = "htn",
    program_template: str = "hypertension",
    password: str | None = None,
    reset_passwords: bool = False,
) -> SeededAccounts:
    """Idempotently create a site, a program and one user per role scoped to the site."""
    accounts = SeededAccounts(site_id=site_id, program_id=program_id)
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "INSERT INTO sites (id, name, timezone) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (site_id, site_name, timezone),
        )
        conn.execute(
            "INSERT INTO programs (id, name, template) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (program_id, program_template.replace("_", " ").title(), program_template),
        )
        for role in ROLES:
            username = f"{_PREFIX[role]}.{site_id}"
            exists = conn.execute(
                "SELECT 1 FROM web_users WHERE username = %s", (username,)
            ).fetchone()
            pw = password or secrets.token_urlsafe(12)
            fresh = exists is None or reset_passwords
            create_user(
                conn,
                username,
                pw,
                role,
                [site_id],
                display_name=f"{role.replace('_', ' ').title()} ({site_name})",
                reset_password=fresh,
            )
            accounts.users[username] = role
            if fresh:
                accounts.passwords[username] = pw
    return accounts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="carebeacon seed", description=__doc__.split("\n")[0])
    parser.add_argument("--site", default="demo-clinic")
    parser.add_argument("--site-name", default="Demo Clinic")
    parser.add_argument("--timezone", default="America/New_York")
    parser.add_argument("--program", default="htn")
    parser.add_argument("--reset-passwords", action="store_true")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    accounts = seed_demo(
        settings.pg_conninfo(),
        site_id=args.site,
        site_name=args.site_name,
        timezone=args.timezone,
        program_id=args.program,
        password=os.environ.get("CAREBEACON_SEED_PASSWORD") or None,
        reset_passwords=args.reset_passwords,
    )
    for username, role in accounts.users.items():
        shown = accounts.passwords.get(username, "(unchanged)")
        print(f"{role:<13} {username:<28} {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
