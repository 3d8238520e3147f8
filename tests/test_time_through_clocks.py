"""Time reaches the appliance only through the injected clocks (base/clock.py): no module of base, hal,
drivers, recorder or appliance reads the wall or monotonic clock or sleeps by itself, so every timeout,
backoff and pacing can be driven by `SimulatedClocks` in a test. bench/ and tests/ may use real time.

What stays allowed, because it is not a clock of the appliance: CPU-cost measurement
(`perf_counter`, `process_time`, `thread_time`) and the kernel's own clock for its timestamps
(`clock_gettime`), see base/clock.py."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("base", "hal", "drivers", "recorder", "appliance")
CLOCK_MODULE = "base/clock.py"
FORBIDDEN = {"monotonic", "monotonic_ns", "time", "time_ns", "sleep"}


def raw_time_uses(source: str, filename: str = "<source>") -> list[str]:
    """`line: what` for each use of a forbidden `time` function in `source`: attribute reads off the
    module (called or passed on, under any alias) and `from time import ...` of them."""
    tree = ast.parse(source, filename=filename)
    aliases = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names if alias.name == "time"}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "time" and node.level == 0:
            found += [f"{node.lineno}: from time import {alias.name}" for alias in node.names
                      if alias.name in FORBIDDEN or alias.name == "*"]
        elif (isinstance(node, ast.Attribute) and node.attr in FORBIDDEN and isinstance(node.value, ast.Name)
              and node.value.id in aliases):
            found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_reads_the_clock_or_sleeps_except_through_the_injected_clocks(package):
    wrong = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        name = str(path.relative_to(ROOT))
        if name != CLOCK_MODULE and (uses := raw_time_uses(path.read_text(), name)):
            wrong[name] = uses
    assert not wrong, f"direct clock reads or sleeps; take a `clocks: Clocks` (base.clock) instead: {wrong}"


@pytest.mark.parametrize("source", [
    "import time\nt = time.monotonic()",
    "import time as t\nt.sleep(1)",
    "import time\ndef f(now=time.time): ...",
    "import time\nx = time.monotonic_ns() + time.time_ns()",
    "from time import sleep",
    "from time import monotonic as now",
    "from time import *",
])
def test_the_check_sees_calls_references_aliases_and_imports(source):
    assert raw_time_uses(source)


@pytest.mark.parametrize("source", [
    "import time\nstarted = time.perf_counter(); cpu = time.process_time() + time.thread_time()",
    "import time\nkernel_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000",
    "from datetime import time\nt = time(12, 0)",
    "def f(clocks):\n    clocks.sleep(1); return clocks.monotonic_us()",
])
def test_the_check_lets_cpu_time_kernel_timestamps_and_the_injected_clocks_be(source):
    assert raw_time_uses(source) == []
