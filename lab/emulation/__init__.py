"""Emulated Bluetooth LE health devices and a bleak backend that reaches them.

Everything runs in-process on bumble: an :class:`EmulatedAir` owns one ``LocalLink``, the
gateway's central (a bumble device on its own controller) and the emulated peripherals (one
controller each). Gateway code receives only bleak backend classes and uses bleak's public API::

    async with EmulatedAir() as air:
        cuff = await air.add(
            BloodPressureCuff(
                PeripheralIdentity(serial="BP-0001", model="UA-1"),
                readings=[BloodPressureReading(138, 88, pulse=61)],
                faults=Faults(kpa_units=True, drop_after_records=1),
            )
        )
        scanner = BleakScanner(service_uuids=[...], backend=BumbleScanner)
        async with BleakClient(device, backend=BumbleClient) as client: ...

``BumbleScanner`` / ``BumbleClient`` use the air entered in the current context, else the one
entered last; ``air.scanner_backend`` / ``air.client_backend`` are the same classes bound to one
air. Devices: :class:`BloodPressureCuff`, :class:`GlucoseMeter` (record store and RACP server),
:class:`WeightScale` (optionally with Body Composition), :class:`MiScale` (advertisement only);
:func:`furnish_household` puts one of each on an air for the demo. Readings are either plain
descriptions (``BloodPressureReading`` …, encoded with the codecs of :mod:`devices`, faults
applied) or ready-made payloads (``bytes`` or a codec object), sent as they are.

Pairing: ``Pairing(PairingMethod.PASSKEY_ENTRY, …)`` on a device makes its profile service
demand a bond (bumble's SMP: Just Works, passkey entry, numeric comparison; bonds kept until
``forget_bonds()``). The gateway's side of SMP asks the agent registered with the
:class:`PrivateBluez` set as ``air.bluez`` (a private D-Bus with BlueZ's agent manager).
:data:`MATRIX`: profiles of the real devices in the gateway's device matrix.
"""

from lab.emulation._air import Advert, EmulatedAir, current_air
from lab.emulation._blood_pressure import BloodPressureCuff, BloodPressureReading
from lab.emulation._bluez import AgentRefused, PrivateBluez
from lab.emulation._client import BumbleClient
from lab.emulation._glucose import GlucoseMeter, GlucoseReading, GlucoseRecord
from lab.emulation._household import Household, furnish_household
from lab.emulation._matrix import MATRIX, DeviceProfile, VendorOnlyCuff
from lab.emulation._mi_scale import MiScale, MiScaleModel, MiScaleReading
from lab.emulation._peripheral import (
    DeviceClock,
    EmulatedPeripheral,
    Faults,
    Pairing,
    PairingMethod,
    PeripheralIdentity,
    Protection,
)
from lab.emulation._scanner import BumbleScanner
from lab.emulation._weight_scale import WeightReading, WeightScale

__all__ = [
    "MATRIX",
    "Advert",
    "AgentRefused",
    "BloodPressureCuff",
    "BloodPressureReading",
    "BumbleClient",
    "BumbleScanner",
    "DeviceClock",
    "DeviceProfile",
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
    "Pairing",
    "PairingMethod",
    "PeripheralIdentity",
    "PrivateBluez",
    "Protection",
    "VendorOnlyCuff",
    "WeightReading",
    "WeightScale",
    "current_air",
    "furnish_household",
]
