"""alerts: clinical rules that find the patients who need a call today, without the noise.

Public surface
--------------

Ingest (inside its own transaction, after inserting; never commits)::

    await evaluate_readings(conn, readings: Sequence[StoredReading], *, now=None) -> None

Episode transitions for the web app (each atomic, each writes an audited event to
``alert_episode_events``, each returns the updated :class:`Episode`; raise
:class:`EpisodeNotFound` / :class:`InvalidTransition`, or :class:`InvalidAction` — a subclass
naming the input at fault in ``.field``, for a 422)::

    await assign(conn, episode_id, assignee, *, actor, now=None)          # claim: assignee=actor
    await acknowledge(conn, episode_id, *, actor, note=None, now=None)    # open → acknowledged
    await resolve(conn, episode_id, *, actor, outcome, note=None, now=None)
        # outcome in PERSON_OUTCOMES (never SYSTEM_OUTCOMES); a note is required when critical
    await snooze(conn, episode_id, *, actor, reason, until, now=None)     # hide + hold SLA
        # at most SNOOZE_MAX[severity]; never critical; ends at once on a new emergency
    await get_episode(conn, episode_id) -> Episode
    await episode_events(conn, episode_id) -> list[Event]                 # the audit trail
    await list_queue(conn, *, site_id, program_id=None, now=None, limit=200,
                     queue="clinical") -> list[Episode]                   # or "technical"
    await patient_episodes(conn, patient_id, *, limit=50) -> list[Episode]   # newest first

Notifications: an event whose kind is in :data:`NOTIFYING_EVENTS` (``opened``, ``escalated``,
``renotified``) carries ``detail["notify"]``: whether it put the episode in front of a person
with a new SLA (a clinical episode, open, not late-only, suppressed or snoozed).

Thresholds (program → site → patient, append-only versions)::

    await set_threshold(conn, *, scope, parameter, value, ordered_by, reason, valid_from,
                        valid_until=None, program_id=None, site_id=None, patient_id=None) -> int
    await effective_thresholds(conn, patient_id, *, at=None) -> ThresholdSet
    await threshold_history(conn, patient_id) -> list[ThresholdChange]    # newest first

Catalogue: :data:`RULES` (rule id → rule, each with ``kind``, ``family``, ``description``
naming its source), :data:`TEMPLATES` (program template → rule id → parameter → default),
:data:`FAMILIES`, :data:`OUTCOMES` (= :data:`PERSON_OUTCOMES` | :data:`SYSTEM_OUTCOMES`),
:data:`SLA` (and :func:`sla_for`, per program), :data:`SNOOZE_MAX`, :data:`RELEVANCE`,
:data:`QUIET`, :data:`QUEUES`, :data:`TECHNICAL_FAMILIES`. Entry points: ``carebeacon scheduler``
(:mod:`alerts.scheduler`; after each pass also the pipeline's dead-man's switch,
``check_pipeline``, into ``pipeline_health``), ``carebeacon alerts replay|rules`` (:mod:`alerts.cli`).
:data:`EPISODE_COLUMNS`: the columns of ``alert_episodes`` as alerts/ writes them (for bulk loads
of generated episodes).

Episode states: ``pending`` (a crisis value waiting for its re-measure; not in the queue) →
``open`` (in the queue of its site + program, SLA running) → ``acknowledged`` → ``resolved``;
a new emergency brings an acknowledged episode back to ``open`` (``renotified``).
"""

from alerts._engine import (
    ESCALATION_LEVELS,
    LATE_AFTER,
    NOTIFYING_EVENTS,
    OUTCOMES,
    PERSON_OUTCOMES,
    QUEUES,
    QUIET,
    RELEVANCE,
    SLA,
    SNOOZE_MAX,
    STATES,
    SYSTEM_OUTCOMES,
    TECHNICAL_FAMILIES,
    Episode,
    Event,
    priority_for,
    sla_for,
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
from alerts._programs import TEMPLATES, ThresholdSet, ThresholdValue, check_threshold
from alerts._replay import ReplayError, program_overrides, replay
from alerts._rules import FAMILIES, RULES, Rule
from alerts._store import EPISODE_COLUMNS, lock_patients
from alerts._symptoms import SYMPTOMS, SymptomReport, patient_symptoms, record_symptoms
from alerts.errors import (
    AlertsError,
    EpisodeNotFound,
    InvalidAction,
    InvalidSymptoms,
    InvalidThreshold,
    InvalidTransition,
)

__all__ = [
    "EPISODE_COLUMNS",
    "ESCALATION_LEVELS",
    "FAMILIES",
    "LATE_AFTER",
    "NOTIFYING_EVENTS",
    "OUTCOMES",
    "PERSON_OUTCOMES",
    "QUEUES",
    "QUIET",
    "RELEVANCE",
    "RULES",
    "SLA",
    "SNOOZE_MAX",
    "STATES",
    "SYMPTOMS",
    "SYSTEM_OUTCOMES",
    "TECHNICAL_FAMILIES",
    "TEMPLATES",
    "AlertsError",
    "Episode",
    "EpisodeNotFound",
    "Event",
    "InvalidAction",
    "InvalidSymptoms",
    "InvalidThreshold",
    "InvalidTransition",
    "ReplayError",
    "Rule",
    "Severity",
    "StoredReading",
    "SymptomReport",
    "ThresholdChange",
    "ThresholdSet",
    "ThresholdValue",
    "acknowledge",
    "assign",
    "check_threshold",
    "effective_thresholds",
    "episode_events",
    "evaluate_readings",
    "get_episode",
    "list_queue",
    "lock_patients",
    "patient_episodes",
    "patient_symptoms",
    "priority_for",
    "program_overrides",
    "record_symptoms",
    "replay",
    "resolve",
    "set_threshold",
    "sla_for",
    "snooze",
    "threshold_history",
]
