"""Emulated Bluetooth LE health devices and a bleak backend that reaches them.

Everything runs in-process on bumble: an :class:`EmulatedAir` owns one link, the gateway's
central, and the emulated peripherals. Gateway code receives only the backend classes::

    async with EmulatedAir() as air:
        cuff = await air.add(BloodPressureCuff(DeviceIdentity(serial="BP-1"), readings=[...]))
        async with BleakScanner(service_uuids=[...], backend=BumbleScanner) as scanner: ...
        async with BleakClient(device, backend=BumbleClient) as client: ...

``BumbleScanner`` / ``BumbleClient`` use the air entered last (or the one entered in the current
context); ``air.scanner_backend`` / ``air.client_backend`` are the same classes bound to one air.
"""

from devices.emulation._air import Advert, EmulatedAir, current_air
from devices.emulation._blood_pressure import BloodPressureCuff, BloodPressureReading
from devices.emulation._client import BumbleClient
from devices.emulation._glucose import (
    SAMPLE_TYPE_CONTROL_SOLUTION,
    GlucoseMeter,
    GlucoseReading,
    GlucoseRecord,
    RacpOpCode,
    RacpOperator,
    RacpResponseCode,
)
from devices.emulation._household import Household, furnish_household
from devices.emulation._mi_scale import MiScale, MiScaleModel, MiScaleReading
from devices.emulation._peripheral import DeviceClock, DeviceIdentity, EmulatedPeripheral, Faults
from devices.emulation._scanner import BumbleScanner
from devices.emulation._weight_scale import WeightReading, WeightScale

__all__ = [
    "SAMPLE_TYPE_CONTROL_SOLUTION",
    "Advert",
    "BloodPressureCuff",
    "BloodPressureReading",
    "BumbleClient",
    "BumbleScanner",
    "DeviceClock",
    "DeviceIdentity",
    "EmulatedAir",
    "EmulatedPeripheral",
    "Faults",
    "GlucoseMeter",
    "GlucoseReading",
    "GlucoseRecord",
    "Household",
    "MiScale",
    "MiScaleModel",
    "MiScaleReading",
    "RacpOpCode",
    "RacpOperator",
    "RacpResponseCode",
    "WeightReading",
    "WeightScale",
    "current_air",
    "furnish_household",
]
