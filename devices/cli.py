"""``carebeacon decode <characteristic> <hex>``: a captured packet, decoded.

Measurements (0x2A35, 0x2A18, 0x2A9D, 0x2A9C) and Mi Scale service data (0x181D, 0x181B)
print the canonical reading as JSON; every other characteristic this package knows prints its
decoded structure (numbers as exact decimal strings, enums by name). Malformed input (bad hex,
unknown characteristic, bytes that do not parse): exit status 2, one line on stderr, nothing
on stdout. The CLI may read the clock (``received_at`` defaults to now); the codecs do not.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import re
import sys
from datetime import UTC, datetime
from decimal import Decimal
from typing import NoReturn

from devices.canonical import (
    DEVICE_TYPE_BY_CHARACTERISTIC,
    DEVICE_TYPES,
    DeviceIdentity,
    canonical_reading,
)
from devices.characteristics import CHARACTERISTICS, decode, normalize_uuid
from devices.date_time import DateTime
from devices.errors import ParseError
from devices.ieee11073 import SpecialValue

__all__ = ["main", "to_jsonable"]

_SEPARATORS = re.compile(r"[\s:_-]+")


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def _parser() -> _Parser:
    parser = _Parser(
        prog="carebeacon decode",
        description="Decode a captured characteristic value or advert service data (hex).",
    )
    parser.add_argument("characteristic", help="16-bit UUID in hex: 2a35, 0x2A35, 181d, …")
    parser.add_argument("hex", nargs="+", help="payload bytes in hex (spaces and : allowed)")
    parser.add_argument("--device-id", default="cli", help="device identity (default: cli)")
    parser.add_argument(
        "--device-type",
        choices=sorted(DEVICE_TYPES),
        help="device type (default: the usual sender of the characteristic)",
    )
    parser.add_argument("--manufacturer")
    parser.add_argument("--model")
    parser.add_argument(
        "--received-at", help="gateway receive time, ISO 8601 with offset (default: now)"
    )
    return parser


def _flag_names(value: enum.IntFlag) -> list[str]:
    cls = type(value)
    names = [m.name.lower() for m in cls if m.name is not None and m in value]
    known = 0
    for member in cls:
        known |= int(member)
    unknown = int(value) & ~known
    names += [f"bit_{bit}" for bit in range(unknown.bit_length()) if unknown >> bit & 1]
    return names


def to_jsonable(obj: object) -> object:
    """A decoded structure as JSON-ready data: exact decimals as strings, enums by name."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, enum.IntFlag):
        return _flag_names(obj)
    if isinstance(obj, enum.Enum):
        return obj.name.lower() if not isinstance(obj, SpecialValue) else obj.value
    if isinstance(obj, int):
        return obj
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, bytes):
        return obj.hex()
    if isinstance(obj, DateTime):
        out: dict[str, object] = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        moment = obj.to_datetime()
        out["iso"] = None if moment is None else moment.isoformat()
        return out
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    raise TypeError(f"cannot represent {type(obj).__name__} as JSON")


def _received_at(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _UsageError("--received-at is not ISO 8601") from None
    if value.tzinfo is None:
        raise _UsageError("--received-at needs a UTC offset (e.g. 2026-01-01T08:00:00+00:00)")
    return value


def _payload(parts: list[str]) -> bytes:
    text = _SEPARATORS.sub("", "".join(parts))
    if text.lower().startswith("0x"):
        text = text[2:]
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise _UsageError("the payload is not hex (two hex digits per byte)") from None


def _run(argv: list[str]) -> object:
    args = _parser().parse_args(argv)
    uuid16 = normalize_uuid(args.characteristic)
    data = _payload(args.hex)
    if uuid16 in DEVICE_TYPE_BY_CHARACTERISTIC:
        try:
            device = DeviceIdentity(
                args.device_id,
                args.device_type or DEVICE_TYPE_BY_CHARACTERISTIC[uuid16],
                args.manufacturer,
                args.model,
            )
        except ValueError as exc:
            raise _UsageError(str(exc)) from None
        reading = canonical_reading(uuid16, data, device, _received_at(args.received_at))
        return reading.to_json()
    decoded = decode(uuid16, data)
    return {
        "characteristic": uuid16,
        "name": CHARACTERISTICS[uuid16].name,
        "decoded": to_jsonable(decoded),
    }


def main(argv: list[str]) -> int:
    if any(arg in ("-h", "--help") for arg in argv):
        _parser().print_help()
        return 0
    try:
        output = _run(argv)
    except _UsageError as exc:
        print(f"carebeacon decode: {exc}", file=sys.stderr)
        return 2
    except ParseError as exc:
        print(f"carebeacon decode: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(output, indent=2, ensure_ascii=False))
    return 0
