"""An emulated blood pressure cuff (Blood Pressure service 0x1810)."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, SupportsBytes

from bumble import gatt
from bumble.gatt import Characteristic

from devices.uuids import GattCharacteristic, GattService
from lab.emulation._encoding import (
    BloodPressureFields,
    encode_blood_pressure_measurement,
    encode_intermediate_cuff_pressure,
)
from lab.emulation._peripheral import (
    Cccd,
    Faults,
    PeripheralIdentity,
    characteristic,
    readable,
    service,
)
from lab.emulation._stored import StoredReadingsDevice

__all__ = ["BloodPressureCuff", "BloodPressureReading"]

_KPA_PER_MMHG = Decimal("0.133322")
_ICP_STEPS = (Decimal(40), Decimal(90), Decimal(150))


@dataclass(frozen=True, slots=True)
class BloodPressureReading:
    """A cuff measurement in mmHg. ``time=None``: stamped with the device clock when taken."""

    systolic: Decimal | int
    diastolic: Decimal | int
    mean_arterial: Decimal | int | None = None
    pulse: Decimal | int | None = None
    time: datetime | None = None
    user_id: int | None = None
    status: int | None = None


def _to_kpa(value: Decimal) -> Decimal:
    return (value * _KPA_PER_MMHG).quantize(Decimal("0.1"))


class BloodPressureCuff(StoredReadingsDevice[BloodPressureReading]):
    """A BP cuff: Measurement (0x2A35) by indication, optional Intermediate Cuff Pressure
    (0x2A36) notifications during a live measurement, Feature (0x2A49), plus DIS, Battery and a
    writable Current Time. Stored readings are indicated as soon as the gateway enables
    indications, oldest first.
    """

    def __init__(
        self,
        identity: PeripheralIdentity,
        *,
        readings: Sequence[BloodPressureReading | SupportsBytes] = (),
        faults: Faults | None = None,
        feature: int = 0x0001,
        intermediate_cuff_pressure: bool = True,
        **kwargs: Any,
    ) -> None:
        self.feature = feature
        self.intermediate_cuff_pressure = intermediate_cuff_pressure
        self._measurement = characteristic(
            GattCharacteristic.BLOOD_PRESSURE_MEASUREMENT, Characteristic.Properties.INDICATE
        )
        self._icp = characteristic(
            GattCharacteristic.INTERMEDIATE_CUFF_PRESSURE, Characteristic.Properties.NOTIFY
        )
        super().__init__(
            identity, reading_type=BloodPressureReading, readings=readings, faults=faults, **kwargs
        )

    @property
    def advertised_service_uuids(self) -> Sequence[int]:
        return (GattService.BLOOD_PRESSURE,)

    @property
    def measurement_characteristic(self) -> Characteristic[Any]:
        return self._measurement

    def profile_services(self) -> list[gatt.Service]:
        characteristics: list[Characteristic[Any]] = [self._measurement]
        if self.intermediate_cuff_pressure:
            characteristics.append(self._icp)
        characteristics.append(
            readable(GattCharacteristic.BLOOD_PRESSURE_FEATURE, struct.pack("<H", self.feature))
        )
        return [service(GattService.BLOOD_PRESSURE, characteristics)]

    def encode_reading(self, reading: BloodPressureReading, index: int) -> bytes:
        return encode_blood_pressure_measurement(self.fields(reading, index))

    def fields(self, reading: BloodPressureReading, index: int) -> BloodPressureFields:
        """The fields the cuff sends for ``reading``, faults applied."""
        systolic = Decimal(reading.systolic)
        diastolic = Decimal(reading.diastolic)
        mean: Decimal | None = (
            Decimal(reading.mean_arterial)
            if reading.mean_arterial is not None
            else (diastolic + (systolic - diastolic) / 3).quantize(Decimal(1))
        )
        pulse = None if reading.pulse is None else Decimal(reading.pulse)
        if self.faults.kpa_units:
            systolic, diastolic = _to_kpa(systolic), _to_kpa(diastolic)
            mean = None if mean is None else _to_kpa(mean)
        if self.faults.nres_values:
            mean = None
        time = reading.time
        if self.faults.clock_reset and not self.clock.was_set:
            time = self.reset_clock_time(index)
        elif time is None:
            time = self.clock.now().replace(microsecond=0)
        return BloodPressureFields(
            systolic=systolic,
            diastolic=diastolic,
            mean_arterial=mean,
            kpa=self.faults.kpa_units,
            time=time,
            pulse=pulse,
            user_id=reading.user_id,
            status=reading.status,
            pulse_nres=self.faults.nres_values and pulse is not None,
        )

    async def before_delivery(self, packet: bytes) -> None:
        connection = self._connection
        if connection is None or not self.intermediate_cuff_pressure:
            return
        if Cccd.NOTIFICATION not in self.cccd(connection, self._icp):
            return
        kpa = self.faults.kpa_units
        for pressure in _ICP_STEPS:
            value = _to_kpa(pressure) if kpa else pressure
            icp = self.faults.mangle(encode_intermediate_cuff_pressure(value, kpa=kpa))
            await self.notify(connection, self._icp, icp)
            await asyncio.sleep(0.01)
