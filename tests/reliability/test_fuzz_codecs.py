"""The codecs under a coverage-guided fuzzer (atheris) and hypothesis: nothing but
``devices.ParseError`` ever escapes any parser in ``devices.__all__``.

atheris' ``Fuzz()`` ends its process, so each run is a subprocess
(``python -m tests.support.fuzz_codecs``) judged by its exit status and output. The quick
run takes ~20 s; ``-m slow`` runs ten minutes. A canary run with a planted bug proves a crash is
noticed (and that coverage guidance finds a two-byte magic that blind random input does not).
"""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import devices
from devices import DateTime, ParseError, decode_float, decode_sfloat
from tests.support.fuzz_codecs import (
    CHARACTERISTIC_CHOICES,
    DEVICE,
    RECEIVED,
    Target,
    UnknownParameter,
    discover_targets,
)

ROOT = Path(__file__).resolve().parents[2]
TARGETS = discover_targets()
QUICK_SECONDS = 20


def _fuzz(
    tmp_path: Path, *args: str, timeout: float
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    stats = tmp_path / "stats.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.fuzz_codecs",
            "--corpus",
            str(tmp_path / "corpus"),
            "--artifacts",
            str(tmp_path / "artifacts"),
            "--stats",
            str(stats),
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return proc, json.loads(stats.read_text()) if stats.exists() else {}


def _runs(output: str) -> tuple[int, int]:
    done = re.search(r"^Done (\d+) runs in (\d+) second", output, re.MULTILINE)
    assert done is not None, output[-3000:]
    return int(done.group(1)), int(done.group(2))


def _assert_clean(
    proc: subprocess.CompletedProcess[str], stats: dict[str, Any], tmp_path: Path
) -> int:
    output = proc.stdout + proc.stderr
    assert "Uncaught Python exception" not in output, output[-5000:]
    assert proc.returncode == 0, output[-5000:]
    assert not list((tmp_path / "artifacts").glob("crash-*"))
    runs, seconds = _runs(output)
    print(f"atheris: {runs} inputs in {seconds} s over {len(TARGETS)} parsers")
    assert stats["targets"] == [t.name for t in TARGETS]
    starved = {t.name: stats.get(t.name, 0) for t in TARGETS if stats.get(t.name, 0) < 100}
    assert not starved, f"parsers the fuzzer barely reached: {starved}"
    return runs


def test_every_parser_of_devices_is_a_target() -> None:
    names = {t.name for t in TARGETS}
    parsers = {n for n in devices.__all__ if n.startswith(("parse_", "decode"))}
    assert parsers <= names
    assert {"canonical_reading", "normalize_uuid", "BloodPressureMeasurement.from_bytes"} <= names
    assert not {n for n in names if "encode" in n}
    assert len(TARGETS) >= 40


def test_a_parser_with_an_unknown_parameter_stops_the_harness(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def parse_mystery(data: bytes, key: int) -> object:
        return data, key

    monkeypatch.setattr(devices, "parse_mystery", parse_mystery, raising=False)
    monkeypatch.setattr(devices, "__all__", [*devices.__all__, "parse_mystery"])
    with pytest.raises(UnknownParameter, match=r"parse_mystery.*'key'"):
        discover_targets()


@pytest.mark.timeout(QUICK_SECONDS + 60)
def test_atheris_quick_run_finds_nothing_but_parse_error(tmp_path: Path) -> None:
    proc, stats = _fuzz(
        tmp_path,
        "--seconds",
        str(QUICK_SECONDS),
        "--runs",
        "50000000",
        timeout=QUICK_SECONDS + 45,
    )
    assert _assert_clean(proc, stats, tmp_path) >= 20_000


@pytest.mark.timeout(60)
def test_atheris_notices_a_planted_crash(tmp_path: Path) -> None:
    """The canary target raises IndexError for inputs starting 0xCA 0xFE: the run must fail,
    name the exception and keep the crashing input."""
    proc, _ = _fuzz(tmp_path, "--canary", "--seconds", "30", "--runs", "50000000", timeout=50)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert "Uncaught Python exception" in output
    assert "IndexError" in output
    crashes = list((tmp_path / "artifacts").glob("crash-*"))
    assert len(crashes) == 1
    raw = crashes[0].read_bytes()
    assert raw[1:3] == b"\xca\xfe"  # [target index] then the canary's magic


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_atheris_long_run_finds_nothing_but_parse_error(tmp_path: Path) -> None:
    proc, stats = _fuzz(tmp_path, "--seconds", "600", "--runs", "2000000000", timeout=780)
    assert _assert_clean(proc, stats, tmp_path) >= 1_000_000


# hypothesis: arbitrary bytes (and arguments) into every parser


def _strategy(target: Target) -> st.SearchStrategy[dict[str, Any]]:
    by_name: dict[str, st.SearchStrategy[Any]] = {
        "data": st.binary(max_size=96),
        "characteristic": st.sampled_from(CHARACTERISTIC_CHOICES) | st.text(max_size=40),
        "offset": st.integers(-16, 128),
        "text": st.text(max_size=64),
        "device": st.just(DEVICE),
        "received_at": st.just(RECEIVED) | st.datetimes(timezones=st.just(UTC)),
    }
    return st.fixed_dictionaries({p: by_name[p] for p in target.parameters})


def _never_raises_but_parse_error(target: Target) -> Callable[[], None]:
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_strategy(target))
    def check(arguments: dict[str, Any]) -> None:
        try:
            result = target.function(**arguments)
        except ParseError:
            return
        repr(result)
        to_json = getattr(result, "to_json", None)
        if callable(to_json):
            to_json()

    return check


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_hypothesis_arbitrary_input_raises_nothing_but_parse_error(target: Target) -> None:
    _never_raises_but_parse_error(target)()


# regressions found by the fuzzer


@pytest.mark.parametrize(
    ("read", "size"),
    [(DateTime.from_bytes, 7), (decode_sfloat, 2), (decode_float, 4)],
    ids=["DateTime.from_bytes", "decode_sfloat", "decode_float"],
)
def test_offset_readers_raise_parse_error_on_short_data_and_negative_offsets(
    read: Callable[[bytes, int], object], size: int
) -> None:
    """atheris found ``DateTime.from_bytes(b"d")`` raising ``struct.error``; a negative offset
    read silently from the end of the buffer."""
    assert "offset" in inspect.signature(read).parameters
    read(bytes(size), 0)
    for short in range(size):
        with pytest.raises(ParseError):
            read(bytes(short), 0)
    with pytest.raises(ParseError):
        read(bytes(size + 3), 4)
    with pytest.raises(ParseError):
        read(bytes(size + 3), -size)
