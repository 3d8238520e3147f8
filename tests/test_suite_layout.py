"""The test tree's own rule: test files are imported by basename (`--import-mode=append`, no packages), so
two files of one name in different folders make pytest refuse the second ("import file mismatch"), which
also breaks the vivid VM's collect-only run of the whole tree."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_every_test_file_has_a_name_of_its_own():
    folders = defaultdict(list)
    for path in TESTS.rglob("test_*.py"):
        folders[path.name].append(str(path.parent.relative_to(TESTS)))
    assert {name: where for name, where in folders.items() if len(where) > 1} == {}
