"""Generated populations for the benchmarks (``carebeacon bench queries`` and ``bench pages``).

:func:`write_readings` writes the readings of any set of homes as ingest would have stored them —
a ``reading_receipts`` row per reading and a ``readings`` row per value, in time order (so a
patient's year is spread over the hypertable the way live ingest spreads it) — from
vectorised numpy arrays, through polars' CSV writer, by COPY: about a million values in a few
seconds. Each home follows a daily schedule of measurements (local time, jitter, probability)
with a per-patient adherence and multi-day gaps.

:func:`generate` builds a whole population on it: one site of care, patients in three programs
(hypertension 50 %, heart failure 25 %, diabetes 25 %), enrollments with consent and a billing
practitioner (a fifth enrolled during the period, a few ended), a cuff, a scale (and a glucose
meter in the diabetes program) on a home gateway each; two blood pressure readings a day
(systolic, diastolic, mean arterial, pulse), a daily weight and, in the diabetes program, a
fasting glucose; alert episodes over the whole period (a few per patient-month, resolved)
plus about one still open per patient (the care manager's queue); and care-management time
entries. Synthetic data: names are "Bench Patient N", nothing identifies anyone.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import polars as pl
import psycopg
from psycopg import sql

from alerts import EPISODE_COLUMNS, TECHNICAL_FAMILIES, TEMPLATES
from carebeacon.progress import Steps
from lab.homes import Device, HomeSpec, Program, Site, provision_homes_bulk
from lab.seed import seed_demo

__all__ = [
    "COPY_EPISODES",
    "FAMILIES",
    "PROGRAMS",
    "SITE",
    "Home",
    "Measurement",
    "PopulationSpec",
    "copy_frame",
    "episode_frame",
    "generate",
    "write_readings",
]

SITE = "bench-site"
TIMEZONE = "America/New_York"
# program id -> (name, template, share of the patients)
PROGRAMS: Mapping[str, tuple[str, str, float]] = {
    "htn": ("Hypertension", "hypertension", 0.50),
    "hf": ("Heart Failure", "heart_failure", 0.25),
    "dm": ("Diabetes", "diabetes", 0.25),
}
# episode family -> (rule id, severity, value code); and the families each template raises
FAMILIES: Mapping[str, tuple[str, str, str]] = {
    "bp_high": ("bp_high", "high", "systolic"),
    "bp_mean": ("bp_mean_7d", "moderate", "systolic"),
    "bp_low": ("bp_low", "moderate", "systolic"),
    "glucose_high": ("glucose_high_24h", "high", "glucose"),
    "glucose_low": ("glucose_low", "critical", "glucose"),
    "missing_data": ("missing_data", "low", "missing_data"),
    "weight_gain": ("weight_gain_1d", "high", "body_weight"),
}
_TEMPLATE_FAMILIES: Mapping[str, tuple[str, ...]] = {
    "hypertension": ("bp_high", "bp_mean", "bp_low", "missing_data"),
    "heart_failure": ("weight_gain", "bp_low", "missing_data"),
    "diabetes": ("glucose_high", "glucose_low", "bp_mean", "missing_data"),
}
_PRIORITY = {"critical": 1, "high": 2, "moderate": 3, "low": 4}
_SLA_HOURS = {1: 0.5, 2: 4.0, 3: 24.0, 4: 72.0}
_OUTCOMES = (
    "contacted_no_change",
    "medication_changed",
    "education_provided",
    "clinician_notified",
    "false_positive",
    "auto_cleared",
)

# reading type -> (its value codes, their units, device type, characteristic, raw hex length)
_KINDS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...], str, str, int]] = {
    "blood_pressure": (
        ("systolic", "diastolic", "mean_arterial", "pulse"),
        ("mm[Hg]", "mm[Hg]", "mm[Hg]", "/min"),
        "blood_pressure_monitor",
        "2a35",
        19,
    ),
    "body_weight": (("body_weight",), ("kg",), "weight_scale", "2a9d", 10),
    "glucose": (("glucose",), ("mg/dL",), "glucose_meter", "2a18", 17),
}
_KIND_NAMES = tuple(_KINDS)
_DEVICE_NAMES = {"blood_pressure": "cuff", "body_weight": "scale", "glucose": "meter"}
_MODELS = {
    "blood_pressure": ("A&D", "UA-651BLE"),
    "body_weight": ("A&D", "UC-352BLE"),
    "glucose": ("Roche", "Accu-Chek Guide"),
}

_COPY_RECEIPTS = (
    "COPY reading_receipts (id, patient_id, type, time, measured_at, received_at, ingested_at,"
    " device_id, gateway_id, sequence, user_index, flags, raw) FROM STDIN"
)
_COPY_READINGS = (
    "COPY readings (time, patient_id, code, value, unit, reading_id, device_id, gateway_id,"
    " measured_at, received_at, flags) FROM STDIN"
)
_COPY_CHUNK = 200_000

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Measurement:
    """One measurement of a home's day: at ``hour`` local time (± ``jitter_minutes``, one
    standard deviation), taken with ``probability`` on a day the patient measures at all."""

    kind: str  # blood_pressure | body_weight | glucose
    hour: float
    jitter_minutes: float = 30.0
    probability: float = 1.0


@dataclass(frozen=True, slots=True)
class Home:
    """A patient's home: devices by reading type, gateway, schedule and adherence. Days are
    indices into the period (0 = its first local date); ``last_day`` is exclusive."""

    patient_id: uuid.UUID
    devices: Mapping[str, str]
    gateway_id: str
    schedule: tuple[Measurement, ...]
    first_day: int = 0
    last_day: int | None = None
    adherence: float = 1.0  # probability of measuring on a given day
    gaps: tuple[tuple[int, int], ...] = ()  # (first day, days) without any reading
    irregular_pulse: float = 0.02  # share of BP readings flagged irregular_pulse


@dataclass(frozen=True, slots=True)
class PopulationSpec:
    patients: int = 2000
    days: int = 365
    seed: int = 7

    def as_dict(self) -> dict[str, int]:
        return {"patients": self.patients, "days": self.days, "seed": self.seed}


# --- COPY ---------------------------------------------------------------------------------------


def copy_frame(conn: psycopg.Connection[Any], sql: str, frame: pl.DataFrame) -> int:
    """COPY a frame (columns in the statement's order) in COPY's text format. Values must not
    contain tabs, newlines or backslashes (ids, numbers, timestamps, array and JSON literals
    made here do not)."""
    with conn.cursor() as cur, cur.copy(sql) as copy:
        for offset in range(0, frame.height, _COPY_CHUNK):
            buf = io.BytesIO()
            frame.slice(offset, _COPY_CHUNK).write_csv(
                buf, separator="\t", null_value="\\N", quote_style="never", include_header=False
            )
            copy.write(buf.getbuffer())
    return frame.height


# --- readings -------------------------------------------------------------------------------------


def _local_midnights(start: date, days: int, tz: ZoneInfo) -> IntArray:
    """Epoch seconds of each day's local midnight (the offset of local noon: readings are
    never taken in the night hour a DST change skips or repeats)."""
    out = np.empty(days, dtype=np.int64)
    for d in range(days):
        day = start + timedelta(days=d)
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=tz)
        out[d] = int(noon.timestamp()) - 12 * 3600
    return out


def _uuid_hex(rng: np.random.Generator, n: int) -> npt.NDArray[np.str_]:
    """n random version-4 UUIDs as 32 hex digits (PostgreSQL's uuid input takes them)."""
    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return np.frombuffer(raw.tobytes().hex().encode(), dtype="S32").astype(np.str_)


def copy_streams(conninfo: str, sql: str, frame: pl.DataFrame, streams: int = 2) -> int:
    """COPY a frame over ``streams`` connections at once (contiguous slices, each committed on
    its own): the server parses and indexes on every core."""
    bounds = [frame.height * i // streams for i in range(streams + 1)]

    def one(i: int) -> int:
        with psycopg.connect(conninfo) as conn:
            conn.execute("SET synchronous_commit = off")
            return copy_frame(conn, sql, frame.slice(bounds[i], bounds[i + 1] - bounds[i]))

    with ThreadPoolExecutor(streams) as pool:
        return sum(pool.map(one, range(streams)))


def write_readings(
    conninfo: str,
    homes: Sequence[Home],
    start: date,
    days: int,
    *,
    until: datetime,
    timezone: str = TIMEZONE,
    rng: np.random.Generator,
) -> tuple[int, int]:
    """Write the homes' readings for ``days`` local dates from ``start`` (nothing after
    ``until``), committed: (receipts, values) written. The receipts are copied while the
    values are prepared, each over two connections."""
    tz = ZoneInfo(timezone)
    n = len(homes)
    midnights = _local_midnights(start, days, tz)
    epoch_until = int(until.timestamp())
    last = np.array([days if h.last_day is None else h.last_day for h in homes], dtype=np.int64)
    first = np.array([h.first_day for h in homes], dtype=np.int64)
    measures = rng.random((n, days)) < np.array([h.adherence for h in homes])[:, None]
    for i, h in enumerate(homes):
        for gap_start, gap_days in h.gaps:
            measures[i, gap_start : gap_start + gap_days] = False
    day_index = np.arange(days, dtype=np.int64)
    measures &= (day_index[None, :] >= first[:, None]) & (day_index[None, :] < last[:, None])

    # the events: (home, day, kind, local seconds after midnight), one schedule at a time
    ev_home, ev_day, ev_kind, ev_sec = [], [], [], []
    schedules: dict[tuple[Measurement, ...], list[int]] = {}
    for i, h in enumerate(homes):
        schedules.setdefault(h.schedule, []).append(i)
    for schedule, members in schedules.items():
        idx = np.array(members, dtype=np.int64)
        home_of, day_of = np.nonzero(measures[idx])
        home_of = idx[home_of]
        for m in schedule:
            take = rng.random(home_of.size) < m.probability
            k = int(take.sum())
            sec = m.hour * 3600 + rng.normal(0.0, m.jitter_minutes * 60, k)
            ev_home.append(home_of[take])
            ev_day.append(day_of[take])
            ev_kind.append(np.full(k, _KIND_NAMES.index(m.kind), dtype=np.int64))
            ev_sec.append(np.clip(sec, 0, 86399).astype(np.int64))
    home_a = np.concatenate(ev_home) if ev_home else np.zeros(0, dtype=np.int64)
    day_a = np.concatenate(ev_day) if ev_day else np.zeros(0, dtype=np.int64)
    kind_a = np.concatenate(ev_kind) if ev_kind else np.zeros(0, dtype=np.int64)
    sec_a = np.concatenate(ev_sec) if ev_sec else np.zeros(0, dtype=np.int64)
    t_utc = midnights[day_a] + sec_a
    keep = t_utc <= epoch_until
    order = np.argsort(t_utc[keep], kind="stable")
    home_a, day_a, kind_a, sec_a, t_utc = (
        a[keep][order] for a in (home_a, day_a, kind_a, sec_a, t_utc)
    )
    e = home_a.size
    if e == 0:
        return 0, 0

    # values: per-patient baselines, day-to-day noise, a slow weight swing
    base_sys = rng.normal(136, 13, n)
    base_dia = rng.normal(83, 8, n)
    base_pulse = rng.normal(72, 8, n)
    base_weight = np.clip(rng.normal(86, 16, n), 45, 180)
    base_glucose = rng.normal(135, 25, n)
    phase = rng.uniform(0, 2 * np.pi, n)
    irregular = np.array([h.irregular_pulse for h in homes])
    vals = np.full((e, 4), np.nan)
    flags = np.full(e, "{}", dtype=object)
    bp = kind_a == _KIND_NAMES.index("blood_pressure")
    hb = home_a[bp]
    sys_ = np.clip(np.rint(base_sys[hb] + rng.normal(0, 9, hb.size)), 75, 230)
    dia = np.clip(
        np.rint(base_dia[hb] + 0.45 * (sys_ - base_sys[hb]) + rng.normal(0, 5, hb.size)), 40, 140
    )
    vals[bp, 0] = sys_
    vals[bp, 1] = dia
    vals[bp, 2] = np.rint((sys_ + 2 * dia) / 3)
    vals[bp, 3] = np.clip(np.rint(base_pulse[hb] + rng.normal(0, 6, hb.size)), 38, 160)
    flags[np.flatnonzero(bp)[rng.random(hb.size) < irregular[hb]]] = "{irregular_pulse}"
    wt = kind_a == _KIND_NAMES.index("body_weight")
    hw = home_a[wt]
    swing = 0.8 * np.sin(2 * np.pi * day_a[wt] / 60 + phase[hw])
    vals[wt, 0] = np.round(base_weight[hw] + swing + rng.normal(0, 0.35, hw.size), 1)
    gl = kind_a == _KIND_NAMES.index("glucose")
    hg = home_a[gl]
    glucose = base_glucose[hg] + rng.normal(0, 25, hg.size)
    low = rng.random(hg.size) < 0.02
    glucose[low] = rng.uniform(48, 69, int(low.sum()))
    vals[gl, 0] = np.clip(np.rint(glucose), 20, 600)
    control = np.flatnonzero(gl)[rng.random(hg.size) < 0.005]
    vals[control, 0] = np.rint(rng.uniform(100, 130, control.size))
    flags[control] = "{control_solution}"

    # receipts: one row per reading
    reading_ids = _uuid_hex(rng, e)
    patient_ids = np.array([h.patient_id.hex for h in homes])
    device_of = np.array(
        [[h.devices.get(k, "") for k in _KIND_NAMES] for h in homes], dtype=np.str_
    )
    gateways = np.array([h.gateway_id for h in homes])
    measured = (
        np.datetime64(start, "s") + (day_a * 86400 + sec_a).astype("timedelta64[s]")
    ).astype("datetime64[us]")
    received_s = t_utc + rng.integers(3, 120, e)
    kind_names = np.array(_KIND_NAMES)
    raw = np.array(
        [
            json.dumps({"characteristic": _KINDS[k][3], "hex": "0" * (2 * _KINDS[k][4])})
            for k in _KIND_NAMES
        ]
    )
    time_col = pl.Series("time", t_utc * 1_000_000, dtype=pl.Int64).cast(pl.Datetime("us", "UTC"))
    received_col = pl.Series("received_at", received_s * 1_000_000, dtype=pl.Int64).cast(
        pl.Datetime("us", "UTC")
    )
    receipts = pl.DataFrame(
        {
            "id": reading_ids,
            "patient_id": patient_ids[home_a],
            "type": kind_names[kind_a],
            "time": time_col,
            "measured_at": measured,
            "received_at": received_col,
            "ingested_at": received_col + timedelta(milliseconds=40),
            "device_id": device_of[home_a, kind_a],
            "gateway_id": gateways[home_a],
            "sequence": pl.Series(np.zeros(e, dtype=np.int64)),
            "user_index": pl.Series(bp),
            "flags": flags.astype(np.str_),
            "raw": raw[kind_a],
        }
    ).with_columns(
        sequence=pl.int_range(1, pl.len() + 1).over("device_id"),
        user_index=pl.when(pl.col("user_index")).then(pl.lit(1, pl.Int16)),
    )
    background = ThreadPoolExecutor(1)
    receipts_copied = background.submit(copy_streams, conninfo, _COPY_RECEIPTS, receipts)

    # readings: one row per value, the reading's codes in order
    n_codes = np.array([len(_KINDS[k][0]) for k in _KIND_NAMES])[kind_a]
    row_event = np.repeat(np.arange(e), n_codes)
    starts = np.repeat(np.cumsum(n_codes) - n_codes, n_codes)
    position = np.arange(row_event.size) - starts
    codes = np.array([[*_KINDS[k][0], "", "", ""][:4] for k in _KIND_NAMES])
    units = np.array([[*_KINDS[k][1], "", "", ""][:4] for k in _KIND_NAMES])
    kr = kind_a[row_event]
    values = pl.DataFrame(
        {
            "time": time_col.gather(row_event),
            "patient_id": patient_ids[home_a[row_event]],
            "code": codes[kr, position],
            "value": vals[row_event, position],
            "unit": units[kr, position],
            "reading_id": reading_ids[row_event],
            "device_id": device_of[home_a[row_event], kr],
            "gateway_id": gateways[home_a[row_event]],
            "measured_at": measured[row_event],
            "received_at": received_col.gather(row_event),
            "flags": flags[row_event].astype(np.str_),
        }
    )
    try:
        copy_streams(conninfo, _COPY_READINGS, values)
    finally:
        receipts_copied.result()
        background.shutdown()
    return e, values.height


# --- episodes -------------------------------------------------------------------------------------


def episode_frame(rows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """Alert episodes as alerts/ stores them, for :data:`COPY_EPISODES` (missing keys: the
    open defaults)."""
    cols: dict[str, list[Any]] = {c: [] for c in _EPISODE_COLUMNS}
    for r in rows:
        family = r["family"]
        rule, severity, code = FAMILIES[family]
        opened: datetime = r["opened_at"]
        priority = r.get("priority", _PRIORITY[severity])
        state = r.get("state", "open")
        resolved_at = r.get("resolved_at")
        values = {
            "id": r.get("id", uuid.uuid4()),
            "patient_id": r["patient_id"],
            "family": family,
            "rule_id": rule,
            "state": state,
            "severity": severity,
            "priority": priority,
            "site_id": r["site_id"],
            "program_id": r["program_id"],
            "opened_at": opened,
            "last_at": r.get("last_at", opened),
            "created_at": opened,
            "updated_at": resolved_at or r.get("updated_at", opened),
            "count": r.get("count", 1),
            "value_code": code,
            "first_value": r.get("value", 150.0),
            "last_value": r.get("value", 150.0),
            "worst_value": r.get("value", 150.0),
            "explanation": f"{rule} rule fired (bench)",
            "evidence": "{" + ",".join(r.get("evidence", ())) + "}",
            "threshold_version": r.get("threshold_version", "bench@2026.11"),
            "thresholds": json.dumps(r.get("thresholds", {}), separators=(",", ":")),
            "sla_due_at": opened + timedelta(hours=_SLA_HOURS[min(priority, 4)]),
            "assignee": r.get("assignee"),
            "acknowledged_at": r.get("acknowledged_at"),
            "acknowledged_by": r.get("assignee") if r.get("acknowledged_at") else None,
            "resolved_at": resolved_at,
            "resolved_by": r.get("resolved_by"),
            "outcome": r.get("outcome"),
            "snoozed_until": r.get("snoozed_until"),
            "snooze_reason": "bench" if r.get("snoozed_until") else None,
            "queue": "technical" if family in TECHNICAL_FAMILIES else "clinical",
        }
        for c in _EPISODE_COLUMNS:
            cols[c].append(str(values[c]) if isinstance(values[c], uuid.UUID) else values[c])
    schema: dict[str, Any] = {c: pl.Utf8 for c in _EPISODE_COLUMNS}
    for c in _EPISODE_TIMES:
        schema[c] = pl.Datetime("us", "UTC")
    for c in ("priority", "count"):
        schema[c] = pl.Int32
    for c in ("first_value", "last_value", "worst_value"):
        schema[c] = pl.Float64
    return pl.DataFrame(cols, schema=schema)


_EPISODE_TIMES = (
    "opened_at",
    "last_at",
    "created_at",
    "updated_at",
    "sla_due_at",
    "acknowledged_at",
    "resolved_at",
    "snoozed_until",
)
# the columns of alerts/' episodes that generated episodes fill; the others keep their defaults
_EPISODE_DEFAULTED = (
    "late",
    "confirm_by",
    "clear_candidate_at",
    "cleared_at",
    "escalation_level",
    "note",
    "suppressed_by",
    "subject",
    "notified_at",
    "handled_at",
    "renotify_count",
)
_EPISODE_COLUMNS = tuple(c for c in EPISODE_COLUMNS if c not in _EPISODE_DEFAULTED)
COPY_EPISODES = f"COPY alert_episodes ({', '.join(_EPISODE_COLUMNS)}) FROM STDIN"


# --- a whole population ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Patient:
    id: uuid.UUID
    index: int
    program: str
    enrolled_at: datetime
    ended_at: datetime | None
    first_day: int
    last_day: int
    tier: int
    home: Home | None = None
    families: tuple[str, ...] = field(default=())


def _schedule(template: str) -> tuple[Measurement, ...]:
    out = [
        Measurement("blood_pressure", 7.0, 40, 1.0),
        Measurement("blood_pressure", 19.5, 60, 0.85),
        Measurement("body_weight", 6.75, 20, 0.97 if template == "heart_failure" else 0.9),
    ]
    if template == "diabetes":
        out.append(Measurement("glucose", 6.5, 25, 0.92))
    return tuple(out)


_STEPS = ("patients", "readings", "episodes and care time", "VACUUM ANALYZE")


def generate(
    conninfo: str,
    spec: PopulationSpec,
    until: datetime,
    *,
    say: Callable[[str], None] | None = None,
    progress: bool = False,
) -> dict[str, int]:
    """Write ``spec``'s population into a freshly migrated database, its period ending at
    ``until``. Returns the rows written per table; ``say`` hears the time of each step;
    ``progress``: a bar over the steps on a terminal."""
    clock = time.perf_counter()
    steps = Steps(_STEPS, desc="population", quiet=not progress)

    def step(text: str) -> None:
        nonlocal clock
        if say is not None:
            say(f"  {text}: {time.perf_counter() - clock:.1f} s")
        clock = time.perf_counter()
        steps.done()

    rng = np.random.default_rng(spec.seed)
    tz = ZoneInfo(TIMEZONE)
    today = until.astimezone(tz).date()
    start = today - timedelta(days=spec.days - 1)
    accounts = seed_demo(conninfo, site_id=SITE, site_name="Bench", timezone=TIMEZONE)
    counts: dict[str, int] = {}
    with psycopg.connect(conninfo) as conn:
        conn.execute("SET synchronous_commit = off")
        row = conn.execute(
            "SELECT id FROM web_users WHERE username = %s", (f"cm.{SITE}",)
        ).fetchone()
        assert row is not None
        cm_user = int(row[0])
        assert accounts.site_id == SITE

        # patients, enrollments, devices, gateways
        shares = np.array([s for _, _, s in PROGRAMS.values()])
        program_of = rng.choice(list(PROGRAMS), size=spec.patients, p=shares / shares.sum())
        late = rng.random(spec.patients) < 0.2
        ended = rng.random(spec.patients) < 0.03
        patients: list[_Patient] = []
        # 10:00 local on the first day; all arithmetic in UTC (no local times in DST gaps)
        start_dt = datetime(start.year, start.month, start.day, 10, tzinfo=tz).astimezone(UTC)
        for i in range(spec.patients):
            first_day = int(rng.integers(0, max(1, spec.days - 20))) if late[i] else 0
            enrolled = (
                start_dt
                + timedelta(days=first_day)
                - timedelta(days=int(rng.integers(1, 4) if late[i] else rng.integers(1, 120)))
            )
            last_day = spec.days
            ended_at = None
            if ended[i] and spec.days - first_day > 40:
                last_day = int(rng.integers(first_day + 30, spec.days))
                ended_at = start_dt + timedelta(days=last_day, hours=2)
            patients.append(
                _Patient(
                    id=uuid.UUID(bytes=rng.bytes(16), version=4),
                    index=i,
                    program=str(program_of[i]),
                    enrolled_at=enrolled,
                    ended_at=ended_at,
                    first_day=first_day,
                    last_day=last_day,
                    tier=int(rng.choice([1, 2, 3], p=[0.2, 0.5, 0.3])),
                )
            )
        practitioners = ("dr-adams", "dr-baker", "dr-chen", "dr-diaz")
        birth_days = rng.integers(0, 365 * 40, spec.patients)
        billing = [None if rng.random() < 0.02 else practitioners[p.index % 4] for p in patients]
        site = Site(SITE, "Bench", TIMEZONE)
        programs = {
            pid: Program(pid, name, template) for pid, (name, template, _) in PROGRAMS.items()
        }
        homes: list[HomeSpec] = []
        for p in patients:
            template = PROGRAMS[p.program][1]
            schedule = _schedule(template)
            kinds = sorted({m.kind for m in schedule})
            mine = {k: f"bq-{_DEVICE_NAMES[k]}-{p.index:05d}" for k in kinds}
            gw = f"bq-gw-{p.index:05d}"
            status = {
                "schema": "carebeacon.status/1",
                "gateway_id": gw,
                "state": "online",
                "software_version": "0.1.0",
                "devices": [
                    {"id": dev, "battery": int(rng.integers(20, 100))} for dev in mine.values()
                ],
            }
            homes.append(
                HomeSpec(
                    site=site,
                    program=programs[p.program],
                    enrolled_at=p.enrolled_at,
                    ended_at=p.ended_at,
                    patient_id=p.id,
                    display_name=f"Bench Patient {p.index}",
                    mrn=f"BQ{p.index:06d}",
                    birth_date=date(1940, 1, 1) + timedelta(days=int(birth_days[p.index])),
                    risk_tier=p.tier,
                    billing_practitioner=billing[p.index],
                    gateway_id=gw,
                    gateway_online=True,
                    gateway_status=status,
                    status_at=until,
                    devices=tuple(
                        Device(dev, _KINDS[k][2], *_MODELS[k]) for k, dev in mine.items()
                    ),
                )
            )
            n_gaps = int(rng.poisson(spec.days / 120))
            adherence = (
                float(rng.uniform(0.3, 0.65)) if rng.random() < 0.1 else float(rng.beta(12, 1.3))
            )
            p.home = Home(
                patient_id=p.id,
                devices=mine,
                gateway_id=gw,
                schedule=schedule,
                first_day=p.first_day,
                last_day=p.last_day,
                adherence=adherence,
                gaps=tuple(
                    (int(rng.integers(0, spec.days)), int(rng.integers(3, 15)))
                    for _ in range(n_gaps)
                ),
                irregular_pulse=0.4 if rng.random() < 0.05 else 0.02,
            )
            p.families = _TEMPLATE_FAMILIES[template]
        written = provision_homes_bulk(conn, homes)
        for table in ("patients", "enrollments", "devices", "device_assignments", "gateways"):
            counts[table] = written[table]
        conn.commit()
        step(f"patients, enrollments, devices, gateways ({spec.patients:,})")

        deferred = _drop_indexes(conninfo, _BUILT_AFTER_LOAD)
        receipts, values = write_readings(
            conninfo,
            [p.home for p in patients if p.home is not None],
            start,
            spec.days,
            until=until,
            rng=rng,
        )
        counts["reading_receipts"], counts["readings"] = receipts, values
        for definition in deferred:
            conn.execute(definition)
        conn.commit()
        step(f"readings ({receipts:,} receipts, {values:,} values)")

        episodes = _episodes(rng, patients, start_dt, spec.days, until, f"cm.{SITE}")
        episodes.sort(key=lambda r: r["opened_at"])  # alerts/ inserts them as they open
        counts["alert_episodes"] = copy_frame(conn, COPY_EPISODES, episode_frame(episodes))
        counts["care_time_entries"] = copy_frame(
            conn,
            "COPY care_time_entries (patient_id, user_id, started_at, seconds, interactive)"
            " FROM STDIN",
            _care_time(rng, patients, start_dt, spec.days, until, cm_user),
        )
        conn.commit()
        step(
            f"episodes and care time ({counts['alert_episodes']:,},"
            f" {counts['care_time_entries']:,})"
        )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    step("VACUUM ANALYZE")
    return counts


# Built after the load instead of row by row: the readings' identity index (random reading ids,
# ingest's de-duplication key) costs the most to maintain and serves none of the measured reads.
# The (patient, code, time) index grows row by row, as under ingest: the trend reads see an
# index shaped like a real one.
_BUILT_AFTER_LOAD = ("readings_identity",)


def _drop_indexes(conninfo: str, names: Sequence[str]) -> list[str]:
    """Drop the named indexes that exist; returns their definitions, to re-create them."""
    definitions: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for name in names:
            row = conn.execute("SELECT pg_get_indexdef(to_regclass(%s))", (name,)).fetchone()
            if row is None or row[0] is None:
                continue
            definitions.append(str(row[0]))
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    return definitions


def _episodes(
    rng: np.random.Generator,
    patients: Sequence[_Patient],
    start: datetime,
    days: int,
    until: datetime,
    user: str,
) -> list[dict[str, Any]]:
    """A few episodes per patient-month, resolved within three days; about one still open (or
    acknowledged, or snoozed) per patient: the queue."""
    rows: list[dict[str, Any]] = []

    def evidence(count: int) -> list[str]:
        return list(_uuid_hex(rng, min(count, 200)))

    for p in patients:
        template = PROGRAMS[p.program][1]
        active_from = start + timedelta(days=p.first_day)
        active_to = min(until, start + timedelta(days=p.last_day))
        span = (active_to - active_from).total_seconds()
        if span <= 0:
            continue
        for _ in range(int(rng.poisson(1.5 * span / (30 * 86400)))):
            opened = active_from + timedelta(seconds=float(rng.uniform(0, span)))
            resolved = opened + timedelta(hours=float(rng.uniform(0.5, 72)))
            if resolved >= until - timedelta(days=3):
                continue
            family = str(rng.choice(p.families))
            count = int(rng.integers(1, 12))
            rows.append(
                {
                    "patient_id": p.id,
                    "family": family,
                    "count": count,
                    "evidence": evidence(count),
                    "thresholds": _thresholds(template, family),
                    "site_id": SITE,
                    "program_id": p.program,
                    "opened_at": opened,
                    "state": "resolved",
                    "resolved_at": resolved,
                    "resolved_by": user,
                    "outcome": str(rng.choice(_OUTCOMES)),
                    "value": float(rng.normal(160, 15)),
                }
            )
        if p.ended_at is not None:
            continue
        n_open = min(len(p.families), int(rng.poisson(1.05)))
        for family in rng.choice(p.families, size=n_open, replace=False):
            opened = until - timedelta(hours=min(24 * 14, float(rng.exponential(30))))
            roll = rng.random()
            count = int(rng.integers(1, 6))
            row: dict[str, Any] = {
                "patient_id": p.id,
                "family": str(family),
                "site_id": SITE,
                "program_id": p.program,
                "opened_at": opened,
                "last_at": opened + (until - opened) * float(rng.uniform(0, 1)),
                "count": count,
                "evidence": evidence(count),
                "thresholds": _thresholds(template, str(family)),
                "value": float(rng.normal(160, 15)),
            }
            severity = FAMILIES[str(family)][1]
            row["priority"] = min(5, max(1, _PRIORITY[severity] + (p.tier - 2)))
            if severity == "critical":
                row["priority"] = 1
            if roll < 0.10:
                row.update(
                    state="acknowledged",
                    assignee=user,
                    acknowledged_at=opened + timedelta(minutes=20),
                    updated_at=opened + timedelta(minutes=20),
                )
            elif roll < 0.15:
                row.update(snoozed_until=until + timedelta(hours=12), assignee=user)
            rows.append(row)
    return rows


def _thresholds(template: str, family: str) -> dict[str, float]:
    """The parameters of the rule behind ``family`` in ``template``, as an episode records them."""
    rule = FAMILIES[family][0]
    return dict(TEMPLATES.get(template, {}).get(rule, {}))


def _care_time(
    rng: np.random.Generator,
    patients: Sequence[_Patient],
    start: datetime,
    days: int,
    until: datetime,
    user_id: int,
) -> pl.DataFrame:
    """Care-management time: a few entries of 3-20 minutes per patient-month, about a third
    with a live interactive communication, in working hours."""
    pid, started, seconds, interactive = [], [], [], []
    for p in patients:
        active_from = start + timedelta(days=p.first_day)
        active_to = min(until, start + timedelta(days=p.last_day))
        span_days = (active_to - active_from).days
        for _ in range(int(rng.poisson(2.5 * max(span_days, 0) / 30))):
            # start is 10:00 local: from 09:00 to 17:00
            at = start + timedelta(
                days=p.first_day + int(rng.integers(0, max(span_days, 1))),
                minutes=int(rng.integers(-60, 7 * 60)),
            )
            if at >= until:
                continue
            pid.append(str(p.id))
            started.append(at)
            seconds.append(int(rng.integers(180, 1200)))
            interactive.append("t" if rng.random() < 0.35 else "f")
    return pl.DataFrame(
        {
            "patient_id": pid,
            "user_id": [user_id] * len(pid),
            "started_at": started,
            "seconds": seconds,
            "interactive": interactive,
        },
        schema_overrides={"started_at": pl.Datetime("us", "UTC")},
    )


def now_minute() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0)
