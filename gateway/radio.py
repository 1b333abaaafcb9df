"""BLE: scan for the home's devices, run one session per device, through bleak's public API.

Discovery is by advertised service (0x1810 blood pressure, 0x1808 glucose, 0x181D weight,
0x181B body composition) and by Mi Scale service data; everything else is ignored. A health
device that is not on the allowlist is counted in the status and never connected to, with one
exception: an allowlist entry known only by its DIS identity (no address) lets the gateway read
the Device Information of a device of that type once, to learn whether it is that one.

A session starts as soon as an allowlisted device advertises (cuffs and scales accept a
connection for a few seconds after a measurement only): connect, identify (DIS, once per
device), battery, clock (read, record the drift, set it where writable), then the profile:
stored and new measurements by indication for cuffs and scales, an RACP transfer for glucose
meters (:mod:`gateway.glucose`). Failures back off per device (capped exponential + jitter).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError

from devices.canonical import DeviceIdentity, canonical_reading
from devices.date_time import CurrentTime, DateTime, DayOfWeek
from devices.device_information import parse_battery_level, parse_system_id
from devices.errors import ParseError
from devices.uuids import GattCharacteristic, GattService, short_uuid
from gateway.allowlist import Allowlist, address_identity
from gateway.backoff import Backoff
from gateway.clock import ClockSync
from gateway.config import DeviceEntry, GatewayConfig, normalise_address
from gateway.errors import OutboxFull
from gateway.glucose import GlucoseTransfer, TransferResult, merge_glucose_context
from gateway.outbox import Outbox
from gateway.problems import ProblemLog, bluetooth_problem
from gateway.status import StatusBoard

__all__ = ["Radio", "SessionOutcome"]

logger = logging.getLogger(__name__)

#: advertised service → device type
_SERVICE_TYPES: dict[str, str] = {
    GattService.BLOOD_PRESSURE.uuid128: "blood_pressure_monitor",
    GattService.GLUCOSE.uuid128: "glucose_meter",
    GattService.WEIGHT_SCALE.uuid128: "weight_scale",
    GattService.BODY_COMPOSITION.uuid128: "body_composition_scale",
}
#: measurements a device pushes by indication once subscribed (stored ones first). A scale
#: starts sending when its weight measurement is subscribed, so body composition goes first.
_PUSHED_MEASUREMENTS = (
    GattCharacteristic.BODY_COMPOSITION_MEASUREMENT.uuid128,
    GattCharacteristic.BLOOD_PRESSURE_MEASUREMENT.uuid128,
    GattCharacteristic.WEIGHT_MEASUREMENT.uuid128,
)
_MI_SCALE = GattService.WEIGHT_SCALE.short  # Mi Smart Scale service data
_MI_BODY_COMPOSITION_SCALE = GattService.BODY_COMPOSITION.short  # Mi Body Composition Scale 2
_MI_SCALE_DATA = {
    GattService.WEIGHT_SCALE.uuid128: (_MI_SCALE, 10),
    GattService.BODY_COMPOSITION.uuid128: (_MI_BODY_COMPOSITION_SCALE, 13),
}
_MI_MODELS = {
    _MI_SCALE: "Mi Smart Scale",
    _MI_BODY_COMPOSITION_SCALE: "Mi Body Composition Scale 2",
}
#: how long a push-profile session waits for another measurement before disconnecting
PUSH_IDLE_SECONDS = 2.0
_RECENT_ADVERT_IDS = 256
_BOUND_CACHE = 4096
#: a device silent for this long that advertises again is connected to at once
REAPPEARANCE_SECONDS = 20.0


@dataclass(slots=True)
class SessionOutcome:
    """What one connection achieved (for logs and tests)."""

    device_id: str | None = None
    readings: int = 0
    transfer: TransferResult | None = None
    error: str | None = None


@dataclass(slots=True)
class _DeviceTrack:
    """Per-address scheduling: one session at a time, backoff after failures, cooldown after
    a complete session."""

    backoff: Backoff
    task: asyncio.Task[None] | None = None
    not_before: float = 0.0
    not_ours: bool = False
    last_advert: float | None = None
    outcomes: list[SessionOutcome] = field(default_factory=list)


class Radio:
    def __init__(
        self,
        config: GatewayConfig,
        outbox: Outbox,
        board: StatusBoard,
        allowlist: Allowlist,
        *,
        scanner_backend: type[Any] | None = None,
        client_backend: type[Any] | None = None,
        clock_sync: ClockSync | None = None,
    ) -> None:
        self.config = config
        #: device clocks are set only while the gateway's own clock is synchronised
        self.clock_sync = clock_sync or ClockSync()
        self.problems = ProblemLog("bluetooth", board.set_alarm)
        self.outbox = outbox
        self.board = board
        self.allowlist = allowlist
        self.scanner_backend = scanner_backend
        self.client_backend = client_backend
        self.stopping = asyncio.Event()
        self.scanning = asyncio.Event()
        self.tracks: dict[str, _DeviceTrack] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._recent_advert_ids: collections.OrderedDict[str, None] = collections.OrderedDict()
        #: address → device id it was bound to (None: never bound); adverts arrive many times
        #: a second, the database is asked once per address
        self._bound: dict[str, str | None] = {}
        #: called after every session (tests wait on it)
        self.session_listeners: list[Callable[[str, SessionOutcome], None]] = []

    # -- lifecycle ----------------------------------------------------------------------

    def allowlist_changed(self) -> None:
        """The server pushed a new allowlist: forget earlier "not ours" verdicts."""
        for track in self.tracks.values():
            track.not_ours = False
            track.not_before = 0.0

    async def run(self) -> None:
        backoff = Backoff(base=self.config.ble.reconnect_base, cap=self.config.ble.reconnect_cap)
        try:
            while not self.stopping.is_set():
                try:
                    scanner = BleakScanner(
                        detection_callback=self._on_advert, backend=self.scanner_backend
                    )
                    async with scanner:
                        self.scanning.set()
                        backoff.reset()
                        self.problems.resolved()
                        logger.info(
                            "scanning for %d allowlisted devices", len(self.allowlist.entries)
                        )
                        await self.stopping.wait()
                except (BleakError, OSError) as exc:
                    delay = backoff.next_delay()
                    self.problems.report(bluetooth_problem(exc), delay)  # once, with the fix
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stopping.wait(), delay)
                finally:
                    self.scanning.clear()
        finally:
            # sessions see ``stopping`` and end (a glucose transfer sends an RACP abort)
            pending = [t for t in self._tasks if not t.done()]
            if pending:
                _, still = await asyncio.wait(pending, timeout=10.0)
                for task in still:
                    task.cancel()
                await asyncio.gather(*still, return_exceptions=True)

    # -- discovery ----------------------------------------------------------------------

    def _on_advert(self, device: BLEDevice, advert: AdvertisementData) -> None:
        if self.stopping.is_set():
            return
        mi_scale = next(
            (
                (key, payload)
                for uuid, payload in advert.service_data.items()
                if (key := _MI_SCALE_DATA.get(uuid.lower(), (None, 0))[0]) is not None
                and len(payload) == _MI_SCALE_DATA[uuid.lower()][1]
            ),
            None,
        )
        device_types = [
            _SERVICE_TYPES[u.lower()] for u in advert.service_uuids if u.lower() in _SERVICE_TYPES
        ]
        device_type = device_types[0] if device_types else None
        if mi_scale is None and device_type is None:
            return  # not a health device
        address = normalise_address(device.address)
        entry = self._allowlisted(address)
        if mi_scale is not None:
            if entry is None:
                self.board.saw_unknown(address)
                return
            self._mi_scale_advert(address, entry, *mi_scale)
            return
        assert device_type is not None
        track = self.tracks.get(address)
        if entry is None:
            probing = any(self.allowlist.awaiting_identity(kind) for kind in device_types)
            if not probing or (track is not None and track.not_ours):
                self.board.saw_unknown(address)
                return
        if track is None:
            track = _DeviceTrack(
                Backoff(base=self.config.ble.reconnect_base, cap=self.config.ble.reconnect_cap)
            )
            self.tracks[address] = track
        loop = asyncio.get_running_loop()
        now = loop.time()
        if track.last_advert is not None and now - track.last_advert > REAPPEARANCE_SECONDS:
            # silent for a while, advertising again: a new measurement. Whatever failed before,
            # connect now (the device may accept a connection for a few seconds only).
            track.backoff.reset()
            track.not_before = 0.0
        track.last_advert = now
        if (track.task is not None and not track.task.done()) or now < track.not_before:
            return
        if self.outbox.full:
            self.board.set_alarm("outbox_full", True)
            return  # leave the readings on the device
        task = loop.create_task(self._session(address, device, entry, device_type, track))
        track.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _allowlisted(self, address: str) -> DeviceEntry | None:
        entry = self.allowlist.by_address(address)
        if entry is not None:
            return entry
        if address not in self._bound:
            if len(self._bound) >= _BOUND_CACHE:
                self._bound.clear()
            self._bound[address] = self.outbox.device_for_address(address)
        bound = self._bound[address]
        return self.allowlist.by_id(bound) if bound is not None else None

    def _mi_scale_advert(
        self, address: str, entry: DeviceEntry, uuid16: str, payload: bytes
    ) -> None:
        identity = DeviceIdentity(
            entry.id or address_identity(address), entry.type, "Xiaomi", _MI_MODELS[uuid16]
        )
        now = datetime.now(UTC)
        try:
            reading = canonical_reading(uuid16, payload, identity, now)
        except ParseError as exc:
            logger.warning("unreadable Mi Scale advert (%s, %d bytes)", exc.what, exc.size)
            return
        flags = set(reading.flags)
        if "not_stabilized" in flags:
            return
        if (
            uuid16 == _MI_BODY_COMPOSITION_SCALE
            and "weight_removed" not in flags
            and not any(v.code == "impedance" for v in reading.values)
        ):
            return  # wait for the impedance (or the user stepping off)
        key = str(reading.id)
        if key in self._recent_advert_ids:
            return
        try:
            added = self.outbox.add(
                [reading],
                use_reserve=True,
                device_update=(
                    identity.id,
                    {
                        "type": entry.type,
                        "manufacturer": "Xiaomi",
                        "model": identity.model,
                        "last_seen_at": now,
                        "last_reading_at": now,
                    },
                ),
            )
        except OutboxFull:
            self.board.set_alarm("outbox_full", True)
            return
        self._recent_advert_ids[key] = None
        while len(self._recent_advert_ids) > _RECENT_ADVERT_IDS:
            self._recent_advert_ids.popitem(last=False)
        if added:
            logger.info("stored a reading from Mi Scale %s", identity.id)
            self.board.changed.set()

    # -- sessions -----------------------------------------------------------------------

    async def _session(
        self,
        address: str,
        ble_device: BLEDevice,
        entry: DeviceEntry | None,
        device_type: str,
        track: _DeviceTrack,
    ) -> None:
        loop = asyncio.get_running_loop()
        outcome = SessionOutcome()
        disconnected = asyncio.Event()
        complete = False
        try:
            client = BleakClient(
                ble_device,
                disconnected_callback=lambda _client: disconnected.set(),
                timeout=self.config.ble.connect_timeout,
                backend=self.client_backend,
            )
            async with client:
                complete = await self._converse(
                    client, address, entry, device_type, disconnected, outcome
                )
        except (BleakError, TimeoutError, OSError, EOFError) as exc:
            outcome.error = type(exc).__name__
            logger.warning(
                "session with %s device %s failed (%s)",
                device_type,
                outcome.device_id or "(not identified)",
                type(exc).__name__,
            )
        except Exception as exc:  # a session must never take the gateway down
            outcome.error = type(exc).__name__
            logger.error(
                "session with %s device %s failed unexpectedly (%s)",
                device_type,
                outcome.device_id or "(not identified)",
                type(exc).__name__,
            )
        finally:
            if complete:
                track.backoff.reset()
                track.not_before = loop.time() + self.config.ble.revisit_seconds
            elif not track.not_ours:
                track.not_before = loop.time() + track.backoff.next_delay()
            track.outcomes.append(outcome)
            del track.outcomes[:-10]
            for listener in list(self.session_listeners):
                listener(address, outcome)
            if outcome.readings:
                self.board.changed.set()

    async def _converse(
        self,
        client: BleakClient,
        address: str,
        entry: DeviceEntry | None,
        device_type: str,
        disconnected: asyncio.Event,
        outcome: SessionOutcome,
    ) -> bool:
        identity = await self._identify(client, address, entry, device_type)
        if identity is None:
            return False
        outcome.device_id = identity.id
        logger.info("connected to %s %s", identity.type, identity.id)
        await self._battery(client, identity)
        await self._clock(client, identity)
        if self.stopping.is_set():
            return False
        if identity.type == "glucose_meter" and client.services.get_service(
            GattService.GLUCOSE.uuid128
        ):
            transfer = GlucoseTransfer(
                client,
                identity.id,
                self.outbox,
                lambda characteristic, data, received_at: canonical_reading(
                    characteristic, data, identity, received_at
                ),
                disconnected=disconnected,
                stopping=self.stopping,
                on_outbox_full=lambda: self.board.set_alarm("outbox_full", True),
                merge_context=merge_glucose_context,  # 0x2A34, matched by sequence number
            )
            result = await transfer.run()
            outcome.transfer = result
            outcome.readings = result.stored
            logger.info(
                "glucose meter %s: %s transfer, %d records received, %d new, complete=%s",
                identity.id,
                result.mode.value,
                result.received,
                result.stored,
                result.complete,
            )
            return result.complete
        outcome.readings = await self._pushed(client, identity, disconnected)
        logger.info("%s %s: %d new readings", identity.type, identity.id, outcome.readings)
        return True

    async def _read_text(self, client: BleakClient, uuid: str) -> str | None:
        if client.services.get_characteristic(uuid) is None:
            return None
        try:
            value = bytes(await client.read_gatt_char(uuid))
        except BleakError:
            return None
        text = value.split(b"\x00", 1)[0].decode("utf-8", errors="replace").strip()
        return text or None

    async def _identify(
        self, client: BleakClient, address: str, entry: DeviceEntry | None, device_type: str
    ) -> DeviceIdentity | None:
        """The device's stable identity; DIS is read once per device, then remembered."""
        bound = self.outbox.device_for_address(address)
        known = self.outbox.device(bound) if bound is not None else None
        if known is not None and known.dis_read and (entry is None or entry.id in (None, known.id)):
            device_type = entry.type if entry is not None else known.type
            return DeviceIdentity(known.id, device_type, known.manufacturer, known.model)
        serial = await self._read_text(client, GattCharacteristic.SERIAL_NUMBER.uuid128)
        system_id: str | None = None
        if (
            serial is None
            and client.services.get_characteristic(GattCharacteristic.SYSTEM_ID.uuid128) is not None
        ):
            with contextlib.suppress(BleakError, ParseError):
                raw = bytes(await client.read_gatt_char(GattCharacteristic.SYSTEM_ID.uuid128))
                parse_system_id(raw)
                system_id = "sysid-" + raw[:8].hex()
        manufacturer = await self._read_text(client, GattCharacteristic.MANUFACTURER_NAME.uuid128)
        model = await self._read_text(client, GattCharacteristic.MODEL_NUMBER.uuid128)
        derived = serial or system_id or address_identity(address)
        if entry is None:
            entry = self.allowlist.by_id(derived)
            if entry is None:
                track = self.tracks.get(address)
                if track is not None:
                    track.not_ours = True
                self.board.saw_unknown(address)
                logger.info(
                    "a %s nearby is not one of this home's devices; ignoring it", device_type
                )
                return None
        device_id = entry.id or derived
        self.outbox.bind_address(address, device_id)
        self._bound[address] = device_id
        self.outbox.update_device(
            device_id,
            type=entry.type,
            manufacturer=manufacturer,
            model=model,
            dis_read=1,
        )
        return DeviceIdentity(device_id, entry.type, manufacturer, model)

    async def _battery(self, client: BleakClient, identity: DeviceIdentity) -> None:
        now = datetime.now(UTC)
        values: dict[str, Any] = {"last_seen_at": now}
        if client.services.get_characteristic(GattCharacteristic.BATTERY_LEVEL.uuid128) is not None:
            with contextlib.suppress(BleakError, ParseError):
                level = parse_battery_level(
                    bytes(await client.read_gatt_char(GattCharacteristic.BATTERY_LEVEL.uuid128))
                )
                if 0 <= level.level <= 100:
                    values["battery_percent"] = level.level
        self.outbox.update_device(identity.id, **values)

    async def _clock(self, client: BleakClient, identity: DeviceIdentity) -> None:
        """Read the device clock, record its drift from the gateway's (in the configured zone),
        and set it where the Current Time characteristic is writable."""
        characteristic = client.services.get_characteristic(GattCharacteristic.CURRENT_TIME.uuid128)
        if characteristic is None:
            return
        drift: float | None = None
        with contextlib.suppress(BleakError, ParseError):
            current = CurrentTime.from_bytes(bytes(await client.read_gatt_char(characteristic)))
            device_time = current.date_time.to_datetime()
            local_now = datetime.now(self.config.zone).replace(tzinfo=None)
            if device_time is not None:
                drift = round((device_time - local_now).total_seconds(), 1)
        if drift is not None:
            self.outbox.update_device(identity.id, clock_drift_seconds=drift)
        if "write" not in characteristic.properties:
            return
        sync = self.clock_sync.state()
        if not sync.synchronised:
            if "clock_unsynchronised" not in self.board.alarms:  # said once, while it lasts
                logger.warning(
                    "not setting device clocks until the gateway's clock is synchronised: %s",
                    sync.detail,
                )
            self.board.set_alarm("clock_unsynchronised", True)
            return
        self.board.set_alarm("clock_unsynchronised", False)
        local_now = datetime.now(self.config.zone).replace(tzinfo=None)
        value = CurrentTime(
            DateTime.from_datetime(local_now),
            DayOfWeek(local_now.isoweekday()),
            local_now.microsecond * 256 // 1_000_000,
        )
        try:
            await client.write_gatt_char(characteristic, bytes(value), response=True)
        except BleakError as exc:
            logger.info(
                "%s %s refused the time (%s)", identity.type, identity.id, type(exc).__name__
            )
            return
        if drift is not None and abs(drift) >= 2:
            logger.info("set the clock of %s %s (drift %.0f s)", identity.type, identity.id, drift)

    async def _pushed(
        self, client: BleakClient, identity: DeviceIdentity, disconnected: asyncio.Event
    ) -> int:
        """Cuffs and scales: subscribe; stored measurements arrive first, then new ones. The
        session ends when the device disconnects or stays quiet for a moment."""
        stored = 0
        activity = asyncio.Event()

        def on_measurement(characteristic: BleakGATTCharacteristic, data: bytearray) -> None:
            nonlocal stored
            activity.set()
            now = datetime.now(UTC)
            short = short_uuid(characteristic.uuid) or characteristic.uuid
            try:
                reading = canonical_reading(short, bytes(data), identity, now)
            except ParseError as exc:
                logger.warning(
                    "%s %s sent an unreadable measurement (%s, %d bytes)",
                    identity.type,
                    identity.id,
                    exc.what,
                    exc.size,
                )
                return
            try:
                stored += self.outbox.add(
                    [reading],
                    use_reserve=True,
                    device_update=(identity.id, {"last_reading_at": now}),
                )
            except OutboxFull:
                self.board.set_alarm("outbox_full", True)
                logger.error(
                    "outbox full beyond its reserve: a reading from %s was not stored", identity.id
                )

        subscribed = 0
        for uuid in _PUSHED_MEASUREMENTS:
            characteristic = client.services.get_characteristic(uuid)
            if characteristic is None or not {"indicate", "notify"} & set(
                characteristic.properties
            ):
                continue
            await client.start_notify(characteristic, on_measurement)
            subscribed += 1
        if not subscribed:
            logger.warning("%s %s has no measurement characteristic", identity.type, identity.id)
            return 0
        while not disconnected.is_set() and not self.stopping.is_set():
            activity.clear()
            waiters = [
                asyncio.ensure_future(activity.wait()),
                asyncio.ensure_future(disconnected.wait()),
                asyncio.ensure_future(self.stopping.wait()),
            ]
            try:
                done, _ = await asyncio.wait(
                    waiters, timeout=PUSH_IDLE_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for waiter in waiters:
                    waiter.cancel()
            if not done:
                break  # quiet: everything stored was delivered
        return stored
