"""Every parser in ``devices/`` under atheris (coverage-guided, libFuzzer): nothing but
``devices.ParseError`` may escape.

Run as ``python -m tests.support.fuzz_codecs [--runs N] [--seconds S] [--corpus DIR]``;
``tests/reliability/test_fuzz_codecs.py`` runs it in a subprocess (atheris' ``Fuzz()`` ends the
process) and reads its exit status and output. Any other exception is a crash: atheris prints
"Uncaught Python exception", libFuzzer writes the input to ``--artifacts`` and the exit status is
not 0. ``--canary`` adds a target with a planted bug, to prove that a crash is noticed.

The targets are discovered, not listed: every function in ``devices.__all__`` except the encoders
(``encode_*``) and every ``from_bytes`` of a dataclass there. Their arguments are supplied by
parameter name; a parser with a parameter this harness does not know stops the run at setup
(exit status 3), so a new parser cannot be skipped silently.

One fuzz input = ``[target index] [characteristic selector] [offset] data…`` (the last three
only when the target takes them), which keeps the seed corpus (the complete vectors of
``tests/devices``) meaningful to the mutator.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import inspect
import json
import sys
import types
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import devices
from devices import CHARACTERISTICS, DeviceIdentity, ParseError

__all__ = ["Target", "discover_targets", "main", "seed_inputs"]

#: spellings of characteristics a caller might pass: every codec, other accepted forms, junk
CHARACTERISTIC_CHOICES: tuple[str, ...] = (
    *sorted(CHARACTERISTICS),
    "0x2A35",
    "00002a18-0000-1000-8000-00805f9b34fb",
    " 2A9D ",
    "2a00",
    "ffff",
    "",
    "2a3",
    "not-a-uuid",
)
DEVICE = DeviceIdentity("fuzz-device", "blood_pressure_monitor", "Acme", "F1")
RECEIVED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KNOWN_PARAMETERS = frozenset({"data", "characteristic", "offset", "device", "received_at", "text"})


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    name: str
    function: Callable[..., object]
    parameters: tuple[str, ...]

    @property
    def header_size(self) -> int:
        """Bytes of the fuzz input before the payload: target, characteristic, offset."""
        return 1 + ("characteristic" in self.parameters) + ("offset" in self.parameters)


class UnknownParameter(Exception):
    def __init__(self, target: str, parameter: str) -> None:
        super().__init__(f"{target}: no fuzz input for parameter {parameter!r}")


def _parameters(name: str, function: Callable[..., object]) -> tuple[str, ...]:
    names = tuple(inspect.signature(function).parameters)
    for parameter in names:
        if parameter not in KNOWN_PARAMETERS:
            raise UnknownParameter(name, parameter)
    return names


def discover_targets(*, canary: bool = False) -> list[Target]:
    """Every parser of ``devices.__all__`` (sorted by name), plus the planted-bug canary."""
    found: list[Target] = []
    for name in sorted(devices.__all__):
        obj = getattr(devices, name)
        if inspect.isclass(obj):
            if not dataclasses.is_dataclass(obj) or not hasattr(obj, "from_bytes"):
                continue  # enums and flags: from_bytes is int's own
            function: Callable[..., object] = obj.from_bytes
            label = f"{name}.from_bytes"
        elif inspect.isfunction(obj) and not name.startswith("encode_"):
            function, label = obj, name
        else:
            continue
        found.append(Target(label, function, _parameters(label, function)))
    if canary:
        import atheris

        found.append(Target("canary", atheris.instrument_func(_canary), ("data",)))
    return found


def _canary(data: bytes) -> object:
    """A parser with a bug: an IndexError that escapes for inputs starting 0xCA 0xFE."""
    if data[:2] == b"\xca\xfe":
        return data[64]
    return None


def _arguments(target: Target, raw: bytes) -> dict[str, Any]:
    header = raw[1 : target.header_size]
    data = raw[target.header_size :]
    args: dict[str, Any] = {}
    cursor = 0
    for parameter in target.parameters:
        match parameter:
            case "characteristic":
                pick = header[cursor] if cursor < len(header) else 0
                args[parameter] = CHARACTERISTIC_CHOICES[pick % len(CHARACTERISTIC_CHOICES)]
                cursor += 1
            case "offset":
                args[parameter] = (header[cursor] if cursor < len(header) else 0) - 8
                cursor += 1
            case "data":
                args[parameter] = data
            case "text":
                args[parameter] = data.decode("utf-8", "replace")
            case "device":
                args[parameter] = DEVICE
            case "received_at":
                args[parameter] = RECEIVED
    return args


def make_test_one_input(
    targets: Sequence[Target],
    counts: Counter[str],
    every_4096: Callable[[], None] | None = None,
) -> Callable[[bytes], None]:
    calls = 0

    def test_one_input(raw: bytes) -> None:
        nonlocal calls
        calls += 1
        if every_4096 is not None and calls % 4096 == 0:
            every_4096()
        if not raw:
            return
        target = targets[raw[0] % len(targets)]
        counts[target.name] += 1
        try:
            result = target.function(**_arguments(target, raw))
        except ParseError:
            return
        repr(result)  # formatting a decoded value must not fail either
        to_json = getattr(result, "to_json", None)
        if callable(to_json):
            to_json()

    return test_one_input


def seed_inputs(targets: Sequence[Target], vectors: dict[str, bytes]) -> list[bytes]:
    """For each target, each complete vector (characteristic-aware targets get the matching
    characteristic selector): the corpus the mutator starts from."""
    seeds: list[bytes] = []
    for index, target in enumerate(targets):
        for characteristic, data in vectors.items():
            header = bytes([index])
            if "characteristic" in target.parameters:
                uuid = characteristic.split("#", 1)[0]
                header += bytes([CHARACTERISTIC_CHOICES.index(uuid)])
            if "offset" in target.parameters:
                header += bytes([8])
            seeds.append(header + data)
    return seeds


def _instrument_devices() -> int:
    """Add atheris' coverage instrumentation to every function of ``devices`` (already
    imported by the package's ``__init__``, so ``instrument_imports`` would be too late)."""
    import atheris

    done = 0
    for obj in gc.get_objects():
        if (
            isinstance(obj, types.FunctionType)
            and isinstance(getattr(obj, "__module__", None), str)
            and (obj.__module__ == "devices" or obj.__module__.startswith("devices."))
            and not obj.__module__.startswith(("lab.emulation", "devices.cli"))
        ):
            atheris.instrument_func(obj)
            done += 1
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.fuzz_codecs")
    parser.add_argument("--runs", type=int, default=200_000, help="libFuzzer -runs")
    parser.add_argument("--seconds", type=int, default=30, help="libFuzzer -max_total_time")
    parser.add_argument("--corpus", type=Path, help="corpus directory (seeded, then grown)")
    parser.add_argument("--artifacts", type=Path, help="where libFuzzer writes crash inputs")
    parser.add_argument("--stats", type=Path, help="per-target input counts (JSON), kept current")
    parser.add_argument("--canary", action="store_true", help="add a target with a planted bug")
    parser.add_argument("--list", action="store_true", help="print the targets and exit")
    args = parser.parse_args(argv)
    try:
        targets = discover_targets(canary=args.canary)
    except UnknownParameter as exc:
        print(f"fuzz harness: {exc}", file=sys.stderr)
        return 3
    if args.list:
        print("\n".join(t.name for t in targets))
        return 0
    libfuzzer = [
        sys.argv[0],
        f"-runs={args.runs}",
        f"-max_total_time={args.seconds}",
        "-timeout=10",
        "-rss_limit_mb=1024",
        "-print_final_stats=1",
        "-max_len=256",
    ]
    if args.artifacts is not None:
        args.artifacts.mkdir(parents=True, exist_ok=True)
        libfuzzer.append(f"-artifact_prefix={args.artifacts}/")
    if args.corpus is not None:
        args.corpus.mkdir(parents=True, exist_ok=True)
        for i, seed in enumerate(seed_inputs(targets, _vectors())):
            (args.corpus / f"seed-{i:05d}").write_bytes(seed)
        libfuzzer.append(str(args.corpus))
    counts: Counter[str] = Counter()
    stats: Callable[[], None] | None = None
    if args.stats is not None:
        stats_path: Path = args.stats

        def write_stats() -> None:  # libFuzzer ends the process without running atexit
            stats_path.write_text(json.dumps({"targets": [t.name for t in targets], **counts}))

        stats = write_stats
    import atheris

    print(f"fuzz harness: {len(targets)} targets, {_instrument_devices()} functions instrumented")
    sys.stdout.flush()
    atheris.Setup(libfuzzer, make_test_one_input(targets, counts, stats))
    atheris.Fuzz()
    return 0  # not reached: Fuzz() ends the process


def _vectors() -> dict[str, bytes]:
    """The complete vectors of tests/devices (every optional field present)."""
    from tests.support.vectors import FULL, RACP_FORMS

    vectors = {k: bytes.fromhex(v) for k, v in FULL.items()}
    vectors.update({f"2a52#{i}": bytes.fromhex(v) for i, v in enumerate(RACP_FORMS)})
    return vectors


if __name__ == "__main__":
    sys.exit(main())
