-- web/: consent as an append-only history (issue 18, finding 5).
--
-- Each consent given or withdrawn is an event with who recorded it, when, and the consent
-- document. The windows a patient was consented in are derived from the events; ingest (which
-- readings are let in), alerts (who is enrolled now) and the billing ledger (which readings and
-- minutes count) all read them. enrollments.consent_given_at / consent_withdrawn_at stay as the
-- latest window (kept by the triggers below); a direct write of those columns (older tools,
-- seeds) is appended to the history as an event.
CREATE TABLE consent_events (
    id             bigserial PRIMARY KEY,
    enrollment_id  bigint NOT NULL REFERENCES enrollments ON DELETE CASCADE,
    kind           text NOT NULL CHECK (kind IN ('given', 'withdrawn')),
    at             timestamptz NOT NULL,            -- when consent was given or withdrawn
    recorded_by    text,                            -- the user who recorded it
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    document_ref   text                             -- the signed form, the call's note, …
);
CREATE INDEX consent_events_enrollment ON consent_events (enrollment_id, at, id);

-- append-only: an event is never changed (a mistake is corrected by a further event)
CREATE FUNCTION consent_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'consent_events is append-only';
END $$;
CREATE TRIGGER consent_events_no_update BEFORE UPDATE ON consent_events
    FOR EACH ROW EXECUTE FUNCTION consent_events_append_only();

-- The windows: a 'given' that follows no other 'given' opens one; the next 'withdrawn' closes it.
CREATE VIEW consent_windows AS
SELECT o.enrollment_id, o.at AS given_at,
       (SELECT min(w.at) FROM consent_events w
        WHERE w.enrollment_id = o.enrollment_id AND w.kind = 'withdrawn' AND w.at > o.at)
           AS withdrawn_at
FROM (SELECT enrollment_id, kind, at,
             lag(kind) OVER (PARTITION BY enrollment_id ORDER BY at, id) AS previous
      FROM consent_events) o
WHERE o.kind = 'given' AND o.previous IS DISTINCT FROM 'given';

-- 'given', 'withdrawn' or NULL (never consented): the state of an enrollment's consent at an instant
CREATE FUNCTION consent_state(p_enrollment bigint, p_at timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT kind FROM consent_events WHERE enrollment_id = p_enrollment AND at <= p_at
    ORDER BY at DESC, id DESC LIMIT 1
$$;

-- the enrollment's columns follow the latest window
-- (not for an event made from a direct write of the columns below: they are set already, and
-- a bulk COPY of enrollments stays one insert per row)
CREATE FUNCTION consent_events_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() > 1 THEN
        RETURN NULL;
    END IF;
    UPDATE enrollments e SET consent_given_at = w.given_at, consent_withdrawn_at = w.withdrawn_at
    FROM (SELECT given_at, withdrawn_at FROM consent_windows
          WHERE enrollment_id = NEW.enrollment_id ORDER BY given_at DESC LIMIT 1) w
    WHERE e.id = NEW.enrollment_id;
    RETURN NULL;
END $$;
CREATE TRIGGER consent_events_sync AFTER INSERT ON consent_events
    FOR EACH ROW EXECUTE FUNCTION consent_events_sync();

-- a direct write of the columns is recorded as events (not when the sync above writes them)
CREATE FUNCTION enrollments_consent_columns() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() > 1 THEN  -- the sync above writing the columns
        RETURN NULL;
    END IF;
    IF NEW.consent_given_at IS NOT NULL AND (TG_OP = 'INSERT'
            OR NEW.consent_given_at IS DISTINCT FROM OLD.consent_given_at) THEN
        INSERT INTO consent_events (enrollment_id, kind, at, recorded_by)
        VALUES (NEW.id, 'given', NEW.consent_given_at, current_user);
    END IF;
    IF NEW.consent_withdrawn_at IS NOT NULL AND (TG_OP = 'INSERT'
            OR NEW.consent_withdrawn_at IS DISTINCT FROM OLD.consent_withdrawn_at) THEN
        INSERT INTO consent_events (enrollment_id, kind, at, recorded_by)
        VALUES (NEW.id, 'withdrawn', NEW.consent_withdrawn_at, current_user);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER enrollments_consent_columns AFTER INSERT OR UPDATE OF consent_given_at,
    consent_withdrawn_at ON enrollments
    FOR EACH ROW EXECUTE FUNCTION enrollments_consent_columns();

-- the history of the enrollments made before this migration
INSERT INTO consent_events (enrollment_id, kind, at, recorded_by, recorded_at)
SELECT id, 'given', consent_given_at, 'migration 060', consent_given_at
FROM enrollments WHERE consent_given_at IS NOT NULL;
INSERT INTO consent_events (enrollment_id, kind, at, recorded_by, recorded_at)
SELECT id, 'withdrawn', consent_withdrawn_at, 'migration 060', consent_withdrawn_at
FROM enrollments WHERE consent_withdrawn_at IS NOT NULL;
