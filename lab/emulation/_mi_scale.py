"""An emulated Xiaomi Mi Scale: weight in the advertisement's service data, no connection."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, SupportsBytes

from bumble import gatt

from devices.uuids import GattService
from lab.emulation._encoding import encode_mi_scale_v1, encode_mi_scale_v2
from lab.emulation._peripheral import EmulatedPeripheral, Faults, PeripheralIdentity

__all__ = ["MiScale", "MiScaleModel", "MiScaleReading"]


class MiScaleModel(enum.Enum):
    """A model, by the service-data UUID it advertises on."""

    MI_SCALE = GattService.WEIGHT_SCALE  # Mi Smart Scale (2): 10 bytes of service data
    BODY_COMPOSITION_SCALE_2 = GattService.BODY_COMPOSITION  # Mi Body Composition Scale 2: 13


@dataclass(frozen=True, slots=True)
class MiScaleReading:
    weight_kg: Decimal | int
    stabilized: bool = True
    removed: bool = False
    impedance: int | None = None
    pounds: bool = False
    time: datetime | None = None


class MiScale(EmulatedPeripheral):
    """Advertises its latest weighing as service data (non-connectable).

    ``await scale.step_on(reading)`` changes the service data (a real scale advertises while
    someone stands on it and a little after).
    """

    connectable = False

    def __init__(
        self,
        identity: PeripheralIdentity,
        *,
        model: MiScaleModel = MiScaleModel.MI_SCALE,
        reading: MiScaleReading | SupportsBytes | None = None,
        faults: Faults | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(identity, faults=faults, **kwargs)
        self.model = model
        self._service_data = b"" if reading is None else self._encode(reading)

    @property
    def service_data(self) -> bytes:
        return self._service_data

    def _encode(self, reading: MiScaleReading | SupportsBytes) -> bytes:
        if not isinstance(reading, MiScaleReading):
            return self.faults.mangle(bytes(reading))
        time = reading.time or self.clock.now().replace(microsecond=0)
        weight = Decimal(reading.weight_kg)
        if self.model is MiScaleModel.MI_SCALE:
            packet = encode_mi_scale_v1(
                weight,
                pounds=reading.pounds,
                stabilized=reading.stabilized,
                removed=reading.removed,
                time=time,
            )
        else:
            packet = encode_mi_scale_v2(
                weight,
                pounds=reading.pounds,
                stabilized=reading.stabilized,
                removed=reading.removed,
                impedance=reading.impedance,
                time=time,
            )
        return self.faults.mangle(packet)

    async def step_on(self, reading: MiScaleReading | SupportsBytes) -> bytes:
        """Show a new weighing in the advertisements; returns the service data."""
        self._service_data = self._encode(reading)
        await self.open_connect_window()
        await self.refresh_advertising()
        return self._service_data

    @property
    def advertised_service_uuids(self) -> Sequence[int]:
        return ()

    def advertised_service_data(self) -> dict[int, bytes]:
        if not self._service_data:
            return {}
        return {self.model.value: self._service_data}

    def has_pending_data(self) -> bool:
        return bool(self._service_data)

    def profile_services(self) -> list[gatt.Service]:
        return []
