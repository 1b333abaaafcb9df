"""``carebeacon gateway pair [ADDRESS | --scan]`` and ``carebeacon gateway unpair ADDRESS``.

For the installer, at the patient's home, with the device in pairing mode (A&D: hold the
button until "Pr"; Omron: until "-P-" blinks; Accu-Chek: Settings → Wireless → Pairing;
Contour: hold the power button until it flashes blue; A&D scales: power on holding the rear
button). The command registers the gateway's agent as BlueZ's default, connects with
``pair=True`` and answers what the device asks: a passkey (``--passkey``, else typed at the
prompt), a number to compare (confirmed at the prompt, or ``--yes``), or Just Works. The bond
is recorded in ``bonds.json`` next to the outbox, which also clears the device's
``pairing_required`` alarm; the running service picks that up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError

from carebeacon.logs import configure_logging
from devices.uuids import GattCharacteristic
from gateway.allowlist import Allowlist, Bonds
from gateway.config import GatewayConfig, load_config, normalise_address
from gateway.errors import ConfigError, GatewayError
from gateway.pairing import (
    AgentUnavailable,
    ConfirmPrompt,
    PairingPolicy,
    PasskeyPrompt,
    agent_registered,
)
from gateway.radio import HEALTH_SERVICES

__all__ = ["PairResult", "main_pair", "main_unpair", "pair_device", "scan_candidates", "unpair"]

logger = logging.getLogger(__name__)

SCAN_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class PairResult:
    address: str
    device_id: str | None
    displayed: tuple[int, ...] = ()


class PairingFailed(GatewayError):
    """The device was not found, or refused the pairing."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def _adapter(config: GatewayConfig) -> dict[str, Any]:
    return {} if config.ble.adapter is None else {"bluez": {"adapter": config.ble.adapter}}


async def _scan(
    config: GatewayConfig,
    seconds: float,
    scanner_backend: type[Any] | None,
    wanted: str | None = None,
) -> dict[str, tuple[BLEDevice, AdvertisementData]]:
    """Advertisers seen within ``seconds`` (until ``wanted`` shows up, if given)."""
    seen: dict[str, tuple[BLEDevice, AdvertisementData]] = {}
    found = asyncio.Event()

    def on_advert(device: BLEDevice, advert: AdvertisementData) -> None:
        address = normalise_address(device.address)
        seen[address] = (device, advert)
        if address == wanted:
            found.set()

    async with BleakScanner(
        detection_callback=on_advert, backend=scanner_backend, **_adapter(config)
    ):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(found.wait(), seconds)
    return seen


async def scan_candidates(
    config: GatewayConfig,
    *,
    seconds: float = SCAN_SECONDS,
    scanner_backend: type[Any] | None = None,
) -> list[tuple[BLEDevice, AdvertisementData]]:
    """Health devices advertising nearby (health services, or an allowlisted address)."""
    allowlist = Allowlist(config.devices)
    found = await _scan(config, seconds, scanner_backend)
    return [
        (device, advert)
        for address, (device, advert) in sorted(found.items())
        if {u.lower() for u in advert.service_uuids} & set(HEALTH_SERVICES)
        or allowlist.by_address(address) is not None
    ]


async def pair_device(
    config: GatewayConfig,
    address: str,
    *,
    passkey: int | None = None,
    prompt: PasskeyPrompt | None = None,
    confirm: ConfirmPrompt | None = None,
    seconds: float = SCAN_SECONDS,
    scanner_backend: type[Any] | None = None,
    client_backend: type[Any] | None = None,
) -> PairResult:
    """Pair and bond with the device at ``address``; record the bond. Raises
    :class:`PairingFailed` or :class:`~gateway.pairing.AgentUnavailable`."""
    wanted = normalise_address(address)
    policy = PairingPolicy()
    async with agent_registered(policy):
        device = (await _scan(config, seconds, scanner_backend, wanted)).get(wanted, (None,))[0]
        if device is None:
            raise PairingFailed("device not found: is it switched on and in pairing mode?")
        # a fresh bond: BlueZ's Pair() does nothing for a device it still counts as paired,
        # and a device that lost its keys (battery change, reset) refuses the old ones
        with contextlib.suppress(BleakError):
            await BleakClient(device, backend=client_backend, **_adapter(config)).unpair()
        with policy.window(wanted, passkey=passkey, prompt=prompt, confirm=confirm) as shown:
            try:
                async with BleakClient(
                    device,
                    pair=True,
                    timeout=config.ble.connect_timeout,
                    backend=client_backend,
                    **_adapter(config),
                ) as client:
                    serial = None
                    if client.services.get_characteristic(GattCharacteristic.SERIAL_NUMBER.uuid128):
                        raw = bytes(
                            await client.read_gatt_char(GattCharacteristic.SERIAL_NUMBER.uuid128)
                        )
                        serial = raw.split(b"\x00", 1)[0].decode("utf-8", "replace").strip()
            except (BleakError, TimeoutError) as exc:
                raise PairingFailed(
                    f"pairing failed ({type(exc).__name__}): wrong passkey, or the device left"
                    " pairing mode; put it in pairing mode and try again"
                ) from exc
    entry = Allowlist(config.devices).by_address(wanted)
    device_id = (entry.id if entry is not None else None) or serial or None
    Bonds(config.state_dir).add_bond(wanted, device_id)
    return PairResult(wanted, device_id, tuple(shown))


async def unpair(
    config: GatewayConfig, address: str, *, client_backend: type[Any] | None = None
) -> bool:
    """Remove the bond from BlueZ and from ``bonds.json``; True if the gateway knew it."""
    wanted = normalise_address(address)
    try:
        await BleakClient(wanted, backend=client_backend, **_adapter(config)).unpair()
    except BleakError as exc:
        logger.info("BlueZ had no bond to remove (%s)", type(exc).__name__)
    return Bonds(config.state_dir).remove_bond(wanted)


async def _typed_passkey(address: str) -> int | None:
    text = await asyncio.to_thread(input, "Type the 6-digit code the device shows: ")
    text = text.strip()
    return int(text) if text.isdigit() and len(text) <= 6 else None


def _confirmer(always: bool) -> ConfirmPrompt:
    async def confirm(address: str, number: int) -> bool:
        if always:
            print(f"The device should show {number:06d}; accepted (--yes).")
            return True
        answer = await asyncio.to_thread(input, f"Does the device show {number:06d}? [y/N] ")
        return answer.strip().lower() in {"y", "yes"}

    return confirm


def _parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"carebeacon gateway {command}")
    parser.add_argument("--config", type=Path, required=True, help="the gateway's TOML file")
    return parser


def _load(args: argparse.Namespace, command: str) -> GatewayConfig | None:
    try:
        return load_config(args.config)
    except ConfigError as exc:
        print(f"carebeacon gateway {command}: {exc}", file=sys.stderr)
        return None


def main_pair(argv: Sequence[str]) -> int:
    parser = _parser("pair")
    parser.description = "Pair and bond with a device in pairing mode."
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("address", nargs="?", help="the device's Bluetooth address")
    target.add_argument("--scan", action="store_true", help="list nearby health devices")
    parser.add_argument("--passkey", type=int, help="the code the device shows (else asked)")
    parser.add_argument("--yes", action="store_true", help="accept numeric comparison")
    parser.add_argument("--seconds", type=float, default=SCAN_SECONDS, help="scan time")
    args = parser.parse_args(list(argv))
    config = _load(args, "pair")
    if config is None:
        return 2
    configure_logging("WARNING", json=False)
    if args.passkey is not None and not 0 <= args.passkey <= 999999:
        print("carebeacon gateway pair: --passkey takes 6 digits", file=sys.stderr)
        return 2

    async def run() -> int:
        address = args.address
        if args.scan:
            found = await scan_candidates(config, seconds=args.seconds)
            if not found:
                print("no health device advertising: put the device in pairing mode")
                return 1
            for index, (device, advert) in enumerate(found, 1):
                print(f"{index}. {device.address}  {advert.local_name or ''}  {advert.rssi} dBm")
            if len(found) > 1:
                choice = await asyncio.to_thread(input, "Pair which one (number)? ")
                if not choice.strip().isdigit() or not 1 <= int(choice) <= len(found):
                    return 1
                address = found[int(choice) - 1][0].address
            else:
                address = found[0][0].address
        try:
            result = await pair_device(
                config,
                address,
                passkey=args.passkey,
                prompt=_typed_passkey,
                confirm=_confirmer(args.yes),
                seconds=args.seconds,
            )
        except (PairingFailed, AgentUnavailable) as exc:
            print(f"carebeacon gateway pair: {exc}", file=sys.stderr)
            return 1
        print(f"paired and bonded: {result.address} ({result.device_id or 'no serial'})")
        return 0

    return asyncio.run(run())


def main_unpair(argv: Sequence[str]) -> int:
    parser = _parser("unpair")
    parser.description = "Forget a device's bond (BlueZ and the gateway)."
    parser.add_argument("address", help="the device's Bluetooth address")
    args = parser.parse_args(list(argv))
    config = _load(args, "unpair")
    if config is None:
        return 2
    configure_logging("WARNING", json=False)
    known = asyncio.run(unpair(config, args.address))
    print("bond removed" if known else "the gateway had no bond with this device")
    return 0
