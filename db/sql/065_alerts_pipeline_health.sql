-- The pipeline's dead-man's switch (alerts/_pipeline.py, run by the scheduler). A pipeline
-- problem has no patient, so it is not an alert_episodes row (patient_id is NOT NULL there):
-- one row per occurrence of a check, open while cleared_at is NULL, at most one open per check.
CREATE TABLE pipeline_health (
    id          bigserial PRIMARY KEY,
    check_name  text NOT NULL
                CHECK (check_name IN ('no_readings', 'scheduler_late', 'broker_unreachable')),
    opened_at   timestamptz NOT NULL,
    cleared_at  timestamptz,
    detail      jsonb NOT NULL DEFAULT '{}',
    CHECK (cleared_at IS NULL OR cleared_at >= opened_at)
);
CREATE UNIQUE INDEX pipeline_health_active ON pipeline_health (check_name) WHERE cleared_at IS NULL;
CREATE INDEX pipeline_health_opened ON pipeline_health (opened_at DESC);

-- The last pass of each periodic component (today: the scheduler), for the late-pass check.
CREATE TABLE pipeline_heartbeats (
    component   text PRIMARY KEY,
    at          timestamptz NOT NULL
);

-- "When was a reading last stored?" is max(ingested_at): an index makes it one probe.
CREATE INDEX reading_receipts_ingested ON reading_receipts (ingested_at DESC);
