-- web/: people and rights (users scoped to sites, sessions, API tokens), the audit log, and the
-- care-management time log that billing (99457/99458/99470) is computed from.

CREATE TABLE web_users (
    id             bigserial PRIMARY KEY,
    username       text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9._@-]{2,64}$'),
    display_name   text NOT NULL,
    role           text NOT NULL CHECK (role IN ('care_manager', 'clinician', 'supervisor', 'admin')),
    password_hash  text NOT NULL,
    disabled       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- The sites of care a user may see and act on. Every role is scoped.
CREATE TABLE web_user_sites (
    user_id  bigint NOT NULL REFERENCES web_users ON DELETE CASCADE,
    site_id  text NOT NULL REFERENCES sites ON DELETE CASCADE,
    PRIMARY KEY (user_id, site_id)
);

-- Server-side sessions: the cookie holds a random token, the table only its SHA-256.
CREATE TABLE web_sessions (
    token_hash    bytea PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES web_users ON DELETE CASCADE,
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);

-- API tokens for integrations (Authorization: Bearer …); shown once, stored as SHA-256.
CREATE TABLE web_api_tokens (
    id            bigserial PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES web_users ON DELETE CASCADE,
    name          text NOT NULL,
    token_hash    bytea NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz
);

-- Who did what to whose data, when; denied attempts included. Append-only by convention.
CREATE TABLE audit_events (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    user_id     bigint,
    username    text,
    action      text NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('allowed', 'denied')),
    patient_id  uuid,
    site_id     text,
    resource    text,
    detail      jsonb
);
CREATE INDEX audit_events_patient ON audit_events (patient_id, at DESC);
CREATE INDEX audit_events_at ON audit_events (at DESC);

-- Care-management time (treatment management), the basis of 99457/99458/99470.
CREATE TABLE care_time_entries (
    id            bigserial PRIMARY KEY,
    patient_id    uuid NOT NULL REFERENCES patients ON DELETE CASCADE,
    user_id       bigint NOT NULL REFERENCES web_users,
    started_at    timestamptz NOT NULL,
    seconds       integer NOT NULL CHECK (seconds > 0 AND seconds <= 4 * 3600),
    interactive   boolean NOT NULL,      -- included a live, real-time interactive communication
    episode_id    bigint,                -- the alert episode worked on, if any (alerts/ owns it)
    note          text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX care_time_entries_patient ON care_time_entries (patient_id, started_at);
