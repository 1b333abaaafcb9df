-- ingest/: a version of the directory, so that a writer keeps it between batches.
--
-- The directory is what resolves a reading to its patient: which gateways and devices exist,
-- the devices' assignments, the patients each gateway serves, and the consent windows of the
-- assigned patients (ingest.store._DIRECTORY). Any change to those rows moves the version in
-- the transaction of the change (statement triggers; cascaded deletes and TRUNCATE included).
-- A writer reads the version at each batch and reads the directory again only when it moved:
-- a device assigned a second ago still resolves at the next batch, and a reading is never
-- resolved by an assignment or a consent that has ended.
--
-- One row, updated under its row lock: concurrent changes of the directory serialise on it
-- until they commit (they are administrative and rare; readings and gateway liveness, the
-- frequent writes, do not move it). Not a sequence: a sequence moves before its transaction
-- commits, and a writer could then read the old directory under the new number.
CREATE TABLE ingest_directory_version (
    one      boolean PRIMARY KEY DEFAULT true CHECK (one),
    version  bigint NOT NULL
);
INSERT INTO ingest_directory_version (version) VALUES (1);

CREATE FUNCTION ingest_directory_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ingest_directory_version SET version = version + 1;
    RETURN NULL;
END $$;

-- gateways and devices: only their existence is read (a gateway's liveness and status, written
-- at every batch, leave the version alone)
CREATE TRIGGER ingest_directory_changed AFTER INSERT OR DELETE OR UPDATE OF id ON gateways
    FOR EACH STATEMENT EXECUTE FUNCTION ingest_directory_changed();
CREATE TRIGGER ingest_directory_changed AFTER INSERT OR DELETE OR UPDATE OF id ON devices
    FOR EACH STATEMENT EXECUTE FUNCTION ingest_directory_changed();
-- enrollments: which enrollments (and so which consent windows) belong to a patient
CREATE TRIGGER ingest_directory_changed AFTER INSERT OR DELETE OR UPDATE OF id, patient_id
    ON enrollments FOR EACH STATEMENT EXECUTE FUNCTION ingest_directory_changed();
-- every column of these is read
CREATE TRIGGER ingest_directory_changed AFTER INSERT OR DELETE OR UPDATE ON device_assignments
    FOR EACH STATEMENT EXECUTE FUNCTION ingest_directory_changed();
CREATE TRIGGER ingest_directory_changed AFTER INSERT OR DELETE OR UPDATE ON gateway_patients
    FOR EACH STATEMENT EXECUTE FUNCTION ingest_directory_changed();
CREATE TRIGGER ingest_directory_changed AFTER INSERT OR DELETE OR UPDATE ON consent_events
    FOR EACH STATEMENT EXECUTE FUNCTION ingest_directory_changed();
-- and emptying any of them
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['gateways', 'devices', 'enrollments', 'device_assignments',
                             'gateway_patients', 'consent_events'] LOOP
        EXECUTE format('CREATE TRIGGER ingest_directory_truncated AFTER TRUNCATE ON %I'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION ingest_directory_changed()', t);
    END LOOP;
END $$;
