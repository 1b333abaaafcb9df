"""A private Mosquitto for tests that restart the broker or load it: the shared one is left alone.

Same settings as the project's broker where they matter (persistence, ``max_queued_messages 0``,
``max_inflight_messages 1000``); one plain listener on a free port with a password file and,
optionally, the project's ACL (server-side users read, each gateway writes only its own topics).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from carebeacon.broker import mosquitto_password_line
from carebeacon.settings import Settings
from lab.services import render_mosquitto

__all__ = ["PROJECT_ACL", "PrivateBroker", "free_port"]

#: the project's ACL (``deploy/mosquitto/``, as ``carebeacon services`` renders it), for one
#: listener: ingest reads, admin reads and writes, a gateway publishes only under its own prefix
#: and reads its own config
_RENDERED = render_mosquitto(
    Path("/unused"), Settings(mqtt_ingest_user="ingest", mqtt_admin_user="admin")
)
PROJECT_ACL = _RENDERED["internal.acl"] + "\n" + _RENDERED["gateways.acl"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateBroker:
    def __init__(self, users: dict[str, str], *, acl: str | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cb-broker-", dir="/tmp"))
        self.port = free_port()
        (self.dir / "data").mkdir()
        (self.dir / "passwd").write_text(
            "".join(mosquitto_password_line(u, p) + "\n" for u, p in users.items())
        )
        acl_line = ""
        if acl is not None:
            (self.dir / "acl").write_text(acl)
            acl_line = f"acl_file {self.dir}/acl\n"
        (self.dir / "mosquitto.conf").write_text(
            f"pid_file {self.dir}/mosquitto.pid\npersistence true\n"
            f"persistence_location {self.dir}/data/\nlog_dest file {self.dir}/log\n"
            "max_queued_messages 0\nmax_inflight_messages 1000\n"
            f"listener {self.port} 127.0.0.1\nallow_anonymous false\n"
            f"password_file {self.dir}/passwd\n{acl_line}"
        )
        if os.geteuid() == 0:
            entry = pwd.getpwnam("mosquitto")
            self.dir.chmod(0o755)
            for path in [self.dir, *self.dir.rglob("*")]:
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(["mosquitto", "-c", str(self.dir / "mosquitto.conf")])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError("private broker did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # graceful: Mosquitto writes its persistence file
            self.process.wait(10)
            self.process = None

    def kill(self) -> None:
        """SIGKILL: what the broker acknowledged since its last autosave is gone."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
            self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
