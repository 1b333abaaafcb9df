-- Core schema: organisation, patients, consent, devices, gateways, readings, quarantine.
CREATE EXTENSION IF NOT EXISTS timescaledb;
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE sites (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    timezone    text NOT NULL DEFAULT 'UTC',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE programs (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    template    text NOT NULL,            -- hypertension, heart_failure, diabetes, ...
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE patients (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    mrn           text UNIQUE,
    display_name  text NOT NULL,
    birth_date    date,
    site_id       text NOT NULL REFERENCES sites,
    risk_tier     smallint NOT NULL DEFAULT 2 CHECK (risk_tier BETWEEN 1 AND 3),  -- 1 = highest
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- A patient's enrollment in a program at a site; consent is what lets readings in.
CREATE TABLE enrollments (
    id                    bigserial PRIMARY KEY,
    patient_id            uuid NOT NULL REFERENCES patients ON DELETE CASCADE,
    program_id            text NOT NULL REFERENCES programs,
    site_id               text NOT NULL REFERENCES sites,
    enrolled_at           timestamptz NOT NULL DEFAULT now(),
    ended_at              timestamptz,
    consent_given_at      timestamptz,
    consent_withdrawn_at  timestamptz,
    billing_practitioner  text,
    CHECK (ended_at IS NULL OR ended_at > enrolled_at),
    CHECK (consent_withdrawn_at IS NULL OR consent_given_at IS NOT NULL)
);
CREATE INDEX enrollments_patient ON enrollments (patient_id);

CREATE TABLE devices (
    id            text PRIMARY KEY,        -- stable identity sent by the gateway
    type          text NOT NULL,
    manufacturer  text,
    model         text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Which patient a device's readings belong to, and when. user_index NULL = any user slot.
CREATE TABLE device_assignments (
    id          bigserial PRIMARY KEY,
    device_id   text NOT NULL REFERENCES devices,
    patient_id  uuid NOT NULL REFERENCES patients ON DELETE CASCADE,
    user_index  smallint,
    valid_from  timestamptz NOT NULL,
    valid_to    timestamptz,
    CHECK (valid_to IS NULL OR valid_to > valid_from),
    EXCLUDE USING gist (
        device_id WITH =,
        (coalesce(user_index, -1)) WITH =,
        tstzrange(valid_from, valid_to) WITH &&
    )
);

CREATE TABLE gateways (
    id              text PRIMARY KEY,      -- also its MQTT username
    label           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    status          jsonb,
    status_at       timestamptz,
    online          boolean NOT NULL DEFAULT false
);

-- The patients a (home) gateway serves: a gateway may only deliver their devices' readings.
CREATE TABLE gateway_patients (
    gateway_id  text NOT NULL REFERENCES gateways ON DELETE CASCADE,
    patient_id  uuid NOT NULL REFERENCES patients ON DELETE CASCADE,
    PRIMARY KEY (gateway_id, patient_id)
);
CREATE INDEX gateway_patients_patient ON gateway_patients (patient_id);

-- One row per stored reading: the identity that makes ingest idempotent, with its provenance.
CREATE TABLE reading_receipts (
    id           uuid PRIMARY KEY,
    patient_id   uuid NOT NULL,
    type         text NOT NULL,
    time         timestamptz NOT NULL,     -- clinical time: device clock if trusted, else received_at
    measured_at  timestamp,                -- device clock as sent (naive)
    received_at  timestamptz NOT NULL,     -- gateway clock
    ingested_at  timestamptz NOT NULL DEFAULT now(),
    device_id    text NOT NULL,
    gateway_id   text NOT NULL,
    sequence     bigint,
    user_index   smallint,
    flags        text[] NOT NULL DEFAULT '{}',
    raw          jsonb
);
CREATE INDEX reading_receipts_patient_time ON reading_receipts (patient_id, time DESC);

-- The hypertable: one row per value code (systolic, diastolic, pulse, glucose, body_weight, ...).
CREATE TABLE readings (
    time         timestamptz NOT NULL,
    patient_id   uuid NOT NULL,
    code         text NOT NULL,
    value        double precision NOT NULL,
    unit         text NOT NULL,
    reading_id   uuid NOT NULL,
    device_id    text NOT NULL,
    gateway_id   text NOT NULL,
    measured_at  timestamp,
    received_at  timestamptz NOT NULL,
    flags        text[] NOT NULL DEFAULT '{}'
);
SELECT create_hypertable('readings', by_range('time', INTERVAL '14 days'));
CREATE UNIQUE INDEX readings_identity ON readings (reading_id, code, time);
CREATE INDEX readings_patient_code_time ON readings (patient_id, code, time DESC);

-- Whatever could not become a reading, with its reason. Nothing is dropped silently.
CREATE TABLE quarantine (
    id           bigserial PRIMARY KEY,
    dedup_key    text NOT NULL UNIQUE,     -- a redelivered message never quarantines twice
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    reason       text NOT NULL,
    detail       text NOT NULL,
    topic        text NOT NULL,
    gateway_id   text,
    reading_id   uuid,
    device_id    text,
    payload      bytea NOT NULL
);
CREATE INDEX quarantine_reason ON quarantine (reason, quarantined_at DESC);
