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
    """Every module a file imports by absolute name; `from a import b` counts as `a` and `a.b`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


# Parts of the appliance that must not know each other: the web UI and the HDMI monitor are two faces
# over the same recorder, and either one failing or being left out must not touch the other.
APART = [("appliance/web", "appliance.monitor"), ("appliance/monitor", "appliance.web")]
# Neither face sees the supervisor, nor the Appliance that assembles them: each reads and drives the
# running appliance only through its own narrow protocols (appliance/web/views.py,
# appliance.monitor.MonitorSources), which the Appliance meets.
NARROW = [(face, hidden) for face in ("appliance/web", "appliance/monitor")
          for hidden in ("appliance.supervisor", "appliance.app")]


def _imports_of(folder: str, forbidden: str) -> dict[str, list[str]]:
    wrong = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        bad = sorted(m for m in _imported_modules(path) if m == forbidden or m.startswith(forbidden + "."))
        if bad:
            wrong[str(path.relative_to(ROOT))] = bad
    return wrong


@pytest.mark.parametrize(("folder", "forbidden"), APART)
def test_parts_of_the_appliance_that_stay_apart_do_not_import_each_other(folder, forbidden):
    wrong = _imports_of(folder, forbidden)
    assert not wrong, f"{folder} imports {forbidden}: {wrong}"


@pytest.mark.parametrize(("folder", "forbidden"), NARROW)
def test_the_web_and_the_monitor_see_the_appliance_only_through_their_own_protocols(folder, forbidden):
    wrong = _imports_of(folder, forbidden)
    assert not wrong, f"{folder} imports {forbidden}; give it what it needs through its protocol instead: {wrong}"


def test_the_layering_check_sees_an_import_of_the_supervisor_in_any_form(tmp_path):
    source = tmp_path / "route.py"
    source.write_text("from appliance import supervisor\nimport appliance.app as a\n")
    assert {"appliance.supervisor", "appliance.app"} <= _imported_modules(source)
