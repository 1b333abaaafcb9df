"""The guideline sentences the scenarios encode, each with its source. Where the source ends in
"(verbatim)" the quote was checked against a public copy of the document (abridged with "…");
"(paraphrase)" marks a close restatement of the guideline's rule where no public copy of the exact
wording was at hand; "CareBeacon issue 15" marks the product requirement the scenario encodes."""

from __future__ import annotations

from tests.alerts.scenarios.build import Guideline

__all__ = [
    "ACOG_767_SEVERE",
    "ACOG_767_TIMING",
    "ACOG_PB222_GESTATIONAL",
    "ACOG_PB222_SEVERE",
    "ACOG_PB222_SYMPTOMS",
    "ADA_LEVEL1",
    "ADA_LEVEL2",
    "ADA_METER_RANGE",
    "AHA_2025_SEVERE",
    "AHA_HOME_GRADES",
    "AHA_HOME_PROTOCOL",
    "AHA_LOW_BP",
    "DEVICE_CLOCK",
    "ESC_HF_3DAYS",
    "HFSA_DAILY",
    "HFSA_WEIGH_DAILY",
    "ISSUE_LIFECYCLE",
    "ISSUE_QUIET",
    "ISSUE_REPLAY",
    "ISSUE_VERSION",
    "MEDSTAR_TWO_DAYS",
]

AHA_2025_SEVERE = Guideline(
    "Severe hypertension: BP >180/120 mm Hg (systolic >180 and/or diastolic >120 mm Hg); "
    "the elevation should be confirmed by repeat measurement before it is acted on as such.",
    "2025 AHA/ACC/…/SGIM Guideline for the Prevention, Detection, Evaluation and Management of "
    "High Blood Pressure in Adults (Hypertension 2025;82:e212-e316), severe hypertension / "
    "hypertensive emergency section (paraphrase)",
)
AHA_HOME_GRADES = Guideline(
    "Corresponding values of SBP/DBP for clinic and home BP monitoring: clinic 140/90 "
    "corresponds to home 135/85; clinic 160/100 corresponds to home 145/90 mm Hg.",
    "AHA/ACC High Blood Pressure Guideline (2017 Table 11, retained in 2025) and ESH 2023 "
    "home-BP thresholds (paraphrase)",
)
AHA_HOME_PROTOCOL = Guideline(
    "Home BP: take at least 2 readings 1 min apart in the morning and in the evening, "
    "ideally for 7 days and for no fewer than 3 days, and use the average of the readings.",
    "Self-Measured Blood Pressure Monitoring at Home: A Joint Policy Statement From the AHA and "
    "AMA (Circulation 2020;142:e42-e63); ESH 2023 home BP protocol (paraphrase)",
)
AHA_LOW_BP = Guideline(
    "Hypotension is judged from the systolic pressure (below 90 mm Hg) or the mean arterial "
    "pressure (below 65 mm Hg); a low diastolic pressure with a normal or high systolic "
    "pressure (wide pulse pressure, isolated diastolic hypotension) is not hypotension.",
    "AHA 'Low Blood Pressure — When Blood Pressure Is Too Low'; 2025 AHA/ACC guideline on "
    "diastolic BP in treated hypertension; CareBeacon issue 15 (low BP from systolic/MAP) (paraphrase)",
)
ACOG_767_SEVERE = Guideline(
    "Pregnant women or women in the postpartum period with acute-onset, severe systolic "
    "hypertension; severe diastolic hypertension; or both require urgent antihypertensive "
    "therapy.",
    "ACOG Committee Opinion No. 767 (2019), Emergent Therapy for Acute-Onset, Severe "
    "Hypertension During Pregnancy and the Postpartum Period, abstract (verbatim)",
)
ACOG_767_TIMING = Guideline(
    "Treatment with first-line agents should be expeditious and occur as soon as possible "
    "within 30-60 minutes of confirmed severe hypertension to reduce the risk of maternal "
    "stroke.",
    "ACOG Committee Opinion No. 767 (2019), abstract (verbatim)",
)
ACOG_PB222_SEVERE = Guideline(
    "Severe features: systolic blood pressure of 160 mm Hg or more, or diastolic blood "
    "pressure of 110 mm Hg or more … (severe hypertension can be confirmed within a short "
    "interval (minutes) to facilitate timely antihypertensive therapy).",
    "ACOG Practice Bulletin No. 222 (2020), Gestational Hypertension and Preeclampsia, Box 3 (paraphrase)",
)
ACOG_PB222_GESTATIONAL = Guideline(
    "Gestational hypertension is defined as a systolic blood pressure of 140 mm Hg or more or a "
    "diastolic blood pressure of 90 mm Hg or more, or both, on two occasions at least 4 hours "
    "apart …",
    "ACOG Practice Bulletin No. 222 (2020), definitions; postpartum hypertension follows the "
    "same thresholds (paraphrase)",
)
ACOG_PB222_SYMPTOMS = Guideline(
    "Severe features include new-onset headache unresponsive to medication, visual "
    "disturbances, severe persistent right upper quadrant or epigastric pain, and pulmonary "
    "edema; women with such symptoms and hypertension postpartum need urgent evaluation.",
    "ACOG Practice Bulletin No. 222 (2020), Box 3 and postpartum care; CareBeacon issue 15 "
    "(a symptom with BP ≥140/90, or any severe-range BP, is critical) (paraphrase)",
)
ADA_LEVEL1 = Guideline(
    "Level 1 hypoglycemia: glucose <70 mg/dL (3.9 mmol/L) and ≥54 mg/dL (3.0 mmol/L).",
    "ADA Standards of Care in Diabetes—2026, §6 Glycemic Goals and Hypoglycemia, "
    "classification of hypoglycemia (paraphrase)",
)
ADA_LEVEL2 = Guideline(
    "Level 2 hypoglycemia: glucose <54 mg/dL (3.0 mmol/L) — sufficiently low to indicate "
    "serious, clinically important hypoglycemia.",
    "ADA Standards of Care in Diabetes—2026, §6, classification of hypoglycemia (verbatim)",
)
ADA_METER_RANGE = Guideline(
    "A meter 'LO' result is below the meter's measuring range (typically <20 mg/dL): treat as "
    "level 2 hypoglycemia or worse; a result above the range ('HI', or an infinite value) is "
    "possible severe hyperglycemia.",
    "ADA Standards of Care in Diabetes—2026, §6 and §7 (meter results outside the measuring "
    "range); IEEE 11073-10417 special values (+INF = above range) (paraphrase)",
)
HFSA_DAILY = Guideline(
    "Call your doctor or nurse if you gain more than 2 to 3 pounds in a day or 5 pounds in a week.",
    "HFSA patient education module 'Self-Care: Following Your Treatment Plan and Dealing With "
    "Your Symptoms' / AHA heart-failure self-care guidance (paraphrase)",
)
HFSA_WEIGH_DAILY = Guideline(
    "Weigh yourself every morning, at the same time, after urinating and before eating, and "
    "write it down.",
    "HFSA / AHA heart-failure self-care guidance (daily weights) (paraphrase)",
)
ESC_HF_3DAYS = Guideline(
    "Patients should report a sudden unexpected weight gain of more than 2 kg in 3 days.",
    "2021 ESC Guidelines for the diagnosis and treatment of acute and chronic heart failure, "
    "patient self-care (Table 'Key topics for patient education') (paraphrase)",
)
MEDSTAR_TWO_DAYS = Guideline(
    "Fast weight gain is when: your weight goes up two or more pounds in one day; your weight "
    "goes up three to four pounds in two days; you gain a pound a day over several days.",
    "MedStar Health heart-failure patient guidance 'Weigh Yourself Daily' (verbatim)",
)
DEVICE_CLOCK = Guideline(
    "Device health is not a clinical finding: one open technical item per device and problem, "
    "cleared automatically when fixed, in a technical queue; never counted as clinical burden.",
    "CareBeacon issue 15 (device health out of the clinical queue); the gateway sets device "
    "clocks (Bluetooth SIG Current Time Service)",
)
ISSUE_LIFECYCLE = Guideline(
    "No acknowledged, claimed or snoozed episode ever hides a reading that would have opened or "
    "escalated an episode on its own.",
    "CareBeacon issue 15 (new emergencies always notify), after ACOG CO 767's 30-60 min window",
)
ISSUE_QUIET = Guideline(
    "A quiet period after a resolve with an outcome (per rule, per program) unless severity rises.",
    "CareBeacon issue 15 (quiet period); AHA/AMA 2020: medication changes are judged on the "
    "next week of home readings",
)
ISSUE_VERSION = Guideline(
    "threshold_version always names the rule that speaks; text and version always agree.",
    "CareBeacon issue 15 (thresholds and sources)",
)
ISSUE_REPLAY = Guideline(
    "Each output line carries queue clinical|technical and notify; patient ids are any string; "
    "a bad cohort names the field at fault.",
    "CareBeacon issue 15 (replay covers the lifecycle)",
)
