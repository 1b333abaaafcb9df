"""An emulated weight scale (Weight Scale service 0x181D, optional Body Composition 0x181B)."""

from __future__ import annotations

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
    WeightFields,
    encode_body_composition_measurement,
    encode_weight_measurement,
)
from lab.emulation._peripheral import (
    Faults,
    PeripheralIdentity,
    characteristic,
    readable,
    service,
)
from lab.emulation._stored import StoredReadingsDevice

__all__ = ["WeightReading", "WeightScale"]

# Weight Scale Feature: time stamp, multiple users, BMI; resolution 0.005 kg; height 0.001 m.
DEFAULT_WEIGHT_SCALE_FEATURE = 0x01 | 0x02 | 0x04 | (0b0111 << 3) | (0b011 << 7)
# Body Composition Feature: time stamp, multiple users, weight.
DEFAULT_BODY_COMPOSITION_FEATURE = 0x01 | 0x02 | 0x0200


@dataclass(frozen=True, slots=True)
class WeightReading:
    """A weighing in kg. ``time=None``: stamped with the device clock when taken."""

    weight_kg: Decimal | int
    time: datetime | None = None
    user_id: int | None = None
    bmi: Decimal | None = None
    height_m: Decimal | None = None
    body_fat_percent: Decimal | None = None


class WeightScale(StoredReadingsDevice[WeightReading]):
    """A scale: Weight Measurement (0x2A9D) by indication, Weight Scale Feature (0x2A9E), user
    index in each measurement. ``imperial=True`` sends pounds. ``body_composition=True`` adds
    the Body Composition service (0x181B: Measurement 0x2A9C by indication, Feature 0x2A9B),
    indicated for readings with ``body_fat_percent``.
    """

    def __init__(
        self,
        identity: PeripheralIdentity,
        *,
        readings: Sequence[WeightReading | SupportsBytes] = (),
        faults: Faults | None = None,
        imperial: bool = False,
        feature: int = DEFAULT_WEIGHT_SCALE_FEATURE,
        body_composition: bool = False,
        **kwargs: Any,
    ) -> None:
        self.imperial = imperial
        self.feature = feature
        self.body_composition = body_composition
        self._measurement = characteristic(
            GattCharacteristic.WEIGHT_MEASUREMENT, Characteristic.Properties.INDICATE
        )
        self._body_composition = characteristic(
            GattCharacteristic.BODY_COMPOSITION_MEASUREMENT, Characteristic.Properties.INDICATE
        )
        self._body_packets: dict[bytes, bytes] = {}
        super().__init__(
            identity, reading_type=WeightReading, readings=readings, faults=faults, **kwargs
        )

    @property
    def advertised_service_uuids(self) -> Sequence[int]:
        if self.body_composition:
            return (GattService.WEIGHT_SCALE, GattService.BODY_COMPOSITION)
        return (GattService.WEIGHT_SCALE,)

    @property
    def measurement_characteristic(self) -> Characteristic[Any]:
        return self._measurement

    def profile_services(self) -> list[gatt.Service]:
        services = [
            service(
                GattService.WEIGHT_SCALE,
                [
                    self._measurement,
                    readable(
                        GattCharacteristic.WEIGHT_SCALE_FEATURE, struct.pack("<I", self.feature)
                    ),
                ],
            )
        ]
        if self.body_composition:
            services.append(
                service(
                    GattService.BODY_COMPOSITION,
                    [
                        self._body_composition,
                        readable(
                            GattCharacteristic.BODY_COMPOSITION_FEATURE,
                            struct.pack("<I", DEFAULT_BODY_COMPOSITION_FEATURE),
                        ),
                    ],
                )
            )
        return services

    def _time(self, reading: WeightReading, index: int) -> datetime:
        if self.faults.clock_reset and not self.clock.was_set:
            return self.reset_clock_time(index)
        if reading.time is not None:
            return reading.time
        return self.clock.now().replace(microsecond=0)

    def encode_reading(self, reading: WeightReading, index: int) -> bytes:
        time = self._time(reading, index)
        weight = None if self.faults.nres_values else Decimal(reading.weight_kg)
        packet = encode_weight_measurement(
            WeightFields(
                weight_kg=weight,
                imperial=self.imperial,
                time=time,
                user_id=reading.user_id,
                bmi=reading.bmi,
                height_m=reading.height_m,
            )
        )
        if reading.body_fat_percent is not None and self.body_composition:
            body = encode_body_composition_measurement(
                reading.body_fat_percent, weight, time, reading.user_id
            )
            self._body_packets[self.faults.mangle(packet)] = self.faults.mangle(body)
        return packet

    def companion_packets(self, packet: bytes) -> list[tuple[Characteristic[Any], bytes]]:
        body = self._body_packets.get(packet)
        return [] if body is None else [(self._body_composition, body)]
