"""MQTT: drain the outbox in batches at QoS 1, keep the retained status, follow the config topic.

With ``[outbox] receipts = true`` the batches are ``carebeacon.readings/2``: ingest answers each
with a receipt on ``…/receipts`` naming the readings it stored, already had, or quarantined for
good, and only a receipt takes a reading out of the outbox (a PUBACK means only that the broker
has it — and a broker that crashes before saving it loses it). A reading without a receipt
``receipt_timeout`` seconds after it was sent is sent again (same id: ingest stores it once),
the wait doubling per attempt up to :data:`RECEIPT_TIMEOUT_CAP`; at most ``max_unreceipted``
readings are out without a receipt, which bounds the re-send rate. A new connection (and a
restart: what waits is in the outbox) sends everything without a receipt again.

aiomqtt's ``publish`` waits for the PUBACK but ignores its reason code, so over MQTT 5 a publish
the broker refused (ACL: reason 135) would look delivered. :class:`_ConfirmingClient` keeps the
reason code per message id and raises :class:`PublishDenied`; it uses aiomqtt's private
``_client``/``_pending_call`` (aiomqtt is pinned at 2.5.1; ``tests/gateway`` covers a refusal).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiomqtt
import paho.mqtt.client as paho

from gateway.allowlist import Allowlist
from gateway.backoff import Backoff
from gateway.config import GatewayConfig, parse_server_config
from gateway.errors import ConfigError, NoSubscribers, PublishDenied
from gateway.outbox import Outbox, PendingReading
from gateway.problems import ProblemLog, broker_problem, probe_broker
from gateway.status import StatusBoard, build_status, iso_utc, offline_status

__all__ = [
    "READINGS_SCHEMA",
    "READINGS_SCHEMA_RECEIPTS",
    "RECEIPTS_SCHEMA",
    "Publisher",
    "Receipt",
    "batch_payload",
    "parse_receipt",
    "topics",
]

logger = logging.getLogger(__name__)

READINGS_SCHEMA = "carebeacon.readings/1"
#: the same batch, asking ingest for receipts (README, MQTT contract)
READINGS_SCHEMA_RECEIPTS = "carebeacon.readings/2"
RECEIPTS_SCHEMA = "carebeacon.receipts/1"
#: the longest wait for a receipt before sending a reading again
RECEIPT_TIMEOUT_CAP = 3600.0
SERVER_CONFIG_KEY = "server_allowlist"


def topics(gateway_id: str) -> dict[str, str]:
    prefix = f"carebeacon/v1/gateways/{gateway_id}"
    return {
        "readings": f"{prefix}/readings",
        "status": f"{prefix}/status",
        "config": f"{prefix}/config",
        "receipts": f"{prefix}/receipts",
    }


def batch_payload(
    gateway_id: str,
    timezone: str,
    readings: list[PendingReading],
    sent_at: datetime,
    *,
    schema: str = READINGS_SCHEMA,
) -> bytes:
    """The ``carebeacon.readings/1`` (or ``/2``) message; stored reading bodies are spliced in
    unparsed."""
    head = json.dumps(
        {
            "schema": schema,
            "gateway_id": gateway_id,
            "sent_at": iso_utc(sent_at),
            "timezone": timezone,
        }
    )
    return (head[:-1] + ', "readings": [' + ", ".join(r.body for r in readings) + "]}").encode()


@dataclass(frozen=True, slots=True)
class Receipt:
    """A ``carebeacon.receipts/1`` message: reading ids by what ingest did with them."""

    stored: tuple[str, ...]
    duplicate: tuple[str, ...]
    quarantined: tuple[str, ...]

    @property
    def ids(self) -> tuple[str, ...]:
        return self.stored + self.duplicate + self.quarantined


def parse_receipt(payload: bytes, gateway_id: str) -> Receipt | None:
    """The receipt in ``payload`` for ``gateway_id``; ``None`` if it is not one."""
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if (
        not isinstance(body, dict)
        or body.get("schema") != RECEIPTS_SCHEMA
        or body.get("gateway_id") != gateway_id
    ):
        return None
    lists: list[tuple[str, ...]] = []
    for outcome in ("stored", "duplicate", "quarantined"):
        ids = body.get(outcome)
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return None
        try:
            lists.append(tuple(str(uuid.UUID(i)) for i in ids))  # the outbox's form
        except ValueError:
            return None
    return Receipt(*lists)


@dataclass(slots=True)
class _Sent:
    """A reading sent and not yet receipted: when to send it again, and how often it was."""

    due: float  # event-loop time
    attempts: int


async def _flattened(session: Coroutine[Any, Any, None]) -> None:
    """Run ``session`` (task groups inside); re-raise a connection-level failure found in an
    exception group as itself, so the reconnect loop can handle it."""
    try:
        await session
    except BaseExceptionGroup as group:
        matched, rest = group.split((aiomqtt.MqttError, PublishDenied, NoSubscribers))
        if rest is not None or matched is None:
            raise
        leaves: list[BaseException] = []
        pending: list[BaseException] = [matched]
        while pending:
            item = pending.pop()
            if isinstance(item, BaseExceptionGroup):
                pending.extend(item.exceptions)
            else:
                leaves.append(item)
        denied = [leaf for leaf in leaves if isinstance(leaf, PublishDenied)]
        raise (denied or leaves)[0] from None


class _ConfirmingClient(aiomqtt.Client):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._refusals: dict[int, Any] = {}

    def _on_publish(
        self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any
    ) -> None:
        if getattr(reason_code, "is_failure", False) or getattr(reason_code, "value", 0) == 16:
            self._refusals[mid] = reason_code  # a refusal, or "no matching subscribers" (16)
        super()._on_publish(client, userdata, mid, reason_code, properties)

    async def publish_confirmed(
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        ack_timeout: float = 30.0,
        needs_subscriber: bool = False,
    ) -> None:
        """Publish at QoS 1; return on a successful PUBACK, raise otherwise (with
        ``needs_subscriber``, also :class:`NoSubscribers` on reason 16)."""
        info = self._client.publish(topic, payload, 1, retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        confirmation = asyncio.Event()
        with self._pending_call(info.mid, confirmation, self._pending_publishes):
            if not info.is_published():
                waiter: asyncio.Future[Any] = asyncio.ensure_future(confirmation.wait())
                disconnected: asyncio.Future[Any] = self._disconnected
                try:
                    done, _ = await asyncio.wait(
                        {waiter, disconnected},
                        timeout=ack_timeout,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    waiter.cancel()
                if waiter not in done or not confirmation.is_set():
                    if self._disconnected.done():
                        raise aiomqtt.MqttError("disconnected before PUBACK")
                    raise aiomqtt.MqttError("no PUBACK in time")
        refusal = self._refusals.pop(info.mid, None)
        if refusal is None:
            return
        if int(refusal.value) == 16:
            if needs_subscriber:
                raise NoSubscribers()
            return
        raise PublishDenied(int(refusal.value), str(refusal.getName()))


class Publisher:
    def __init__(
        self,
        config: GatewayConfig,
        outbox: Outbox,
        board: StatusBoard,
        allowlist: Allowlist,
        *,
        on_allowlist: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.outbox = outbox
        self.board = board
        self.allowlist = allowlist
        self.on_allowlist = on_allowlist
        self.topics = topics(config.gateway_id)
        self.connected = asyncio.Event()
        self.stopping = asyncio.Event()
        self.published_messages = 0
        #: readings acknowledged by a receipt, sent again for want of one, quarantined by ingest
        self.receipted_readings = 0
        self.resent_readings = 0
        self.quarantined_readings = 0
        self._unreceipted: dict[str, _Sent] = {}
        self._room = asyncio.Event()
        self._client: _ConfirmingClient | None = None
        self.problems = ProblemLog("broker", board.set_alarm)
        stored = outbox.get_setting(SERVER_CONFIG_KEY)
        if stored is not None:
            with contextlib.suppress(ConfigError):
                allowlist.set_server(parse_server_config(stored.encode()))

    def _new_client(self) -> _ConfirmingClient:
        mqtt = self.config.mqtt
        context: ssl.SSLContext | None = None
        if mqtt.tls:
            context = ssl.create_default_context(cafile=mqtt.ca_file)
        return _ConfirmingClient(
            hostname=mqtt.host,
            port=mqtt.port,
            username=mqtt.username,
            password=mqtt.password,
            identifier=f"carebeacon-gateway-{self.config.gateway_id}",
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_context=context,
            will=aiomqtt.Will(
                self.topics["status"], offline_status(self.config.gateway_id), qos=1, retain=True
            ),
            keepalive=mqtt.keepalive,
            timeout=mqtt.publish_timeout,
        )

    async def run(self) -> None:
        """Connect, publish, reconnect with capped backoff and jitter, until :attr:`stopping`."""
        backoff = Backoff(base=1.0, cap=120.0)
        while not self.stopping.is_set():
            try:
                client = self._new_client()
                async with client:
                    self._client = client
                    self.connected.set()
                    self.board.set_alarm("broker_unreachable", False)
                    self.problems.resolved()
                    logger.info("connected to the broker")
                    await _flattened(self._session(client, backoff))
                    with contextlib.suppress(aiomqtt.MqttError, PublishDenied):
                        await client.publish_confirmed(
                            self.topics["status"],
                            offline_status(self.config.gateway_id),
                            retain=True,
                            ack_timeout=5.0,
                        )
                    return
            except (aiomqtt.MqttError, PublishDenied, NoSubscribers, OSError, ssl.SSLError) as exc:
                delay = backoff.next_delay()
                if isinstance(exc, NoSubscribers):
                    # kept in the outbox; a new session sends it again (after the backoff)
                    logger.warning("%s; sending again in %.0f s", exc, delay)
                elif isinstance(exc, PublishDenied):
                    self.board.set_alarm("publish_denied", True)
                    logger.error("the broker refused a publish: %s", exc.reason)
                else:
                    # the cause, said once: aiomqtt keeps only the text of a socket error,
                    # so the network and TLS steps are tried again on their own
                    found = None
                    if not isinstance(exc, aiomqtt.MqttCodeError):
                        found = await probe_broker(self.config.mqtt, within=5.0)
                    self.problems.report(broker_problem(exc, found), delay)
            finally:
                self._client = None
                self.connected.clear()
            if not self.stopping.is_set():
                self.board.set_alarm("broker_unreachable", True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)

    async def _session(self, client: _ConfirmingClient, backoff: Backoff) -> None:
        await client.subscribe(self.topics["config"], qos=1)
        if self.config.outbox.receipts:
            granted = await client.subscribe(self.topics["receipts"], qos=1)
            refused = any(getattr(code, "is_failure", False) for code in granted)
            self.board.set_alarm("receipts_refused", refused)
            if refused:
                logger.error("the broker refused the receipts subscription (ACL)")
            self._unreceipted.clear()  # a new connection: send all that has no receipt again
        await self._publish_status(client)
        backoff.reset()  # the broker took a message from us: the link is good
        async with asyncio.TaskGroup() as tg:
            drain = tg.create_task(self._drain(client, backoff))
            status = tg.create_task(self._status_loop(client))
            configs = tg.create_task(self._follow_config(client))
            await self.stopping.wait()
            for task in (drain, status, configs):
                task.cancel()

    async def _publish_status(self, client: _ConfirmingClient) -> None:
        self.board.changed.clear()
        body = build_status(self.config.gateway_id, self.outbox, self.board)
        await client.publish_confirmed(
            self.topics["status"],
            json.dumps(body).encode(),
            retain=True,
            ack_timeout=self.config.mqtt.publish_timeout,
        )

    async def _status_loop(self, client: _ConfirmingClient) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.board.changed.wait(), self.config.status_interval)
            await asyncio.sleep(1.0)  # gather a burst of changes into one message
            await self._publish_status(client)

    def _on_receipt(self, payload: bytes) -> None:
        receipt = parse_receipt(payload, self.config.gateway_id)
        if receipt is None:
            logger.warning("ignoring a message on the receipts topic that is not a receipt")
            return
        self.receipted_readings += self.outbox.acknowledge(receipt.ids)
        for reading_id in receipt.ids:
            self._unreceipted.pop(reading_id, None)
        self._room.set()
        if receipt.quarantined:
            self.quarantined_readings += len(receipt.quarantined)
            logger.warning(
                "ingest quarantined %d readings (not sent again)", len(receipt.quarantined)
            )
        if self.outbox.depth == 0:
            self.board.changed.set()

    async def _follow_config(self, client: _ConfirmingClient) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            if str(message.topic) == self.topics["receipts"]:
                self._on_receipt(payload)
                continue
            if str(message.topic) != self.topics["config"]:
                continue
            try:
                entries = parse_server_config(payload)
            except ConfigError as exc:
                logger.warning("ignoring an invalid config from the server (%s)", exc.field)
                continue
            self.allowlist.set_server(entries)
            self.outbox.set_setting(
                SERVER_CONFIG_KEY, payload.decode() if entries is not None else None
            )
            logger.info(
                "allowlist updated from the server: %d devices",
                len(entries) if entries is not None else len(self.allowlist.entries),
            )
            if self.on_allowlist is not None:
                self.on_allowlist()
            self.board.changed.set()

    async def _drain(self, client: _ConfirmingClient, backoff: Backoff) -> None:
        window = asyncio.Semaphore(self.config.outbox.max_in_flight)
        settings = self.config.outbox
        after = 0
        async with asyncio.TaskGroup() as tg:
            if settings.receipts:
                tg.create_task(self._resend(client, window, backoff, tg))
            while True:
                self.outbox.changed.clear()
                limit = settings.batch_size
                if settings.receipts:
                    limit = min(limit, settings.max_unreceipted - len(self._unreceipted))
                    if limit <= 0:  # wait for receipts (or re-sends) to make room
                        self._room.clear()
                        await self._room.wait()
                        continue
                batch = self.outbox.pending(after=after, limit=limit)
                if not batch:
                    await self.outbox.changed.wait()
                    continue
                after = batch[-1].seq
                await window.acquire()
                tg.create_task(self._send(client, batch, window, backoff))

    async def _resend(
        self,
        client: _ConfirmingClient,
        window: asyncio.Semaphore,
        backoff: Backoff,
        tg: asyncio.TaskGroup,
    ) -> None:
        """Send again what has had no receipt in time (at most ``max_unreceipted`` readings are
        out, each waiting longer after every attempt: the re-send rate is bounded)."""
        loop = asyncio.get_running_loop()
        tick = min(1.0, self.config.outbox.receipt_timeout / 4)
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            due = [i for i, sent in self._unreceipted.items() if sent.due <= now]
            if not due:
                continue
            waiting = self.outbox.waiting(due)
            for reading_id in set(due) - {r.id for r in waiting}:
                self._unreceipted.pop(reading_id, None)  # acknowledged meanwhile
            size = self.config.outbox.batch_size
            for start in range(0, len(waiting), size):
                await window.acquire()
                tg.create_task(self._send(client, waiting[start : start + size], window, backoff))
            if waiting:
                logger.info("sending %d readings again (no receipt in time)", len(waiting))

    def _sending(self, batch: list[PendingReading]) -> None:
        """Receipts: each reading of ``batch`` is out, until its receipt or its next attempt."""
        now = asyncio.get_running_loop().time()
        for reading in batch:
            sent = self._unreceipted.get(reading.id)
            attempts = 1 if sent is None else sent.attempts + 1
            if attempts > 1:
                self.resent_readings += 1
            wait = min(
                RECEIPT_TIMEOUT_CAP, self.config.outbox.receipt_timeout * 2 ** (attempts - 1)
            )
            self._unreceipted[reading.id] = _Sent(now + wait, attempts)

    async def _send(
        self,
        client: _ConfirmingClient,
        batch: list[PendingReading],
        window: asyncio.Semaphore,
        backoff: Backoff,
    ) -> None:
        receipts = self.config.outbox.receipts
        try:
            payload = batch_payload(
                self.config.gateway_id,
                self.config.timezone,
                batch,
                datetime.now(UTC),
                schema=READINGS_SCHEMA_RECEIPTS if receipts else READINGS_SCHEMA,
            )
            if receipts:
                self._sending(batch)
            await client.publish_confirmed(
                self.topics["readings"],
                payload,
                ack_timeout=self.config.mqtt.publish_timeout,
                # with receipts, what no one received is sent again when its receipt is late
                needs_subscriber=not receipts,
            )
            if not receipts:
                self.outbox.acknowledge(r.id for r in batch)
            self.published_messages += 1
            backoff.reset()
            self.board.set_alarm("publish_denied", False)
            logger.info(
                "%s %d readings (outbox depth %d)",
                "sent" if receipts else "delivered",
                len(batch),
                self.outbox.depth,
            )
            if self.outbox.depth == 0 or self.outbox.depth + len(batch) >= self.outbox.max_readings:
                self.board.changed.set()
        finally:
            window.release()

    async def drained(self, within: float) -> bool:
        """Wait (up to ``within`` seconds) until the outbox is empty; used on shutdown."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self.outbox.depth and loop.time() < deadline:
            if not self.connected.is_set():
                return False
            await asyncio.sleep(0.05)
        return self.outbox.depth == 0
