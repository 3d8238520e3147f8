"""What ships is what is tested: the wheel the image installs carries every module of the tree and runs.

The SD image installs the appliance from a wheel (never editable), so a module or a data file that the
wheel leaves out is missing on every box while the work-tree tests pass. This test builds the wheel from
the tree, installs it without `-e` into a fresh virtualenv, and runs it from there.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import urllib.request
import zipfile
from pathlib import Path

import pytest
from support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("base", "hal", "drivers", "recorder", "appliance")


def _tree_modules() -> list[str]:
    """Every importable module of the four packages in the work tree, as dotted names."""
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Path:
    """A fresh venv with the tree's wheel installed non-editable; the dependencies come from this venv.

    The dependencies (PyAV, numpy, OpenCV, ...) are taken from the running venv through a `.pth` line so
    the test needs no download; a plain path line in a `.pth` does not run that folder's own `.pth`
    files, so the running venv's editable hook never reaches the fresh one.
    """
    work = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools would otherwise reuse the tree's build/ folder, whose stale files
    # can hide a module the packaging config leaves out.
    source = shutil.copytree(ROOT, work / "src", ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "nvr-data", "test-artifacts"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(work / "dist"), str(source)], check=True, cwd=work)
    wheel = next((work / "dist").glob("nvr_appliance-*.whl"))
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(subprocess.check_output(
        [venv / "bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    (site / "deps-from-test-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, cwd=work)
    return venv


def _run(venv: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """Run in the fresh venv from a folder outside the tree, so nothing can import the work tree."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(args, input=stdin, capture_output=True, text=True, env=env, cwd=venv, timeout=120)


def test_the_installed_wheel_imports_every_module_of_the_tree_from_itself(wheel_venv):
    modules = _tree_modules()
    probe = ("import importlib, sys\n"
             "bad = []\n"
             "for name in sys.argv[1:]:\n"
             "    try:\n"
             "        mod = importlib.import_module(name)\n"
             "        if '/site-packages/' not in (mod.__file__ or ''):\n"
             "            bad.append(f'{name}: imported from {mod.__file__}')\n"
             "    except Exception as exc:\n"
             "        bad.append(f'{name}: {type(exc).__name__}: {exc}')\n"
             "print('\\n'.join(bad))\n")
    out = _run(wheel_venv, str(wheel_venv / "bin/python"), "-c", probe, *modules)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"modules the installed wheel cannot import:\n{out.stdout}"
    assert len(modules) > 100


def test_the_wheel_carries_the_web_ui_and_the_default_config(wheel_venv):
    wheel = next(wheel_venv.parent.glob("dist/*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    static = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("appliance/**/static/*") if p.is_file())
    assert static, "the web UI's static files were not found in the tree"
    missing = [name for name in static + ["appliance/default.yaml"] if name not in names]
    assert not missing, f"data files left out of the wheel: {missing}"


def test_nvr_from_the_wheel_reports_its_version_and_checks_the_shipped_default(wheel_venv):
    nvr = str(wheel_venv / "bin/nvr")
    version = _run(wheel_venv, nvr, "--version")
    assert version.returncode == 0 and version.stdout.startswith("nvr "), version.stderr
    default = _run(wheel_venv, str(wheel_venv / "bin/python"), "-c",
                   "from importlib import resources; print(resources.files('appliance').joinpath('default.yaml'))")
    checked = _run(wheel_venv, nvr, "check-config", default.stdout.strip())
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_nvr_hash_pin_from_the_wheel_prints_a_pin_hash_line(wheel_venv):
    out = _run(wheel_venv, str(wheel_venv / "bin/nvr"), "hash-pin", stdin="4711\n")
    assert out.returncode == 0, out.stderr
    assert "pin_hash" in out.stdout and "scrypt" in out.stdout


def test_nvr_run_from_the_wheel_records_the_embedded_default_and_serves_the_web_ui(wheel_venv, tmp_path):
    """The shipped wheel, not the tree, runs the appliance: a simulated channel records, the UI is served,
    and a SIGTERM closes and indexes the open segment."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.Popen([str(wheel_venv / "bin/nvr"), "run", "--data", str(tmp_path / "data"),
                             "--listen", f"127.0.0.1:{port}"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        def recording() -> dict | None:
            if proc.poll() is not None:
                pytest.fail(f"nvr run from the wheel exited {proc.returncode}: {proc.stderr.read()[-2000:]}")
            ping = _get_json(f"{base}/api/ping")
            return ping if ping and ping["recording"] >= 1 else None

        ping = wait_for(recording, timeout_s=60, what="nvr run from the wheel to record")
        assert ping["setup_required"] is True  # no default password
        assert b"<html" in _get(f"{base}/").lower()
        assert _get(f"{base}/static/app.js")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    listed = _run(wheel_venv, str(wheel_venv / "bin/nvr"), "recordings", "--data", str(tmp_path / "data"), "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout), "no segment was indexed after the SIGTERM"


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.read()


def _get_json(url: str) -> dict | None:
    try:
        return json.loads(_get(url))
    except OSError:
        return None
