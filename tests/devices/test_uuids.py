"""The SIG UUID table against the Bluetooth SIG Assigned Numbers document."""

from __future__ import annotations

import pytest

from devices import (
    CHARACTERISTICS,
    DEVICE_INFORMATION_STRINGS,
    GattCharacteristic,
    GattDescriptor,
    GattService,
)
from devices.device_information import DIS_STRINGS
from devices.uuids import short_uuid, uuid128

# Bluetooth SIG Assigned Numbers, 3.4 GATT Services (uuids/service_uuids.yaml)
SERVICES = {
    "CURRENT_TIME": 0x1805,
    "GLUCOSE": 0x1808,
    "DEVICE_INFORMATION": 0x180A,
    "BATTERY": 0x180F,
    "BLOOD_PRESSURE": 0x1810,
    "BODY_COMPOSITION": 0x181B,
    "WEIGHT_SCALE": 0x181D,
}
# 3.8 GATT Characteristic and Object Types (uuids/characteristic_uuids.yaml)
CHARACTERISTIC_NUMBERS = {
    "DATE_TIME": 0x2A08,
    "GLUCOSE_MEASUREMENT": 0x2A18,
    "BATTERY_LEVEL": 0x2A19,
    "SYSTEM_ID": 0x2A23,
    "MODEL_NUMBER": 0x2A24,
    "SERIAL_NUMBER": 0x2A25,
    "FIRMWARE_REVISION": 0x2A26,
    "HARDWARE_REVISION": 0x2A27,
    "SOFTWARE_REVISION": 0x2A28,
    "MANUFACTURER_NAME": 0x2A29,
    "CURRENT_TIME": 0x2A2B,
    "GLUCOSE_MEASUREMENT_CONTEXT": 0x2A34,
    "BLOOD_PRESSURE_MEASUREMENT": 0x2A35,
    "INTERMEDIATE_CUFF_PRESSURE": 0x2A36,
    "BLOOD_PRESSURE_FEATURE": 0x2A49,
    "GLUCOSE_FEATURE": 0x2A51,
    "RECORD_ACCESS_CONTROL_POINT": 0x2A52,
    "BODY_COMPOSITION_FEATURE": 0x2A9B,
    "BODY_COMPOSITION_MEASUREMENT": 0x2A9C,
    "WEIGHT_MEASUREMENT": 0x2A9D,
    "WEIGHT_SCALE_FEATURE": 0x2A9E,
}


def test_the_tables_hold_the_assigned_numbers() -> None:
    assert {m.name: m.value for m in GattService} == SERVICES
    assert {m.name: m.value for m in GattCharacteristic} == CHARACTERISTIC_NUMBERS
    # 3.7 GATT Descriptors
    assert {m.name: m.value for m in GattDescriptor} == {
        "CLIENT_CHARACTERISTIC_CONFIGURATION": 0x2902
    }


def test_spellings() -> None:
    measurement = GattCharacteristic.BLOOD_PRESSURE_MEASUREMENT
    assert measurement.short == "2a35"
    assert measurement.uuid128 == "00002a35-0000-1000-8000-00805f9b34fb"
    assert uuid128(0x181D) == "0000181d-0000-1000-8000-00805f9b34fb"
    assert short_uuid("00002A9D-0000-1000-8000-00805F9B34FB") == "2a9d"
    assert short_uuid("6e400001-b5a3-f393-e0a9-e50e24dcca9e") is None  # a vendor UUID
    assert short_uuid("2a35") is None
    with pytest.raises(ValueError, match="16-bit"):
        uuid128(0x1_0000)


def test_the_dispatch_table_and_dis_strings_are_keyed_by_the_table() -> None:
    known = {m.short for m in (*GattService, *GattCharacteristic)}
    assert set(CHARACTERISTICS) <= known
    assert DIS_STRINGS == {
        "2a29": "manufacturer_name",
        "2a24": "model_number",
        "2a25": "serial_number",
        "2a27": "hardware_revision",
        "2a26": "firmware_revision",
        "2a28": "software_revision",
    }
    assert {c.short for c in DEVICE_INFORMATION_STRINGS} == set(DIS_STRINGS)
