"""Validation of MQTT messages against the versioned payload contract (pure; no I/O).

A message that cannot be read at all (bad JSON, unknown schema, topic/payload mismatch) is
rejected whole; otherwise each reading is checked on its own, so one bad reading never blocks
the good ones beside it.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from devices.canonical import DEVICE_TYPES, READING_TYPES, UNITS
from ingest.errors import RejectedReading

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "READINGS_SCHEMA",
    "READINGS_SCHEMA_RECEIPTS",
    "STATUS_SCHEMA",
    "IncomingReading",
    "ReadingsBatch",
    "StatusMessage",
    "decode_readings",
    "decode_status",
    "gateway_from_topic",
]

READINGS_SCHEMA = "carebeacon.readings/1"
#: the same batch from a gateway that asks for receipts (README, MQTT contract)
READINGS_SCHEMA_RECEIPTS = "carebeacon.readings/2"
STATUS_SCHEMA = "carebeacon.status/1"
MAX_PAYLOAD_BYTES = 1_048_576
MAX_READINGS_PER_MESSAGE = 1000

TOPIC = re.compile(r"^carebeacon/v1/gateways/([^/#+]{1,64})/(readings|status)$")
_FLAG = re.compile(r"^[a-z0-9_:.-]{1,64}$")


#: physiologically possible ranges (inclusive); outside → quarantine as impossible_value
POSSIBLE: dict[str, tuple[float, float]] = {
    "systolic": (30, 300),
    "diastolic": (10, 250),
    "mean_arterial": (15, 280),
    "pulse": (15, 300),
    "glucose": (5, 1500),
    "body_weight": (0.5, 500),
    "bmi": (5, 150),
    "height": (0.3, 2.8),
    "body_fat": (0, 80),
    "carbohydrate": (0, 1000),  # g, glucose context (0x2A34)
    "exercise_duration": (0, 65534),  # s (65535 = overrun: a flag, no value)
    "exercise_intensity": (0, 100),  # %
    "medication": (0, 10000),  # mg
    "medication_volume": (0, 100),  # mL
    "hba1c": (2, 25),  # %
}


#: a device timestamp more than this ahead of the gateway's receive time is not believed
FUTURE_TOLERANCE = timedelta(hours=24)
#: ... nor one older than this (meters keep months of records, not years)
PAST_TOLERANCE = timedelta(days=400)
#: flags with which the device clock is known to be wrong: the receive time is used instead
CLOCK_UNTRUSTED_FLAGS = frozenset({"device_clock_reset", "device_clock_unset"})


class IncomingReading(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A valid reading (a Struct: built in C, many per second)."""

    id: uuid.UUID
    device_id: str
    device_type: str
    manufacturer: str | None
    model: str | None
    type: str
    time: datetime  # clinical time, aware
    measured_at: datetime | None  # naive device clock as sent
    received_at: datetime
    sequence: int | None
    user_index: int | None
    values: tuple[tuple[str, float, str], ...]
    flags: tuple[str, ...]
    raw: dict[str, Any]
    origin: dict[str, Any] | _Origin  # the reading as received, or where to find it again

    @property
    def source(self) -> Any:
        """The reading as received (for quarantine)."""
        if isinstance(self.origin, _Origin):
            return json.loads(self.origin.payload)["readings"][self.origin.index]
        return self.origin


class _Origin(msgspec.Struct, frozen=True, gc=False):
    """A reading decoded on the fast path: the message and its index in ``readings``."""

    payload: bytes
    index: int


@dataclass(frozen=True, slots=True)
class ReadingsBatch:
    gateway_id: str
    sent_at: datetime | None
    readings: tuple[IncomingReading, ...]
    rejected: tuple[tuple[int, dict[str, Any] | Any, RejectedReading], ...]  # (index, reading, why)
    timezone: str | None = None  # the batch's IANA zone (UTC if unsent): a release needs it
    receipts: bool = False  # carebeacon.readings/2: the gateway asks for receipts


@dataclass(frozen=True, slots=True)
class StatusMessage:
    gateway_id: str
    online: bool
    sent_at: datetime | None
    body: dict[str, Any]


def gateway_from_topic(topic: str) -> tuple[str, str]:
    """``(gateway_id, kind)`` of a contract topic, else :class:`RejectedReading` ``bad_topic``."""
    match = TOPIC.match(topic)
    if not match:
        raise RejectedReading(
            "bad_topic", "topic is not carebeacon/v1/gateways/{id}/readings|status"
        )
    return match.group(1), match.group(2)


def _load(payload: bytes) -> Any:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise RejectedReading(
            "oversized", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}"
        )
    try:
        return json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise RejectedReading("bad_json", f"payload is not JSON ({type(exc).__name__})") from None


def _aware(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise RejectedReading("invalid_payload", f"{field} must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RejectedReading("invalid_payload", f"{field} is not ISO 8601") from None
    if parsed.tzinfo is None:
        raise RejectedReading("invalid_payload", f"{field} must carry a UTC offset")
    return parsed.astimezone(UTC)


def _naive(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RejectedReading("invalid_payload", f"{field} must be an ISO 8601 string or null")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RejectedReading("invalid_payload", f"{field} is not ISO 8601") from None
    if parsed.tzinfo is not None:
        raise RejectedReading("invalid_payload", f"{field} is the device clock: no UTC offset")
    return parsed


def _optional_int(value: Any, field: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RejectedReading(
            "invalid_payload", f"{field} must be an integer in [{low}, {high}] or null"
        )
    return value


def _optional_str(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 200 or "\x00" in value:
        raise RejectedReading(
            "invalid_payload", f"{field} must be a string of at most 200 characters, no NUL"
        )
    return value


def _has_nul(value: Any) -> bool:
    """Whether a decoded JSON value holds a NUL character anywhere (PostgreSQL text and jsonb
    cannot store one: it would fail the whole batch's transaction)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _zone(name: Any) -> ZoneInfo:
    if name is None:
        return ZoneInfo("UTC")
    if not isinstance(name, str):
        raise RejectedReading("invalid_payload", "timezone must be an IANA zone name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RejectedReading("invalid_payload", "timezone is not a known IANA zone") from None


def _reading(item: Any, zone: ZoneInfo) -> IncomingReading:
    if not isinstance(item, dict):
        raise RejectedReading("invalid_payload", "a reading must be an object")
    try:
        reading_id = uuid.UUID(str(item["id"]))
    except (KeyError, ValueError):
        raise RejectedReading("invalid_payload", "reading id must be a UUID") from None
    device = item.get("device")
    if not isinstance(device, dict) or not isinstance(device.get("id"), str) or not device["id"]:
        raise RejectedReading("invalid_payload", "device.id must be a non-empty string")
    if len(device["id"]) > 128 or "\x00" in device["id"]:
        raise RejectedReading(
            "invalid_payload", "device.id is longer than 128 characters or holds a NUL"
        )
    if device.get("type") not in DEVICE_TYPES:
        raise RejectedReading("invalid_payload", "device.type is not a known device type")
    if item.get("type") not in READING_TYPES:
        raise RejectedReading("invalid_payload", "type is not a known reading type")
    received_at = _aware(item.get("received_at"), "received_at")
    measured_at = _naive(item.get("measured_at"), "measured_at")
    flags_in = item.get("flags", [])
    if not isinstance(flags_in, list) or not all(
        isinstance(f, str) and _FLAG.match(f) for f in flags_in
    ):
        raise RejectedReading("invalid_payload", "flags must be a list of lower-case identifiers")
    flags = tuple(sorted(set(flags_in)))
    values_in = item.get("values")
    if not isinstance(values_in, list):
        raise RejectedReading("invalid_payload", "values must be a list")
    values: list[tuple[str, float, str]] = []
    seen: set[str] = set()
    for entry in values_in:
        if not isinstance(entry, dict):
            raise RejectedReading("invalid_payload", "each value must be an object")
        code, value, unit = entry.get("code"), entry.get("value"), entry.get("unit")
        if code not in UNITS:
            raise RejectedReading("invalid_payload", "value code is not a known code")
        if code in seen:
            raise RejectedReading("invalid_payload", f"value code {code} appears twice")
        seen.add(code)
        if unit != UNITS[code]:
            raise RejectedReading("invalid_payload", f"{code} must be in {UNITS[code]}")
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise RejectedReading("invalid_payload", f"{code} must be a finite number")
        low, high = POSSIBLE.get(code, (0.0, 1e6))
        if not low <= value <= high:
            raise RejectedReading(
                "impossible_value", f"{code} outside the possible range [{low}, {high}]"
            )
        values.append((code, float(value), unit))
    raw = item.get("raw", {})
    if not isinstance(raw, dict) or _has_nul(raw):
        raise RejectedReading("invalid_payload", "raw must be an object without NUL characters")
    if measured_at is None or CLOCK_UNTRUSTED_FLAGS.intersection(flags):
        time = received_at
    else:
        try:
            time = measured_at.replace(tzinfo=zone).astimezone(UTC)
        except (OverflowError, ValueError):
            raise RejectedReading(
                "device_time_implausible", "device time cannot be placed in UTC"
            ) from None
        if time > received_at + FUTURE_TOLERANCE or time < received_at - PAST_TOLERANCE:
            raise RejectedReading(
                "device_time_implausible",
                "device time is more than 24 h after or 400 days before the receive time "
                "and the reading carries no clock-reset flag",
            )
    return IncomingReading(
        id=reading_id,
        device_id=device["id"],
        device_type=device["type"],
        manufacturer=_optional_str(device.get("manufacturer"), "device.manufacturer"),
        model=_optional_str(device.get("model"), "device.model"),
        type=item["type"],
        time=time,
        measured_at=measured_at,
        received_at=received_at,
        sequence=_optional_int(item.get("sequence"), "sequence", 0, 2**63 - 1),
        user_index=_optional_int(item.get("user_index"), "user_index", 0, 255),
        values=tuple(values),
        flags=flags,
        raw=raw,
        origin=item,
    )


# --- the fast path: one msgspec pass decodes and validates a message that is wholly good -------
#
# The Structs below accept a subset of what the checks above accept, and give the same values
# for it: a message with anything unusual in it (a bad reading, a type or range msgspec would
# have to coerce, a lone surrogate, a UTF-16 payload...) fails here and is decoded again by the
# checks above, which give every rejection its reason and detail. So the fast path changes
# speed, never an outcome.

_Flag = Annotated[str, msgspec.Meta(pattern=_FLAG.pattern)]
_Optional200 = Annotated[str, msgspec.Meta(max_length=200)] | None


def _value_struct(code: str) -> type[msgspec.Struct]:
    low, high = POSSIBLE.get(code, (0.0, 1e6))
    return msgspec.defstruct(
        f"_Value_{code}",
        [
            ("value", Annotated[float, msgspec.Meta(ge=low, le=high)]),
            ("unit", Literal[UNITS[code]]),
        ],
        namespace={"code": code},
        tag_field="code",
        tag=code,
        forbid_unknown_fields=False,
        frozen=True,
        gc=False,
    )


#: one tagged Struct per value code: its unit and possible range checked by msgspec
if TYPE_CHECKING:
    _Value = Any
else:
    _Value = Union[tuple(_value_struct(code) for code in UNITS)]  # noqa: UP007


class _FastDevice(msgspec.Struct, frozen=True, gc=False):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    type: str
    manufacturer: _Optional200 = None
    model: _Optional200 = None


class _FastReading(msgspec.Struct, frozen=True, gc=False):
    id: uuid.UUID  # msgspec takes the canonical forms only: the others go the slow way
    device: _FastDevice
    type: str
    received_at: str
    values: list[_Value]
    measured_at: str | None = None
    sequence: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] | None = None
    user_index: Annotated[int, msgspec.Meta(ge=0, le=255)] | None = None
    flags: list[_Flag] = []
    raw: dict[str, Any] = {}


class _FastBatch(msgspec.Struct, frozen=True):
    schema: str
    gateway_id: str
    readings: Annotated[list[_FastReading], msgspec.Meta(max_length=MAX_READINGS_PER_MESSAGE)]
    sent_at: str | None = None
    timezone: str | None = None


_BATCH_DECODER = msgspec.json.Decoder(_FastBatch)


class _NotFast(Exception):
    """The fast path declines: the checks above decide."""


@lru_cache(maxsize=64)
def _fast_zone(name: str | None) -> ZoneInfo:
    return _zone(name)


#: per message: (received_at, measured_at) as sent → the receive time in UTC, the device
#: clock's naive time, and the clinical time by the device clock (``None`` when that lies
#: outside the tolerances): the readings of one upload often share them
_Times = dict[tuple[str, str | None], tuple[datetime, datetime | None, datetime | None]]


def _fast_times(
    received: str, measured: str | None, zone: ZoneInfo
) -> tuple[datetime, datetime | None, datetime | None]:
    received_at = datetime.fromisoformat(received)
    if received_at.tzinfo is None:
        raise _NotFast
    received_at = received_at.astimezone(UTC)
    if measured is None:
        return received_at, None, None
    measured_at = datetime.fromisoformat(measured)
    if measured_at.tzinfo is not None:
        raise _NotFast
    # UTC, the usual zone, needs no conversion (the same instant, the same tzinfo)
    time = (
        measured_at.replace(tzinfo=UTC)
        if zone.key == "UTC"
        else measured_at.replace(tzinfo=zone).astimezone(UTC)
    )
    if time > received_at + FUTURE_TOLERANCE or time < received_at - PAST_TOLERANCE:
        return received_at, measured_at, None
    return received_at, measured_at, time


def _fast_reading(
    item: _FastReading, zone: ZoneInfo, origin: _Origin, nul_free: bool, times: _Times
) -> IncomingReading:
    device = item.device
    if device.type not in DEVICE_TYPES or item.type not in READING_TYPES:
        raise _NotFast
    if not nul_free and (
        "\x00" in device.id
        or (device.manufacturer is not None and "\x00" in device.manufacturer)
        or (device.model is not None and "\x00" in device.model)
        or _has_nul(item.raw)
    ):
        raise _NotFast
    key = (item.received_at, item.measured_at)
    known = times.get(key)
    if known is None:
        known = times[key] = _fast_times(item.received_at, item.measured_at, zone)
    received_at, measured_at, device_time = known
    values = tuple([(value.code, value.value, value.unit) for value in item.values])
    if len({code for code, _, _ in values}) != len(values):
        raise _NotFast  # a code twice
    flags = tuple(sorted(set(item.flags))) if item.flags else ()
    if measured_at is None or CLOCK_UNTRUSTED_FLAGS.intersection(flags):
        time = received_at
    elif device_time is None:
        raise _NotFast  # the device clock outside the tolerances: the checks say why
    else:
        time = device_time
    return IncomingReading(
        id=item.id,
        device_id=device.id,
        device_type=device.type,
        manufacturer=device.manufacturer,
        model=device.model,
        type=item.type,
        time=time,
        measured_at=measured_at,
        received_at=received_at,
        sequence=item.sequence,
        user_index=item.user_index,
        values=values,
        flags=flags,
        raw=item.raw,
        origin=origin,
    )


def _decode_fast(topic_gateway: str, payload: bytes) -> ReadingsBatch:
    """A wholly good readings message in one pass; :class:`_NotFast` for anything else."""
    try:
        if not payload.isascii():
            payload.decode()  # msgspec skips unknown fields unread: make sure all is UTF-8
        body = _BATCH_DECODER.decode(payload)
        if (
            body.schema not in (READINGS_SCHEMA, READINGS_SCHEMA_RECEIPTS)
            or body.gateway_id != topic_gateway
        ):
            raise _NotFast
        zone = _fast_zone(body.timezone)
        sent_at = None
        if body.sent_at is not None:
            sent_at = datetime.fromisoformat(body.sent_at)
            if sent_at.tzinfo is None:
                raise _NotFast
            sent_at = sent_at.astimezone(UTC)
        # a NUL can only be written as \u0000 in JSON: without that text, no string holds one
        nul_free = b"\\u0000" not in payload
        times: _Times = {}
        readings = tuple(
            _fast_reading(item, zone, _Origin(payload, index), nul_free, times)
            for index, item in enumerate(body.readings)
        )
    except (msgspec.MsgspecError, ValueError, OverflowError, RejectedReading, TypeError):
        raise _NotFast from None
    return ReadingsBatch(
        topic_gateway,
        sent_at,
        readings,
        (),
        zone.key,
        receipts=body.schema == READINGS_SCHEMA_RECEIPTS,
    )


def decode_readings(topic_gateway: str, payload: bytes) -> ReadingsBatch:
    """Validate a readings message. Raises :class:`RejectedReading` if the whole message is bad."""
    if len(payload) <= MAX_PAYLOAD_BYTES:
        with contextlib.suppress(_NotFast):  # not wholly good: the checks give the reason
            return _decode_fast(topic_gateway, payload)
    return _decode_checked(topic_gateway, payload)


def _decode_checked(topic_gateway: str, payload: bytes) -> ReadingsBatch:
    """The checks, one by one: the reason and detail of every rejection."""
    body = _load(payload)
    if not isinstance(body, dict):
        raise RejectedReading("invalid_payload", "a batch must be a JSON object")
    schema = body.get("schema")
    if schema not in (READINGS_SCHEMA, READINGS_SCHEMA_RECEIPTS):
        raise RejectedReading(
            "unknown_schema", f"schema must be {READINGS_SCHEMA!r} or {READINGS_SCHEMA_RECEIPTS!r}"
        )
    if body.get("gateway_id") != topic_gateway:
        raise RejectedReading(
            "gateway_mismatch", "gateway_id in the payload differs from the topic"
        )
    readings_in = body.get("readings")
    if not isinstance(readings_in, list):
        raise RejectedReading("invalid_payload", "readings must be a list")
    if len(readings_in) > MAX_READINGS_PER_MESSAGE:
        raise RejectedReading(
            "oversized", f"more than {MAX_READINGS_PER_MESSAGE} readings in one message"
        )
    sent_at = _aware(body["sent_at"], "sent_at") if body.get("sent_at") is not None else None
    zone = _zone(body.get("timezone"))
    readings: list[IncomingReading] = []
    rejected: list[tuple[int, Any, RejectedReading]] = []
    for index, item in enumerate(readings_in):
        try:
            readings.append(_reading(item, zone))
        except RejectedReading as why:
            rejected.append((index, item, why))
    return ReadingsBatch(
        topic_gateway,
        sent_at,
        tuple(readings),
        tuple(rejected),
        zone.key,
        receipts=schema == READINGS_SCHEMA_RECEIPTS,
    )


def decode_status(topic_gateway: str, payload: bytes) -> StatusMessage:
    """Validate a gateway status (also its Last Will: JSON with state offline, or plain ``offline``)."""
    if payload.strip() == b"offline":
        return StatusMessage(topic_gateway, False, None, {"state": "offline"})
    body = _load(payload)
    if not isinstance(body, dict) or body.get("schema") != STATUS_SCHEMA:
        raise RejectedReading("unknown_schema", f"status schema must be {STATUS_SCHEMA!r}")
    if body.get("gateway_id") != topic_gateway:
        raise RejectedReading(
            "gateway_mismatch", "gateway_id in the payload differs from the topic"
        )
    if _has_nul(body):
        raise RejectedReading("invalid_payload", "a status must not hold NUL characters")
    state = body.get("state")
    if state not in {"online", "offline"}:
        raise RejectedReading("invalid_payload", "state must be online or offline")
    sent_at = _aware(body["sent_at"], "sent_at") if body.get("sent_at") is not None else None
    return StatusMessage(topic_gateway, state == "online", sent_at, body)
