"""One emulated home for the demo: a real gateway (``gateway.service.run``, unmodified, through
:func:`lab.homes.gateway_running`) whose BLE devices are bumble-emulated peripherals encoding
with ``devices/``, publishing over TLS to the project's Mosquitto. Run by ``carebeacon demo``
as ``python -m lab.demo_home``.

Scripts (by home number, as in :mod:`lab.demo`): 0 hypertensive crisis with a re-measure,
1 heart-failure weight gain over a week, 2 hypoglycaemia, 4 gateway that goes offline (the
process exits after delivering; its Last Will marks it offline), 5 cuff whose clock reset.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from carebeacon.logs import configure_logging
from gateway.config import DeviceEntry, GatewayConfig, MqttConfig
from lab.emulation import (
    BloodPressureCuff,
    BloodPressureReading,
    EmulatedAir,
    Faults,
    GlucoseMeter,
    GlucoseReading,
    PeripheralIdentity,
    WeightReading,
    WeightScale,
)
from lab.homes import gateway_running

__all__ = ["DEVICE_TYPES", "SCRIPTED_HOMES", "device_serials"]

CRISIS, WEIGHT_GAIN, HYPO, OFFLINE, CLOCK_RESET = 0, 1, 2, 4, 5
SCRIPTED_HOMES = (CRISIS, WEIGHT_GAIN, HYPO, OFFLINE, CLOCK_RESET)
#: reading type -> the device type the gateway reports
DEVICE_TYPES = {
    "blood_pressure": "blood_pressure_monitor",
    "body_weight": "weight_scale",
    "glucose": "glucose_meter",
}
ZONE = "America/New_York"


def device_serials(home: int) -> dict[str, str]:
    """reading type -> the emulated device's DIS serial (its stable identity)."""
    serials = {"blood_pressure": f"DEMO{home:02d}-BP"}
    if home == WEIGHT_GAIN:
        serials["body_weight"] = f"DEMO{home:02d}-SCALE"
    if home == HYPO:
        serials["glucose"] = f"DEMO{home:02d}-METER"
    return serials


def _mornings(now: datetime, days: int) -> list[datetime]:
    return [
        (now - timedelta(days=days - i)).replace(hour=7, minute=30, second=0) for i in range(days)
    ]


async def _home(
    home: int, gateway_id: str, password: str, state_dir: Path, ca_file: str, port: int
) -> None:
    now = datetime.now(ZoneInfo(ZONE)).replace(tzinfo=None, microsecond=0)
    serials = device_serials(home)
    history = _mornings(now, 6)
    bp = [
        BloodPressureReading(126 + i % 5, 80 + i % 4, pulse=66 + i % 3, time=t)
        for i, t in enumerate(history)
    ]
    if home == CRISIS:
        bp.append(BloodPressureReading(186, 122, pulse=88, time=now - timedelta(minutes=2)))
    async with EmulatedAir() as air:
        cuff = await air.add(
            BloodPressureCuff(
                PeripheralIdentity(
                    serial=serials["blood_pressure"], model="Cuff BP-7", local_name="BP-7"
                ),
                readings=bp,
                clock=now,
                faults=Faults(clock_reset=home == CLOCK_RESET),
            )
        )
        if home == WEIGHT_GAIN:
            weights = [
                WeightReading(Decimal("81.6") + Decimal("0.45") * i, time=t)
                for i, t in enumerate(_mornings(now, 8))
            ]
            await air.add(
                WeightScale(
                    PeripheralIdentity(serial=serials["body_weight"], model="Scale W-2"),
                    readings=weights,
                    clock=now,
                )
            )
        if home == HYPO:
            records = [
                GlucoseReading(112 + (i * 7) % 20, time=t.replace(hour=6, minute=50))
                for i, t in enumerate(history)
            ]
            records.append(GlucoseReading(52, time=now - timedelta(minutes=5)))
            await air.add(
                GlucoseMeter(
                    PeripheralIdentity(serial=serials["glucose"], model="Meter G-3"),
                    records=records,
                    clock=now,
                )
            )
        config = GatewayConfig(
            gateway_id=gateway_id,
            state_dir=state_dir,
            timezone=ZONE,
            mqtt=MqttConfig(
                host="127.0.0.1",
                port=port,
                tls=True,
                ca_file=ca_file,
                username=gateway_id,
                password=password,
            ),
            devices=tuple(DeviceEntry(type=DEVICE_TYPES[t], id=s) for t, s in serials.items()),
            status_interval=30.0,
        )
        async with gateway_running(config, air) as task:
            if home == OFFLINE:
                # deliver, then the power goes: no goodbye, the Last Will fires
                await asyncio.sleep(20)
                os._exit(0)
            if home == CRISIS:
                await asyncio.sleep(25)  # the re-measure a few minutes later, still high
                await cuff.measure(
                    BloodPressureReading(
                        182,
                        119,
                        pulse=84,
                        time=datetime.now(ZoneInfo(ZONE)).replace(tzinfo=None, microsecond=0),
                    )
                )
            await task


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.demo_home")
    parser.add_argument("home", type=int, choices=SCRIPTED_HOMES)
    parser.add_argument("--gateway-id", required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--ca-file", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    configure_logging("WARNING")
    password = os.environ["CAREBEACON_GATEWAY_PASSWORD"]
    args.state_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            _home(args.home, args.gateway_id, password, args.state_dir, args.ca_file, args.port)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
