-- ingest/: a per-gateway quarantine budget (issue 17, finding 7).
--
-- A quarantined payload is kept up to CAREBEACON_INGEST_QUARANTINE_PAYLOAD_BYTES, with its full
-- size and SHA-256. Past a gateway's budget (rows and bytes in 24 h) its quarantined messages
-- are not stored one by one: one summary row per gateway, reason and day counts them
-- (occurrences, payload_bytes = their total size) and keeps a sample of the first.
ALTER TABLE quarantine
    ADD COLUMN payload_bytes bigint,          -- the payload's full size
    ADD COLUMN payload_sha256 text,           -- of the full payload (hex)
    ADD COLUMN summary boolean NOT NULL DEFAULT false,
    ADD COLUMN occurrences integer NOT NULL DEFAULT 1;
UPDATE quarantine
SET payload_bytes = octet_length(payload), payload_sha256 = encode(sha256(payload), 'hex');
CREATE INDEX quarantine_gateway_time ON quarantine (gateway_id, quarantined_at DESC);
