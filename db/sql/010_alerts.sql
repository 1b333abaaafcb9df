-- alerts/: versioned thresholds, alert episodes and their audited events, care-team queues.

-- Threshold overrides, append-only. The effective value of a parameter for (scope, key) at time
-- t is the highest version whose [valid_from, valid_until) holds t; value NULL = inherit.
-- Scope program: program_id; site: site_id (+ program_id, or NULL for every program);
-- patient: patient_id.
CREATE TABLE alert_thresholds (
    id           bigserial PRIMARY KEY,
    scope        text NOT NULL CHECK (scope IN ('program', 'site', 'patient')),
    program_id   text REFERENCES programs,
    site_id      text REFERENCES sites,
    patient_id   uuid REFERENCES patients ON DELETE CASCADE,
    parameter    text NOT NULL,             -- "<rule id>.<name>", e.g. "bp_crisis.systolic"
    value        double precision,          -- NULL: back to the inherited value
    version      integer NOT NULL,
    valid_from   timestamptz NOT NULL,
    valid_until  timestamptz,
    ordered_by   text NOT NULL,             -- who ordered it (clinician)
    reason       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (valid_until IS NULL OR valid_until > valid_from),
    CHECK (scope <> 'program' OR (program_id IS NOT NULL AND site_id IS NULL AND patient_id IS NULL)),
    CHECK (scope <> 'site' OR (site_id IS NOT NULL AND patient_id IS NULL)),
    CHECK (scope <> 'patient' OR (patient_id IS NOT NULL AND site_id IS NULL AND program_id IS NULL))
);
CREATE UNIQUE INDEX alert_thresholds_version ON alert_thresholds
    (scope, coalesce(program_id, ''), coalesce(site_id, ''),
     coalesce(patient_id, '00000000-0000-0000-0000-000000000000'::uuid), parameter, version);
CREATE INDEX alert_thresholds_patient ON alert_thresholds (patient_id) WHERE patient_id IS NOT NULL;

CREATE TABLE alert_episodes (
    id                  uuid PRIMARY KEY,
    patient_id          uuid NOT NULL REFERENCES patients ON DELETE CASCADE,
    family              text NOT NULL,      -- episode family: one active episode per patient
    rule_id             text NOT NULL,      -- the rule behind the current severity
    state               text NOT NULL CHECK (state IN ('pending', 'open', 'acknowledged', 'resolved')),
    severity            text NOT NULL CHECK (severity IN ('info', 'low', 'moderate', 'high', 'critical')),
    priority            smallint NOT NULL CHECK (priority BETWEEN 1 AND 5),   -- 1 = most urgent
    site_id             text REFERENCES sites,          -- queue = (site_id, program_id)
    program_id          text REFERENCES programs,
    opened_at           timestamptz NOT NULL,           -- clinical time of the first evidence
    last_at             timestamptz NOT NULL,           -- clinical time of the latest evidence
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    count               integer NOT NULL DEFAULT 1,
    value_code          text NOT NULL,
    first_value         double precision NOT NULL,
    last_value          double precision NOT NULL,
    worst_value         double precision NOT NULL,
    explanation         text NOT NULL,
    evidence            uuid[] NOT NULL DEFAULT '{}',   -- reading ids (newest 200)
    threshold_version   text NOT NULL,
    thresholds          jsonb NOT NULL DEFAULT '{}',
    late                boolean NOT NULL DEFAULT false, -- opened from late data only: no paging
    confirm_by          timestamptz,                    -- pending: re-measure deadline
    clear_candidate_at  timestamptz,                    -- back inside the band since
    cleared_at          timestamptz,
    sla_due_at          timestamptz,
    escalation_level    smallint NOT NULL DEFAULT 0,    -- 0 care manager, 1 supervisor, 2 on-call
    assignee            text,
    acknowledged_at     timestamptz,
    acknowledged_by     text,
    resolved_at         timestamptz,
    resolved_by         text,
    outcome             text,
    note                text,
    snoozed_until       timestamptz,
    snooze_reason       text,
    suppressed_by       uuid REFERENCES alert_episodes ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED,
    CHECK (state <> 'resolved' OR (resolved_at IS NOT NULL AND outcome IS NOT NULL))
);
-- One active episode per (patient, family): the database enforces the coalescing.
CREATE UNIQUE INDEX alert_episodes_active ON alert_episodes (patient_id, family)
    WHERE state <> 'resolved';
CREATE INDEX alert_episodes_queue ON alert_episodes (site_id, program_id, priority, sla_due_at)
    WHERE state IN ('open', 'acknowledged');
CREATE INDEX alert_episodes_due ON alert_episodes (sla_due_at) WHERE state = 'open';
CREATE INDEX alert_episodes_patient ON alert_episodes (patient_id, opened_at DESC);

CREATE TABLE alert_episode_events (
    id          bigserial PRIMARY KEY,
    episode_id  uuid NOT NULL REFERENCES alert_episodes ON DELETE CASCADE,
    at          timestamptz NOT NULL,
    kind        text NOT NULL,    -- pending, created, opened, severity_raised, recurred, cleared,
                                  -- suppressed, unsuppressed, escalated, assigned, acknowledged,
                                  -- snoozed, snooze_expired, resolved
    actor       text NOT NULL,    -- 'system' or the user
    from_state  text,
    to_state    text,
    detail      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX alert_episode_events_episode ON alert_episode_events (episode_id, at);

-- What a care team works: visible episodes of a site+program queue, most urgent first.
CREATE VIEW alert_queue AS
SELECT e.*
FROM alert_episodes e
WHERE e.state IN ('open', 'acknowledged')
  AND e.suppressed_by IS NULL
  AND (e.snoozed_until IS NULL OR e.snoozed_until <= now())
ORDER BY e.priority, e.sla_due_at NULLS LAST, e.opened_at;
