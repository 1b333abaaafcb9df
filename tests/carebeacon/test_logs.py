"""The one logging setup: plain text or JSON lines on stderr, one handler however often it is
applied, the chatty libraries held at WARNING."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime

import pytest

from carebeacon.logs import configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name in ("bleak", "bumble", "uvicorn.access", "carebeacon.test"):
            logging.getLogger(name).setLevel(logging.NOTSET)


def _ours() -> list[logging.Handler]:
    return [
        h
        for h in logging.getLogger().handlers
        if type(h) is logging.StreamHandler  # pytest's capture handlers are subclasses
    ]


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_parse(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("DEBUG", json=True)
    log = logging.getLogger("carebeacon.test")
    log.info("stored %d readings", 3)
    log.debug('a "quoted"\nmessage on two lines')
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3  # one object per line, a newline in a message included
    first, second, third = (json.loads(line) for line in lines)
    assert {k: first[k] for k in ("level", "logger", "message")} == {
        "level": "INFO",
        "logger": "carebeacon.test",
        "message": "stored 3 readings",
    }
    assert datetime.fromisoformat(first["time"]).utcoffset() is not None  # aware
    assert second["message"] == 'a "quoted"\nmessage on two lines'
    assert third["level"] == "ERROR"
    assert "ValueError: boom" in third["exception"]


@pytest.mark.usefixtures("restore_logging")
def test_plain_text_and_no_duplicate_handlers(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    configure_logging("INFO")
    assert len(_ours()) == 1
    logging.getLogger("carebeacon.test").warning("once")
    err = capsys.readouterr().err
    assert err.count("once") == 1
    assert "WARNING carebeacon.test: once" in err


@pytest.mark.usefixtures("restore_logging")
def test_bleak_bumble_and_access_log_stay_at_warning(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("DEBUG", json=True)
    for name in ("bleak.backends.bluezdbus.client", "bumble.device", "uvicorn.access"):
        logging.getLogger(name).info("AA:BB:CC:DD:EE:FF payload 0a0b")
    logging.getLogger("bleak").warning("kept")
    lines = capsys.readouterr().err.splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["kept"]
