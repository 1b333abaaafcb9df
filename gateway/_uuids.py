"""Bluetooth SIG 16-bit UUIDs the gateway uses, in bleak's 128-bit string form."""

from __future__ import annotations

__all__ = ["short_uuid", "uuid16"]

_BASE_SUFFIX = "-0000-1000-8000-00805f9b34fb"


def uuid16(value: int) -> str:
    return f"0000{value:04x}{_BASE_SUFFIX}"


def short_uuid(uuid: str) -> str | None:
    """``"00002a35-0000-1000-8000-00805f9b34fb"`` → ``"2a35"``; ``None`` for vendor UUIDs."""
    lowered = uuid.lower()
    if len(lowered) == 36 and lowered.startswith("0000") and lowered.endswith(_BASE_SUFFIX):
        return lowered[4:8]
    return None


BLOOD_PRESSURE_SERVICE = uuid16(0x1810)
GLUCOSE_SERVICE = uuid16(0x1808)
WEIGHT_SCALE_SERVICE = uuid16(0x181D)
BODY_COMPOSITION_SERVICE = uuid16(0x181B)

#: advertised service → device type
SERVICE_TYPES: dict[str, str] = {
    BLOOD_PRESSURE_SERVICE: "blood_pressure_monitor",
    GLUCOSE_SERVICE: "glucose_meter",
    WEIGHT_SCALE_SERVICE: "weight_scale",
    BODY_COMPOSITION_SERVICE: "body_composition_scale",
}

BLOOD_PRESSURE_MEASUREMENT = uuid16(0x2A35)
WEIGHT_MEASUREMENT = uuid16(0x2A9D)
BODY_COMPOSITION_MEASUREMENT = uuid16(0x2A9C)
GLUCOSE_MEASUREMENT = uuid16(0x2A18)
GLUCOSE_CONTEXT = uuid16(0x2A34)
RACP = uuid16(0x2A52)
BATTERY_LEVEL = uuid16(0x2A19)
CURRENT_TIME = uuid16(0x2A2B)
MANUFACTURER_NAME = uuid16(0x2A29)
MODEL_NUMBER = uuid16(0x2A24)
SERIAL_NUMBER = uuid16(0x2A25)
SYSTEM_ID = uuid16(0x2A23)

#: measurements a device pushes by indication once subscribed (stored ones first). A scale
#: starts sending when its weight measurement is subscribed, so body composition goes first.
PUSHED_MEASUREMENTS = (BODY_COMPOSITION_MEASUREMENT, BLOOD_PRESSURE_MEASUREMENT, WEIGHT_MEASUREMENT)
