-- ingest/ and web/: release after fix, and gateway liveness from any traffic (issue 16).
--
-- A quarantined reading whose cause was configuration (unknown_device, device_not_assigned,
-- device_not_on_gateway, no_consent) can be released by a supervisor or an admin once the
-- configuration is fixed: web/ marks release_requested_at; ingest's release task re-runs the
-- stored payload through its own validation and storage path and marks released_at with the
-- outcome (stored, duplicate, or the reason it is still refused).
ALTER TABLE quarantine
    ADD COLUMN release_requested_at timestamptz,
    ADD COLUMN release_requested_by integer,  -- web_users.id (no FK: users may be removed)
    ADD COLUMN released_at timestamptz,
    ADD COLUMN release_outcome text;
CREATE INDEX quarantine_release_pending ON quarantine (release_requested_at)
    WHERE release_requested_at IS NOT NULL AND released_at IS NULL;

-- When ingest last heard from a gateway by any message (a status or a readings batch it
-- stored): a gateway that sends readings but no status is online too.
ALTER TABLE gateways ADD COLUMN last_seen_at timestamptz;
UPDATE gateways SET last_seen_at = status_at WHERE online;

-- The IANA zone of a quarantined reading's batch: the reading's device clock is read in it, so
-- a release rebuilds the batch with it. Rows quarantined before this have none and are not
-- released (outcome no_timezone): their device times cannot be placed.
ALTER TABLE quarantine ADD COLUMN timezone text;
