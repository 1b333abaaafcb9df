"""Prometheus metrics. Label values come only from closed sets: rule ids (the rule table),
severities, event kinds and escalation levels; never a patient, device or gateway."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from alerts._engine import Book, Event

__all__ = [
    "EPISODES_OPENED",
    "EPISODE_EVENTS",
    "EVALUATE_SECONDS",
    "PIPELINE_STALLED",
    "READINGS_EVALUATED",
    "READINGS_SETTLED",
    "SCHEDULER_LAST_PASS",
    "SCHEDULER_LEADER",
    "SCHEDULER_PATIENT_ERRORS",
    "SCHEDULER_TICK_SECONDS",
]

READINGS_EVALUATED = Counter(
    "carebeacon_alert_readings_evaluated_total", "Readings evaluated by the alert rules"
)
READINGS_SETTLED = Counter(
    "carebeacon_alert_readings_settled_total",
    "Readings the batch prefilter settled without history or engine (of those evaluated)",
)
EPISODES_OPENED = Counter(
    "carebeacon_alert_episodes_opened_total",
    "Alert episodes opened (entered the queue), by rule and severity",
    ["rule", "severity"],
)
EPISODE_EVENTS = Counter(
    "carebeacon_alert_episode_events_total", "Audited episode events, by kind", ["kind"]
)
EVALUATE_SECONDS = Histogram(
    "carebeacon_alert_evaluate_seconds",
    "Time to evaluate one batch of readings inside ingest's transaction",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
SCHEDULER_TICK_SECONDS = Histogram(
    "carebeacon_scheduler_tick_seconds", "Duration of one scheduler pass"
)
SCHEDULER_LEADER = Gauge(
    "carebeacon_scheduler_leader", "1 while this process holds the scheduler leader lock"
)
SCHEDULER_LAST_PASS = Gauge(
    "carebeacon_scheduler_last_pass_timestamp_seconds",
    "Unix time at the end of this process's last completed scheduler pass",
)
SCHEDULER_PATIENT_ERRORS = Counter(
    "carebeacon_scheduler_patient_errors_total",
    "Patients whose scheduler pass the database refused (left out of that pass; the others go on)",
)
PIPELINE_STALLED = Gauge(
    "carebeacon_pipeline_stalled",
    "1 while a pipeline check (no_readings, scheduler_late, broker_unreachable) is failing",
    ["check"],
)

EVENT_KINDS = frozenset(
    {
        "pending",
        "created",
        "opened",
        "severity_raised",
        "recurred",
        "cleared",
        "suppressed",
        "unsuppressed",
        "escalated",
        "renotified",
        "thresholds_changed",
        "assigned",
        "acknowledged",
        "snoozed",
        "snooze_expired",
        "resolved",
    }
)


def count_event(kind: str, rule: str, severity: str, rules: frozenset[str]) -> None:
    EPISODE_EVENTS.labels(kind=kind if kind in EVENT_KINDS else "other").inc()
    if kind == "opened":
        EPISODES_OPENED.labels(
            rule=rule if rule in rules else "other",
            severity=severity,
        ).inc()


def count_events(events: Iterable[Event], books: Iterable[Book], rules: frozenset[str]) -> None:
    """:func:`count_event` for each of ``events``, written for the episodes ``books`` changed."""
    index = {ep.id: ep for book in books for ep in book.changed.values()}
    for e in events:
        ep = index.get(e.episode_id)
        if ep is not None:
            count_event(e.kind, ep.rule_id, ep.severity.label, rules)
