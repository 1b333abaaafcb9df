"""Device Information (0x180A) strings and System ID (0x2A23), Battery Level (0x2A19).

The DIS strings are UTF-8 without a terminator; some devices pad them with NUL bytes, which
are kept (the text is what the device sent). Invalid UTF-8 is a :class:`ParseError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

from devices._codec import UINT8, check_length, check_uint
from devices.errors import EncodeError, ParseError
from devices.uuids import DEVICE_INFORMATION_STRINGS

__all__ = [
    "DIS_STRINGS",
    "BatteryLevel",
    "DeviceInformationString",
    "SystemId",
    "parse_battery_level",
    "parse_dis_string",
    "parse_system_id",
]

#: 16-bit UUID → name of the Device Information string characteristics
DIS_STRINGS: dict[str, str] = {c.short: c.name.lower() for c in DEVICE_INFORMATION_STRINGS}


@dataclass(frozen=True, slots=True)
class DeviceInformationString:
    """One of the DIS UTF-8 string characteristics; ``characteristic`` is its 16-bit UUID."""

    characteristic: str
    value: str

    @classmethod
    def from_bytes(cls, characteristic: str, data: bytes) -> Self:
        try:
            return cls(characteristic, bytes(data).decode("utf-8"))
        except UnicodeDecodeError:
            raise ParseError(
                f"device information string (0x{characteristic.upper()})",
                size=len(data),
                reason="not valid UTF-8",
            ) from None

    def __bytes__(self) -> bytes:
        return self.value.encode("utf-8")


def parse_dis_string(characteristic: str, data: bytes) -> DeviceInformationString:
    return DeviceInformationString.from_bytes(characteristic, data)


_SYSTEM_ID = struct.Struct("<Q")


@dataclass(frozen=True, slots=True)
class SystemId:
    """System ID (0x2A23): 40-bit manufacturer identifier, then 24-bit OUI (little-endian)."""

    manufacturer_identifier: int
    organizationally_unique_identifier: int
    extra: bytes = b""

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        check_length(data, _SYSTEM_ID.size, "system id (0x2A23)")
        value = _SYSTEM_ID.unpack_from(data)[0]
        return cls(value & 0xFF_FFFF_FFFF, value >> 40, bytes(data[8:]))

    def __bytes__(self) -> bytes:
        manufacturer = check_uint(self.manufacturer_identifier, 40, "manufacturer identifier")
        oui = check_uint(self.organizationally_unique_identifier, 24, "OUI")
        return _SYSTEM_ID.pack(manufacturer | (oui << 40)) + self.extra


def parse_system_id(data: bytes) -> SystemId:
    return SystemId.from_bytes(data)


@dataclass(frozen=True, slots=True)
class BatteryLevel:
    """Battery Level (0x2A19): percent, 0-100 (101-255 are reserved and kept as sent)."""

    level: int
    extra: bytes = b""

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        check_length(data, 1, "battery level (0x2A19)")
        return cls(data[0], bytes(data[1:]))

    def __bytes__(self) -> bytes:
        if isinstance(self.level, bool):
            raise EncodeError("battery level is an integer")
        return UINT8.pack(check_uint(self.level, 8, "battery level")) + self.extra


def parse_battery_level(data: bytes) -> BatteryLevel:
    return BatteryLevel.from_bytes(data)
