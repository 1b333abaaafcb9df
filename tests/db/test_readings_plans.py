"""The rules' history query reads each patient's values on the patient's index, whatever the
planner's statistics say (db/sql/075: readings has no index on time alone)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from alerts._live import HISTORY_QUERY
from carebeacon.settings import Settings
from tests.support.db import scratch_database

pytestmark = pytest.mark.db

PATIENTS = 5  # a small deployment: the statistics describe few patients
EACH = 10  # readings per patient
UPLOAD = 60_000  # one device's upload: readings of one patient at one instant


@pytest.fixture
def skewed(settings: Settings) -> Iterator[str]:
    """A database of its own whose statistics describe one patient's large upload: 5 patients
    with 10 readings each, and 60,000 readings of another patient, all in the same hour."""
    with scratch_database(settings, "cbtest_plans") as conninfo:
        now = datetime.now(UTC)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            with conn.cursor().copy(
                "COPY readings (time, patient_id, code, value, unit, reading_id, device_id,"
                " gateway_id, received_at, flags) FROM STDIN"
            ) as copy:
                uploader = uuid.uuid4()
                for _ in range(UPLOAD):
                    rid = uuid.uuid4()
                    for code, value in (("systolic", 120.0), ("diastolic", 80.0)):
                        copy.write_row(
                            (now, uploader, code, value, "mm[Hg]", rid, "d", "g", now, [])
                        )
                for p in range(PATIENTS):
                    patient = uuid.UUID(int=p + 1)
                    for i in range(EACH):
                        rid = uuid.uuid4()
                        at = now - timedelta(minutes=i)
                        for code, value in (("systolic", 150.0 + i), ("diastolic", 90.0)):
                            copy.write_row(
                                (at, patient, code, value, "mm[Hg]", rid, "d", "g", at, [])
                            )
            conn.execute("ANALYZE readings")
        yield conninfo


def _scans(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The plan's scans of a table (TimescaleDB's ChunkAppend over them is not one)."""
    if "Relation Name" in node and node["Node Type"] != "Custom Scan":
        yield node
    for child in node.get("Plans", ()):
        yield from _scans(child)


def test_history_is_read_on_the_patient_index_when_one_patient_dominates(skewed: str) -> None:
    now = datetime.now(UTC)
    keys = [
        (uuid.UUID(int=p + 1), code) for p in range(PATIENTS) for code in ("systolic", "diastolic")
    ]
    params = (
        [k[0] for k in keys],
        [k[1] for k in keys],
        [now - timedelta(days=7)] * len(keys),
        [now + timedelta(minutes=1)] * len(keys),
        [12] * len(keys),
    )
    with psycopg.connect(skewed) as conn:
        ((plan,),) = conn.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + HISTORY_QUERY, params
        ).fetchall()
        rows = conn.execute(HISTORY_QUERY, params).fetchall()
    root = (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]
    scans = list(_scans(root))
    assert scans, "the plan reads readings"
    for scan in scans:
        # a scan of the whole window filtered by patient would read the upload's 120,000
        # values for every patient; the patient's index reads that patient's values only
        assert scan["Node Type"] in ("Index Scan", "Index Only Scan"), scan["Node Type"]
        assert scan["Index Name"].endswith("readings_patient_code_time_values"), scan["Index Name"]
        assert scan.get("Rows Removed by Filter", 0) == 0
    # and what it reads: each patient's 10 values of each code, none of the upload's
    assert len(rows) == len(keys)
    assert {(pid, code) for pid, code, *_ in rows} == set(keys)
    for _pid, code, ids, _times, vals, _flags in rows:
        assert len(ids) == EACH
        assert sorted(vals) == (
            [150.0 + i for i in range(EACH)] if code == "systolic" else [90.0] * EACH
        )
