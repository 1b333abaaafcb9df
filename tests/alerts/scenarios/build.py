"""Cohort building and output reading for the scenarios: only the public replay contract.

Cohort (README "replay cohort"): patients ``{"id", "program", "programs"?, "delivery_date"?,
"risk_tier"?}``, canonical readings plus ``"patient_id"``, ``"actions"`` (``{"at",
"patient_id", "action", "minutes"?, "outcome"?, "note"?}``) and ``"symptoms"``. Output lines:
``{"event", "at", "id", "patient_id", "rule", "family", "severity", "priority", "queue",
"notify", "explanation", "threshold_version", ...}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import alerts

__all__ = [
    "DAY",
    "HOUR",
    "LB",
    "MIN",
    "T0",
    "Cohort",
    "Guideline",
    "Result",
    "guideline",
]

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # a Monday, 08:00 UTC
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
LB = 0.45359237  # kg per international avoirdupois pound (NIST SP 811)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Guideline:
    """The sentence a scenario encodes and where it comes from."""

    quote: str
    source: str


def guideline(quote: str, source: str) -> Callable[[F], F]:
    """Attach the guideline sentence (and its source) that a scenario test encodes."""

    def mark(fn: F) -> F:
        fn.__guideline__ = Guideline(quote, source)  # type: ignore[attr-defined]
        return fn

    return mark


def _naive(t: datetime) -> str:
    return t.astimezone(UTC).replace(tzinfo=None).isoformat()


class Cohort:
    """A replay cohort written reading by reading."""

    def __init__(self) -> None:
        self.patients: list[dict[str, Any]] = []
        self.readings: list[dict[str, Any]] = []
        self.actions: list[dict[str, Any]] = []
        self.symptoms: list[dict[str, Any]] = []

    def patient(
        self,
        program: str,
        *,
        programs: Sequence[str] | None = None,
        delivery_date: str | None = None,
        risk_tier: int = 2,
        pid: str | None = None,
    ) -> str:
        pid = pid or str(uuid.uuid4())
        item: dict[str, Any] = {"id": pid, "program": program, "risk_tier": risk_tier}
        if programs is not None:
            item["programs"] = list(programs)
        if delivery_date is not None:
            item["delivery_date"] = delivery_date
        self.patients.append(item)
        return pid

    def reading(
        self,
        pid: str,
        type_: str,
        at: datetime,
        values: Mapping[str, tuple[float, str]],
        *,
        flags: Sequence[str] = (),
        received: datetime | None = None,
        device: str | None = None,
    ) -> str:
        """One canonical reading measured at ``at`` (device clock) and received one minute later
        unless ``received`` says otherwise. Clock-reset readings carry no device time."""
        rid = str(uuid.uuid4())
        clock_reset = bool({"device_clock_reset", "device_clock_unset"} & set(flags))
        self.readings.append(
            {
                "id": rid,
                "patient_id": pid,
                "gateway_id": f"gw-{pid[:8]}",
                "device": {"id": device or f"{type_}-{pid[:8]}", "type": type_},
                "type": type_,
                "measured_at": None if clock_reset else _naive(at),
                "received_at": (received or at + MIN).isoformat(),
                "values": [
                    {"code": code, "value": value, "unit": unit}
                    for code, (value, unit) in values.items()
                ],
                "flags": list(flags),
            }
        )
        return rid

    def bp(self, pid: str, at: datetime, systolic: float, diastolic: float, **kw: Any) -> str:
        return self.reading(
            pid,
            "blood_pressure",
            at,
            {
                "systolic": (systolic, "mm[Hg]"),
                "diastolic": (diastolic, "mm[Hg]"),
                "pulse": (72.0, "/min"),
            },
            **kw,
        )

    def glucose(self, pid: str, at: datetime, mg_dl: float | None, **kw: Any) -> str:
        values = {} if mg_dl is None else {"glucose": (mg_dl, "mg/dL")}
        return self.reading(pid, "glucose", at, values, **kw)

    def weight_lb(self, pid: str, at: datetime, lb: float, **kw: Any) -> str:
        return self.reading(pid, "body_weight", at, {"body_weight": (lb, "[lb_av]")}, **kw)

    def weight_kg(self, pid: str, at: datetime, kg: float, **kw: Any) -> str:
        return self.reading(pid, "body_weight", at, {"body_weight": (kg, "kg")}, **kw)

    def action(self, pid: str, at: datetime, action: str, **extra: Any) -> None:
        self.actions.append({"at": at.isoformat(), "patient_id": pid, "action": action, **extra})

    def symptom(self, pid: str, at: datetime, *symptoms: str) -> None:
        self.symptoms.append({"at": at.isoformat(), "patient_id": pid, "symptoms": list(symptoms)})

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"patients": self.patients, "readings": self.readings}
        if self.actions:
            out["actions"] = self.actions
        if self.symptoms:
            out["symptoms"] = self.symptoms
        return out

    def replay(self, *, until: datetime | None = None) -> Result:
        return Result(alerts.replay(self.as_dict(), until=until))


def _at(line: Mapping[str, Any]) -> datetime:
    return datetime.fromisoformat(str(line["at"]))


@dataclass(frozen=True, slots=True)
class Result:
    """The replay's output lines, with the questions the scenarios ask of them."""

    lines: list[dict[str, Any]]

    def of(self, pid: str, family: str | None = None) -> list[dict[str, Any]]:
        return [
            r
            for r in self.lines
            if r["patient_id"] == pid and (family is None or r["family"] == family)
        ]

    def opened(self, pid: str, family: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.of(pid, family) if r["event"] == "open"]

    def notified(
        self,
        pid: str,
        family: str | None = None,
        *,
        after: datetime | None = None,
        before: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Lines that put an episode in front of a person with a new SLA (``notify`` true)."""
        return [
            r
            for r in self.of(pid, family)
            if r.get("notify") is True
            and (after is None or _at(r) >= after)
            and (before is None or _at(r) <= before)
        ]

    def clinical_notified(
        self, pid: str, *, after: datetime | None = None, before: datetime | None = None
    ) -> list[dict[str, Any]]:
        return [
            r
            for r in self.notified(pid, after=after, before=before)
            if r.get("queue") == "clinical"
        ]

    def severities(self, pid: str, family: str) -> set[str]:
        return {str(r["severity"]) for r in self.of(pid, family)}

    def families(self, pid: str) -> set[str]:
        return {str(r["family"]) for r in self.opened(pid)}

    def show(self, pid: str | None = None) -> str:
        """The lines, short, for assertion messages."""
        return "\n".join(
            f"{r['at']} {r['event']} {r['family']}/{r['rule']} {r['severity']} "
            f"P{r['priority']} queue={r.get('queue')} notify={r.get('notify')} "
            f"{str(r.get('explanation', ''))[:90]}"
            for r in self.lines
            if pid is None or r["patient_id"] == pid
        )
