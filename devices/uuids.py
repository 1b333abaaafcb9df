"""The one table of Bluetooth SIG UUIDs the project uses: services, characteristics, descriptors.

Values are the 16-bit assigned numbers (Bluetooth SIG Assigned Numbers, §3.4 GATT Services,
§3.7 GATT Descriptors, §3.8 GATT Characteristics and Object Types). Every package spells a UUID
through this module: the members are ``int`` (what an advertisement and bumble take),
:attr:`~AssignedUuid.short` is the lower-case 4-digit key of the codec tables (``"2a35"``) and
:attr:`~AssignedUuid.uuid128` the full form on the Bluetooth Base UUID (what bleak reports).
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "BASE_UUID_SUFFIX",
    "DEVICE_INFORMATION_STRINGS",
    "AssignedUuid",
    "GattCharacteristic",
    "GattDescriptor",
    "GattService",
    "short_uuid",
    "uuid128",
]

#: the Bluetooth Base UUID ``0000xxxx-0000-1000-8000-00805f9b34fb`` after the 16-bit value
BASE_UUID_SUFFIX = "-0000-1000-8000-00805f9b34fb"


def uuid128(value: int) -> str:
    """``0x2A35`` → ``"00002a35-0000-1000-8000-00805f9b34fb"``."""
    if not 0 <= value <= 0xFFFF:
        raise ValueError("a 16-bit UUID is 0x0000-0xFFFF")
    return f"0000{value:04x}{BASE_UUID_SUFFIX}"


def short_uuid(uuid: str) -> str | None:
    """``"00002a35-0000-1000-8000-00805f9b34fb"`` → ``"2a35"``; ``None`` for a UUID that is
    not on the Bluetooth Base UUID (a vendor's 128-bit UUID)."""
    lowered = uuid.lower()
    if len(lowered) == 36 and lowered.startswith("0000") and lowered.endswith(BASE_UUID_SUFFIX):
        return lowered[4:8]
    return None


class AssignedUuid(IntEnum):
    """Base of the tables below: a 16-bit assigned number and its spellings."""

    @property
    def short(self) -> str:
        """The lower-case 4-digit hex form, ``"2a35"`` (the key of the codec tables)."""
        return f"{self.value:04x}"

    @property
    def uuid128(self) -> str:
        """The 128-bit form on the Bluetooth Base UUID, as bleak reports it."""
        return uuid128(self.value)


class GattService(AssignedUuid):
    CURRENT_TIME = 0x1805
    GLUCOSE = 0x1808
    DEVICE_INFORMATION = 0x180A
    BATTERY = 0x180F
    BLOOD_PRESSURE = 0x1810
    BODY_COMPOSITION = 0x181B  # also the UUID of the Mi Body Composition Scale 2 service data
    WEIGHT_SCALE = 0x181D  # also the UUID of the Mi Smart Scale service data


class GattCharacteristic(AssignedUuid):
    DATE_TIME = 0x2A08
    GLUCOSE_MEASUREMENT = 0x2A18
    BATTERY_LEVEL = 0x2A19
    SYSTEM_ID = 0x2A23
    MODEL_NUMBER = 0x2A24  # Model Number String
    SERIAL_NUMBER = 0x2A25  # Serial Number String
    FIRMWARE_REVISION = 0x2A26  # Firmware Revision String
    HARDWARE_REVISION = 0x2A27  # Hardware Revision String
    SOFTWARE_REVISION = 0x2A28  # Software Revision String
    MANUFACTURER_NAME = 0x2A29  # Manufacturer Name String
    CURRENT_TIME = 0x2A2B
    GLUCOSE_MEASUREMENT_CONTEXT = 0x2A34
    BLOOD_PRESSURE_MEASUREMENT = 0x2A35
    INTERMEDIATE_CUFF_PRESSURE = 0x2A36
    BLOOD_PRESSURE_FEATURE = 0x2A49
    GLUCOSE_FEATURE = 0x2A51
    RECORD_ACCESS_CONTROL_POINT = 0x2A52
    BODY_COMPOSITION_FEATURE = 0x2A9B
    BODY_COMPOSITION_MEASUREMENT = 0x2A9C
    WEIGHT_MEASUREMENT = 0x2A9D
    WEIGHT_SCALE_FEATURE = 0x2A9E


class GattDescriptor(AssignedUuid):
    CLIENT_CHARACTERISTIC_CONFIGURATION = 0x2902


#: the UTF-8 string characteristics of the Device Information service
DEVICE_INFORMATION_STRINGS: tuple[GattCharacteristic, ...] = (
    GattCharacteristic.MANUFACTURER_NAME,
    GattCharacteristic.MODEL_NUMBER,
    GattCharacteristic.SERIAL_NUMBER,
    GattCharacteristic.HARDWARE_REVISION,
    GattCharacteristic.FIRMWARE_REVISION,
    GattCharacteristic.SOFTWARE_REVISION,
)
