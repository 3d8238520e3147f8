"""Imports only point down the layering (design/layout.md): appliance -> recorder -> hal -> base,
appliance -> drivers -> hal -> base; and inside the appliance, its parts stay apart."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = {
    "base": set(),
    "hal": {"base"},
    "drivers": {"hal", "base"},
    "recorder": {"hal", "base"},
    "appliance": {"hal", "drivers", "recorder", "base"},
}


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_layers_below_it(package):
    wrong = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = _imported_packages(path) - ALLOWED[package] - {package}
        if bad:
            wrong[str(path.relative_to(ROOT))] = sorted(bad)
    assert not wrong, f"imports against the layering: {wrong}"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


# Parts of the appliance that must not know each other: the web UI and the HDMI monitor are two faces
# over the same recorder, and either one failing or being left out must not touch the other.
APART = [("appliance/web", "appliance.monitor"), ("appliance/monitor", "appliance.web")]


@pytest.mark.parametrize(("folder", "forbidden"), APART)
def test_parts_of_the_appliance_that_stay_apart_do_not_import_each_other(folder, forbidden):
    wrong = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        bad = sorted(m for m in _imported_modules(path) if m == forbidden or m.startswith(forbidden + "."))
        if bad:
            wrong[str(path.relative_to(ROOT))] = bad
    assert not wrong, f"{folder} imports {forbidden}: {wrong}"
