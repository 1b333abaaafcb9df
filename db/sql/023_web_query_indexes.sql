-- web/: the read paths measured by `carebeacon bench queries` (2,000 patients x 1 year).
--
-- Patient trends and program-wide averages read a patient's values by (patient_id, code, time).
-- Ingest stores readings in arrival order, every patient's interleaved, so with the plain index a
-- year of one patient's values cost one heap page per value (~1,200 pages, 45 ms for the 1-year
-- chart). With the values in the index the same reads are index-only scans of a few dozen
-- adjacent leaf pages (5 ms). It replaces the plain index (same key, same order: every existing
-- user of it is served), so ingest still maintains three indexes on readings.
CREATE INDEX readings_patient_code_time_values ON readings (patient_id, code, time DESC)
    INCLUDE (value, flags);
DROP INDEX readings_patient_code_time;
