"""Emulated profiles of the real devices in the gateway's device matrix (gateway/README.md).

Each profile reproduces what public sources say about the device's radio behaviour (pairing,
bond, advertising, indications vs notifications, record delivery, clock); sources are in
``/work/shared/DEVICES.md``'s reference list, cited here by their tags ([A4], [G5] …). What
nobody has published (marked ``?`` in the README) is an assumption, named as such.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from lab.emulation._blood_pressure import BloodPressureCuff, BloodPressureReading
from lab.emulation._glucose import GlucoseMeter, GlucoseReading
from lab.emulation._mi_scale import MiScale, MiScaleModel, MiScaleReading
from lab.emulation._peripheral import (
    EmulatedPeripheral,
    Faults,
    Pairing,
    PairingMethod,
    PeripheralIdentity,
    Protection,
)
from lab.emulation._weight_scale import WeightReading, WeightScale

__all__ = ["MATRIX", "DeviceProfile", "VendorOnlyCuff"]

#: Omron's Bluetooth SIG company identifier (manufacturer data) [O6]
OMRON_COMPANY_ID = 0x020E


class VendorOnlyCuff(BloodPressureCuff):
    """A cuff that advertises no service UUID, only its name and manufacturer data (the
    standard Blood Pressure service is there once connected)."""

    @property
    def advertised_service_uuids(self) -> Sequence[int]:
        return ()


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    """One row of the matrix: how to build the emulated device, and what the gateway must
    deliver from it (values as the device encodes them, before any conversion)."""

    key: str
    type: str  # the gateway's device type
    manufacturer: str
    model: str
    build: Callable[[str, datetime], EmulatedPeripheral]
    #: value code → value the gateway must deliver, per stored reading
    expected: tuple[dict[str, float], ...]
    pairing: Pairing | None

    @property
    def needs_installer(self) -> bool:
        """A passkey or a number comparison: ``carebeacon gateway pair`` first."""
        return self.pairing is not None and self.pairing.method is not PairingMethod.JUST_WORKS


def _ua651ble(serial: str, taken: datetime) -> EmulatedPeripheral:
    # Bond required, no passkey seen by any client (Just Works inferred) [A4]; data only to
    # the bonded host [A4]; indications on 0x2A35, unsent records pushed, then it disconnects
    # by itself [A4]; clock written each session (0x2A08 in the vendor flow [A1]; the gateway
    # writes Current Time where writable)
    return BloodPressureCuff(
        PeripheralIdentity(
            serial=serial,
            manufacturer="A&D Medical",
            model="UA-651BLE",
            local_name=f"A&D_UA-651BLE_{serial[-6:]}",
        ),
        readings=[
            BloodPressureReading(128, 82, pulse=64, time=taken),
            BloodPressureReading(135, 86, pulse=70, time=taken.replace(minute=taken.minute // 2)),
        ],
        pairing=Pairing(PairingMethod.JUST_WORKS, Protection.ENCRYPTION),
        disconnect_when_done=True,
    )


def _omron(serial: str, taken: datetime) -> EmulatedPeripheral:
    # Modern Omron cuffs (BP7000/EVOLV, X4 Smart): standard BPS, OS bond [O2][O6]; "BLESmart_"
    # name and company 0x020E manufacturer data [O6]; indications once bonded [O5]. The
    # advertisement lists no service UUID here (vendor data only), the harder case [O2]
    return VendorOnlyCuff(
        PeripheralIdentity(
            serial=serial,
            manufacturer="OMRON HEALTHCARE",
            model="BP7000",
            local_name="BLESmart_0000021F" + serial[-12:].rjust(12, "0"),
            manufacturer_data={OMRON_COMPANY_ID: bytes([0x01, 0x00, 0x01, 0x00])},
        ),
        readings=[BloodPressureReading(142, 91, pulse=77, time=taken)],
        pairing=Pairing(PairingMethod.JUST_WORKS, Protection.ENCRYPTION),
    )


def _accu_chek(serial: str, taken: datetime) -> EmulatedPeripheral:
    # GLS [G5]; the meter shows a code the user types (passkey entry) [G5]: BlueZ asks
    # RequestPasskey [B5]. Emulated on LE Secure Connections: bumble's re-encryption with an
    # LE legacy key ends in a MIC failure. Records by RACP; no clock write (GLS has none) [G2];
    # advertises as meter+<serial> [G10]
    return GlucoseMeter(
        PeripheralIdentity(
            serial=serial,
            manufacturer="Roche",
            model="Accu-Chek Guide",
            local_name=f"meter+{serial[-8:]}",
        ),
        records=[
            GlucoseReading(104, time=taken),
            GlucoseReading(Decimal("112"), time=taken.replace(second=0)),
        ],
        pairing=Pairing(
            PairingMethod.PASSKEY_ENTRY,
            Protection.AUTHENTICATION,
            passkey=int(serial[-6:]) if serial[-6:].isdigit() else 482913,
        ),
        current_time_writable=False,
    )


def _contour(serial: str, taken: datetime) -> EmulatedPeripheral:
    # GLS + proprietary service [G2]; pairing method unpublished (?): emulated as numeric
    # comparison on LE Secure Connections; it re-sends its whole history [G13] (duplicates)
    return GlucoseMeter(
        PeripheralIdentity(
            serial=serial, manufacturer="Ascensia", model="Contour Next One", local_name=None
        ),
        records=[GlucoseReading(Decimal("97"), time=taken)],
        pairing=Pairing(PairingMethod.NUMERIC_COMPARISON, Protection.ENCRYPTION),
        faults=Faults(duplicate_records=True),
        current_time_writable=False,
    )


def _uc352ble(serial: str, taken: datetime) -> EmulatedPeripheral:
    # WSS 0x181D, indications, then it disconnects [A6]; sessions need the bond keys [A6];
    # Just Works inferred
    return WeightScale(
        PeripheralIdentity(
            serial=serial,
            manufacturer="A&D Medical",
            model="UC-352BLE",
            local_name=f"A&D_UC-352BLE_{serial[-6:]}",
        ),
        readings=[WeightReading(Decimal("83.25"), time=taken)],
        pairing=Pairing(PairingMethod.JUST_WORKS, Protection.ENCRYPTION),
        disconnect_when_done=True,
    )


def _mi_scale_2(serial: str, taken: datetime) -> EmulatedPeripheral:
    # advertisement only, 0x181D service data, kg = raw / 200; never paired [S1][S4]
    return MiScale(
        PeripheralIdentity(serial=serial, local_name="MI SCALE2"),
        model=MiScaleModel.MI_SCALE,
        reading=MiScaleReading(Decimal("72.4"), time=taken),
    )


def _mi_body_composition_2(serial: str, taken: datetime) -> EmulatedPeripheral:
    # advertisement only, 0x181B service data with impedance [S1][S2]
    return MiScale(
        PeripheralIdentity(serial=serial, local_name="MIBFS"),
        model=MiScaleModel.BODY_COMPOSITION_SCALE_2,
        reading=MiScaleReading(Decimal("68.9"), time=taken, impedance=512),
    )


MATRIX: tuple[DeviceProfile, ...] = (
    DeviceProfile(
        "and-ua651ble",
        "blood_pressure_monitor",
        "A&D Medical",
        "UA-651BLE",
        _ua651ble,
        (
            {"systolic": 128, "diastolic": 82, "pulse": 64},
            {"systolic": 135, "diastolic": 86, "pulse": 70},
        ),
        Pairing(PairingMethod.JUST_WORKS),
    ),
    DeviceProfile(
        "omron-bp7000",
        "blood_pressure_monitor",
        "OMRON HEALTHCARE",
        "BP7000",
        _omron,
        ({"systolic": 142, "diastolic": 91, "pulse": 77},),
        Pairing(PairingMethod.JUST_WORKS),
    ),
    DeviceProfile(
        "accu-chek-guide",
        "glucose_meter",
        "Roche",
        "Accu-Chek Guide",
        _accu_chek,
        ({"glucose": 104}, {"glucose": 112}),
        Pairing(PairingMethod.PASSKEY_ENTRY),
    ),
    DeviceProfile(
        "contour-next-one",
        "glucose_meter",
        "Ascensia",
        "Contour Next One",
        _contour,
        ({"glucose": 97},),
        Pairing(PairingMethod.NUMERIC_COMPARISON),
    ),
    DeviceProfile(
        "and-uc352ble",
        "weight_scale",
        "A&D Medical",
        "UC-352BLE",
        _uc352ble,
        ({"body_weight": 83.25},),
        Pairing(PairingMethod.JUST_WORKS),
    ),
    DeviceProfile(
        "mi-scale-2",
        "weight_scale",
        "Xiaomi",
        "Mi Smart Scale 2",
        _mi_scale_2,
        ({"body_weight": 72.4},),
        None,
    ),
    DeviceProfile(
        "mi-body-composition-scale-2",
        "body_composition_scale",
        "Xiaomi",
        "Mi Body Composition Scale 2",
        _mi_body_composition_2,
        ({"body_weight": 68.9},),
        None,
    ),
)
