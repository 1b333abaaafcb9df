"""alerts: clinical rules that find the patients who need a call today, without the noise.

Public surface
--------------

Ingest (inside its own transaction, after inserting; never commits)::

    await evaluate_readings(conn, readings: Sequence[StoredReading], *, now=None) -> None

Episode transitions for the web app (each atomic, each writes an audited event to
``alert_episode_events``, each returns the updated :class:`Episode`; raise
:class:`EpisodeNotFound` / :class:`InvalidTransition`)::

    await assign(conn, episode_id, assignee, *, actor, now=None)          # claim: assignee=actor
    await acknowledge(conn, episode_id, *, actor, note=None, now=None)    # open → acknowledged
    await resolve(conn, episode_id, *, actor, outcome, note=None, now=None)  # outcome in OUTCOMES
    await snooze(conn, episode_id, *, actor, reason, until, now=None)     # hide + hold SLA
    await get_episode(conn, episode_id) -> Episode
    await episode_events(conn, episode_id) -> list[Event]                 # the audit trail
    await list_queue(conn, *, site_id, program_id=None, now=None, limit=200) -> list[Episode]
    await patient_episodes(conn, patient_id, *, limit=50) -> list[Episode]   # newest first

Thresholds (program → site → patient, append-only versions)::

    await set_threshold(conn, *, scope, parameter, value, ordered_by, reason, valid_from,
                        valid_until=None, program_id=None, site_id=None, patient_id=None) -> int
    await effective_thresholds(conn, patient_id, *, at=None) -> ThresholdSet
    await threshold_history(conn, patient_id) -> list[ThresholdChange]    # newest first

Catalogue: :data:`RULES` (rule id → rule, each with ``kind``, ``family``, ``description``
naming its source), :data:`TEMPLATES` (program template → rule id → parameter → default),
:data:`FAMILIES`, :data:`OUTCOMES`, :data:`SLA`; :data:`EPISODE_COLUMNS`, the columns of
``alert_episodes`` as alerts/ writes them (for bulk loads of generated episodes). Entry points:
``carebeacon scheduler`` (:mod:`alerts.scheduler`), ``carebeacon alerts replay|cohort|measure``
(:mod:`alerts.cli`).

Episode states: ``pending`` (a crisis value waiting for its re-measure; not in the queue) →
``open`` (in the queue of its site + program, SLA running) → ``acknowledged`` → ``resolved``.
"""

from alerts._engine import (
    ESCALATION_LEVELS,
    LATE_AFTER,
    OUTCOMES,
    SLA,
    STATES,
    Episode,
    Event,
    priority_for,
)
from alerts._lifecycle import (
    ThresholdChange,
    acknowledge,
    assign,
    effective_thresholds,
    episode_events,
    get_episode,
    list_queue,
    patient_episodes,
    resolve,
    set_threshold,
    snooze,
    threshold_history,
)
from alerts._live import evaluate_readings
from alerts._model import Severity, StoredReading
from alerts._programs import TEMPLATES, ThresholdSet, ThresholdValue
from alerts._replay import ReplayError, program_overrides, replay
from alerts._rules import FAMILIES, RULES, Rule
from alerts._store import EPISODE_COLUMNS
from alerts.errors import AlertsError, EpisodeNotFound, InvalidThreshold, InvalidTransition

__all__ = [
    "EPISODE_COLUMNS",
    "ESCALATION_LEVELS",
    "FAMILIES",
    "LATE_AFTER",
    "OUTCOMES",
    "RULES",
    "SLA",
    "STATES",
    "TEMPLATES",
    "AlertsError",
    "Episode",
    "EpisodeNotFound",
    "Event",
    "InvalidThreshold",
    "InvalidTransition",
    "ReplayError",
    "Rule",
    "Severity",
    "StoredReading",
    "ThresholdChange",
    "ThresholdSet",
    "ThresholdValue",
    "acknowledge",
    "assign",
    "effective_thresholds",
    "episode_events",
    "evaluate_readings",
    "get_episode",
    "list_queue",
    "patient_episodes",
    "priority_for",
    "program_overrides",
    "replay",
    "resolve",
    "set_threshold",
    "snooze",
    "threshold_history",
]
