"""Every vendored static file is listed beside it with its version, upstream and licence file;
the project's own licence is the one pyproject declares."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "web" / "static" / "vendor"


def _rows() -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in (VENDOR / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells
    return rows


def test_each_vendored_file_names_its_licence_file() -> None:
    rows = _rows()
    licences = {p.name for p in VENDOR.iterdir() if "LICENSE" in p.name}
    shipped = {p.name for p in VENDOR.iterdir()} - licences - {"README.md"}
    assert shipped, "nothing vendored?"
    assert set(rows) == shipped
    for name, (_, version, upstream, licence, files) in rows.items():
        assert version.split()[0] in name, name  # the file name carries its version
        assert upstream.startswith("["), name
        assert licence, name
        named = set(re.findall(r"`([^`]+)`", files))
        assert named, name
        assert named <= licences, name


def test_licence_file_is_the_apache_2_text_pyproject_declares() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert declared["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text
    assert "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert "APPENDIX: How to apply the Apache License to your work." in text
