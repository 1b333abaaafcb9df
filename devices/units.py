"""Unit conversions to the canonical (UCUM) units, done once, here, in exact ``Decimal``.

Factors (ARCHITECTURE.md): 1 kPa = 7.50062 mmHg; 1 mmol/L glucose = 18.016 mg/dL;
1 kg/L = 100 000 mg/dL; 1 lb = 0.45359237 kg; 1 in = 0.0254 m; 1 jin = 0.5 kg.

Rounding: the exact product is kept unless it has more decimals than the canonical unit's
quantum, in which case it is rounded half-even to that quantum:

    mm[Hg] 0.1   mg/dL 0.1   kg 0.001   m 0.0001

(0.1 mmHg and 0.1 mg/dL are finer than any cuff or meter displays; 1 g is finer than the
0.01 lb weight step of 4.5 g; 0.1 mm is finer than the 0.1 in height step of 2.54 mm.)
A value already in the canonical unit passes through unchanged, so exact conversions (kg/L,
jin, SI weights in 0.005 kg steps) are never rounded.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from devices._codec import EXACT

__all__ = [
    "G_PER_KG",
    "KG_PER_JIN",
    "KG_PER_LB",
    "MG_DL_PER_KG_L",
    "MG_DL_PER_MMOL_L",
    "MG_PER_KG",
    "ML_PER_L",
    "MMHG_PER_KPA",
    "M_PER_IN",
    "QUANTUM",
    "exact_scale",
    "inches_to_m",
    "jin_to_kg",
    "kg_per_l_to_mg_dl",
    "kpa_to_mmhg",
    "lb_to_kg",
    "mol_per_l_to_mg_dl",
    "round_to_quantum",
]

MMHG_PER_KPA = Decimal("7.50062")
MG_DL_PER_MMOL_L = Decimal("18.016")
MG_DL_PER_KG_L = Decimal("100000")
KG_PER_LB = Decimal("0.45359237")
M_PER_IN = Decimal("0.0254")
KG_PER_JIN = Decimal("0.5")
#: glucose context (0x2A34): carbohydrate kg → g, medication kg → mg or L → mL (exact)
G_PER_KG = Decimal("1000")
MG_PER_KG = Decimal("1000000")
ML_PER_L = Decimal("1000")

#: the finest step kept after a conversion, per canonical unit
QUANTUM: dict[str, Decimal] = {
    "mm[Hg]": Decimal("0.1"),
    "mg/dL": Decimal("0.1"),
    "kg": Decimal("0.001"),
    "m": Decimal("0.0001"),
}


def round_to_quantum(value: Decimal, unit: str) -> Decimal:
    """``value`` rounded half-even to ``unit``'s quantum, only if it is finer than that."""
    quantum = QUANTUM[unit]
    exponent, finest = value.as_tuple().exponent, quantum.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    assert isinstance(finest, int)
    if exponent >= finest:
        return value
    return value.quantize(quantum, rounding=ROUND_HALF_EVEN, context=EXACT)


def kpa_to_mmhg(value: Decimal) -> Decimal:
    return round_to_quantum(EXACT.multiply(value, MMHG_PER_KPA), "mm[Hg]")


def mol_per_l_to_mg_dl(value: Decimal) -> Decimal:
    """Glucose: mol/L → mmol/L (* 1000) → mg/dL (* 18.016)."""
    return round_to_quantum(EXACT.multiply(value, 1000 * MG_DL_PER_MMOL_L), "mg/dL")


def kg_per_l_to_mg_dl(value: Decimal) -> Decimal:
    return round_to_quantum(EXACT.multiply(value, MG_DL_PER_KG_L), "mg/dL")


def lb_to_kg(value: Decimal) -> Decimal:
    return round_to_quantum(EXACT.multiply(value, KG_PER_LB), "kg")


def jin_to_kg(value: Decimal) -> Decimal:
    return round_to_quantum(EXACT.multiply(value, KG_PER_JIN), "kg")


def inches_to_m(value: Decimal) -> Decimal:
    return round_to_quantum(EXACT.multiply(value, M_PER_IN), "m")


def exact_scale(value: Decimal, factor: Decimal) -> Decimal:
    """``value * factor`` with no rounding (a power-of-ten change of prefix: kg → g, L → mL)."""
    return EXACT.multiply(value, factor)
