"""Pairing and bonding over the emulated air.

The gateway's agent (``org.bluez.Agent1``, dbus-fast) is registered with an emulated BlueZ
agent manager on a private D-Bus; the air's SMP asks it what bluetoothd would ask. Devices pair
with bumble's SMP: Just Works, passkey entry (the device shows the code), numeric comparison.
ATT error codes are those of the Core Specification, Vol 3, Part F, 3.4.1.1 (0x05
Insufficient Authentication, 0x0F Insufficient Encryption).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakDBusError, BleakError, BleakGATTProtocolError

from carebeacon.settings import Settings
from devices.racp import RacpOpCode, RacpOperator, RecordAccessControlPoint
from gateway.allowlist import Bonds
from gateway.pair import PairingFailed, pair_device, unpair
from gateway.pairing import AGENT_PATH, PairingPolicy, agent_registered, needs_pairing
from gateway.service import main
from lab.emulation import (
    AgentRefused,
    BloodPressureCuff,
    BloodPressureReading,
    EmulatedAir,
    GlucoseMeter,
    GlucoseReading,
    Pairing,
    PairingMethod,
    PeripheralIdentity,
    PrivateBluez,
    Protection,
)
from lab.emulation._air import CENTRAL_ADDRESS
from lab.emulation._bluez import device_path
from lab.homes import gateway_running
from tests.support.broker import Login, Watcher, watching
from tests.support.gateway import make_config, write_config
from tests.support.waiting import eventually

pytestmark = [pytest.mark.ble, pytest.mark.broker]

ZONE = ZoneInfo("Europe/Berlin")
NOW = datetime.now(ZONE).replace(tzinfo=None, microsecond=0)
BLOOD_PRESSURE_MEASUREMENT = "00002a35-0000-1000-8000-00805f9b34fb"
GLUCOSE_MEASUREMENT = "00002a18-0000-1000-8000-00805f9b34fb"
RACP = "00002a52-0000-1000-8000-00805f9b34fb"
SERIAL_NUMBER = "00002a25-0000-1000-8000-00805f9b34fb"
INSUFFICIENT_AUTHENTICATION = 0x05
INSUFFICIENT_ENCRYPTION = 0x0F


def values(reading: dict[str, Any]) -> dict[str, float]:
    return {v["code"]: v["value"] for v in reading["values"]}


def latest_online(watcher: Watcher) -> dict[str, Any]:
    online = [s for s in watcher.statuses if s.get("state") == "online"]
    return online[-1] if online else {"devices": [], "alarms": []}


def pairing_alarm(watcher: Watcher, device_id: str) -> dict[str, Any] | None:
    """The device's entry in the latest status if the status raises pairing_required for it."""
    status = latest_online(watcher)
    if "pairing_required" not in status.get("alarms", []):
        return None
    for device in status["devices"]:
        if device["id"] == device_id and device.get("pairing_required_since"):
            return dict(device)
    return None


def display_reader(device: Any) -> Any:
    """The installer: reads the code on the device's display and types it."""

    async def typed(address: str) -> int | None:
        await eventually(lambda: device.displayed, within=10)
        return int(device.displayed[-1])

    return typed


def test_bonds_file_keeps_the_first_mark_and_survives_corruption(tmp_path: Path) -> None:
    first = datetime(2026, 12, 1, 8, 0, tzinfo=ZoneInfo("UTC"))
    bonds = Bonds(tmp_path)
    bonds.add_bond("aa-bb-cc-dd-ee-01", "BP-1", now=first)
    assert bonds.bonded() == {"AA:BB:CC:DD:EE:01": "BP-1"}
    bonds.require_pairing("AA:BB:CC:DD:EE:01", "BP-1", "bond_lost", now=first)
    again = bonds.require_pairing(
        "AA:BB:CC:DD:EE:01", "BP-1", "bond_lost", now=first.replace(day=2)
    )
    assert again.since == first  # since when: the first time, not the latest
    assert bonds.bonded() == {}  # a lost bond is no bond
    # another process (the pair command) sees and changes the same file
    other = Bonds(tmp_path)
    assert [n.address for n in other.pairing_required()] == ["AA:BB:CC:DD:EE:01"]
    other.add_bond("AA:BB:CC:DD:EE:01", "BP-1")
    assert bonds.pairing_required() == []
    (tmp_path / Bonds.FILE).write_text("{not json", encoding="utf-8")
    assert Bonds(tmp_path).bonded() == {}
    assert [p.name.startswith("bonds.json.unreadable-") for p in tmp_path.iterdir()] == [True]


def _wrapped(inner: BaseException) -> BaseException:
    """As bleak-retry-connector raises it: a connection error from the original."""
    try:
        raise BleakError("Failed to connect after 2 attempt(s)") from inner
    except BleakError as outer:
        return outer


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        # ATT error codes: Core Specification Vol 3, Part F, 3.4.1.1
        (BleakGATTProtocolError(0x05), True),  # Insufficient Authentication
        (BleakGATTProtocolError(0x0F), True),  # Insufficient Encryption
        (BleakGATTProtocolError(0x0C), True),  # Insufficient Encryption Key Size
        (BleakGATTProtocolError(0x08), False),  # Insufficient Authorization: not a bond
        (BleakGATTProtocolError(0x02), False),  # Read Not Permitted
        # BlueZ's D-Bus errors (src/error.c) as bleak raises them
        (BleakDBusError("org.bluez.Error.AuthenticationFailed", []), True),
        (BleakDBusError("org.bluez.Error.AuthenticationRejected", []), True),
        (BleakDBusError("org.bluez.Error.NotPermitted", ["Not paired"]), True),
        (BleakDBusError("org.bluez.Error.NotPermitted", ["Read not permitted"]), False),
        (BleakDBusError("org.bluez.Error.Failed", ["Operation failed with ATT error: 0x0f"]), True),
        (BleakDBusError("org.bluez.Error.Failed", ["le-connection-abort-by-local"]), False),
        (BleakDBusError("org.bluez.Error.InProgress", []), False),
        (TimeoutError(), False),
        (_wrapped(BleakGATTProtocolError(0x05)), True),
        (_wrapped(TimeoutError()), False),
    ],
)
def test_which_errors_mean_the_device_needs_a_bond(error: BaseException, expected: bool) -> None:
    assert needs_pairing(error) is expected


async def test_agent_is_the_default_and_answers_only_inside_a_pairing_window(
    bluez: PrivateBluez,
) -> None:
    policy = PairingPolicy()
    address = "C0:11:22:33:44:55"
    path = device_path(address)
    async with agent_registered(policy):
        assert bluez.default is not None
        assert (bluez.default.path, bluez.default.capability) == (AGENT_PATH, "KeyboardDisplay")
        questions: list[tuple[str, str, list[Any]]] = [
            ("RequestPasskey", "o", [path]),
            ("RequestAuthorization", "o", [path]),
            ("RequestConfirmation", "ou", [path, 123456]),
            ("AuthorizeService", "os", [path, "00001810-0000-1000-8000-00805f9b34fb"]),
        ]
        for method, signature, args in questions:
            with pytest.raises(AgentRefused) as refused:
                await bluez.call(method, signature, args)
            assert refused.value.error == "org.bluez.Error.Rejected"

        async def same_number(_address: str, number: int) -> bool:
            return number == 424242

        with policy.window(address, passkey=654321, confirm=same_number, just_works=False) as shown:
            assert await bluez.call("RequestPasskey", "o", [path]) == [654321]
            assert await bluez.call("RequestConfirmation", "ou", [path, 424242]) == []
            with pytest.raises(AgentRefused):
                await bluez.call("RequestConfirmation", "ou", [path, 424243])
            with pytest.raises(AgentRefused):  # Just Works not allowed in this window
                await bluez.call("RequestAuthorization", "o", [path])
            with pytest.raises(AgentRefused):  # another device has no window
                await bluez.call("RequestPasskey", "o", [device_path("C0:11:22:33:44:56")])
            await bluez.call("DisplayPasskey", "ouq", [path, 7, 0])
            assert shown == [7]
        with pytest.raises(AgentRefused):  # the window closed
            await bluez.call("RequestPasskey", "o", [path])
    assert bluez.agents == []  # unregistered on the way out


async def test_encryption_required_before_racp_and_indications(
    air: EmulatedAir, bluez: PrivateBluez
) -> None:
    meter = await air.add(
        GlucoseMeter(
            PeripheralIdentity(serial="ENC-G1"),
            records=[GlucoseReading(104, time=NOW)],
            pairing=Pairing(PairingMethod.JUST_WORKS, Protection.ENCRYPTION),
        )
    )
    cuff = await air.add(
        BloodPressureCuff(
            PeripheralIdentity(serial="ENC-B1"),
            readings=[BloodPressureReading(120, 80, pulse=60, time=NOW)],
            pairing=Pairing(PairingMethod.PASSKEY_ENTRY, Protection.AUTHENTICATION),
        )
    )
    for device_under_test, protected, code in [
        (meter, GLUCOSE_MEASUREMENT, INSUFFICIENT_ENCRYPTION),
        (cuff, BLOOD_PRESSURE_MEASUREMENT, INSUFFICIENT_AUTHENTICATION),
    ]:
        found = await BleakScanner.find_device_by_address(
            device_under_test.address, backend=air.scanner_backend
        )
        assert found is not None
        async with BleakClient(found, backend=air.client_backend) as client:
            # Device Information stays open: the gateway can still identify the device
            serial = await client.read_gatt_char(SERIAL_NUMBER)
            assert bytes(serial) == device_under_test.identity.serial.encode()
            with pytest.raises(BleakGATTProtocolError) as refused:
                await client.start_notify(protected, lambda _c, _d: None)
            assert refused.value.code == code
            if device_under_test is meter:
                request = RecordAccessControlPoint(
                    RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS, RacpOperator.ALL_RECORDS
                )
                with pytest.raises(BleakGATTProtocolError) as refused:
                    await client.write_gatt_char(RACP, bytes(request), response=True)
                assert refused.value.code == code
    assert meter.racp_requests == []
    assert cuff.connection_count == 1
    assert await cuff.bonded_peers() == []


async def test_just_works_device_is_bonded_by_the_gateway_on_first_contact(
    tmp_path: Path, settings: Settings, login: Login, air: EmulatedAir, bluez: PrivateBluez
) -> None:
    meter = await air.add(
        GlucoseMeter(
            PeripheralIdentity(serial="JW-G1"),
            records=[GlucoseReading(104, time=NOW), GlucoseReading(131, time=NOW)],
            pairing=Pairing(PairingMethod.JUST_WORKS, Protection.ENCRYPTION),
        )
    )
    config = make_config(
        tmp_path, login, settings, devices=[{"id": "JW-G1", "type": "glucose_meter"}]
    )
    async with watching(settings, login.gateway_id) as watcher, gateway_running(config, air):
        await watcher.wait_for(lambda: len(watcher.readings) >= 2)
    assert sorted(values(r)["glucose"] for r in watcher.readings) == [104.0, 131.0]
    assert ("RequestAuthorization", (device_path(meter.address),)) in bluez.calls
    assert await meter.bonded_peers() == [CENTRAL_ADDRESS]
    assert await air.central_bonds() == [meter.address]
    assert Bonds(config.state_dir).bonded() == {meter.address: "JW-G1"}
    assert "pairing_required" not in latest_online(watcher)["alarms"]
    # `carebeacon gateway unpair`: the bond goes from BlueZ and from the gateway's list
    assert await unpair(config, meter.address, client_backend=air.client_backend)
    assert await air.central_bonds() == []
    assert Bonds(config.state_dir).bonded() == {}


@pytest.mark.parametrize(
    "arguments",
    [
        ["pair", "AA:BB:CC:DD:EE:01", "--passkey", "1234567"],
        ["pair", "--config", "{missing}", "AA:BB:CC:DD:EE:01"],
        ["unpair", "--config", "{missing}", "AA:BB:CC:DD:EE:01"],
    ],
)
def test_pair_commands_refuse_bad_input_with_exit_code_2(
    tmp_path: Path,
    settings: Settings,
    login: Login,
    arguments: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, login, settings)
    argv = [a.replace("{missing}", str(tmp_path / "missing.toml")) for a in arguments]
    if "--config" not in argv:
        argv[1:1] = ["--config", str(config)]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("carebeacon gateway")


async def test_passkey_pairing_by_the_installer_then_the_gateway_reads(
    tmp_path: Path, settings: Settings, login: Login, air: EmulatedAir, bluez: PrivateBluez
) -> None:
    meter = await air.add(
        GlucoseMeter(
            PeripheralIdentity(serial="PK-G1"),
            records=[GlucoseReading(97, time=NOW)],
            pairing=Pairing(
                PairingMethod.PASSKEY_ENTRY,
                Protection.AUTHENTICATION,
                passkey=482913,
            ),
        )
    )
    config = make_config(
        tmp_path,
        login,
        settings,
        devices=[{"id": "PK-G1", "address": meter.address, "type": "glucose_meter"}],
    )
    result = await pair_device(
        config,
        meter.address.lower(),
        prompt=display_reader(meter),
        scanner_backend=air.scanner_backend,
        client_backend=air.client_backend,
    )
    assert (result.address, result.device_id) == (meter.address, "PK-G1")
    assert meter.displayed == [482913]
    assert [call[0] for call in bluez.calls] == ["RequestPasskey"]
    assert await meter.bonded_peers() == [CENTRAL_ADDRESS]
    assert Bonds(config.state_dir).is_bonded(meter.address)
    async with watching(settings, login.gateway_id) as watcher, gateway_running(config, air):
        await watcher.wait_for(lambda: len(watcher.readings) >= 1)
    assert [values(r) for r in watcher.readings] == [{"glucose": 97.0}]
    assert [call[0] for call in bluez.calls] == ["RequestPasskey"]  # no second pairing


async def test_numeric_comparison_confirmed_by_the_installer(
    tmp_path: Path, settings: Settings, login: Login, air: EmulatedAir, bluez: PrivateBluez
) -> None:
    cuff = await air.add(
        BloodPressureCuff(
            PeripheralIdentity(serial="NC-B1"),
            readings=[BloodPressureReading(126, 81, pulse=59, time=NOW)],
            pairing=Pairing(PairingMethod.NUMERIC_COMPARISON, Protection.AUTHENTICATION),
        )
    )
    config = make_config(
        tmp_path,
        login,
        settings,
        devices=[{"address": cuff.address, "type": "blood_pressure_monitor"}],
    )

    async def compare(_address: str, number: int) -> bool:
        await eventually(lambda: cuff.displayed, within=10)
        return number == cuff.displayed[-1]

    await pair_device(
        config,
        cuff.address,
        confirm=compare,
        scanner_backend=air.scanner_backend,
        client_backend=air.client_backend,
    )
    assert [call[0] for call in bluez.calls] == ["RequestConfirmation"]
    assert bluez.calls[0][1][1] == cuff.displayed[-1]
    async with watching(settings, login.gateway_id) as watcher, gateway_running(config, air):
        await watcher.wait_for(lambda: len(watcher.readings) >= 1)
    assert values(watcher.readings[0])["systolic"] == 126.0


async def test_wrong_passkey_leaves_no_bond_and_the_service_raises_pairing_required(
    tmp_path: Path, settings: Settings, login: Login, air: EmulatedAir, bluez: PrivateBluez
) -> None:
    meter = await air.add(
        GlucoseMeter(
            PeripheralIdentity(serial="WP-G1"),
            records=[GlucoseReading(97, time=NOW)],
            pairing=Pairing(PairingMethod.PASSKEY_ENTRY, Protection.AUTHENTICATION, passkey=482913),
        )
    )
    config = make_config(
        tmp_path, login, settings, devices=[{"id": "WP-G1", "type": "glucose_meter"}]
    )
    with pytest.raises(PairingFailed):
        await pair_device(
            config,
            meter.address,
            passkey=111111,
            scanner_backend=air.scanner_backend,
            client_backend=air.client_backend,
        )
    assert await meter.bonded_peers() == []
    assert await air.central_bonds() == []
    assert not Bonds(config.state_dir).is_bonded(meter.address)
    before = meter.connection_count
    # the service cannot type a passkey: it asks the agent, which refuses outside the
    # installer's command, and the status says what to do instead of retrying forever
    async with watching(settings, login.gateway_id) as watcher, gateway_running(config, air):
        await watcher.wait_for(lambda: pairing_alarm(watcher, "WP-G1") is not None)
        alarm = pairing_alarm(watcher, "WP-G1")
    assert alarm is not None
    since = datetime.fromisoformat(alarm["pairing_required_since"].replace("Z", "+00:00"))
    assert since.tzinfo is not None
    assert watcher.readings == []
    assert meter.connection_count == before + 1  # one session, then left alone
    assert [call[0] for call in bluez.calls] == ["RequestPasskey", "RequestPasskey"]
    (needed,) = Bonds(config.state_dir).pairing_required()
    assert (needed.address, needed.device_id, needed.reason) == (
        meter.address,
        "WP-G1",
        "pairing_failed",
    )


async def test_bond_lost_on_the_device_side_raises_pairing_required_until_paired_again(
    tmp_path: Path, settings: Settings, login: Login, air: EmulatedAir, bluez: PrivateBluez
) -> None:
    cuff = await air.add(
        BloodPressureCuff(
            PeripheralIdentity(serial="BL-B1"),
            readings=[BloodPressureReading(140, 90, pulse=72, time=NOW)],
            pairing=Pairing(PairingMethod.JUST_WORKS, Protection.ENCRYPTION),
        )
    )
    config = make_config(
        tmp_path, login, settings, devices=[{"id": "BL-B1", "type": "blood_pressure_monitor"}]
    )
    async with watching(settings, login.gateway_id) as watcher, gateway_running(config, air):
        await watcher.wait_for(lambda: len(watcher.readings) >= 1)
    assert Bonds(config.state_dir).is_bonded(cuff.address)

    await cuff.forget_bonds()  # battery change
    await cuff.measure(BloodPressureReading(150, 95, pulse=80, time=NOW))
    before = cuff.connection_count
    async with watching(settings, login.gateway_id) as watcher, gateway_running(config, air):
        await watcher.wait_for(lambda: pairing_alarm(watcher, "BL-B1") is not None)
    assert watcher.readings == []
    assert cuff.connection_count == before + 1
    (needed,) = Bonds(config.state_dir).pairing_required()
    assert (needed.device_id, needed.reason) == ("BL-B1", "bond_lost")
    assert not Bonds(config.state_dir).is_bonded(cuff.address)

    # the installer pairs it again; the alarm clears and the stored reading comes through
    await pair_device(
        config, cuff.address, scanner_backend=air.scanner_backend, client_backend=air.client_backend
    )
    assert Bonds(config.state_dir).pairing_required() == []
    async with watching(settings, login.gateway_id) as watcher, gateway_running(config, air):
        await watcher.wait_for(lambda: len(watcher.readings) >= 1)
        await watcher.wait_for(lambda: bool(latest_online(watcher)["devices"]))
    assert values(watcher.readings[0])["systolic"] == 150.0
    assert "pairing_required" not in latest_online(watcher)["alarms"]


async def test_no_agent_means_pairing_required_not_a_crash(
    tmp_path: Path,
    settings: Settings,
    login: Login,
    air: EmulatedAir,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No system bus (no BlueZ): the gateway runs, and says the device needs pairing."""
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path / 'no-bus'}")
    cuff = await air.add(
        BloodPressureCuff(
            PeripheralIdentity(serial="NA-B1"),
            readings=[BloodPressureReading(140, 90, pulse=72, time=NOW)],
            pairing=Pairing(PairingMethod.JUST_WORKS),
        )
    )
    config = make_config(
        tmp_path, login, settings, devices=[{"id": "NA-B1", "type": "blood_pressure_monitor"}]
    )
    async with watching(settings, login.gateway_id) as watcher, gateway_running(config, air):
        await watcher.wait_for(lambda: pairing_alarm(watcher, "NA-B1") is not None)
    assert watcher.readings == []
    assert await cuff.bonded_peers() == []
