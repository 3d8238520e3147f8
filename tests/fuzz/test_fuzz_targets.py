"""The fuzz targets in CI: every seed and every recorded crasher replayed, then a short coverage-guided run.

- The seed corpus (tests/fuzz/corpus/TARGET) and the crashers found so far (tests/fuzz/crashers/TARGET)
  are replayed in this process: each must satisfy its target's contract. A crasher whose bug is not
  fixed yet is listed in KNOWN with the reason, and expected to fail (strictly: once the fix lands, the
  test says so and the entry goes). Hangs are replayed in a child process with a time limit.
- Each target then runs under atheris for a fixed number of inputs with a fixed seed (`FUZZ_RUNS`):
  a fixed amount of work rather than a time budget, so a loaded machine makes it slower, never
  different. It steps over KNOWN's findings (they are proven by their replays above) and fails with
  libFuzzer's report on any other. The long runs are `./dev fuzz TARGET` and `./dev bench fuzz`.
"""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ_DIR = Path(__file__).resolve().parent
ROOT = FUZZ_DIR.parents[1]
FUZZ_RUNS = 4000  # inputs per target in CI, after the seeds
HANG_LIMIT_S = 20.0  # a known hang is replayed in a child for this long (the contract allows far less)


def _load(name: str, filename: str):
    spec = importlib.util.spec_from_file_location(name, FUZZ_DIR / filename)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


targets = _load("nvr_fuzz_targets", "targets.py")
known = _load("nvr_fuzz_known", "known.py")


def _replays():
    for name in targets.TARGETS:
        for path in targets.corpus_files(name):
            finding = known.KNOWN.get(f"{name}/{path.name}")
            marks = [pytest.mark.xfail(strict=True, reason=finding.reason)] if finding else []
            yield pytest.param(name, path, id=f"{path.parent.parent.name}/{name}/{path.name}", marks=marks)


@pytest.mark.parametrize(("name", "path"), list(_replays()))
def test_seed_or_crasher_satisfies_the_target_contract(name, path):
    finding = known.KNOWN.get(f"{name}/{path.name}")
    if finding is not None and finding.hang:
        _replay_in_child(name, path)
    else:
        targets.TARGETS[name].run(path.read_bytes())


def _replay_in_child(name: str, path: Path) -> None:
    code = ("import importlib.util, sys; "
            f"spec = importlib.util.spec_from_file_location('t', {str(FUZZ_DIR / 'targets.py')!r}); "
            "t = importlib.util.module_from_spec(spec); spec.loader.exec_module(t); "
            f"t.TARGETS[{name!r}].run(open({str(path)!r}, 'rb').read())")
    try:
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                              timeout=HANG_LIMIT_S, env=_env())
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{name} still runs after {HANG_LIMIT_S:g} s on {path.name}") from None
    assert done.returncode == 0, done.stderr[-2000:]


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


atheris_missing = importlib.util.find_spec("atheris") is None


@pytest.mark.skipif(atheris_missing, reason="atheris is not installed (pip install -e '.[test]')")
@pytest.mark.parametrize("name", list(targets.TARGETS))
def test_a_short_fuzzing_run_finds_nothing(name, tmp_path):
    done = subprocess.run([sys.executable, str(FUZZ_DIR / "run.py"), name, "--runs", str(FUZZ_RUNS), "--seed", "1",
                           "--work", str(tmp_path), "--skip-known"], cwd=ROOT, capture_output=True, text=True, env=_env(),
                          timeout=600)
    if done.returncode == 0:
        assert re.search(r"^#\d+\s+DONE\s", done.stderr, re.M), done.stderr[-2000:]
        return
    report = done.stderr[-4000:]
    artifacts = sorted(p.name for p in (tmp_path / "artifacts").glob("*"))
    pytest.fail(f"{name}: libFuzzer found an input that breaks the contract ({artifacts}); add it to "
                f"tests/fuzz/crashers/{name}/ and fix it:\n{report}")
