"""The bleak backend over bumble, driven through bleak's public API only."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError, BleakGATTProtocolError

from devices.uuids import uuid128
from lab.emulation import (
    BloodPressureCuff,
    BumbleClient,
    BumbleScanner,
    EmulatedAir,
    GlucoseMeter,
    GlucoseReading,
    MiScale,
    MiScaleModel,
    MiScaleReading,
    PeripheralIdentity,
    WeightScale,
    furnish_household,
)
from tests.support.emulation import Inbox, device_time, find

pytestmark = pytest.mark.ble

CUFF = PeripheralIdentity(
    serial="BPC-0001",
    manufacturer="Acme Medical",
    model="BP-7",
    local_name="BP-7 Cuff",
    system_id=bytes.fromhex("0102030405060708"),
    rssi=-48,
    manufacturer_data={0x0059: b"\x01\x02"},
)


async def _scan_until(
    service_uuids: list[str] | None, wanted: set[str], within: float = 5.0
) -> dict[str, tuple[BLEDevice, AdvertisementData]]:
    """Scan with a detection callback until every address in ``wanted`` was seen."""
    seen: dict[str, tuple[BLEDevice, AdvertisementData]] = {}
    complete = asyncio.Event()

    def on_detection(device: BLEDevice, advertisement: AdvertisementData) -> None:
        seen[device.address] = (device, advertisement)
        if wanted <= seen.keys():
            complete.set()

    async with BleakScanner(on_detection, service_uuids, backend=BumbleScanner):
        async with asyncio.timeout(within):
            await complete.wait()
    return seen


async def test_scan_by_service_uuid_and_mi_scale_by_service_data(air: EmulatedAir) -> None:
    cuff = await air.add(BloodPressureCuff(CUFF))
    meter = await air.add(GlucoseMeter(PeripheralIdentity(serial="GLU-1", local_name="Meter")))
    scale = await air.add(WeightScale(PeripheralIdentity(serial="WS-1")))
    # Mi Scale service data: stabilised, 70.00 kg (14000 * 5 g), 2026-11-23 08:15:30
    mi_data = bytes.fromhex("22 b036 ea070b17080f1e")
    mi = await air.add(MiScale(PeripheralIdentity(serial="MI-1"), reading=mi_data))

    health = [uuid128(0x1810), uuid128(0x1808), uuid128(0x181D)]
    seen = await _scan_until(health, {cuff.address, meter.address, scale.address})
    assert mi.address not in seen  # bleak's filter: service UUID list only
    cuff_device, cuff_adv = seen[cuff.address]
    assert cuff_adv.service_uuids == [uuid128(0x1810)]
    assert cuff_adv.local_name == "BP-7 Cuff"
    assert cuff_device.name == "BP-7 Cuff"
    assert cuff_adv.rssi == -48
    assert cuff_adv.manufacturer_data == {0x0059: b"\x01\x02"}
    assert seen[meter.address][1].service_uuids == [uuid128(0x1808)]
    assert seen[scale.address][1].service_uuids == [uuid128(0x181D)]

    seen = await _scan_until(None, {mi.address})
    assert seen[mi.address][1].service_data == {uuid128(0x181D): mi_data}
    assert seen[mi.address][1].service_uuids == []


async def test_mi_scale_step_on_updates_service_data(air: EmulatedAir) -> None:
    mi = await air.add(
        MiScale(
            PeripheralIdentity(serial="MI-2", local_name="MIBFS"),
            model=MiScaleModel.BODY_COMPOSITION_SCALE_2,
        )
    )
    data = await mi.step_on(
        MiScaleReading(Decimal("72.35"), impedance=500, time=device_time(2026, 11, 23, 8, 15, 0))
    )
    # control bytes, date time, impedance 500, weight 72.35 kg / 0.005 = 14470
    assert data == bytes.fromhex("0022 ea070b17080f00 f401 8638")
    seen = await _scan_until(None, {mi.address})
    assert seen[mi.address][1].service_data == {uuid128(0x181B): data}


async def test_connect_discover_read_device_information_and_battery(air: EmulatedAir) -> None:
    cuff = await air.add(BloodPressureCuff(CUFF, battery_level=64))
    device = await find(cuff)
    async with BleakClient(device, backend=BumbleClient) as client:
        assert client.is_connected
        assert client.name == "BP-7 Cuff"
        services = client.services
        bp = services.get_service(uuid128(0x1810))
        assert bp is not None
        measurement = bp.get_characteristic(uuid128(0x2A35))
        assert measurement is not None
        assert measurement.properties == ["indicate"]
        assert [d.uuid for d in measurement.descriptors] == [uuid128(0x2902)]
        icp = bp.get_characteristic(uuid128(0x2A36))
        assert icp is not None
        assert icp.properties == ["notify"]
        current_time = services.get_characteristic(uuid128(0x2A2B))
        assert current_time is not None
        assert set(current_time.properties) == {"read", "write", "notify"}

        assert await client.read_gatt_char(uuid128(0x2A29)) == b"Acme Medical"
        assert await client.read_gatt_char(uuid128(0x2A24)) == b"BP-7"
        assert await client.read_gatt_char(uuid128(0x2A25)) == b"BPC-0001"
        assert await client.read_gatt_char(uuid128(0x2A23)) == bytes.fromhex("0102030405060708")
        assert await client.read_gatt_char(uuid128(0x2A19)) == bytes([64])
        assert await client.read_gatt_char(uuid128(0x2A49)) == b"\x01\x00"
        assert client.mtu_size > 23
    assert not client.is_connected
    await asyncio.wait_for(cuff.wait_disconnected(), 2)


async def test_client_by_address_string_and_services_filter(air: EmulatedAir) -> None:
    cuff = await air.add(BloodPressureCuff(CUFF))
    async with BleakClient(
        cuff.address, services=["180a"], backend=air.client_backend, timeout=5
    ) as client:
        assert [s.uuid for s in client.services] == [uuid128(0x180A)]
        assert await client.read_gatt_char(uuid128(0x2A25)) == b"BPC-0001"
        assert client.backend_id == "BumbleClient"


async def test_write_current_time_sets_the_device_clock(air: EmulatedAir) -> None:
    cuff = await air.add(BloodPressureCuff(CUFF))
    async with BleakClient(await find(cuff), backend=BumbleClient) as client:
        # 2026-11-23 12:34:56, Monday, 0/256 s, reason: manual update
        value = bytes([0xEA, 0x07, 11, 23, 12, 34, 56, 1, 0, 1])
        await client.write_gatt_char(uuid128(0x2A2B), value, response=True)
        assert cuff.clock_writes == [device_time(2026, 11, 23, 12, 34, 56)]
        read_back = await client.read_gatt_char(uuid128(0x2A2B))
        assert read_back[:6] == value[:6]  # same second
        with pytest.raises(BleakGATTProtocolError) as error:
            await client.write_gatt_char(uuid128(0x2A2B), value[:7], response=True)
        assert error.value.code == 0x0D  # invalid attribute value length
        with pytest.raises(BleakGATTProtocolError) as unknown_date:
            await client.write_gatt_char(uuid128(0x2A2B), bytes(10), response=True)
        assert unknown_date.value.code == 0x13  # value not allowed


async def test_current_time_read_only_rejects_writes(air: EmulatedAir) -> None:
    meter = await air.add(
        GlucoseMeter(PeripheralIdentity(serial="GLU-RO"), current_time_writable=False)
    )
    async with BleakClient(await find(meter), backend=BumbleClient) as client:
        characteristic = client.services.get_characteristic(uuid128(0x2A2B))
        assert characteristic is not None
        assert "write" not in characteristic.properties
        assert len(await client.read_gatt_char(characteristic)) == 10
        with pytest.raises(BleakGATTProtocolError) as rejected:
            await client.write_gatt_char(characteristic, bytes(10), response=True)
        assert rejected.value.code == 0x03
    assert meter.clock_writes == []


async def test_write_without_response_and_descriptors(air: EmulatedAir) -> None:
    meter = await air.add(GlucoseMeter(PeripheralIdentity(serial="GLU-2"), records=[]))
    async with BleakClient(await find(meter), backend=BumbleClient) as client:
        racp = client.services.get_characteristic(uuid128(0x2A52))
        assert racp is not None
        cccd = racp.get_descriptor(uuid128(0x2902))
        assert cccd is not None
        assert await client.read_gatt_descriptor(cccd) == b"\x00\x00"
        await client.start_notify(racp, lambda _c, _d: None)
        assert await client.read_gatt_descriptor(cccd) == b"\x02\x00"
        await client.stop_notify(racp)
        assert await client.read_gatt_descriptor(cccd) == b"\x00\x00"
        # write without response reaches the device too (this meter accepts it on the RACP)
        inbox = Inbox()
        await client.start_notify(racp, inbox)
        await client.write_gatt_char(racp, b"\x04\x01", response=False)
        assert await inbox.take() == (uuid128(0x2A52), b"\x05\x00\x00\x00")
        assert meter.racp_requests == [b"\x04\x01"]


async def test_device_side_disconnect_fires_the_callback(air: EmulatedAir) -> None:
    cuff = await air.add(BloodPressureCuff(CUFF))
    disconnected = asyncio.Event()
    client = BleakClient(await find(cuff), lambda _client: disconnected.set(), backend=BumbleClient)
    await client.connect()
    await cuff.drop_connection()
    await asyncio.wait_for(disconnected.wait(), 2)
    assert not client.is_connected
    with pytest.raises(BleakError):
        await client.read_gatt_char(uuid128(0x2A19))
    await client.disconnect()  # harmless when already down
    # the device advertises again and accepts a new connection
    async with BleakClient(await find(cuff), backend=BumbleClient) as again:
        assert await again.read_gatt_char(uuid128(0x2A19)) == bytes([87])
    assert cuff.connection_count == 2


async def test_connect_to_absent_device_times_out(air: EmulatedAir) -> None:
    client = BleakClient("C0:11:22:33:44:55", backend=BumbleClient, timeout=0.3)
    with pytest.raises(TimeoutError):
        await client.connect()
    assert not client.is_connected
    # the central is free again afterwards
    meter = await air.add(GlucoseMeter(PeripheralIdentity(serial="GLU-3")))
    async with BleakClient(meter.address, backend=BumbleClient, timeout=3) as client:
        assert client.is_connected


async def test_two_airs_are_isolated() -> None:
    async with EmulatedAir() as first:
        cuff = await first.add(BloodPressureCuff(CUFF))
        async with EmulatedAir() as second:
            client = BleakClient(cuff.address, backend=second.client_backend, timeout=0.3)
            with pytest.raises(TimeoutError):
                await client.connect()
            async with BleakClient(
                cuff.address, backend=first.client_backend, timeout=3
            ) as reached:
                assert reached.is_connected


async def test_no_air_is_a_bleak_error() -> None:
    with pytest.raises(BleakError, match="EmulatedAir"):
        await BleakClient("C0:11:22:33:44:55", backend=BumbleClient).connect()


async def test_glucose_reading_shortcut_is_numbered(air: EmulatedAir) -> None:
    meter = await air.add(
        GlucoseMeter(
            PeripheralIdentity(serial="GLU-4"), records=[GlucoseReading(100), GlucoseReading(110)]
        )
    )
    assert [record.sequence for record in meter.records] == [1, 2]


async def test_scanning_while_two_clients_work_concurrently(air: EmulatedAir) -> None:
    cuff = await air.add(BloodPressureCuff(CUFF))
    meter = await air.add(GlucoseMeter(PeripheralIdentity(serial="GLU-5", local_name="Meter")))
    detections: list[str] = []

    async def serial_of(address: str) -> bytes:
        async with BleakClient(address, backend=BumbleClient, timeout=3) as client:
            return bytes(await client.read_gatt_char(uuid128(0x2A25)))

    async with BleakScanner(lambda d, _a: detections.append(d.address), backend=BumbleScanner):
        serials = await asyncio.gather(serial_of(cuff.address), serial_of(meter.address))
        await asyncio.sleep(0.1)
    assert list(serials) == [b"BPC-0001", b"GLU-5"]
    assert {cuff.address, meter.address} <= set(detections)


async def test_discover_returns_advertisement_data(air: EmulatedAir) -> None:
    cuff = await air.add(BloodPressureCuff(CUFF))
    found = await BleakScanner.discover(timeout=0.3, return_adv=True, backend=BumbleScanner)
    device, advertisement = found[cuff.address]
    assert device.address == cuff.address
    assert advertisement.local_name == "BP-7 Cuff"


async def test_device_taken_off_the_air_disconnects(air: EmulatedAir) -> None:
    cuff = await air.add(BloodPressureCuff(CUFF))
    disconnected = asyncio.Event()
    client = BleakClient(await find(cuff), lambda _client: disconnected.set(), backend=BumbleClient)
    await client.connect()
    await air.remove(cuff)
    await asyncio.wait_for(disconnected.wait(), 2)
    with pytest.raises(TimeoutError):
        await BleakClient(cuff.address, backend=BumbleClient, timeout=0.2).connect()


async def test_furnished_household_is_discoverable(air: EmulatedAir) -> None:
    home = await furnish_household(air, now=device_time(2026, 11, 23, 9), days=3)
    assert len(home.cuff.stored) == 3
    assert [record.sequence for record in home.meter.records] == [1, 2, 3, 4, 5, 6]
    seen = await _scan_until(None, {device.address for device in home.devices})
    assert seen[home.mi_scale.address][1].service_data.keys() == {uuid128(0x181D)}


async def test_notify_on_a_plain_characteristic_is_a_bleak_error(air: EmulatedAir) -> None:
    cuff = await air.add(BloodPressureCuff(CUFF))
    async with BleakClient(await find(cuff), backend=BumbleClient) as client:
        with pytest.raises(BleakError):
            await client.start_notify(uuid128(0x2A29), lambda _c, _d: None)
        with pytest.raises(BleakGATTProtocolError) as write:
            await client.write_gatt_char(uuid128(0x2A29), b"x", response=True)
        assert write.value.code == 0x03  # write not permitted
        with pytest.raises(BleakGATTProtocolError) as read:
            await client.read_gatt_char(uuid128(0x2A35))
        assert read.value.code == 0x02  # read not permitted
        assert await client.read_gatt_char(uuid128(0x2A29)) == b"Acme Medical"


async def test_battery_notifications_and_no_current_time_service(air: EmulatedAir) -> None:
    scale = await air.add(
        WeightScale(PeripheralIdentity(serial="WS-NOCTS"), current_time_service=False)
    )
    inbox = Inbox()
    async with BleakClient(await find(scale), backend=BumbleClient) as client:
        assert client.services.get_service(uuid128(0x1805)) is None
        await client.start_notify(uuid128(0x2A19), inbox)
        await scale.set_battery_level(12)
        assert await inbox.take() == (uuid128(0x2A19), bytes([12]))
        assert await client.read_gatt_char(uuid128(0x2A19)) == bytes([12])
