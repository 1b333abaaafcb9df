"""Built-in program templates and threshold inheritance (program → site → patient).

A template names the rules a program runs and their default parameters, taken from published
guidance (each rule's description names its source). Stored overrides replace single parameters
at program, site or patient scope; every value carries the source it came from, so an episode
can record exactly which threshold version fired. Pure: no I/O.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

__all__ = [
    "TEMPLATES",
    "TEMPLATE_VERSION",
    "Override",
    "ThresholdSet",
    "ThresholdValue",
    "resolve_thresholds",
]

TEMPLATE_VERSION = "2026.11"
LB = 0.45359237  # kg

# template -> rule id -> parameter -> default. A rule absent from a template does not run.
_BP_CRISIS = {
    "systolic": 180.0,
    "diastolic": 120.0,
    "confirm_minutes": 15.0,
    "clear_systolic": 170.0,
    "clear_diastolic": 110.0,
}
_BP_HIGH = {
    "level1_systolic": 160.0,
    "level1_diastolic": 100.0,
    "level2_systolic": 170.0,
    "level2_diastolic": 105.0,
    "n": 3.0,
    "m": 5.0,
    "window_hours": 168.0,
    "clear_systolic": 150.0,
    "clear_diastolic": 95.0,
    "suspect_weight": 0.5,
}
_BP_LOW = {
    "level1_systolic": 90.0,
    "level1_diastolic": 60.0,
    "level2_systolic": 80.0,
    "level2_diastolic": 50.0,
    "level2_n": 1.0,
    "n": 2.0,
    "m": 3.0,
    "window_hours": 48.0,
    "clear_systolic": 95.0,
    "clear_diastolic": 65.0,
    "suspect_weight": 0.5,
}
_BP_MEAN = {
    "systolic": 135.0,
    "diastolic": 85.0,
    "window_days": 7.0,
    "min_n": 12.0,
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
        "missing_data": _MISSING,
        **_DEVICE,
    },
    "heart_failure": {
        "bp_crisis": _BP_CRISIS,
        "bp_low": _BP_LOW,
        "weight_gain_1d": {"kg": 2 * LB, "window_hours": 24.0, "clear_margin_kg": 0.4},
        "weight_gain_7d": {"kg": 5 * LB, "window_hours": 168.0, "clear_margin_kg": 0.6},
        "weight_trend": {
            "kg_per_day": 0.25,
            "clear_kg_per_day": 0.1,
            "window_days": 7.0,
            "min_n": 5.0,
            "min_span_days": 4.0,
            "suspect_weight": 0.5,
        },
        "missing_data": {"days": 2.0},
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
        "missing_data": _MISSING,
        **_DEVICE,
    },
    "maternal_postpartum": {
        "bp_crisis": {
            **_BP_CRISIS,
            "systolic": 160.0,
            "diastolic": 110.0,
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
        "missing_data": {"days": 2.0},
        **_DEVICE,
    },
    "general": {
        "bp_crisis": _BP_CRISIS,
        "bp_low": _BP_LOW,
        "glucose_low": _GLUCOSE_LOW,
        "glucose_meter_lo": {},
        "missing_data": {"days": 7.0},
        **_DEVICE,
    },
}


@dataclass(frozen=True, slots=True)
class ThresholdValue:
    value: float
    scope: str  # template | program | site | patient
    version_id: int | None  # alert_thresholds.id, None for a template default
    version: int | None
    ordered_by: str | None = None
    reason: str | None = None

    @property
    def source(self) -> str:
        if self.version_id is None:
            return f"template {TEMPLATE_VERSION}"
        return f"{self.scope} override #{self.version_id} v{self.version}"


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
    """The effective parameters of one patient: rule id -> name -> value with its source."""

    program: str
    template: str
    values: Mapping[str, Mapping[str, ThresholdValue]]
    enabled: frozenset[str]
    overridden: bool = field(default=False)

    def rule(self, rule_id: str) -> Mapping[str, ThresholdValue]:
        return self.values[rule_id]

    def version_label(self, rule_id: str) -> str:
        params = self.values.get(rule_id, {})
        ids = sorted({v.version_id for v in params.values() if v.version_id is not None})
        label = f"{self.template}@{TEMPLATE_VERSION}"
        if ids:
            label += "+" + ",".join(f"#{i}" for i in ids)
        return label


# Defaults for a rule switched on in a program whose template lacks it: the first template's.
_DEFAULTS: dict[str, Mapping[str, float]] = {}
for _template in TEMPLATES.values():
    for _rule, _params in _template.items():
        _DEFAULTS.setdefault(_rule, _params)

_SCOPE_ORDER = {"program": 0, "site": 1, "patient": 2}


@functools.lru_cache(maxsize=256)
def _defaults(program: str, template: str, also: tuple[str, ...] = ()) -> ThresholdSet:
    base = TEMPLATES.get(template) or TEMPLATES["general"]
    values = {
        rule: {name: ThresholdValue(v, "template", None, None) for name, v in params.items()}
        for rule, params in base.items()
    }
    for other in also:  # other running enrollments add their rules, never change these
        for rule, params in TEMPLATES.get(other, {}).items():
            if rule not in values:
                values[rule] = {
                    name: ThresholdValue(v, "template", None, None) for name, v in params.items()
                }
    return ThresholdSet(
        program=program,
        template=template if template in TEMPLATES else "general",
        values=values,
        enabled=frozenset(values),
    )


def resolve_thresholds(
    program: str,
    template: str,
    overrides: list[Override] | tuple[Override, ...] = (),
    *,
    also: tuple[str, ...] = (),
) -> ThresholdSet:
    """Template defaults, then program, site and patient overrides (later scopes win; within a
    scope the highest version wins). Unknown templates fall back to ``general``. ``also``: the
    templates of the patient's other running enrollments, whose rules are added (with their
    defaults) when the primary template lacks them — an HF patient who also has diabetes keeps
    the hypoglycemia rules. Without overrides the (shared, immutable) set is returned."""
    default = _defaults(program, template, also)
    if not overrides:
        return default
    values: dict[str, dict[str, ThresholdValue]] = {
        rule: dict(params) for rule, params in default.values.items()
    }
    enabled = set(values)
    # stable: within a scope, the caller's order (less specific first, then by version) stands
    ordered = sorted(overrides, key=lambda o: _SCOPE_ORDER.get(o.scope, 9))
    for o in ordered:
        rule_id, _, name = o.parameter.partition(".")
        if name == "enabled":
            if o.value is None:
                continue
            if o.value and rule_id in _DEFAULTS:
                enabled.add(rule_id)
                if rule_id not in values:
                    values[rule_id] = {
                        n: ThresholdValue(v, "template", None, None)
                        for n, v in _DEFAULTS[rule_id].items()
                    }
            elif not o.value:
                enabled.discard(rule_id)
            continue
        if rule_id not in values or o.value is None:
            continue
        values[rule_id][name] = ThresholdValue(
            float(o.value), o.scope, o.version_id, o.version, o.ordered_by, o.reason
        )
    return ThresholdSet(
        program=program,
        template=template if template in TEMPLATES else "general",
        values=values,
        enabled=frozenset(enabled),
        overridden=bool(overrides),
    )
