"""Built-in program templates, program precedence and threshold inheritance (program → site →
patient), and the validation of threshold overrides.

A template names the rules a program runs and their default parameters, taken from published
guidance (each rule's description names its source). A patient enrolled in several programs
gets, for each rule, the parameter set of the *most protective* program that runs it (lowest
high-side threshold, highest low-side threshold, fewest days without data); every value keeps
the program it came from, so an explanation can name it. ``maternal_postpartum`` is time-bound:
with a delivery date, its values hold for the postpartum window (``postpartum_end.weeks``,
default 6, at most 12) and then give way to the patient's other programs (or ``general``).

Stored overrides replace single parameters at program, site or patient scope; every value
carries the source it came from, so an episode can record exactly which threshold version
fired. Pure: no I/O.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from alerts.errors import InvalidThreshold

__all__ = [
    "MATERNAL",
    "PARAMETER_RANGES",
    "TEMPLATES",
    "TEMPLATE_VERSION",
    "Override",
    "RuleParams",
    "ThresholdSet",
    "ThresholdValue",
    "check_threshold",
    "postpartum_window_end",
    "resolve_thresholds",
]

TEMPLATE_VERSION = "2026.12"
LB = 0.45359237  # kg
MATERNAL = "maternal_postpartum"

# template -> rule id -> parameter -> default. A rule absent from a template does not run.
# Hypertensive crisis / severe hypertension: 2025 AHA/ACC guideline, SBP >180 and/or DBP >120
# (strict: ``inclusive`` 0); ACOG CO 767 / PB 222 severe range, SBP ≥160 and/or DBP ≥110
# (``inclusive`` 1). The repeat must itself be in the severe range to confirm.
_BP_CRISIS = {
    "systolic": 180.0,
    "diastolic": 120.0,
    "inclusive": 0.0,
    "confirm_minutes": 15.0,
    "clear_systolic": 170.0,
    "clear_diastolic": 110.0,
}
# Persistent high home BP, graded on the home scale: home 145/90 corresponds to office 160/100
# (grade 2) and home 135/85 to office 140/90 (AHA/ACC corresponding-values table); office grade 3
# (180/110) continues that table's slope (half the office step) to home 155/95.
_BP_HIGH = {
    "level1_systolic": 145.0,
    "level1_diastolic": 90.0,
    "level2_systolic": 155.0,
    "level2_diastolic": 95.0,
    "n": 3.0,
    "m": 5.0,
    "window_hours": 168.0,
    "clear_systolic": 135.0,
    "clear_diastolic": 85.0,
    "suspect_weight": 0.5,
}
# Hypotension from systolic or mean arterial pressure, never from a low diastolic alone.
_BP_LOW = {
    "level1_systolic": 90.0,
    "level1_map": 65.0,
    "level2_systolic": 80.0,
    "level2_map": 55.0,
    "level2_n": 1.0,
    "n": 2.0,
    "m": 3.0,
    "window_hours": 48.0,
    "clear_systolic": 95.0,
    "clear_map": 70.0,
    "suspect_weight": 0.5,
}
_BP_MEAN = {
    "systolic": 135.0,
    "diastolic": 85.0,
    "window_days": 7.0,
    "min_n": 12.0,
    "min_days": 3.0,
    "clear_margin": 3.0,
    "suspect_weight": 0.5,
}
_MISSING = {"days": 3.0}
_CLOCK = {"count": 2.0, "window_hours": 168.0}
_GATEWAY = {"hours": 6.0}
_BATTERY = {"percent": 15.0}
_GLUCOSE_LOW = {"level1": 70.0, "level2": 54.0, "clear": 80.0}
_GLUCOSE_HI24 = {"mg_dl": 250.0, "count": 2.0, "window_hours": 24.0, "clear": 200.0}
_GLUCOSE_HI2D = {"mg_dl": 300.0, "days": 2.0, "clear": 200.0}
# Symptoms reported by the patient: with a BP at or above these (maternal: ≥140/90, ACOG PB
# 222 preeclampsia with severe features), or any severe-range BP, critical.
_SYMPTOMS = {"systolic": 180.0, "diastolic": 120.0, "inclusive": 0.0, "window_hours": 24.0}
_DEVICE = {
    "device_clock_reset": _CLOCK,
    "gateway_offline": _GATEWAY,
    "battery_low": _BATTERY,
}

TEMPLATES: Mapping[str, Mapping[str, Mapping[str, float]]] = {
    "hypertension": {
        "bp_crisis": _BP_CRISIS,
        "bp_high": _BP_HIGH,
        "bp_mean_7d": _BP_MEAN,
        "bp_low": _BP_LOW,
        "symptoms": _SYMPTOMS,
        "missing_data": _MISSING,
        **_DEVICE,
    },
    "heart_failure": {
        "bp_crisis": _BP_CRISIS,
        "bp_low": _BP_LOW,
        "weight_gain_1d": {
            "kg": 2 * LB,
            "window_hours": 24.0,
            "lookback_days": 2.0,  # one missed day; longer gaps: the 3- and 7-day rules
            "clear_margin_kg": 0.4,
        },
        "weight_gain_3d": {"kg": 2.0, "window_hours": 72.0, "clear_margin_kg": 0.5},
        "weight_gain_7d": {"kg": 5 * LB, "window_hours": 168.0, "clear_margin_kg": 0.6},
        "weight_trend": {
            "kg_per_day": 0.25,
            "clear_kg_per_day": 0.1,
            "window_days": 7.0,
            "min_n": 5.0,
            "min_span_days": 4.0,
            "suspect_weight": 0.5,
        },
        "symptoms": _SYMPTOMS,
        "missing_data": {"days": 2.0},
        # the 3-day gain rule (ESC: >2 kg in 3 days) still judges a gain across two missed
        # weigh-ins; a third leaves no reference
        "missing_weight": {"days": 3.0},
        **_DEVICE,
    },
    "diabetes": {
        "glucose_low": _GLUCOSE_LOW,
        "glucose_meter_lo": {},
        "glucose_meter_hi": {},
        "glucose_high_24h": _GLUCOSE_HI24,
        "glucose_high_2d": _GLUCOSE_HI2D,
        "bp_crisis": _BP_CRISIS,
        "bp_mean_7d": {**_BP_MEAN, "systolic": 130.0, "diastolic": 80.0},
        "symptoms": _SYMPTOMS,
        "missing_data": _MISSING,
        **_DEVICE,
    },
    MATERNAL: {
        "bp_crisis": {
            **_BP_CRISIS,
            "systolic": 160.0,
            "diastolic": 110.0,
            "inclusive": 1.0,
            "clear_systolic": 150.0,
            "clear_diastolic": 100.0,
        },
        "bp_high": {
            **_BP_HIGH,
            "level1_systolic": 140.0,
            "level1_diastolic": 90.0,
            "level2_systolic": 150.0,
            "level2_diastolic": 100.0,
            "n": 2.0,
            "m": 3.0,
            "window_hours": 72.0,
            "clear_systolic": 135.0,
            "clear_diastolic": 85.0,
        },
        "bp_low": _BP_LOW,
        "symptoms": {**_SYMPTOMS, "systolic": 140.0, "diastolic": 90.0, "inclusive": 1.0},
        "postpartum_end": {"weeks": 6.0},
        "missing_data": {"days": 2.0},
        **_DEVICE,
    },
    "general": {
        "bp_crisis": _BP_CRISIS,
        "bp_low": _BP_LOW,
        "glucose_low": _GLUCOSE_LOW,
        "glucose_meter_lo": {},
        "symptoms": _SYMPTOMS,
        "missing_data": _MISSING,  # readings are daily here too: a lapse is followed up alike
        **_DEVICE,
    },
}

# Which parameters make a rule's set more protective: (name, +1 when lower is more protective,
# -1 when higher is). Compared in order; the first difference decides; a tie keeps the primary.
_PROTECTIVE: Mapping[str, tuple[tuple[str, int], ...]] = {
    "bp_crisis": (("systolic", 1), ("diastolic", 1), ("inclusive", -1)),
    "bp_high": (("level1_systolic", 1), ("level1_diastolic", 1), ("n", 1), ("window_hours", -1)),
    "bp_mean_7d": (("systolic", 1), ("diastolic", 1)),
    "bp_low": (("level1_systolic", -1), ("level1_map", -1)),
    "symptoms": (("systolic", 1), ("diastolic", 1), ("inclusive", -1)),
    "weight_gain_1d": (("kg", 1),),
    "weight_gain_3d": (("kg", 1),),
    "weight_gain_7d": (("kg", 1),),
    "weight_trend": (("kg_per_day", 1),),
    "glucose_low": (("level1", -1), ("level2", -1)),
    "glucose_high_24h": (("mg_dl", 1),),
    "glucose_high_2d": (("mg_dl", 1),),
    "missing_data": (("days", 1),),
    "missing_weight": (("days", 1),),
    "device_clock_reset": (("count", 1),),
    "gateway_offline": (("hours", 1),),
    "battery_low": (("percent", -1),),
    "postpartum_end": (("weeks", -1),),
}

# Physiologically and structurally possible values of each parameter (inclusive). An override
# outside its range is refused (``check_threshold``) and never applied (``resolve_thresholds``).
_FLAG = (0.0, 1.0)
_WEIGHTING = (0.0, 1.0)
PARAMETER_RANGES: Mapping[str, Mapping[str, tuple[float, float]]] = {
    "bp_crisis": {
        "systolic": (140.0, 250.0),
        "diastolic": (90.0, 150.0),
        "inclusive": _FLAG,
        "confirm_minutes": (1.0, 60.0),
        "clear_systolic": (110.0, 240.0),
        "clear_diastolic": (60.0, 140.0),
    },
    "bp_high": {
        "level1_systolic": (120.0, 220.0),
        "level1_diastolic": (70.0, 130.0),
        "level2_systolic": (120.0, 230.0),
        "level2_diastolic": (70.0, 140.0),
        "n": (1.0, 20.0),
        "m": (1.0, 30.0),
        "window_hours": (6.0, 720.0),
        "clear_systolic": (100.0, 210.0),
        "clear_diastolic": (60.0, 125.0),
        "suspect_weight": _WEIGHTING,
    },
    "bp_low": {
        "level1_systolic": (70.0, 120.0),
        "level1_map": (45.0, 90.0),
        "level2_systolic": (60.0, 110.0),
        "level2_map": (40.0, 85.0),
        "level2_n": (1.0, 20.0),
        "n": (1.0, 20.0),
        "m": (1.0, 30.0),
        "window_hours": (6.0, 720.0),
        "clear_systolic": (75.0, 130.0),
        "clear_map": (50.0, 100.0),
        "suspect_weight": _WEIGHTING,
    },
    "bp_mean_7d": {
        "systolic": (110.0, 180.0),
        "diastolic": (65.0, 110.0),
        "window_days": (3.0, 30.0),
        "min_n": (3.0, 200.0),
        "min_days": (1.0, 30.0),
        "clear_margin": (0.0, 20.0),
        "suspect_weight": _WEIGHTING,
    },
    "symptoms": {
        "systolic": (120.0, 200.0),
        "diastolic": (70.0, 130.0),
        "inclusive": _FLAG,
        "window_hours": (1.0, 168.0),
    },
    "weight_gain_1d": {
        "kg": (0.2, 5.0),
        "window_hours": (24.0, 24.0),
        "lookback_days": (1.0, 7.0),
        "clear_margin_kg": (0.0, 5.0),
    },
    "weight_gain_3d": {
        "kg": (0.5, 10.0),
        "window_hours": (48.0, 168.0),
        "clear_margin_kg": (0.0, 10.0),
    },
    "weight_gain_7d": {
        "kg": (0.5, 15.0),
        "window_hours": (72.0, 720.0),
        "clear_margin_kg": (0.0, 15.0),
    },
    "weight_trend": {
        "kg_per_day": (0.02, 2.0),
        "clear_kg_per_day": (0.0, 2.0),
        "window_days": (2.0, 30.0),
        "min_n": (2.0, 60.0),
        "min_span_days": (1.0, 30.0),
        "suspect_weight": _WEIGHTING,
    },
    "glucose_low": {"level1": (54.0, 100.0), "level2": (30.0, 70.0), "clear": (55.0, 140.0)},
    "glucose_high_24h": {
        "mg_dl": (150.0, 600.0),
        "count": (1.0, 10.0),
        "window_hours": (1.0, 168.0),
        "clear": (100.0, 600.0),
    },
    "glucose_high_2d": {"mg_dl": (150.0, 600.0), "days": (1.0, 14.0), "clear": (100.0, 600.0)},
    "missing_data": {"days": (1.0, 30.0)},
    "missing_weight": {"days": (1.0, 14.0)},
    "device_clock_reset": {"count": (1.0, 50.0), "window_hours": (1.0, 720.0)},
    # a technical setting, not a clinical one: from a minute (drills, the demo) to a week
    "gateway_offline": {"hours": (1 / 60, 168.0)},
    "battery_low": {"percent": (1.0, 100.0)},
    "postpartum_end": {"weeks": (1.0, 12.0)},
}

# The rule's own structure: (lower, higher, what) — lower must be strictly below higher.
_ORDER: Mapping[str, tuple[tuple[str, str, str], ...]] = {
    "bp_crisis": (
        ("diastolic", "systolic", "diastolic must be below systolic"),
        ("clear_diastolic", "clear_systolic", "diastolic must be below systolic"),
    ),
    "bp_high": (
        ("clear_systolic", "level1_systolic", "level 1 must be above the clear band"),
        ("clear_diastolic", "level1_diastolic", "level 1 must be above the clear band"),
        ("level1_diastolic", "level1_systolic", "diastolic must be below systolic"),
        ("level2_diastolic", "level2_systolic", "diastolic must be below systolic"),
    ),
    "bp_low": (
        ("level1_systolic", "clear_systolic", "the clear band must be above level 1"),
        ("level1_map", "clear_map", "the clear band must be above level 1"),
        ("level1_map", "level1_systolic", "mean arterial pressure must be below systolic"),
    ),
    "bp_mean_7d": (("diastolic", "systolic", "diastolic must be below systolic"),),
    "symptoms": (("diastolic", "systolic", "diastolic must be below systolic"),),
    "glucose_low": (
        ("level2", "level1", "level 2 must be below level 1"),
        ("level1", "clear", "the clear level must be above level 1"),
    ),
    "glucose_high_24h": (("clear", "mg_dl", "the clear level must be below the threshold"),),
    "glucose_high_2d": (("clear", "mg_dl", "the clear level must be below the threshold"),),
    "weight_gain_1d": (("clear_margin_kg", "kg", "the clear margin must be below the gain"),),
    "weight_gain_3d": (("clear_margin_kg", "kg", "the clear margin must be below the gain"),),
    "weight_gain_7d": (("clear_margin_kg", "kg", "the clear margin must be below the gain"),),
    "weight_trend": (
        ("clear_kg_per_day", "kg_per_day", "the clear slope must be below the threshold"),
    ),
}
# (lower, higher, what) where equality is allowed.
_ORDER_EQ: Mapping[str, tuple[tuple[str, str, str], ...]] = {
    "bp_crisis": (
        ("clear_systolic", "systolic", "a crisis threshold must not be below its clear band"),
        ("clear_diastolic", "diastolic", "a crisis threshold must not be below its clear band"),
    ),
    "bp_high": (
        ("level1_systolic", "level2_systolic", "level 2 must not be below level 1"),
        ("level1_diastolic", "level2_diastolic", "level 2 must not be below level 1"),
        ("n", "m", "n must not exceed m"),
    ),
    "bp_low": (
        ("level2_systolic", "level1_systolic", "level 2 must not be above level 1"),
        ("level2_map", "level1_map", "level 2 must not be above level 1"),
        ("n", "m", "n must not exceed m"),
        ("level2_n", "m", "level2_n must not exceed m"),
    ),
    "bp_mean_7d": (("min_days", "window_days", "min_days must fit in the window"),),
    "weight_trend": (("min_span_days", "window_days", "min_span_days must fit in the window"),),
}
_INTEGRAL = frozenset({"inclusive", "m", "count", "days", "min_days"})


@dataclass(frozen=True, slots=True)
class ThresholdValue:
    """One effective parameter: its value, where it came from (template default or the
    override row and version), the program whose template the rule's set came from, and the
    override's validity window."""

    value: float
    scope: str  # template | program | site | patient
    version_id: int | None  # alert_thresholds.id, None for a template default
    version: int | None
    ordered_by: str | None = None
    reason: str | None = None
    program: str = ""  # the template this rule's parameter set came from
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    @property
    def source(self) -> str:
        if self.version_id is None:
            return f"template {self.program or 'default'} {TEMPLATE_VERSION}"
        return f"{self.scope} override #{self.version_id} v{self.version}"


class RuleParams(dict[str, ThresholdValue]):
    """A rule's effective parameters (name → value), knowing the rule and the template its set
    came from."""

    def __init__(
        self, rule_id: str, origin: str, values: Mapping[str, ThresholdValue] | None = None
    ) -> None:
        super().__init__(values or {})
        self.rule_id = rule_id
        self.origin = origin


@dataclass(frozen=True, slots=True)
class Override:
    """One stored override row (``alert_thresholds``), or one from a replay cohort."""

    scope: str  # program | site | patient
    parameter: str  # "<rule id>.<name>", or "<rule id>.enabled" (0 switches the rule off)
    value: float | None  # None: back to the inherited value
    version_id: int | None = None
    version: int | None = None
    ordered_by: str | None = None
    reason: str | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class ThresholdSet:
    """The effective parameters of one patient: rule id -> name -> value with its source.

    ``values[rule]`` is a :class:`RuleParams` (its ``origin`` names the program whose template
    won for that rule). With a postpartum delivery date, the rules that came from
    ``maternal_postpartum`` hold until ``postpartum_end``; from then on ``after[rule]`` applies
    (``None``: the rule stops). :meth:`rule_at` gives the set in force at a moment."""

    program: str
    template: str
    values: Mapping[str, Mapping[str, ThresholdValue]]
    enabled: frozenset[str]
    overridden: bool = field(default=False)
    programs: tuple[str, ...] = ()
    delivery_date: date | None = None
    postpartum_end: datetime | None = None
    after: Mapping[str, Mapping[str, ThresholdValue] | None] = field(default_factory=dict)

    def rule(self, rule_id: str) -> Mapping[str, ThresholdValue]:
        return self.values[rule_id]

    def rule_at(self, rule_id: str, at: datetime) -> Mapping[str, ThresholdValue] | None:
        """The parameters of ``rule_id`` in force at ``at``; ``None`` when the rule no longer
        runs (a postpartum-only rule after the window)."""
        if self.postpartum_end is not None and at >= self.postpartum_end and rule_id in self.after:
            return self.after[rule_id]
        return self.values.get(rule_id)

    def origin(self, rule_id: str, at: datetime | None = None) -> str:
        """The program template the rule's set comes from (at ``at``)."""
        params = self.values.get(rule_id) if at is None else self.rule_at(rule_id, at)
        return getattr(params, "origin", self.template)

    def version_label(self, rule_id: str, at: datetime | None = None) -> str:
        """``<template>@<version>[+#override ids]`` of the set ``rule_id`` uses (at ``at``)."""
        params = (self.values.get(rule_id) if at is None else self.rule_at(rule_id, at)) or {}
        ids = sorted({v.version_id for v in params.values() if v.version_id is not None})
        label = f"{getattr(params, 'origin', self.template)}@{TEMPLATE_VERSION}"
        if ids:
            label += "+" + ",".join(f"#{i}" for i in ids)
        return label


# Defaults for a rule switched on in a program whose template lacks it: the first template's.
_DEFAULTS: dict[str, Mapping[str, float]] = {}
_DEFAULT_ORIGIN: dict[str, str] = {}
for _template, _rules in TEMPLATES.items():
    for _rule, _params in _rules.items():
        if _rule not in _DEFAULTS:
            _DEFAULTS[_rule] = _params
            _DEFAULT_ORIGIN[_rule] = _template

_SCOPE_ORDER = {"program": 0, "site": 1, "patient": 2}


def _protective_key(rule_id: str, params: Mapping[str, float]) -> tuple[float, ...]:
    return tuple(sign * params.get(name, 0.0) for name, sign in _PROTECTIVE.get(rule_id, ()))


@functools.lru_cache(maxsize=256)
def _merged(templates: tuple[str, ...]) -> Mapping[str, tuple[str, Mapping[str, float]]]:
    """Per rule, the (template, parameters) of the most protective template among
    ``templates`` (the first one wins a tie)."""
    out: dict[str, tuple[str, Mapping[str, float]]] = {}
    for template in templates:
        for rule, params in TEMPLATES.get(template, {}).items():
            old = out.get(rule)
            if old is None or _protective_key(rule, params) < _protective_key(rule, old[1]):
                out[rule] = (template, params)
    return out


def _template_params(rule: str, origin: str, params: Mapping[str, float]) -> RuleParams:
    return RuleParams(
        rule,
        origin,
        {n: ThresholdValue(v, "template", None, None, program=origin) for n, v in params.items()},
    )


def _in_range(rule_id: str, name: str, value: float) -> bool:
    bounds = PARAMETER_RANGES.get(rule_id, {}).get(name)
    if bounds is None or not math.isfinite(value):
        return False
    return bounds[0] <= value <= bounds[1]


def _apply(values: dict[str, RuleParams], enabled: set[str], overrides: Iterable[Override]) -> None:
    # stable: within a scope, the caller's order (less specific first, then by version) stands
    for o in sorted(overrides, key=lambda o: _SCOPE_ORDER.get(o.scope, 9)):
        rule_id, _, name = o.parameter.partition(".")
        if name == "enabled":
            if o.value is None:
                continue
            if o.value and rule_id in _DEFAULTS:
                enabled.add(rule_id)
                if rule_id not in values:
                    values[rule_id] = _template_params(
                        rule_id, _DEFAULT_ORIGIN[rule_id], _DEFAULTS[rule_id]
                    )
            elif not o.value:
                enabled.discard(rule_id)
            continue
        if rule_id not in values or o.value is None:
            continue
        value = float(o.value)
        old = values[rule_id]
        if not _in_range(rule_id, name, value) or _structure_error(
            rule_id, name, value, {n: v.value for n, v in old.items()}
        ):
            continue  # never apply an impossible value (check_threshold refuses it at entry)
        values[rule_id] = RuleParams(rule_id, old.origin, old)
        values[rule_id][name] = ThresholdValue(
            value,
            o.scope,
            o.version_id,
            o.version,
            o.ordered_by,
            o.reason,
            program=old.origin,
            valid_from=o.valid_from,
            valid_until=o.valid_until,
        )


def _build(
    templates: tuple[str, ...], overrides: Iterable[Override]
) -> tuple[dict[str, RuleParams], set[str]]:
    values = {
        rule: _template_params(rule, origin, params)
        for rule, (origin, params) in _merged(templates).items()
    }
    enabled = set(values)
    _apply(values, enabled, overrides)
    return values, enabled


def postpartum_window_end(delivery_date: date, weeks: float) -> datetime:
    """The end of the postpartum window: the delivery date (its start, UTC) plus ``weeks``
    (clamped to 1..12)."""
    weeks = min(12.0, max(1.0, weeks))
    return datetime.combine(delivery_date, time(0), UTC) + timedelta(weeks=weeks)


def resolve_thresholds(
    program: str,
    template: str,
    overrides: list[Override] | tuple[Override, ...] = (),
    *,
    also: Iterable[str] = (),
    delivery_date: date | None = None,
) -> ThresholdSet:
    """Template defaults (per rule, the most protective of ``template`` and ``also``, the
    templates of the patient's other running enrollments), then program, site and patient
    overrides (later scopes win; within a scope the highest version wins). Unknown templates
    fall back to ``general``. ``delivery_date`` (maternal_postpartum): the rules whose set came
    from the postpartum template hold until the end of the window, then the other programs'
    sets (or ``general``'s) apply."""
    primary = template if template in TEMPLATES else "general"
    names = tuple(dict.fromkeys([primary, *(t for t in also if t in TEMPLATES)]))
    if not overrides:
        return _cached(program, names, delivery_date)
    return _resolve(program, names, tuple(overrides), delivery_date)


@functools.lru_cache(maxsize=512)
def _cached(program: str, names: tuple[str, ...], delivery_date: date | None) -> ThresholdSet:
    # without overrides the (shared, not to be mutated) set depends on these alone
    return _resolve(program, names, (), delivery_date)


def _resolve(
    program: str,
    names: tuple[str, ...],
    overrides: tuple[Override, ...],
    delivery_date: date | None,
) -> ThresholdSet:
    primary = names[0]
    values, enabled = _build(names, overrides)
    end: datetime | None = None
    after: dict[str, Mapping[str, ThresholdValue] | None] = {}
    if delivery_date is not None and MATERNAL in names:
        pp = values.get("postpartum_end")
        weeks = pp.get("weeks") if pp is not None else None
        end = postpartum_window_end(delivery_date, weeks.value if weeks else 6.0)
        rest = tuple(t for t in names if t != MATERNAL) or ("general",)
        later, later_enabled = _build(rest, overrides)
        for rule, params in values.items():
            if params.origin == MATERNAL and rule != "postpartum_end":
                after[rule] = later.get(rule) if rule in later_enabled else None
    return ThresholdSet(
        program=program,
        template=primary,
        values=values,
        enabled=frozenset(enabled),
        overridden=bool(overrides),
        programs=names,
        delivery_date=delivery_date,
        postpartum_end=end,
        after=after,
    )


def _structure_error(
    rule_id: str, name: str, value: float, effective: Mapping[str, float]
) -> str | None:
    """What ``name`` = ``value`` would break in the rule's own structure, given the rule's
    other effective values; ``None`` when nothing."""
    values = {**effective, name: value}
    checks = [(lo, hi, what, False) for lo, hi, what in _ORDER.get(rule_id, ())]
    checks += [(lo, hi, what, True) for lo, hi, what in _ORDER_EQ.get(rule_id, ())]
    for lower, higher, what, equal_ok in checks:
        if name not in (lower, higher) or lower not in values or higher not in values:
            continue
        a, b = values[lower], values[higher]
        if a > b or (a == b and not equal_ok):
            return f"{what} ({rule_id}.{lower} {a:g} vs {rule_id}.{higher} {b:g})"
    return None


def check_threshold(
    parameter: str,
    value: float | None,
    current: ThresholdSet | None = None,
    *,
    template: str | None = None,
) -> None:
    """Refuse an override that no clinician could mean: an unknown rule or parameter, a value
    outside the parameter's physiological range, or one that breaks the rule's own structure
    (a crisis threshold at or below its clear band, a diastolic at or above its systolic, level
    2 less severe than level 1, ...) given the other effective values: the patient's
    (``current``, e.g. from ``effective_thresholds``), else ``template``'s defaults (a program
    override), else the first template's that runs the rule. ``value=None`` (back to the
    inherited value) is always allowed. Raises :class:`alerts.InvalidThreshold` naming the
    parameter."""
    rule_id, _, name = parameter.partition(".")
    if rule_id not in _DEFAULTS:
        raise InvalidThreshold(parameter, "unknown rule")
    if name == "enabled":
        if value is not None and value not in (0, 1):
            raise InvalidThreshold(parameter, "enabled is 0 or 1")
        return
    bounds = PARAMETER_RANGES.get(rule_id, {}).get(name)
    if bounds is None:
        raise InvalidThreshold(parameter, "unknown parameter")
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidThreshold(parameter, "must be a number")
    v = float(value)
    if not math.isfinite(v) or not bounds[0] <= v <= bounds[1]:
        raise InvalidThreshold(
            parameter, f"must be between {bounds[0]:g} and {bounds[1]:g} (physiological range)"
        )
    if name in _INTEGRAL and v != int(v):
        raise InvalidThreshold(parameter, "must be a whole number")
    effective: dict[str, float] = dict(
        TEMPLATES.get(template or "", {}).get(rule_id) or _DEFAULTS[rule_id]
    )
    if current is not None and rule_id in current.values:
        effective.update({n: tv.value for n, tv in current.values[rule_id].items()})
    error = _structure_error(rule_id, name, v, effective)
    if error is not None:
        raise InvalidThreshold(parameter, error)
