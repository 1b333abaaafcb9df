-- alerts/: clinical safety of episodes (issue 15).
-- queue: device health goes to a technical queue, never the clinical one; subject: the device
-- of a technical item (one open item per device and problem); notified_at: the last time the
-- episode was put in front of a person with a new SLA (opened, escalated, renotified);
-- handled_at: the last claim, acknowledgement or snooze by a person; renotify_count: how many
-- times a new emergency brought it back to the top of the queue.
ALTER TABLE alert_episodes
    ADD COLUMN queue          text NOT NULL DEFAULT 'clinical'
                              CHECK (queue IN ('clinical', 'technical')),
    ADD COLUMN subject        text,
    ADD COLUMN notified_at    timestamptz,
    ADD COLUMN handled_at     timestamptz,
    ADD COLUMN renotify_count integer NOT NULL DEFAULT 0;

UPDATE alert_episodes SET queue = 'technical', subject = NULL
WHERE family IN ('device_clock', 'gateway_offline', 'battery_low');

-- One active episode per (patient, family, subject).
DROP INDEX alert_episodes_active;
CREATE UNIQUE INDEX alert_episodes_active ON alert_episodes (patient_id, family, coalesce(subject, ''))
    WHERE state <> 'resolved';
-- The quiet period after a person resolves an episode: the latest resolved one per family.
CREATE INDEX alert_episodes_resolved ON alert_episodes (patient_id, family, resolved_at DESC)
    WHERE state = 'resolved';

-- What a care team works: visible clinical episodes, most urgent first (device health is in
-- alert_technical_queue). Same columns as before, the new ones appended.
CREATE OR REPLACE VIEW alert_queue AS
SELECT e.*
FROM alert_episodes e
WHERE e.state IN ('open', 'acknowledged')
  AND e.queue = 'clinical'
  AND e.suppressed_by IS NULL
  AND (e.snoozed_until IS NULL OR e.snoozed_until <= now())
ORDER BY e.priority, e.sla_due_at NULLS LAST, e.opened_at;

CREATE VIEW alert_technical_queue AS
SELECT e.*
FROM alert_episodes e
WHERE e.state IN ('open', 'acknowledged')
  AND e.queue = 'technical'
  AND (e.snoozed_until IS NULL OR e.snoozed_until <= now())
ORDER BY e.priority, e.opened_at;
