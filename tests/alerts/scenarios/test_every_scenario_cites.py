"""The suite's own rule: every scenario names the guideline sentence it encodes and its source,
and no scenario module imports the rule set's thresholds."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import tests.alerts.scenarios as pkg
from tests.alerts.scenarios.build import Guideline

_HERE = Path(pkg.__file__).parent
_FORBIDDEN = ("alerts._programs", "alerts._rules", "alerts._engine", "TEMPLATES", "SLA")


def _scenario_modules() -> list[str]:
    return [
        m.name
        for m in pkgutil.iter_modules([str(_HERE)])
        if m.name.startswith("test_") and m.name != "test_every_scenario_cites"
    ]


def test_every_scenario_quotes_its_guideline_and_source() -> None:
    names = _scenario_modules()
    assert len(names) >= 6
    for name in names:
        module = importlib.import_module(f"{pkg.__name__}.{name}")
        tests = [v for k, v in vars(module).items() if k.startswith("test_") and callable(v)]
        assert tests, name
        for fn in tests:
            g = getattr(fn, "__guideline__", None)
            assert isinstance(g, Guideline), f"{name}.{fn.__name__} cites no guideline"
            assert len(g.quote) > 30, f"{name}.{fn.__name__}"
            assert len(g.source) > 10, f"{name}.{fn.__name__}"


def test_no_scenario_reads_a_threshold_from_the_code() -> None:
    for path in sorted(_HERE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(("alerts.", "lab")), (path.name, node.module)
                names = {a.name for a in node.names}
                assert not names & set(_FORBIDDEN), (path.name, names)
            if isinstance(node, ast.Attribute) and node.attr in ("TEMPLATES", "SLA"):
                raise AssertionError(f"{path.name} reads alerts.{node.attr}")
