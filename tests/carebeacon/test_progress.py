"""Progress bars: drawn on a terminal only, never when quiet, never on stdout."""

from __future__ import annotations

import io
import os
import pty
import sys

import pytest

from carebeacon.progress import Steps, bar, say, shown, track


class _Terminal(io.StringIO):
    """Captures what is drawn, and says it is a tty (the property a bar keys on)."""

    def isatty(self) -> bool:
        return True


def test_no_bar_when_stderr_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    assert not shown()
    assert list(track(range(50), desc="replay")) == list(range(50))
    with bar(3, desc="setup") as steps:
        steps.update(3)
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "")


def test_a_bar_on_a_terminal_and_none_when_quiet(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert list(track(range(50), desc="replay", unit="patient")) == list(range(50))
    drawn = terminal.getvalue()
    assert "replay" in drawn
    assert "0/50" in drawn  # the count of what is to come
    assert capsys.readouterr().out == ""  # stdout untouched

    quiet = _Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    assert list(track(range(50), desc="replay", quiet=True)) == list(range(50))
    with bar(2, desc="setup", quiet=True) as steps:
        steps.update(2)
    assert quiet.getvalue() == ""


def test_a_real_pseudo_terminal_counts_as_one(monkeypatch: pytest.MonkeyPatch) -> None:
    leader, follower = pty.openpty()
    try:
        with os.fdopen(follower, "w", closefd=False) as tty:
            monkeypatch.setattr(sys, "stderr", tty)
            assert shown()
            assert not shown(quiet=True)
    finally:
        os.close(leader)
        os.close(follower)


def test_say_prints_whole_lines(capsys: pytest.CaptureFixture[str]) -> None:
    say("generating 10 patients")
    say("to stderr", file=sys.stderr)
    captured = capsys.readouterr()
    assert captured.out == "generating 10 patients\n"
    assert captured.err == "to stderr\n"


def test_steps_name_the_step_under_way(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    steps = Steps(("services", "database"), desc="demo setup")
    assert "services" in terminal.getvalue()
    steps.done()
    steps.done()  # the last one closes the bar
    drawn = terminal.getvalue()
    assert "database" in drawn
    assert "demo setup" in drawn
