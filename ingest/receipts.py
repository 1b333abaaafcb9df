"""Receipts to gateways: after its commit, which reading ids of a batch ingest has kept.

A gateway that sends ``carebeacon.readings/2`` asks for receipts (README, MQTT contract). After
the transaction that stored a batch has committed and its messages are acknowledged, ingest
publishes on ``carebeacon/v1/gateways/{gateway_id}/receipts`` (QoS 1, not retained) a
``carebeacon.receipts/1`` message naming the reading ids of that gateway which are now
``stored``, were already stored (``duplicate``) or were ``quarantined`` (rejected for good:
sending them again changes nothing). Only then does the gateway forget them. A gateway that sends
``carebeacon.readings/1`` gets no receipts.

A receipt that is not delivered (ingest stopped, the broker went away, the gateway was offline:
the gateway's session does not keep it) loses nothing: the gateway sends the reading again
after its receipt timeout, the reading id makes the repeat a duplicate, and the duplicate gets a
receipt. :class:`ReceiptSender` therefore never retries and never blocks the writer: its queue
is bounded and what does not fit is dropped (and counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence

import aiomqtt
from prometheus_client import Counter

__all__ = [
    "MAX_IDS_PER_RECEIPT",
    "OUTCOMES",
    "RECEIPTS_SCHEMA",
    "ReceiptSender",
    "receipt_messages",
    "receipts_topic",
]

logger = logging.getLogger(__name__)

RECEIPTS_SCHEMA = "carebeacon.receipts/1"
#: the three outcomes a receipt names, in its payload's key order
OUTCOMES = ("stored", "duplicate", "quarantined")
#: one receipt stays far below the broker's packet limit (1,000 ids ≈ 40 KB)
MAX_IDS_PER_RECEIPT = 1000

RECEIPTS = Counter(
    "carebeacon_ingest_receipts_total",
    "Receipt messages to gateways, by what became of them (sent, failed, dropped)",
    ["result"],
)
RECEIPT_READINGS = Counter(
    "carebeacon_ingest_receipt_readings_total",
    "Reading ids in the receipts published, by outcome",
    ["outcome"],
)


def receipts_topic(gateway_id: str) -> str:
    return f"carebeacon/v1/gateways/{gateway_id}/receipts"


def receipt_messages(
    outcomes: Mapping[str, Mapping[str, Sequence[uuid.UUID]]], requested: Iterable[str]
) -> list[tuple[str, bytes]]:
    """``(topic, payload)`` of the receipts for the gateways in ``requested`` (pure).

    ``outcomes``: gateway id → outcome → reading ids (``ingest.store.StoreResult.outcomes``).
    A gateway with more than :data:`MAX_IDS_PER_RECEIPT` ids gets several messages; an id
    named twice (the same reading twice in one batch) is named once, under its first outcome
    in the order ``stored``, ``duplicate``, ``quarantined``.
    """
    messages: list[tuple[str, bytes]] = []
    for gateway_id in sorted(set(requested)):
        lists = outcomes.get(gateway_id)
        if not lists:
            continue
        seen: set[uuid.UUID] = set()
        items: list[tuple[str, str]] = []
        for outcome in OUTCOMES:
            for reading_id in lists.get(outcome, ()):
                if reading_id not in seen:
                    seen.add(reading_id)
                    items.append((outcome, str(reading_id)))
        for start in range(0, len(items), MAX_IDS_PER_RECEIPT):
            chunk = items[start : start + MAX_IDS_PER_RECEIPT]
            body: dict[str, object] = {"schema": RECEIPTS_SCHEMA, "gateway_id": gateway_id}
            for outcome in OUTCOMES:
                body[outcome] = [reading_id for kind, reading_id in chunk if kind == outcome]
            messages.append(
                (receipts_topic(gateway_id), json.dumps(body, separators=(",", ":")).encode())
            )
    return messages


class ReceiptSender:
    """Publishes receipts with ingest's connected client, off the writer's path.

    :meth:`send` (called by the writer after the commit and the acks) queues without waiting;
    :meth:`run` publishes each batch's receipts at QoS 1, not retained, concurrently, with the
    client :attr:`client` returns at that moment (none: dropped, the gateways re-send).
    """

    def __init__(self, client: Callable[[], aiomqtt.Client | None], *, queued: int = 1000) -> None:
        self.client = client
        self.queue: asyncio.Queue[list[tuple[str, bytes]]] = asyncio.Queue(queued)

    def send(
        self, outcomes: Mapping[str, Mapping[str, Sequence[uuid.UUID]]], requested: Iterable[str]
    ) -> None:
        wanted = set(requested)
        if not wanted:
            return
        messages = receipt_messages(outcomes, wanted)
        if not messages:
            return
        try:
            self.queue.put_nowait(messages)
        except asyncio.QueueFull:
            RECEIPTS.labels("dropped").inc(len(messages))
            return
        for gateway_id in wanted:
            for outcome, ids in outcomes.get(gateway_id, {}).items():
                RECEIPT_READINGS.labels(outcome).inc(len(ids))

    async def run(self) -> None:
        while True:
            messages = await self.queue.get()
            try:
                await self._publish(messages)
            finally:
                self.queue.task_done()

    async def _publish(self, messages: list[tuple[str, bytes]]) -> None:
        client = self.client()
        if client is None:
            RECEIPTS.labels("dropped").inc(len(messages))
            return
        results = await asyncio.gather(
            *(client.publish(t, p, qos=1, timeout=10) for t, p in messages),
            return_exceptions=True,
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        for problem in failed:
            if not isinstance(problem, aiomqtt.MqttError | TimeoutError):
                raise problem
        if failed:
            logger.info(
                "%d receipts not published (%s); the gateways send again",
                len(failed),
                type(failed[0]).__name__,
            )
        RECEIPTS.labels("failed").inc(len(failed))
        RECEIPTS.labels("sent").inc(len(messages) - len(failed))

    async def close(self) -> None:
        """Publish what is queued (a stopping ingest) as far as the client allows, briefly."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self.queue.join()
