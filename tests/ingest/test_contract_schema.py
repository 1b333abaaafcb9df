"""Issue 16: the MQTT contract as JSON Schema (contracts/*.schema.json, draft 2020-12).

The schemas must hold the README's examples and the gateway's real output (its own payload
builders on decoded device bytes), and ingest (resp. the gateway, for the config) must accept
exactly what the schema accepts on a set of valid and invalid samples. What a consumer checks
beyond the schema (each schema's description lists it) is not sampled here, except where the
schema is deliberately stricter than ingest, which is asserted as such.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from devices.canonical import CanonicalReading, DeviceIdentity, canonical_reading
from gateway.config import parse_server_config
from gateway.errors import ConfigError
from gateway.outbox import Outbox, PendingReading
from gateway.publisher import READINGS_SCHEMA_RECEIPTS, batch_payload, parse_receipt
from gateway.status import StatusBoard, build_status, offline_status
from ingest.errors import RejectedReading
from ingest.payload import decode_readings, decode_status, gateway_from_topic
from ingest.receipts import receipt_messages
from tests.support.readings import bp_reading, fake_readings
from tests.support.vectors import FULL

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"


def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((CONTRACTS / f"{name}.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


READINGS = _validator("carebeacon.readings-1")
STATUS = _validator("carebeacon.status-1")
CONFIG = _validator("carebeacon.gateway-config-1")
READINGS_2 = _validator("carebeacon.readings-2")
RECEIPTS = _validator("carebeacon.receipts-1")
BY_SCHEMA = {
    "carebeacon.readings/1": READINGS,
    "carebeacon.status/1": STATUS,
    "carebeacon.gateway-config/1": CONFIG,
    "carebeacon.receipts/1": RECEIPTS,
}


def _errors(validator: Draft202012Validator, body: Any) -> list[str]:
    return [error.message for error in validator.iter_errors(body)]


# --- the README's examples ------------------------------------------------------------------


def _readme_examples() -> list[dict[str, Any]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## MQTT contract (v1)", 1)[1].split("\n## ", 1)[0]
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", section, re.S)]


def test_the_readme_shows_an_example_of_every_message() -> None:
    kinds = sorted(example["schema"] for example in _readme_examples())
    assert kinds == sorted(BY_SCHEMA)


@pytest.mark.parametrize("example", _readme_examples(), ids=lambda e: str(e["schema"]))
def test_the_readme_examples_validate(example: dict[str, Any]) -> None:
    assert _errors(BY_SCHEMA[example["schema"]], example) == []


def test_the_readme_readings_example_is_accepted_by_ingest() -> None:
    (example,) = [e for e in _readme_examples() if e["schema"] == "carebeacon.readings/1"]
    decoded = decode_readings(example["gateway_id"], json.dumps(example).encode())
    assert decoded.rejected == ()
    assert len(decoded.readings) == len(example["readings"])


# --- the gateway's real output --------------------------------------------------------------

#: decoded from complete device vectors (the glucose vector's value is a codec edge case,
#: 540 480 mg/dL, quarantined by design: glucose comes from the fake meter readings instead)
_DEVICES = {
    "2a35": DeviceIdentity("bp-1", "blood_pressure_monitor", "Nordic", "BPM"),
    "2a9d": DeviceIdentity("scale-1", "weight_scale"),
    "2a9c": DeviceIdentity("bcs-1", "body_composition_scale"),
    "181d": DeviceIdentity("mi-1", "weight_scale", "Xiaomi", "XMTZC01HM"),
    "181b": DeviceIdentity("mi-2", "body_composition_scale", "Xiaomi", "XMTZC02HM"),
}


def _decoded(characteristic: str, device: DeviceIdentity) -> CanonicalReading:
    """The vector as the gateway decodes it, received an hour after its device time (so that
    ingest believes the device clock; the vectors' dates span years)."""
    data = bytes.fromhex(FULL[characteristic])
    first = canonical_reading(characteristic, data, device, datetime.now(UTC))
    if first.measured_at is None:
        return first
    received = first.measured_at.replace(tzinfo=UTC) + timedelta(hours=1)
    return canonical_reading(characteristic, data, device, received)


def test_the_gateways_batches_and_status_validate(tmp_path: Path) -> None:
    received = datetime(2026, 11, 23, 7, 2, 9, tzinfo=UTC)
    outbox = Outbox(tmp_path / "outbox.db", max_readings=100)
    try:
        outbox.add([_decoded(c, d) for c, d in _DEVICES.items()])
        outbox.add(fake_readings("glu-2", 3))
        outbox.update_device("bp-1", battery_percent=80, last_reading_at=received)
        pending = outbox.pending(limit=50)
        assert len(pending) == len(_DEVICES) + 3
        payload = batch_payload("gw-7", "UTC", pending, received + timedelta(seconds=2))
        body = json.loads(payload)
        assert _errors(READINGS, body) == []
        assert decode_readings("gw-7", payload).rejected == ()

        board = StatusBoard()
        board.saw_unknown("AA:BB:CC:DD:EE:FF")
        status = build_status("gw-7", outbox, board, now=received)
        assert status["devices"], "the status lists the device updated above"
        assert _errors(STATUS, status) == []
        assert _errors(STATUS, json.loads(offline_status("gw-7"))) == []
    finally:
        outbox.close()


# --- ingest accepts exactly what the schema accepts -----------------------------------------


def _base_reading() -> dict[str, Any]:
    return bp_reading("bp-9")


def _with(path: str, value: Any) -> Callable[[dict[str, Any]], object]:
    *parents, last = path.split(".")

    def apply(reading: dict[str, Any]) -> None:
        target = reading
        for key in parents:
            target = target[key]
        target[last] = value

    return apply


def _without(path: str) -> Callable[[dict[str, Any]], object]:
    *parents, last = path.split(".")

    def apply(reading: dict[str, Any]) -> None:
        target = reading
        for key in parents:
            target = target[key]
        del target[last]

    return apply


#: (name, change to a valid reading, whether the result is valid)
READING_SAMPLES: list[tuple[str, Callable[[dict[str, Any]], object], bool]] = [
    ("as sent", lambda r: None, True),
    ("no device time", _with("measured_at", None), True),
    ("no measured_at key", _without("measured_at"), True),
    ("no flags, raw, sequence", lambda r: [r.pop(k) for k in ("flags", "raw", "sequence")], True),
    ("an extra field", _with("note", "ignored"), True),
    ("upper-case uuid", lambda r: r.update(id=r["id"].upper()), True),
    (
        "offset and fraction",
        lambda r: r.update(
            received_at=datetime.now(timezone(timedelta(hours=1))).isoformat(
                timespec="milliseconds"
            )
        ),
        True,
    ),
    ("largest sequence", _with("sequence", 2**63 - 1), True),
    ("user index 255", _with("user_index", 255), True),
    ("systolic at 300", lambda r: r["values"][0].update(value=300), True),
    ("flag with colon", _with("flags", ["vendor:xyz", "irregular_pulse"]), True),
    ("no values at all", _with("values", []), True),
    ("id not a uuid", _with("id", "0f3c…"), False),
    ("no id", _without("id"), False),
    ("no device", _without("device"), False),
    ("empty device id", _with("device.id", ""), False),
    ("device id of 129", _with("device.id", "d" * 129), False),
    ("device id with NUL", _with("device.id", "bp\x00"), False),
    ("unknown device type", _with("device.type", "thermometer"), False),
    ("model of 201", _with("device.model", "m" * 201), False),
    ("model a number", _with("device.model", 7), False),
    ("unknown reading type", _with("type", "temperature"), False),
    ("naive received_at", _with("received_at", "2026-11-23T07:02:09"), False),
    ("received_at a number", _with("received_at", 1700000000), False),
    ("measured_at with offset", _with("measured_at", "2026-11-23T07:02:09Z"), False),
    ("measured_at month 13", _with("measured_at", "2026-13-23T07:02:09"), False),
    ("negative sequence", _with("sequence", -1), False),
    ("sequence a string", _with("sequence", "42"), False),
    ("user index 256", _with("user_index", 256), False),
    ("user index a boolean", _with("user_index", True), False),
    ("flags a string", _with("flags", "irregular_pulse"), False),
    ("upper-case flag", _with("flags", ["Irregular"]), False),
    ("no values key", _without("values"), False),
    ("values an object", _with("values", {"systolic": 138}), False),
    ("unknown code", lambda r: r["values"][0].update(code="temperature"), False),
    ("wrong unit", lambda r: r["values"][0].update(unit="mmHg"), False),
    ("value a string", lambda r: r["values"][0].update(value="138"), False),
    ("value a boolean", lambda r: r["values"][0].update(value=True), False),
    ("systolic of 301", lambda r: r["values"][0].update(value=301), False),
    ("value without unit", lambda r: r["values"][0].pop("unit"), False),
    ("raw a list", _with("raw", ["2a35"]), False),
    ("reading a list", lambda r: None, False),  # replaced below by a list
]


def _batch(readings: list[Any], **fields: Any) -> dict[str, Any]:
    return {
        "schema": "carebeacon.readings/1",
        "gateway_id": "gw-9",
        "sent_at": datetime.now(UTC).isoformat(),
        "timezone": "UTC",
        "readings": readings,
        **fields,
    }


def _ingest_accepts(body: Any) -> bool:
    """The message is taken whole and every reading in it is stored (none quarantined)."""
    gateway = body.get("gateway_id") if isinstance(body, dict) else None
    try:
        topic_gateway, _ = gateway_from_topic(f"carebeacon/v1/gateways/{gateway}/readings")
        decoded = decode_readings(topic_gateway, json.dumps(body).encode())
    except RejectedReading:
        return False
    return decoded.rejected == () and len(decoded.readings) == len(body["readings"])


@pytest.mark.parametrize(("name", "change", "valid"), READING_SAMPLES, ids=lambda x: x)
def test_a_reading_is_valid_for_the_schema_exactly_when_ingest_stores_it(
    name: str, change: Callable[[dict[str, Any]], object], valid: bool
) -> None:
    reading: Any = _base_reading()
    change(reading)
    if name == "reading a list":
        reading = list(reading.items())
    body = _batch([reading])
    assert (_errors(READINGS, body) == []) is valid
    assert _ingest_accepts(body) is valid


def _many(n: int) -> list[dict[str, Any]]:
    return [_base_reading() for _ in range(n)]


BATCH_SAMPLES: list[tuple[str, Any, bool]] = [
    ("empty batch", _batch([]), True),
    ("1000 readings", _batch(_many(1000)), True),
    ("no sent_at", {k: v for k, v in _batch([]).items() if k != "sent_at"}, True),
    ("null timezone", _batch([], timezone=None), True),
    ("1001 readings", _batch(_many(1001)), False),
    ("next version", _batch([], schema="carebeacon.readings/3"), False),
    ("no schema", {k: v for k, v in _batch([]).items() if k != "schema"}, False),
    ("readings an object", _batch({}), False),  # type: ignore[arg-type]
    ("no readings", {k: v for k, v in _batch([]).items() if k != "readings"}, False),
    ("naive sent_at", _batch([], sent_at="2026-11-23T07:02:09"), False),
    ("gateway id with slash", _batch([], gateway_id="gw/9"), False),
    ("gateway id of 65", _batch([], gateway_id="g" * 65), False),
    ("gateway id empty", _batch([], gateway_id=""), False),
    ("a list", [_batch([])], False),
]


@pytest.mark.parametrize(("name", "body", "valid"), BATCH_SAMPLES, ids=lambda x: x)
def test_a_batch_is_valid_for_the_schema_exactly_when_ingest_takes_it(
    name: str, body: Any, valid: bool
) -> None:
    assert (_errors(READINGS, body) == []) is valid
    if isinstance(body, list):
        with pytest.raises(RejectedReading):
            decode_readings("gw-9", json.dumps(body).encode())
    else:
        assert _ingest_accepts(body) is valid


_STATUS_ONLINE = {
    "schema": "carebeacon.status/1",
    "gateway_id": "gw-9",
    "state": "online",
    "sent_at": "2026-11-23T07:05:00Z",
}

STATUS_SAMPLES: list[tuple[str, dict[str, Any], bool]] = [
    ("minimal online", _STATUS_ONLINE, True),
    ("last will", {**_STATUS_ONLINE, "state": "offline", "sent_at": None}, True),
    ("no sent_at", {k: v for k, v in _STATUS_ONLINE.items() if k != "sent_at"}, True),
    ("unknown state", {**_STATUS_ONLINE, "state": "sleeping"}, False),
    ("no state", {k: v for k, v in _STATUS_ONLINE.items() if k != "state"}, False),
    ("next version", {**_STATUS_ONLINE, "schema": "carebeacon.status/2"}, False),
    ("naive sent_at", {**_STATUS_ONLINE, "sent_at": "2026-11-23T07:05:00"}, False),
]


def _ingest_takes_status(body: dict[str, Any]) -> bool:
    try:
        decode_status(str(body.get("gateway_id")), json.dumps(body).encode())
    except RejectedReading:
        return False
    return True


@pytest.mark.parametrize(("name", "body", "valid"), STATUS_SAMPLES, ids=lambda x: x)
def test_a_status_is_valid_for_the_schema_exactly_when_ingest_takes_it(
    name: str, body: dict[str, Any], valid: bool
) -> None:
    assert (_errors(STATUS, body) == []) is valid
    assert _ingest_takes_status(body) is valid


def test_the_status_schema_is_stricter_than_ingest_on_the_fields_ingest_only_stores() -> None:
    """Ingest keeps the body as sent (the scheduler reads battery levels from it); the schema
    holds gateways to the types their own builder produces."""
    body = {**_STATUS_ONLINE, "unknown_devices": "many", "outbox": {"depth": -1}}
    assert _errors(STATUS, body) != []
    assert _ingest_takes_status(body)


_CONFIG = {
    "schema": "carebeacon.gateway-config/1",
    "devices": [{"id": "bp-1", "address": "aa:bb:cc:dd:ee:01", "type": "blood_pressure_monitor"}],
}


def _config_with(**device: Any) -> dict[str, Any]:
    body = copy.deepcopy(_CONFIG)
    body["devices"] = [device]
    return body


CONFIG_SAMPLES: list[tuple[str, dict[str, Any], bool]] = [
    ("id and address", _CONFIG, True),
    ("no devices listed", {**_CONFIG, "devices": []}, True),
    ("id only", _config_with(id="glu-1", type="glucose_meter"), True),
    ("address only", _config_with(address="AA:BB:CC:DD:EE:02", type="weight_scale"), True),
    ("null id, address", _config_with(id=None, address="x-1", type="weight_scale"), True),
    ("neither", _config_with(type="weight_scale"), False),
    ("null both", _config_with(id=None, address=None, type="weight_scale"), False),
    ("no type", _config_with(id="bp-1"), False),
    ("unknown type", _config_with(id="bp-1", type="thermometer"), False),
    ("id with a space", _config_with(id="bp 1", type="weight_scale"), False),
    ("id of 129", _config_with(id="d" * 129, type="weight_scale"), False),
    ("blank address", _config_with(address="  ", type="weight_scale"), False),
    ("device a string", {**_CONFIG, "devices": ["bp-1"]}, False),
    ("no devices", {"schema": "carebeacon.gateway-config/1"}, False),
    ("next version", {**_CONFIG, "schema": "carebeacon.gateway-config/2"}, False),
]


@pytest.mark.parametrize(("name", "body", "valid"), CONFIG_SAMPLES, ids=lambda x: x)
def test_a_config_is_valid_for_the_schema_exactly_when_the_gateway_takes_it(
    name: str, body: dict[str, Any], valid: bool
) -> None:
    assert (_errors(CONFIG, body) == []) is valid
    try:
        parse_server_config(json.dumps(body).encode())
    except ConfigError:
        taken = False
    else:
        taken = True
    assert taken is valid


# --- receipts (issue 19): readings/2 is readings/1 asking for them ----------------------------


def test_readings_2_is_readings_1_field_for_field() -> None:
    """Only the schema's name differs (a change to /1's fields is a change to /2's)."""

    def body(name: str) -> dict[str, Any]:
        schema = json.loads((CONTRACTS / f"{name}.schema.json").read_text(encoding="utf-8"))
        for key in ("$id", "title", "description"):
            schema.pop(key)
        schema["properties"] = {**schema["properties"], "schema": None}
        return dict(schema)

    assert body("carebeacon.readings-2") == body("carebeacon.readings-1")


@pytest.mark.parametrize(("name", "body", "valid"), BATCH_SAMPLES, ids=lambda x: x)
def test_a_readings_2_batch_is_valid_exactly_when_ingest_takes_it_and_asks_for_receipts(
    name: str, body: Any, valid: bool
) -> None:
    if isinstance(body, dict) and body.get("schema") == "carebeacon.readings/1":
        body = {**body, "schema": "carebeacon.readings/2"}
    assert (_errors(READINGS_2, body) == []) is valid
    if isinstance(body, dict) and valid:
        assert _ingest_accepts(body)
        assert decode_readings("gw-9", json.dumps(body).encode()).receipts


def test_the_gateways_receipt_asking_batches_validate_and_ingests_receipts_too() -> None:
    readings = [(str(r.id), json.dumps(r.to_json())) for r in fake_readings("glu-3", 3)]
    pending = [PendingReading(i, rid, body) for i, (rid, body) in enumerate(readings, 1)]
    payload = batch_payload(
        "gw-7", "UTC", pending, datetime.now(UTC), schema=READINGS_SCHEMA_RECEIPTS
    )
    assert _errors(READINGS_2, json.loads(payload)) == []
    batch = decode_readings("gw-7", payload)
    assert batch.receipts
    ids = [r.id for r in batch.readings]
    outcomes = {"gw-7": {"stored": ids[:1], "duplicate": ids[1:2], "quarantined": ids[2:]}}
    ((topic, body),) = receipt_messages(outcomes, {"gw-7"})
    assert topic == "carebeacon/v1/gateways/gw-7/receipts"
    assert _errors(RECEIPTS, json.loads(body)) == []
    receipt = parse_receipt(body, "gw-7")
    assert receipt is not None
    assert receipt.ids == tuple(rid for rid, _ in readings)


_RECEIPT = {
    "schema": "carebeacon.receipts/1",
    "gateway_id": "gw-9",
    "stored": ["0f3c2b8e-5a1d-5d6e-9b2a-7c4e1f0a9d35"],
    "duplicate": [],
    "quarantined": [],
}

RECEIPT_SAMPLES: list[tuple[str, dict[str, Any], bool]] = [
    ("one stored", _RECEIPT, True),
    ("all empty", {**_RECEIPT, "stored": []}, True),
    ("not a uuid", {**_RECEIPT, "quarantined": ["reading-1"]}, False),
    ("a number", {**_RECEIPT, "duplicate": [42]}, False),
    ("no duplicate list", {k: v for k, v in _RECEIPT.items() if k != "duplicate"}, False),
    ("another gateway's", {**_RECEIPT, "gateway_id": "gw-8"}, False),
    ("next version", {**_RECEIPT, "schema": "carebeacon.receipts/2"}, False),
]


@pytest.mark.parametrize(("name", "body", "valid"), RECEIPT_SAMPLES, ids=lambda x: x)
def test_a_receipt_is_valid_for_the_schema_exactly_when_the_gateway_takes_it(
    name: str, body: dict[str, Any], valid: bool
) -> None:
    """Addressed to gw-9 (the schema checks the shape; the gateway also its own id)."""
    schema_valid = _errors(RECEIPTS, body) == [] and body.get("gateway_id") == "gw-9"
    assert schema_valid is valid
    assert (parse_receipt(json.dumps(body).encode(), "gw-9") is not None) is valid
