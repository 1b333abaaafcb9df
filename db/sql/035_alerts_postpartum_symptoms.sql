-- alerts/: postpartum delivery date and patient-reported symptoms (issue 15, item 2).
--
-- delivery_date: a maternal_postpartum enrollment's delivery; with it the postpartum thresholds
-- hold for the postpartum window (alert threshold postpartum_end.weeks, default 6, at most 12)
-- and then give way to the patient's other programs, with a notice to the care team.
ALTER TABLE enrollments ADD COLUMN delivery_date date;

-- Symptoms a patient reports (through the API: a care manager on the phone, a patient app).
-- Each report is evaluated by alerts/ as a reading of type 'symptom' with the same id; with a
-- blood pressure at or above the program's level it is critical (ACOG Practice Bulletin 222).
CREATE TABLE symptom_reports (
    id           uuid PRIMARY KEY,
    patient_id   uuid NOT NULL REFERENCES patients ON DELETE CASCADE,
    at           timestamptz NOT NULL,               -- when the patient had them (clinical time)
    received_at  timestamptz NOT NULL DEFAULT now(),
    symptoms     text[] NOT NULL CHECK (
                     cardinality(symptoms) > 0
                     AND symptoms <@ ARRAY['severe_headache', 'vision_change', 'ruq_pain',
                                           'shortness_of_breath', 'chest_pain']::text[]),
    reported_by  text NOT NULL,
    note         text CHECK (note IS NULL OR length(note) <= 2000)
);
CREATE INDEX symptom_reports_patient_at ON symptom_reports (patient_id, at DESC);
