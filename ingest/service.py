"""The ingest service: MQTT (shared subscription, QoS 1, persistent session) → TimescaleDB.

Delivery guarantee: a message is acknowledged to the broker (PUBACK) only after the
transaction holding its readings, its quarantine rows and the alerts it raised has committed.
aiomqtt 2.5 acknowledges on receipt and has no public manual-ack API (aiomqtt#345), so the
service switches its paho client to manual acknowledgement before connecting and acks each
message itself after the commit, in arrival order. A crash anywhere before the ack leaves the
message with the broker, which redelivers it (persistent session); the reading id makes the
redelivery a duplicate that stores nothing and raises nothing. aiomqtt is pinned for that
reason, and a SIGKILL test keeps the promise honest.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import logging
import random
import signal
import time
from dataclasses import dataclass
from typing import Any

import aiomqtt
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from alerts import evaluate_readings
from carebeacon import systemd
from carebeacon.logs import configure_logging
from carebeacon.settings import Settings
from ingest._histogram import BatchHistogram
from ingest._mqtt import PahoAdapter
from ingest.brokerlog import follow_denials, log_file
from ingest.receipts import ReceiptSender
from ingest.release import release_requested
from ingest.store import (
    Decoded,
    DirectoryCache,
    Evaluator,
    Message,
    QuarantineLimits,
    StoreResult,
    Turn,
    decode_message,
    quarantine_unstorable,
    store_messages,
)

__all__ = ["IngestConfig", "default_client_id", "main", "run"]

logger = logging.getLogger(__name__)

READINGS_TOPIC = "carebeacon/v1/gateways/+/readings"
STATUS_FILTER = "carebeacon/v1/gateways/+/status"

STORED = Counter("carebeacon_ingest_readings_stored_total", "Readings stored", ["type"])
DUPLICATES = Counter(
    "carebeacon_ingest_readings_duplicate_total", "Readings already stored (redelivered or resent)"
)
RELEASED = Counter(
    "carebeacon_ingest_quarantine_released_total",
    "Quarantined readings released after a fix, by outcome",
    ["outcome"],
)
QUARANTINED = Counter(
    "carebeacon_ingest_quarantined_total",
    "Quarantine rows made (equal to the rows: a message already quarantined makes none)",
    ["reason"],
)
SUMMARISED = Counter(
    "carebeacon_ingest_quarantine_summarised_total",
    "Messages or readings over their gateway's quarantine budget, counted in a summary row",
    ["reason"],
)
REPEATED = Counter(
    "carebeacon_ingest_quarantine_repeated_total",
    "Messages or readings already quarantined (sent again, redelivered, retained): no new row",
)
EMPTY = Counter(
    "carebeacon_ingest_empty_messages_total",
    "Empty messages (retained messages being cleared): nothing stored, nothing quarantined",
)
MESSAGES = Counter("carebeacon_ingest_messages_total", "MQTT messages committed and acknowledged")
BATCH_SIZE = Histogram(
    "carebeacon_ingest_batch_messages",
    "Messages per committed batch",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
COMMIT_SECONDS = Histogram(
    "carebeacon_ingest_commit_seconds",
    "Time to store, evaluate and commit one batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
LAG_SECONDS = BatchHistogram(  # one per reading: observed a batch at a time
    "carebeacon_ingest_lag_seconds",
    "From the gateway's receive time to the commit of the reading (end-to-end lag)",
    buckets=(
        0.005,
        0.01,
        0.02,
        0.03,
        0.05,
        0.075,
        0.1,
        0.15,
        0.2,
        0.25,
        0.3,
        0.5,
        0.75,
        1,
        2.5,
        5,
        10,
        30,
        60,
        300,
        3600,
        86400,
    ),
)
PENDING = Gauge("carebeacon_ingest_pending_messages", "Messages received and not yet committed")
SUBSCRIBED = Gauge(
    "carebeacon_ingest_subscribed", "1 while connected to the broker with the subscriptions made"
)
DB_ERRORS = Counter("carebeacon_ingest_database_errors_total", "Database errors (batch retried)")
UNKNOWN_STATUSES = Counter(
    "carebeacon_ingest_unknown_gateway_statuses_total",
    "Statuses of gateways this deployment does not know (another deployment's on a shared"
    " broker, or retained under a reused id): counted, not quarantined",
)


def default_client_id(settings: Settings) -> str:
    """``CAREBEACON_INGEST_CLIENT_ID`` (default ``ingest-<hostname>``): fixed, because it names
    the persistent session that holds what arrives while ingest is down (a changed id would
    orphan those messages). A gateway cannot take it over (issue 17): the gateway listener pins
    each gateway's client id to its username, and gateway ids starting ``ingest`` are refused."""
    return settings.ingest_client_id


def _setting(name: str) -> Any:
    """The default of a setting (README, Configuration): the one place it is written."""
    return Settings.model_fields[name].default


@dataclass(frozen=True, slots=True)
class IngestConfig:
    settings: Settings
    client_id: str
    share_group: str = _setting("ingest_share_group")
    batch_messages: int = _setting("ingest_batch_messages")
    batch_readings: int = _setting("ingest_batch_readings")
    flush_seconds: float = _setting("ingest_flush_ms") / 1000
    session_expiry_seconds: int = _setting("ingest_session_expiry_seconds")
    release_seconds: float = 5.0  # how often quarantined readings asked for release are taken
    #: the receive window: at most this many messages delivered and not yet acknowledged (MQTT 5
    #: Receive Maximum; the broker holds the rest), and at most ``2 * batch_readings`` readings
    #: decoded and waiting; a backlog waits in the broker, not in ingest's memory
    receive_maximum: int = _setting("ingest_receive_maximum")
    #: batches in flight at once, each on its own database connection: while one waits for
    #: the database (COPY, commit), the rules of the other run (``Turn`` keeps each patient's
    #: batches in arrival order)
    writers: int = _setting("ingest_writers")

    @property
    def readings_filter(self) -> str:
        """The shared subscription, or a plain one when no share group is set."""
        if not self.share_group:
            return READINGS_TOPIC
        return f"$share/{self.share_group}/{READINGS_TOPIC}"

    @classmethod
    def from_env(cls, settings: Settings | None = None) -> IngestConfig:
        """From the settings (``CAREBEACON_INGEST_*``; README, Configuration)."""
        settings = settings or Settings.from_env()
        return cls(
            settings=settings,
            client_id=default_client_id(settings),
            share_group=settings.ingest_share_group,
            batch_messages=settings.ingest_batch_messages,
            batch_readings=settings.ingest_batch_readings,
            flush_seconds=settings.ingest_flush_ms / 1000,
            session_expiry_seconds=settings.ingest_session_expiry_seconds,
            receive_maximum=settings.ingest_receive_maximum,
            writers=settings.ingest_writers,
        )


@dataclass(frozen=True, slots=True)
class _Received:
    generation: int  # which MQTT connection delivered it: acks go only to that connection
    mid: int
    qos: int
    decoded: Decoded  # validated on receipt: that work overlaps the previous batch's commit
    readings: int


#: ingest's sessions in UTC: psycopg then gives ``timestamptz`` values the tzinfo that decoded
#: readings carry (``datetime.UTC``), and comparing two datetimes of one tzinfo skips their UTC
#: offsets (about 8 times faster; resolving and the rules compare many per reading). Nothing in
#: ingest's SQL depends on the session's zone.
SESSION_OPTIONS = "-c TimeZone=UTC"


def _backoff(attempt: int, cap: float = 30.0) -> float:
    return float(min(cap, 0.2 * 2**attempt) * (0.5 + random.random() / 2))  # noqa: S311


class _Ingest:
    def __init__(
        self, config: IngestConfig, evaluate: Evaluator | None, ready: asyncio.Event | None = None
    ) -> None:
        self.config = config
        self.evaluate = evaluate
        # the receive window: while this holds receive_maximum messages or two batches of
        # readings, the socket is not read (ingest/_mqtt.py) and the backlog waits in the broker
        self.queue: asyncio.Queue[_Received] = asyncio.Queue()
        self.queued_readings = 0
        self.unacked = 0  # messages taken from the client and not yet acknowledged
        self.arrived = asyncio.Event()  # set by the receiver at each message
        self.adapter: PahoAdapter | None = None
        self.stopping = asyncio.Event()
        self.generation = 0
        self.client: aiomqtt.Client | None = None
        self.ready = ready or asyncio.Event()
        self.limits = QuarantineLimits.from_settings(config.settings)
        self.receipts = ReceiptSender(lambda: self.client)
        self.directory = DirectoryCache()  # the writers', between their batches
        # cleared while the database is failing: one writer (the prober) backs off and tries
        # again, the others wait for it (an outage costs one writer's attempts, not each's)
        self.database_up = asyncio.Event()
        self.database_up.set()

    def _new_client(self) -> aiomqtt.Client:
        s = self.config.settings
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self.config.session_expiry_seconds
        properties.ReceiveMaximum = self.config.receive_maximum
        client, self.adapter = PahoAdapter.client(
            hostname=s.mqtt_host,
            port=s.mqtt_port,
            username=s.mqtt_ingest_user,
            password=s.mqtt_ingest_password.get_secret_value(),
            identifier=self.config.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=properties,
            keepalive=30,
        )
        # Acknowledge only after the commit (see the module docstring). Set before connecting
        # so that messages queued for the persistent session are covered too.
        self.adapter.manual_ack()
        return client

    async def receive(self) -> None:
        attempt = 0
        while not self.stopping.is_set():
            client = self._new_client()
            try:
                async with client:
                    self.generation += 1
                    generation = self.generation
                    self.client = client
                    await client.subscribe(self.config.readings_filter, qos=1)
                    await client.subscribe(STATUS_FILTER, qos=1)
                    SUBSCRIBED.set(1)
                    self.ready.set()
                    logger.info("connected to the broker (connection %d)", generation)
                    attempt = 0
                    adapter = self.adapter
                    async for first in client.messages:
                        msg: aiomqtt.Message | None = first
                        while msg is not None:  # and the rest of a burst, without awaiting
                            if not self.stopping.is_set():  # else not acked: the broker keeps it
                                self._take(generation, msg)
                            msg = adapter.take_nowait() if adapter is not None else None
                        self.arrived.set()
                        if adapter is not None and self._window_full():
                            adapter.pause_reading()
            except aiomqtt.MqttError as exc:
                self.client = None
                SUBSCRIBED.set(0)
                if self.stopping.is_set():
                    break
                delay = _backoff(attempt)
                attempt += 1
                logger.warning(
                    "broker connection lost (%s); reconnecting in %.1f s", type(exc).__name__, delay
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
            finally:
                self.client = None
                SUBSCRIBED.set(0)

    def _take(self, generation: int, msg: aiomqtt.Message) -> None:
        """Validate a message on receipt (overlapping the commit of the batch before) and queue
        it for the writer."""
        payload = msg.payload if isinstance(msg.payload, bytes) else str(msg.payload).encode()
        decoded = decode_message(
            Message(msg.topic.value, payload), self.config.settings.mqtt_max_payload_bytes
        )
        readings = len(decoded.readings.readings) if decoded.readings else 0
        self.queue.put_nowait(_Received(generation, msg.mid, msg.qos, decoded, readings))
        PENDING.inc()
        self.unacked += 1
        self.queued_readings += readings

    async def _arrival(self, within: float) -> bool:
        """Whether a message is waiting, or arrives ``within`` seconds. Only an event is waited
        for: a timeout never cancels a ``get`` that may already hold a message."""
        deadline = time.monotonic() + within
        while self.queue.empty():
            self.arrived.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self.arrived.wait(), remaining)
            except TimeoutError:
                return not self.queue.empty()
        return True

    async def _collect(self) -> list[_Received]:
        """What has arrived, up to the batch limits (a batch forms while the previous one
        commits); with ``flush_seconds`` > 0, wait that long at most for more. Empty if nothing
        arrives within half a second."""
        if not await self._arrival(0.5):
            return []
        batch: list[_Received] = []
        deadline = time.monotonic() + self.config.flush_seconds
        while self._top_up(batch) and await self._arrival(deadline - time.monotonic()):
            pass
        return batch

    def _top_up(self, batch: list[_Received]) -> bool:
        """Add to ``batch`` what has arrived, up to the batch limits; whether there is room
        for more."""
        readings = sum(item.readings for item in batch)

        def room() -> bool:
            return len(batch) < self.config.batch_messages and readings < self.config.batch_readings

        taken = 0
        while room() and not self.queue.empty():
            item = self.queue.get_nowait()
            batch.append(item)
            readings += item.readings
            taken += item.readings
        self.queued_readings -= taken
        self._resume_if_room()
        return room()

    def _window_full(self) -> bool:
        """Whether reading must pause: more than ``receive_maximum`` messages read and not yet
        acknowledged (a broker that keeps to Receive Maximum never sends that many), or two
        batches of decoded readings waiting. A pause lasts until the writer takes a batch or
        acknowledges one; a pause longer than the keepalive (a database outage) ends the
        connection, and the broker redelivers what was not acknowledged (duplicates, no loss)."""
        read = self.unacked + (self.adapter.queued() if self.adapter is not None else 0)
        return (
            read > self.config.receive_maximum
            or self.queued_readings >= 2 * self.config.batch_readings
        )

    def _resume_if_room(self) -> None:
        if self.adapter is not None and self.adapter.paused and not self._window_full():
            self.adapter.resume_reading()

    async def _connect(self, application_name: str) -> psycopg.AsyncConnection[Any]:
        """One of ingest's database sessions (in UTC: ``SESSION_OPTIONS``)."""
        return await psycopg.AsyncConnection.connect(
            self.config.settings.pg_conninfo(),
            application_name=application_name,
            options=SESSION_OPTIONS,
        )

    async def _connect_db(self) -> psycopg.AsyncConnection[Any]:
        attempt = 0
        while True:
            try:
                return await self._connect("carebeacon-ingest")
            except psycopg.OperationalError as exc:
                delay = _backoff(attempt)
                attempt += 1
                DB_ERRORS.inc()
                logger.warning(
                    "database unreachable (%s); retrying in %.1f s", type(exc).__name__, delay
                )
                await asyncio.sleep(delay)

    async def _store(
        self, conn: psycopg.AsyncConnection[Any], batch: list[_Received], turn: Turn | None = None
    ) -> StoreResult:
        async with conn.transaction():
            return await store_messages(
                conn,
                [r.decoded for r in batch],
                self.evaluate,
                limits=self.limits,
                turn=turn,
                directory_cache=self.directory,
            )

    async def _store_one_by_one(
        self,
        conn: psycopg.AsyncConnection[Any],
        pending: list[_Received],
        committed: list[StoreResult],
    ) -> None:
        """A batch failed on its data: store message by message; quarantine the one that fails.
        Each message is counted once its own transaction has committed, and leaves ``pending``
        for ``committed`` (a database outage part way resumes with what is left, counting
        nothing twice)."""
        while pending:
            item = pending[0]
            started = time.monotonic()
            try:
                part = await self._store(conn, [item])
            except psycopg.OperationalError:
                raise
            except psycopg.Error as exc:
                logger.error("a message failed to store (%s); quarantined", type(exc).__name__)
                async with conn.transaction():
                    part = await quarantine_unstorable(
                        conn,
                        item.decoded,
                        f"the database refused the message ({type(exc).__name__})",
                        self.limits,
                    )
            pending.pop(0)
            self._record([item], part, started)
            committed.append(part)

    def _ack(self, batch: list[_Received]) -> None:
        client = self.client
        PENDING.dec(len(batch))
        for item in batch:
            if item.qos == 0:
                continue
            if client is None or self.adapter is None or item.generation != self.generation:
                continue  # that connection is gone: the broker redelivers, and it is a duplicate
            self.adapter.ack(item.mid, item.qos)
        self.unacked -= len(batch)
        self._resume_if_room()

    def _record(self, batch: list[_Received], result: StoreResult, started: float) -> None:
        """Count a batch whose transaction has committed (never before: a rolled-back batch is
        retried, and would count twice)."""
        COMMIT_SECONDS.observe(time.monotonic() - started)
        BATCH_SIZE.observe(len(batch))
        MESSAGES.inc(len(batch))
        for reading_type, count in result.stored.items():
            STORED.labels(reading_type).inc(count)
        DUPLICATES.inc(result.duplicates)
        for reason, count in result.quarantined.items():
            QUARANTINED.labels(reason).inc(count)
        for reason, count in result.summarised.items():
            SUMMARISED.labels(reason).inc(count)
        REPEATED.inc(result.repeated)
        UNKNOWN_STATUSES.inc(result.unknown_statuses)
        EMPTY.inc(result.empty)
        now = time.time()
        LAG_SECONDS.observe_many(
            [max(0.0, now - r.received_at.timestamp()) for r in result.readings]
        )

    async def write(self) -> None:
        """Take batches as they form and commit up to ``writers`` of them at once, each on its
        own connection; each is acknowledged after its commit and after the batch before it
        (acknowledgements go out in arrival order)."""
        connections: list[psycopg.AsyncConnection[Any] | None] = [None] * self.config.writers
        # the batches in flight, with their gateways
        inflight: collections.deque[tuple[asyncio.Task[None], set[str]]] = collections.deque()
        locked = asyncio.Event()
        locked.set()
        previous: asyncio.Task[None] | None = None
        count = 0
        try:
            while not (self.stopping.is_set() and self.queue.empty()):
                batch = await self._collect()
                if not batch:
                    continue
                gateways = {item.decoded.gateway_id or "" for item in batch}
                waited = False
                # a batch from gateways of one in flight would wait for its commit in the
                # database anyway (the same patients): it waits here instead, and grows with
                # what arrives meanwhile (fewer, larger batches, as with one writer)
                while inflight and (
                    len(inflight) >= self.config.writers
                    or any(gateways & busy for _, busy in inflight)
                ):
                    await inflight.popleft()[0]
                    waited = True
                if waited:
                    self._top_up(batch)
                    gateways = {item.decoded.gateway_id or "" for item in batch}
                turn = Turn(after=locked, locked=asyncio.Event())
                previous = asyncio.create_task(
                    self._commit(connections, count % self.config.writers, batch, turn, previous)
                )
                inflight.append((previous, gateways))
                locked = turn.locked
                count += 1
            while inflight:
                await inflight.popleft()[0]
        finally:
            for task, _ in inflight:
                task.cancel()
            for conn in connections:
                if conn is not None:
                    await conn.close()

    async def _commit(
        self,
        connections: list[psycopg.AsyncConnection[Any] | None],
        slot: int,
        batch: list[_Received],
        turn: Turn,
        previous: asyncio.Task[None] | None,
    ) -> None:
        """Store ``batch`` on connection ``slot`` (retrying through database outages), then
        acknowledge it once ``previous`` (the batch before) is acknowledged."""
        pending = list(batch)  # what is not committed yet
        committed: list[StoreResult] = []  # the results of its committed parts
        attempt = 0
        probing = False  # this writer retries for all of them (``database_up``)
        try:
            while pending:
                if not probing:
                    await self.database_up.wait()
                conn = connections[slot]
                if conn is None or conn.closed or conn.broken:
                    if conn is not None:
                        await conn.close()
                    conn = connections[slot] = await self._connect_db()
                started = time.monotonic()
                try:
                    try:
                        result = await self._store(conn, pending, turn)
                    except psycopg.OperationalError:
                        raise
                    except psycopg.Error as exc:
                        logger.warning(
                            "batch failed (%s); storing message by message", type(exc).__name__
                        )
                        turn.locked.set()  # message by message: no locks held for the batch
                        await self._store_one_by_one(conn, pending, committed)
                        continue
                    self._record(pending, result, started)
                    committed.append(result)
                    pending = []
                except psycopg.OperationalError as exc:
                    DB_ERRORS.inc()
                    # the attempt rolled back: the next batch may go first (after an outage,
                    # as between two ingest processes, a patient's batches may swap)
                    turn.locked.set()
                    if not probing and not self.database_up.is_set():
                        continue  # another writer is probing: wait for it
                    probing = True
                    self.database_up.clear()
                    delay = _backoff(attempt)
                    attempt += 1
                    logger.warning(
                        "database error (%s); retrying the batch in %.1f s",
                        type(exc).__name__,
                        delay,
                    )
                    await asyncio.sleep(delay)
        finally:
            if probing:
                self.database_up.set()  # through (or ended): the others try again
            turn.locked.set()  # the next batch may lock (this one's locks ended with it)
        if previous is not None:
            await previous
        self._ack(batch)
        self._send_receipts(batch, committed)

    def _send_receipts(self, batch: list[_Received], committed: list[StoreResult]) -> None:
        """After the commit and the acks: receipts to the gateways that ask for them
        (``carebeacon.readings/2``; ingest/receipts.py)."""
        requested = {
            r.decoded.readings.gateway_id
            for r in batch
            if r.decoded.readings is not None and r.decoded.readings.receipts
        }
        if not requested:
            return
        for result in committed:
            self.receipts.send(result.outcomes, requested)

    async def release(self) -> None:
        """Every ``release_seconds``: the quarantined readings asked for release, through the
        store path (ingest/release.py). A database error waits for the next pass."""
        conn: psycopg.AsyncConnection[Any] | None = None
        try:
            while not self.stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), self.config.release_seconds)
                if self.stopping.is_set():
                    break
                try:
                    if conn is None or conn.closed or conn.broken:
                        conn = await self._connect("carebeacon-ingest-release")
                    outcomes = await release_requested(conn, self.evaluate, limits=self.limits)
                except psycopg.Error as exc:
                    # the writer's retries count and report a database outage; a release pass
                    # neither retries nor counts: the next pass tries again
                    logger.info("release pass skipped (%s)", type(exc).__name__)
                    continue
                for outcome, count in outcomes.items():
                    RELEASED.labels(outcome).inc(count)
        finally:
            if conn is not None:
                await conn.close()


async def run(
    config: IngestConfig,
    *,
    evaluate: Evaluator | None = None,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Run until ``stop`` is set (SIGTERM/SIGINT in :func:`main`); then drain, commit, ack, exit.

    ``ready`` is set once the subscriptions are in place.
    """
    service = _Ingest(config, evaluate, ready)

    async def watch_stop() -> None:
        if stop is None:
            return
        await stop.wait()
        service.stopping.set()

    async def announce_ready() -> None:  # to systemd (Type=notify): subscribed, taking work
        await service.ready.wait()
        systemd.notify_ready()

    async with asyncio.TaskGroup() as tasks:
        receiver = tasks.create_task(service.receive())
        writer = tasks.create_task(service.write())
        releaser = tasks.create_task(service.release())
        sender = tasks.create_task(service.receipts.run())
        tasks.create_task(watch_stop())
        announcer = tasks.create_task(announce_ready())
        broker_log = log_file(config.settings.mqtt_log_file)
        if broker_log is not None:
            tasks.create_task(follow_denials(broker_log, service.stopping))
        # the watchdog is fed while the event loop runs and the writer is alive
        tasks.create_task(systemd.watchdog_task(service.stopping, alive=lambda: not writer.done()))
        await service.stopping.wait()
        systemd.notify_stopping()
        announcer.cancel()
        # the receiver stops taking work; the writer drains, commits and acks; then disconnect
        await writer
        await releaser
        await service.receipts.close()
        receiver.cancel()
        sender.cancel()


#: a full collection after this many collections of the middle generation (CPython's default:
#: 10); see :func:`tune_gc`
FULL_COLLECTION_EVERY = 100


def tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a process that allocates and frees many
    small objects per reading (measured, ``carebeacon bench ingest``: about a quarter of the
    store path's CPU at 50 readings per message went to collections).

    * What start-up made (modules, settings, the rule catalogue) is never garbage: it is moved
      out of the collector's sight (``gc.freeze``), so a full collection scans only what ingest
      made since.
    * Batches keep their readings alive across many young collections, so they reach the
      oldest generation, which CPython collects every 10 middle collections; every
      ``FULL_COLLECTION_EVERY`` instead. Cyclic garbage lives a little longer; the receive
      window still bounds what ingest holds (peak RSS: README, Ingest)."""
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="carebeacon ingest", description="MQTT → TimescaleDB ingest"
    )
    parser.add_argument(
        "--no-alerts", action="store_true", help="store readings without evaluating rules"
    )
    parser.add_argument("--database", help="database name (default: CAREBEACON_PG_DATABASE)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.database:
        settings = settings.model_copy(update={"pg_database": args.database})
    config = IngestConfig.from_env(settings)
    configure_logging(config.settings.log_level, json=config.settings.log_format == "json")
    if config.settings.metrics_port:
        start_http_server(config.settings.metrics_port, addr="127.0.0.1")
    tune_gc()

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(config, evaluate=None if args.no_alerts else evaluate_readings, stop=stop)

    asyncio.run(serve())
    return 0
