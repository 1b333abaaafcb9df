"""The console script: every command answers --help on stdout with exit 0 (as `carebeacon help
X` does), --version names the package version, an unknown command is a usage error (2)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from carebeacon import __version__
from carebeacon.cli import SUBCOMMANDS
from lab.bench import BENCHMARKS


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "carebeacon.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_every_command_has_help_on_stdout(command: str) -> None:
    done = _cli(command, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.lower().startswith("usage:"), done.stdout[:200]
    assert _cli("help", command).stdout == done.stdout


@pytest.mark.parametrize("benchmark", sorted(b for b in BENCHMARKS if not b.startswith("_")))
def test_every_benchmark_has_help(benchmark: str) -> None:
    done = _cli("bench", benchmark, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.lower().startswith("usage:")


def test_version_and_usage_errors() -> None:
    version = _cli("--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"carebeacon {__version__}")
    top = _cli()
    assert top.returncode == 0
    assert all(name in top.stdout for name in SUBCOMMANDS)
    unknown = _cli("no-such-command")
    assert unknown.returncode == 2
    assert "unknown command" in unknown.stderr
    bad_option = _cli("migrate", "--no-such-option")
    assert bad_option.returncode == 2
    assert "usage:" in bad_option.stderr
