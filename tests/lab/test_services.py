"""The development broker's configuration, rendered from ``deploy/mosquitto/`` into a private
directory and run by the real Mosquitto (the shared broker is left alone)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from carebeacon.broker import set_password, write_owned
from carebeacon.settings import Settings
from lab.backup import Archive
from lab.services import DEPLOY_DIR, _render, mosquitto_command, render_mosquitto
from tests.support.network import free_port

pytestmark = pytest.mark.broker


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _self_signed(directory: Path) -> None:
    """A server certificate that is its own CA (the test trusts it directly)."""
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
        "-addext", "subjectAltName=IP:127.0.0.1",
        "-keyout", str(directory / "server.key"), "-out", str(directory / "server.crt"),
    )  # fmt: skip
    shutil.copy(directory / "server.crt", directory / "ca.crt")


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"mosquitto exited {process.returncode}: {log.read_text()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"mosquitto did not listen on {port}")


def _connect(port: int, user: str, password: str, *, tls_ca: Path | None = None) -> int:
    """The CONNACK reason code (0: accepted)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(user, password)
    if tls_ca is not None:
        client.tls_set_context(ssl.create_default_context(cafile=str(tls_ca)))
    codes: list[int] = []
    client.on_connect = lambda c, u, flags, reason, props: codes.append(reason.value)
    client.connect("127.0.0.1", port)
    deadline = time.monotonic() + 5
    while not codes and time.monotonic() < deadline:
        client.loop(0.1)
    client.disconnect()
    assert codes, "no CONNACK"
    return codes[0]


@pytest.fixture
def broker_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="cb-rendered-", dir="/tmp"))
    directory.chmod(0o755)  # the broker drops to the mosquitto user when started as root
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_templates_have_no_unfilled_placeholder() -> None:
    settings = Settings(mqtt_ingest_user="ingest-x", mqtt_admin_user="admin-x")
    files = render_mosquitto(Path("/srv/broker"), settings)
    assert set(files) == {"mosquitto.conf", "internal.acl", "gateways.acl"}
    assert "$" not in "".join(files.values())
    assert "user ingest-x\n" in files["internal.acl"]
    assert "pattern write carebeacon/v1/gateways/%u/readings" in files["gateways.acl"]
    assert f"listener {settings.mqtt_port} 127.0.0.1" in files["mosquitto.conf"]
    assert "password_file /srv/broker/gateways.passwd" in files["mosquitto.conf"]
    assert sorted(p.name for p in (DEPLOY_DIR / "mosquitto").iterdir()) == [
        "carebeacon.conf.template",
        "gateways.acl.template",
        "internal.acl.template",
    ]


def test_postgresql_template_archives_every_wal_segment() -> None:
    archive = Archive(
        root=Path("/unused"),
        uid=0,
        gid=0,
        data=PurePosixPath("/var/lib/carebeacon/pgdata"),
        socket_dir=PurePosixPath("/run"),
        port=5432,
        user="carebeacon",
        repository=PurePosixPath("/var/lib/carebeacon/pgbackrest"),
    )
    text = _render(
        "postgresql/carebeacon.conf.template",
        socket_dir="/run",
        database="carebeacon",
        archiving=archive.postgresql_settings(),
    )
    assert "$" not in text
    assert "archive_mode = on\n" in text
    assert (
        "archive_command = 'pgbackrest --config=/var/lib/carebeacon/pgbackrest/pgbackrest.conf"
        " --stanza=carebeacon archive-push %p'\n"
    ) in text
    assert "pg1-path=/var/lib/carebeacon/pgdata\n" in archive.render_config()


def test_mosquitto_runs_the_rendered_configuration(broker_dir: Path) -> None:
    settings = Settings(mqtt_port=free_port(), mqtt_tls_port=free_port())
    (broker_dir / "data").mkdir()
    _self_signed(broker_dir)
    set_password(broker_dir / "internal.passwd", settings.mqtt_admin_user, "admin-pw")
    set_password(broker_dir / "gateways.passwd", "gw-rendered", "gw-pw")
    for name, text in render_mosquitto(broker_dir, settings).items():
        write_owned(broker_dir / name, text, 0o644)
    if os.geteuid() == 0:
        entry = pwd.getpwnam("mosquitto")
        for path in [broker_dir, *broker_dir.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid)
    log = broker_dir / "mosquitto.log"
    process = subprocess.Popen([*mosquitto_command(), "-c", str(broker_dir / "mosquitto.conf")])
    try:
        _wait_listening(settings.mqtt_port, process, log)
        _wait_listening(settings.mqtt_tls_port, process, log)
        assert _connect(settings.mqtt_port, settings.mqtt_admin_user, "admin-pw") == 0
        assert _connect(settings.mqtt_port, settings.mqtt_admin_user, "wrong") != 0
        # the gateway listener: TLS, and only the gateways' own logins
        ca = broker_dir / "ca.crt"
        assert _connect(settings.mqtt_tls_port, "gw-rendered", "gw-pw", tls_ca=ca) == 0
        assert _connect(settings.mqtt_tls_port, settings.mqtt_admin_user, "admin-pw", tls_ca=ca)
    finally:
        process.terminate()
        process.wait(10)
