"""A ready-made patient home for the demo and for end-to-end tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from lab.emulation._air import EmulatedAir
from lab.emulation._blood_pressure import BloodPressureCuff, BloodPressureReading
from lab.emulation._glucose import GlucoseMeter, GlucoseReading
from lab.emulation._mi_scale import MiScale, MiScaleReading
from lab.emulation._peripheral import EmulatedPeripheral, PeripheralIdentity
from lab.emulation._weight_scale import WeightReading, WeightScale

__all__ = ["Household", "furnish_household"]


@dataclass(frozen=True, slots=True)
class Household:
    cuff: BloodPressureCuff
    meter: GlucoseMeter
    scale: WeightScale
    mi_scale: MiScale

    @property
    def devices(self) -> list[EmulatedPeripheral]:
        return [self.cuff, self.meter, self.scale, self.mi_scale]


async def furnish_household(
    air: EmulatedAir,
    *,
    now: datetime | None = None,
    days: int = 7,
    serial_prefix: str = "DEMO",
) -> Household:
    """Put a typical home on ``air``: a cuff with ``days`` mornings of readings, a glucose
    meter with two results a day (before breakfast, after dinner), a scale with daily weights
    and a Mi Scale showing the latest weighing. Readings are deterministic; device clocks are
    naive and start at ``now`` (default: UTC now).
    """
    if now is None:
        now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    mornings = [
        (now - timedelta(days=days - i)).replace(hour=7, minute=30, second=0) for i in range(days)
    ]
    cuff = BloodPressureCuff(
        PeripheralIdentity(
            serial=f"{serial_prefix}-BP-0001",
            manufacturer="CareBeacon Emulated",
            model="Cuff BP-7",
            local_name="BP-7",
        ),
        readings=[
            BloodPressureReading(128 + (i * 7) % 15, 82 + (i * 5) % 9, pulse=64 + i % 6, time=t)
            for i, t in enumerate(mornings)
        ],
        clock=now,
    )
    meter = GlucoseMeter(
        PeripheralIdentity(
            serial=f"{serial_prefix}-GL-0001",
            manufacturer="CareBeacon Emulated",
            model="Meter GM-3",
            local_name="GM-3",
        ),
        records=[
            reading
            for i, t in enumerate(mornings)
            for reading in (
                GlucoseReading(96 + (i * 11) % 30, time=t - timedelta(minutes=10), meal=1),
                GlucoseReading(
                    135 + (i * 13) % 45, time=t + timedelta(hours=12, minutes=40), meal=2
                ),
            )
            if reading.time is not None and reading.time <= now
        ],
        clock=now,
    )
    scale = WeightScale(
        PeripheralIdentity(
            serial=f"{serial_prefix}-WS-0001",
            manufacturer="CareBeacon Emulated",
            model="Scale WS-2",
            local_name="WS-2",
        ),
        readings=[
            WeightReading(
                Decimal("82.4") - Decimal("0.15") * i, time=t - timedelta(minutes=20), user_id=1
            )
            for i, t in enumerate(mornings)
        ],
        clock=now,
    )
    mi_scale = MiScale(
        PeripheralIdentity(serial=f"{serial_prefix}-MI-0001", local_name="MI SCALE2"),
        reading=MiScaleReading(Decimal("82.35"), time=mornings[-1] if mornings else now),
        clock=now,
    )
    for device in (cuff, meter, scale, mi_scale):
        await air.add(device)
    return Household(cuff, meter, scale, mi_scale)
