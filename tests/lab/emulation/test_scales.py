"""The emulated weight scale (and body composition) through bleak."""

from __future__ import annotations

from decimal import Decimal

import pytest
from bleak import BleakClient

from devices.uuids import uuid128
from lab.emulation import (
    BumbleClient,
    EmulatedAir,
    Faults,
    PeripheralIdentity,
    WeightReading,
    WeightScale,
)
from tests.support.emulation import Inbox, device_time, find, subscribe

pytestmark = pytest.mark.ble

IDENTITY = PeripheralIdentity(serial="WS-0003", model="WS-2", local_name="WS-2")
WEIGHT = uuid128(0x2A9D)
BODY = uuid128(0x2A9C)


async def test_weight_indications_with_user_index_and_bmi(air: EmulatedAir) -> None:
    scale = await air.add(
        WeightScale(
            IDENTITY,
            readings=[
                WeightReading(
                    Decimal("81.35"),
                    time=device_time(2026, 11, 23, 7, 2, 3),
                    user_id=2,
                    bmi=Decimal("25.1"),
                    height_m=Decimal("1.800"),
                ),
                WeightReading(Decimal("64.2"), time=device_time(2026, 11, 23, 7, 5), user_id=1),
            ],
        )
    )
    inbox = Inbox()
    async with BleakClient(await find(scale), backend=BumbleClient) as client:
        feature = await client.read_gatt_char(uuid128(0x2A9E))
        assert int.from_bytes(feature, "little") == 0x01BF
        await subscribe(client, 0x2A9D, inbox)
        received = await inbox.take_many(2)
    # flags 0x0E (time, user, BMI+height; SI), 81.35 kg / 5 g = 16270, 2026-11-23 07:02:03,
    # user 2, BMI 25.1 (251), height 1.800 m (1800 mm)
    assert received[0] == (
        WEIGHT,
        bytes.fromhex("0e 8e3f ea070b17070203 02 fb00 0807"),
    )
    # 64.2 kg / 5 g = 12840
    assert received[1] == (WEIGHT, bytes.fromhex("06 2832 ea070b17070500 01"))


async def test_imperial_nres_and_body_composition(air: EmulatedAir) -> None:
    scale = await air.add(
        WeightScale(
            IDENTITY,
            imperial=True,
            body_composition=True,
            readings=[
                WeightReading(
                    Decimal("45.359237"),
                    time=device_time(2026, 11, 23, 7),
                    body_fat_percent=Decimal("21.5"),
                )
            ],
        )
    )
    inbox = Inbox()
    async with BleakClient(await find(scale), backend=BumbleClient) as client:
        assert client.services.get_service(uuid128(0x181B)) is not None
        await subscribe(client, 0x2A9C, inbox)
        await subscribe(client, 0x2A9D, inbox)
        received = await inbox.take_many(2)
    # 100 lb / 0.01 lb = 10000; body composition: flags 0x0402 (time, weight), 21.5 % = 215,
    # weight 45.359237 kg / 5 g = 9072 (SI, as the flags say)
    assert received == [
        (WEIGHT, bytes.fromhex("03 1027 ea070b17070000")),
        (BODY, bytes.fromhex("0204 d700 ea070b17070000 7023")),
    ]

    nres = await air.add(
        WeightScale(
            PeripheralIdentity(serial="WS-NRES"),
            readings=[WeightReading(70, time=device_time(2026, 11, 23))],
            faults=Faults(nres_values=True),
        )
    )
    async with BleakClient(await find(nres), backend=BumbleClient) as client:
        await subscribe(client, 0x2A9D, inbox)
        assert await inbox.take() == (WEIGHT, bytes.fromhex("02 ffff ea070b17000000"))
