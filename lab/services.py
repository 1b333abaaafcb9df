"""The project's own TimescaleDB and Mosquitto, on the project's own ports.

``carebeacon services up|down|status`` — idempotent; ``up`` returns when both accept
connections. TimescaleDB is not packaged for Debian 12: PostgreSQL 17 + TimescaleDB (Apache
build) + pg_cron run from a Debian trixie root built once with mmdebstrap into a cache
directory (built under a temporary name and renamed, so an interrupted build never leaves half
a root). The same root holds pgBackRest (continuous archiving; ``services backup|restore``,
``lab.backup``) and trixie's Mosquitto 2.0.21, which only the broker comparison test runs
(:func:`trixie_mosquitto_command`): the project's broker stays Debian 12's 2.0.11
(:func:`mosquitto_command`, chosen by measurement). It runs the project's configuration: an
internal listener for
server-side users and a TLS listener with per-gateway users and a pattern ACL. Configuration
files are templates in ``deploy/mosquitto/`` and ``deploy/postgresql/``, filled here
(:func:`render_mosquitto`).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath
from string import Template

from carebeacon.broker import (
    broker_dir,
    chown_mosquitto,
    reload_broker,
    set_password,
    write_owned,
)
from carebeacon.settings import Settings, env_file, read_env_file
from lab import broker_log
from lab.backup import Archive, BackupError

__all__ = [
    "DEPLOY_DIR",
    "PACKET_HEADROOM_BYTES",
    "TRIXIE_PACKAGES",
    "forget_ingest_session",
    "main",
    "mosquitto_command",
    "render_mosquitto",
    "trixie_mosquitto_command",
    "up",
]


def _deploy_dir() -> Path:
    """``deploy/`` of the checkout, else where a wheel installs it (``<prefix>/share``)."""
    checkout = Path(__file__).resolve().parents[1] / "deploy"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "carebeacon" / "deploy"


DEPLOY_DIR = _deploy_dir()

#: what the trixie root holds, each with a file that shows it is installed; a root built before a
#: package was added gets it from the root's own apt at the next ``up`` (a few seconds, once)
TRIXIE_PACKAGES: dict[str, str] = {
    "postgresql-17": "usr/lib/postgresql/17/bin/postgres",
    "postgresql-17-timescaledb": "usr/share/postgresql/17/extension/timescaledb.control",
    "postgresql-17-cron": "usr/share/postgresql/17/extension/pg_cron.control",
    # 2.0.21, for tests/reliability/test_broker_versions.py only (not the project's broker)
    "mosquitto": "usr/sbin/mosquitto",
    "pgbackrest": "usr/bin/pgbackrest",  # 2.55: continuous archiving (`services backup`)
}
TRIXIE_PACKAGES_MOSQUITTO = TRIXIE_PACKAGES["mosquitto"]
PG_BIN = "/usr/lib/postgresql/17/bin"
PG_DATA_IN_ROOT = "/var/lib/carebeacon/pgdata"
PG_SOCKET_IN_ROOT = "/var/lib/carebeacon/run"
PG_BACKUP_IN_ROOT = "/var/lib/carebeacon/pgbackrest"


def _render(template: str, **values: object) -> str:
    """A ``deploy/`` template filled in (a missing placeholder is an error, not a blank)."""
    text = (DEPLOY_DIR / template).read_text(encoding="utf-8")
    return Template(text).substitute({k: str(v) for k, v in values.items()})


def _log(message: str) -> None:
    print(f"services: {message}", file=sys.stderr, flush=True)


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_port(port: int, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not _port_open(port):
        if time.monotonic() > deadline:
            raise SystemExit(f"services: {what} did not open port {port} within {timeout:.0f} s")
        time.sleep(0.1)


def _apt_install(*packages: str) -> None:
    missing = [
        p for p in packages if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode
    ]
    if not missing:
        return
    _log(f"apt-get install {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


# --- secrets -----------------------------------------------------------------------------------


def _secrets_file() -> Path:
    return env_file()


def _ensure_secrets() -> dict[str, str]:
    path = _secrets_file()
    values = read_env_file(path)
    wanted = [
        "CAREBEACON_PG_PASSWORD",
        "CAREBEACON_MQTT_INGEST_PASSWORD",
        "CAREBEACON_MQTT_ADMIN_PASSWORD",
    ]
    changed = False
    for key in wanted:
        if not values.get(key):
            values[key] = secrets.token_urlsafe(18)
            changed = True
    if "CAREBEACON_MQTT_LOG_FILE" not in values:  # ingest counts the broker's denials from it
        values["CAREBEACON_MQTT_LOG_FILE"] = str(broker_dir() / "mosquitto.log")
        changed = True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o755)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("# generated by `carebeacon services up`; local development credentials\n")
            fh.writelines(f"{k}={v}\n" for k, v in sorted(values.items()))
        tmp.replace(path)
    return values


# --- TimescaleDB in a trixie root ------------------------------------------------------------


def _root_dir() -> Path:
    return Settings.from_env().cache_dir / "trixie-root"


def _ensure_root() -> Path:
    root = _root_dir()
    if (root / PG_BIN.lstrip("/") / "postgres").exists():
        _ensure_root_packages(root)
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.with_name("trixie-root.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    mirror = os.environ.get("CAREBEACON_DEBIAN_MIRROR", "http://deb.debian.org/debian")
    include = "--include=" + ",".join(TRIXIE_PACKAGES)
    started = time.monotonic()
    try:
        _apt_install("mmdebstrap")
        _log(f"building the trixie root for TimescaleDB and Mosquitto in {root} (once, ~35 s)")
        subprocess.run(
            ["mmdebstrap", "--variant=minbase", include, "trixie", str(tmp), mirror],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    except subprocess.CalledProcessError:
        _log("mmdebstrap failed; falling back to debootstrap")
        shutil.rmtree(tmp, ignore_errors=True)
        _apt_install("debootstrap")
        subprocess.run(
            ["debootstrap", "--variant=minbase", include, "trixie", str(tmp), mirror],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    tmp.rename(root)
    _log(f"trixie root ready in {time.monotonic() - started:.1f} s")
    return root


def _ensure_root_packages(root: Path) -> None:
    """Install into an existing root what :data:`TRIXIE_PACKAGES` added since it was built
    (the root's own apt, in a chroot; nothing already there is upgraded)."""
    missing = [name for name, marker in TRIXIE_PACKAGES.items() if not (root / marker).exists()]
    if not missing:
        return
    _log(f"installing {' '.join(missing)} into the trixie root")
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "DEBIAN_FRONTEND": "noninteractive",
    }
    for argv in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
    ):
        subprocess.run(
            ["/usr/sbin/chroot", str(root), *argv],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )


def _root_postgres_ids(root: Path) -> tuple[int, int]:
    for line in (root / "etc" / "passwd").read_text(encoding="utf-8").splitlines():
        fields = line.split(":")
        if fields[0] == "postgres":
            return int(fields[2]), int(fields[3])
    raise SystemExit("services: the trixie root has no postgres user")


def _in_root(root: Path, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    uid, gid = _root_postgres_ids(root)
    return subprocess.run(
        ["/usr/sbin/chroot", f"--userspec={uid}:{gid}", str(root), *argv],
        check=check,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/var/lib/postgresql"},
        start_new_session=True,
    )


def _pg_up(settings: Settings, password: str) -> None:
    root = _ensure_root()
    uid, gid = _root_postgres_ids(root)
    data = root / PG_DATA_IN_ROOT.lstrip("/")
    run_dir = root / PG_SOCKET_IN_ROOT.lstrip("/")  # not /var/run: it links to the host's /run
    run_dir.mkdir(parents=True, exist_ok=True)
    os.chown(run_dir, uid, gid)
    if not (data / "PG_VERSION").exists():
        _log("initdb")
        data.parent.mkdir(parents=True, exist_ok=True)
        os.chown(data.parent, uid, gid)
        pwfile = data.parent / "initdb.pw"
        pwfile.write_text(password + "\n", encoding="utf-8")
        os.chown(pwfile, uid, gid)
        pwfile.chmod(0o600)
        try:
            _in_root(
                root,
                f"{PG_BIN}/initdb",
                "-D",
                PG_DATA_IN_ROOT,
                "-U",
                settings.pg_user,
                f"--pwfile={PG_DATA_IN_ROOT.rsplit('/', 1)[0]}/initdb.pw",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        archive = _archive(settings)
        archive.write_config()
        conf = data / "postgresql.conf"
        with conf.open("a", encoding="utf-8") as fh:
            fh.write(
                _render(
                    "postgresql/carebeacon.conf.template",
                    socket_dir=PG_SOCKET_IN_ROOT,
                    database=settings.pg_database,
                    archiving=archive.postgresql_settings(),
                )
            )
    if _port_open(settings.pg_port):
        return
    _log(f"starting PostgreSQL 17 + TimescaleDB on 127.0.0.1:{settings.pg_port}")
    _in_root(
        root,
        f"{PG_BIN}/pg_ctl",
        "-D",
        PG_DATA_IN_ROOT,
        "-l",
        f"{PG_DATA_IN_ROOT}/../postgresql.log",
        "-o",
        f"-p {settings.pg_port}",
        "-w",
        "-t",
        "60",
        "start",
    )
    _wait_port(settings.pg_port, "PostgreSQL")
    exists = _psql(
        root,
        settings,
        "-tAc",
        f"SELECT 1 FROM pg_database WHERE datname = '{settings.pg_database}'",
    )
    if exists.stdout.strip() != "1":
        _psql(root, settings, "-c", f'CREATE DATABASE "{settings.pg_database}"')
    archive = _archive(settings)
    if _archiving_configured(settings) and not archive.initialised:
        archive.ensure_stanza()  # once: from then on every WAL segment is archived


def _archive(settings: Settings) -> Archive:
    """The project cluster's pgBackRest archive (``lab.backup``)."""
    root = _root_dir()
    uid, gid = _root_postgres_ids(root)
    return Archive(
        root=root,
        uid=uid,
        gid=gid,
        data=PurePosixPath(PG_DATA_IN_ROOT),
        socket_dir=PurePosixPath(PG_SOCKET_IN_ROOT),
        port=settings.pg_port,
        user=settings.pg_user,
        repository=PurePosixPath(PG_BACKUP_IN_ROOT),
    )


def _archiving_configured(settings: Settings) -> bool:
    conf = _root_dir() / PG_DATA_IN_ROOT.lstrip("/") / "postgresql.conf"
    archive = _archive(settings)
    return conf.exists() and str(archive.config) in conf.read_text(encoding="utf-8")


def backup(settings: Settings, kind: str) -> int:
    """``services backup``: a base backup of the project cluster (WAL is archived continuously)."""
    archive = _archive(settings)
    if not _archiving_configured(settings):
        # a cluster initialised before archiving was part of `up`: configure it; PostgreSQL
        # reads archive_mode only at start
        archive.write_config()
        conf = _root_dir() / PG_DATA_IN_ROOT.lstrip("/") / "postgresql.conf"
        with conf.open("a", encoding="utf-8") as fh:
            fh.write("\n" + archive.postgresql_settings())
        _log(
            "continuous archiving configured; it starts with PostgreSQL: run "
            "`carebeacon services restart-db`, then `carebeacon services backup` again"
        )
        return 1
    try:
        print(archive.backup(kind), end="")
    except BackupError as exc:
        _log(f"{exc}\n{exc.output}")
        return 1
    return 0


def restore(settings: Settings) -> int:
    """``services restore``: the latest backup plus every archived WAL segment, into a fresh
    data directory; the old one is moved aside (``pgdata.before-restore-<time>``), never
    deleted."""
    archive = _archive(settings)
    try:
        if not archive.has_backup():
            raise BackupError("no backup in the repository: nothing to restore from")
    except BackupError as exc:
        _log(str(exc))
        return 1
    _pg_down(settings)
    data = _root_dir() / PG_DATA_IN_ROOT.lstrip("/")
    if data.exists():
        aside = data.with_name(f"pgdata.before-restore-{time.strftime('%Y%m%dT%H%M%S')}")
        data.rename(aside)
        _log(f"the previous data directory is kept in {aside}")
    started = time.monotonic()
    try:
        archive.restore()
    except BackupError as exc:
        _log(f"{exc}\n{exc.output}")
        return 1
    _pg_up(settings, _ensure_secrets()["CAREBEACON_PG_PASSWORD"])
    deadline = time.monotonic() + 3600
    while _psql(_root_dir(), settings, "-tAc", "SELECT pg_is_in_recovery()").stdout.strip() == "t":
        if time.monotonic() > deadline:  # replaying the archived WAL; then it takes writes
            _log("still replaying WAL after an hour: see postgresql.log in the trixie root")
            return 1
        time.sleep(0.2)
    _log(f"restored and recovered in {time.monotonic() - started:.1f} s")
    return 0


def _psql(root: Path, settings: Settings, *argv: str) -> subprocess.CompletedProcess[str]:
    """psql in the trixie root, over its Unix socket, on the ``postgres`` database."""
    return _in_root(
        root,
        "/usr/bin/psql",
        "-h",
        PG_SOCKET_IN_ROOT,
        "-p",
        str(settings.pg_port),
        "-U",
        settings.pg_user,
        "-d",
        "postgres",
        *argv,
    )


def _pg_down(settings: Settings) -> None:
    root = _root_dir()
    if not (root / PG_DATA_IN_ROOT.lstrip("/") / "postmaster.pid").exists():
        return
    _in_root(
        root, f"{PG_BIN}/pg_ctl", "-D", PG_DATA_IN_ROOT, "-m", "fast", "-w", "stop", check=False
    )


# --- Mosquitto ---------------------------------------------------------------------------------


def mosquitto_command() -> list[str]:
    """The project's broker, up to its options: Debian 12's Mosquitto 2.0.11. Measured against
    trixie's 2.0.21 (``tests/reliability/test_broker_versions.py``): with
    ``per_listener_settings true``, which the two listeners' separate logins and ACLs need,
    2.0.21 (like every release since 2.0.12, mosquitto#2618) queues nothing for a persistent
    session while it is offline — an ingest that is down would lose every reading."""
    return ["mosquitto"]


def trixie_mosquitto_command(root: Path | None = None) -> list[str]:
    """Mosquitto 2.0.21 from the trixie root, run by the root's own dynamic loader on the
    root's libraries without a chroot (it reads configuration and state where the host keeps
    them and drops to the host's ``mosquitto`` user); for the comparison test."""
    root = root or _ensure_root()
    libc = sorted(root.glob("usr/lib/*-linux-gnu/libc.so.6"))
    # the loader itself, not ``usr/lib64``'s link to it (an absolute link names the host's)
    loaders = [
        path
        for path in sorted(root.glob("usr/lib/*-linux-gnu/ld-linux*.so.*"))
        if not path.is_symlink()
    ]
    if not libc or not loaders or not (root / TRIXIE_PACKAGES_MOSQUITTO).exists():
        raise SystemExit(f"services: no Mosquitto in the trixie root {root}")
    return [
        str(loaders[0]),
        "--library-path",
        str(libc[0].parent),
        str(root / TRIXIE_PACKAGES_MOSQUITTO),
    ]


def _ensure_tls(directory: Path) -> None:
    if (directory / "server.crt").exists():
        return
    _log("generating a local CA and server certificate for the gateway TLS listener")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "3650",
        "-subj",
        "/CN=CareBeacon local CA",
        "-keyout",
        str(directory / "ca.key"),
        "-out",
        str(directory / "ca.crt"),
    )
    ext = directory / "server.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n", encoding="utf-8")
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        str(directory / "server.key"),
        "-out",
        str(directory / "server.csr"),
    )
    run(
        "x509",
        "-req",
        "-in",
        str(directory / "server.csr"),
        "-CA",
        str(directory / "ca.crt"),
        "-CAkey",
        str(directory / "ca.key"),
        "-CAcreateserial",
        "-days",
        "3650",
        "-extfile",
        str(ext),
        "-out",
        str(directory / "server.crt"),
    )
    for name in ("server.key", "server.crt", "ca.crt"):
        chown_mosquitto(directory / name)
    (directory / "ca.crt").chmod(0o644)


#: the broker's max_packet_size over the payload limit: the fixed header (≤ 5 bytes), the topic
#: (2 + at most 65 535 bytes by MQTT; a contract topic is under 100), the packet id and the
#: properties fit, so that a payload just over ``mqtt_max_payload_bytes`` reaches ingest
PACKET_HEADROOM_BYTES = 65_536


def render_mosquitto(directory: Path, settings: Settings) -> dict[str, str]:
    """The broker's configuration and ACL files (name → text) for a state ``directory``, from
    the templates in ``deploy/mosquitto/``."""
    return {
        "internal.acl": _render(
            "mosquitto/internal.acl.template",
            ingest_user=settings.mqtt_ingest_user,
            admin_user=settings.mqtt_admin_user,
        ),
        "gateways.acl": _render("mosquitto/gateways.acl.template"),
        "mosquitto.conf": _render(
            "mosquitto/carebeacon.conf.template",
            directory=directory,
            mqtt_port=settings.mqtt_port,
            mqtt_tls_port=settings.mqtt_tls_port,
            tls_bind=settings.mqtt_tls_bind,
            max_packet_size=settings.mqtt_max_payload_bytes + PACKET_HEADROOM_BYTES,
        ),
    }


def _mosquitto_up(settings: Settings, values: dict[str, str]) -> None:
    _apt_install("mosquitto", "mosquitto-clients", "openssl")
    directory = broker_dir()
    (directory / "data").mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    chown_mosquitto(directory)
    chown_mosquitto(directory / "data")
    _ensure_tls(directory)
    internal = directory / "internal.passwd"
    set_password(internal, settings.mqtt_ingest_user, values["CAREBEACON_MQTT_INGEST_PASSWORD"])
    set_password(internal, settings.mqtt_admin_user, values["CAREBEACON_MQTT_ADMIN_PASSWORD"])
    gateways = directory / "gateways.passwd"
    if not gateways.exists():
        write_owned(gateways, "")
    conf = directory / "mosquitto.conf"
    before = conf.read_text(encoding="utf-8") if conf.exists() else None
    for name, text in render_mosquitto(directory, settings).items():
        write_owned(directory / name, text, 0o644 if name.endswith(".conf") else 0o640)
    if _port_open(settings.mqtt_port):
        reload_broker()
        if before is not None and before != conf.read_text(encoding="utf-8"):
            # listener options (use_username_as_clientid, ports) and max_packet_size are not
            # reloaded on SIGHUP
            _log(
                "the broker's configuration changed: run `carebeacon services restart-broker`"
                " to apply it (a reload applies passwords and ACLs only)"
            )
        return
    _log(f"starting Mosquitto on 127.0.0.1:{settings.mqtt_port} (TLS {settings.mqtt_tls_port})")
    subprocess.run(
        [*mosquitto_command(), "-d", "-c", str(directory / "mosquitto.conf")],
        check=True,
        start_new_session=True,
    )
    _wait_port(settings.mqtt_port, "Mosquitto")
    _wait_port(settings.mqtt_tls_port, "Mosquitto (TLS)")


def _mosquitto_down() -> None:
    pid_file = broker_dir() / "mosquitto.pid"
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, ValueError):
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


# --- entry point -------------------------------------------------------------------------------


async def forget_ingest_session(settings: Settings, client_id: str) -> None:
    """Discard an ingest session that a run left at the broker, and what it queued. A demo
    session left by an earlier run would replay everything queued since; a benchmark's keeps
    its subscription and queues every later message, which the broker writes out again at
    every save (a state of hundreds of MB stalls delivery for seconds each time)."""
    import aiomqtt

    async with aiomqtt.Client(
        settings.mqtt_host,
        settings.mqtt_port,
        username=settings.mqtt_ingest_user,
        password=settings.mqtt_ingest_password.get_secret_value(),
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=True,  # and no session expiry: the session ends with this connection
    ):
        pass


def up() -> Settings:
    values = _ensure_secrets()
    settings = Settings.from_env()
    _mosquitto_up(settings, values)
    _pg_up(settings, values["CAREBEACON_PG_PASSWORD"])
    return settings


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="carebeacon services", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "action",
        choices=[
            "up",
            "down",
            "status",
            "restart-db",
            "restart-broker",
            "backup",
            "restore",
            "denials",
        ],
    )
    parser.add_argument(
        "--type",
        choices=["full", "diff", "incr"],
        default="incr",
        help="backup: full, differential or incremental (the first is always full)",
    )
    args = parser.parse_args(argv)
    if args.action == "up":
        started = time.monotonic()
        settings = up()
        print(
            f"TimescaleDB 127.0.0.1:{settings.pg_port}  Mosquitto 127.0.0.1:{settings.mqtt_port} "
            f"(TLS {settings.mqtt_tls_port})  ready in {time.monotonic() - started:.1f} s; "
            f"credentials in {_secrets_file()}"
        )
        return 0
    settings = Settings.from_env()
    if args.action == "down":
        _pg_down(settings)
        _mosquitto_down()
        return 0
    if args.action == "restart-db":
        _pg_down(settings)
        _pg_up(settings, _ensure_secrets()["CAREBEACON_PG_PASSWORD"])
        return 0
    if args.action == "backup":
        return backup(settings, args.type)
    if args.action == "denials":
        log = broker_dir() / "mosquitto.log"
        if not log.exists():
            _log(f"no broker log at {log}")
            return 1
        print(broker_log.summary(log), end="")
        return 0
    if args.action == "restore":
        return restore(settings)
    if args.action == "restart-broker":
        _mosquitto_down()
        _mosquitto_up(settings, _ensure_secrets())
        return 0
    pg = _port_open(settings.pg_port)
    mq = _port_open(settings.mqtt_port)
    print(f"timescaledb: {'up' if pg else 'down'} (port {settings.pg_port})")
    print(
        f"mosquitto:   {'up' if mq else 'down'} "
        f"(port {settings.mqtt_port}, TLS {settings.mqtt_tls_port})"
    )
    return 0 if pg and mq else 1
