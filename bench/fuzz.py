"""bench/fuzz: every fuzz target under atheris for a fixed time; a Markdown table of what the fuzzing did.

    ./dev bench fuzz [--seconds-per-target 600] [--targets rtsp_stream,sdp,...] [--jobs 1] [--work DIR]

Each target (tests/fuzz/targets.py) runs in its own process (tests/fuzz/run.py), starting from the
committed seed corpus, with the known findings of tests/fuzz/known.py stepped over so that the time goes
to looking for new ones. A finding stops libFuzzer; the run is then restarted on the grown corpus for
the time left (at most MAX_RESTARTS times), and the finding is kept in WORK/TARGET/artifacts/.

Columns: executions (all restarts together) and executions per second of fuzzing; `cov` (edges of the
target's own modules that some input reached: only those modules are instrumented) and `ft` (libFuzzer's
features: edges with hit counts), from the last run's final report; the corpus libFuzzer kept (inputs,
bytes; the seeds included); findings: crashes, hangs (timeout-*) and out-of-memory inputs, distinct by
the exception and the project line it came from, and how many known findings were stepped over.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import print_table  # noqa: E402

RUNNER = ROOT / "tests" / "fuzz" / "run.py"
MAX_RESTARTS = 20  # after this many findings in one target, its time is not worth spending on it
MIN_RUN_S = 5  # time left below which no restart is made


@dataclass
class Outcome:
    target: str
    seconds: float = 0.0
    executions: int = 0
    cov: int = 0
    ft: int = 0
    corpus_inputs: int = 0
    corpus_bytes: int = 0
    runs: int = 0
    findings: dict[str, str] = field(default_factory=dict)  # signature -> artifact path

    @property
    def exec_per_s(self) -> float:
        return self.executions / self.seconds if self.seconds else 0.0


def _signature(report: str, artifact: str) -> str:
    """What makes a finding distinct: the exception line and the innermost project frame, or the kind."""
    kind = Path(artifact).name.split("-", 1)[0]
    if kind != "crash":
        return kind  # timeout / oom / slow-unit: one per target is all a bench can tell apart
    exception = re.findall(r"^(\w+(?:Error|Exception|Exit)\b.*)$", report, re.M)
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\w+)', report)
    project = [f for f in frames if "/tests/fuzz/" not in f[0] and "site-packages" not in f[0]]
    where = f"{Path(project[-1][0]).name}:{project[-1][1]} {project[-1][2]}" if project else "the target's assertion"
    return f"{(exception[-1] if exception else 'crash')[:90]} at {where}"


def run_target(target: str, seconds: float, work: Path) -> Outcome:
    outcome = Outcome(target)
    work.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + seconds
    while outcome.runs <= MAX_RESTARTS:
        left = deadline - time.monotonic()
        if left < MIN_RUN_S:
            break
        before = {p.name for p in (work / "artifacts").glob("*")} if (work / "artifacts").exists() else set()
        started = time.monotonic()
        done = subprocess.run([sys.executable, str(RUNNER), target, "--seconds", str(int(left)), "--work", str(work),
                               "--skip-known"], cwd=ROOT, capture_output=True, text=True,
                              env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
        outcome.seconds += time.monotonic() - started
        outcome.runs += 1
        log = done.stderr
        executed = re.findall(r"stat::number_of_executed_units:\s+(\d+)", log)
        outcome.executions += int(executed[-1]) if executed else max(
            [int(n) for n in re.findall(r"^#(\d+)\s", log, re.M)] or [0])
        progress = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)/(\d+)(b|Kb|Mb)", log)
        if progress:
            cov, ft, inputs, size, unit = progress[-1]
            outcome.cov, outcome.ft = max(outcome.cov, int(cov)), max(outcome.ft, int(ft))
            outcome.corpus_inputs = int(inputs)
            outcome.corpus_bytes = int(size) * {"b": 1, "Kb": 1024, "Mb": 1024 * 1024}[unit]
        new = sorted({p.name for p in (work / "artifacts").glob("*")} - before)
        for name in new:
            outcome.findings.setdefault(_signature(log, name), str(work / "artifacts" / name))
        if done.returncode == 0 or not new:
            if done.returncode not in (0,) and not new:
                outcome.findings.setdefault(f"runner exited {done.returncode}: {log.strip().splitlines()[-1:]}", "")
            break
    return outcome


def _size(count: int) -> str:
    return f"{count} B" if count < 10 * 1024 else f"{count // 1024} KiB"


def main() -> int:
    sys.path.insert(0, str(ROOT / "tests" / "fuzz"))
    import known  # noqa: E402  (tests/fuzz is no package)
    import targets as fuzz_targets  # noqa: E402

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds-per-target", type=float, default=600)
    parser.add_argument("--targets", default=",".join(fuzz_targets.TARGETS),
                        help="comma-separated, from: " + ", ".join(fuzz_targets.TARGETS))
    parser.add_argument("--jobs", type=int, default=1, help="targets fuzzed at once (one core each)")
    parser.add_argument("--work", type=Path, help="where corpora and findings go (default: a new temporary folder)")
    options = parser.parse_args()
    names = [n for n in options.targets.split(",") if n]
    unknown = sorted(set(names) - set(fuzz_targets.TARGETS))
    if unknown:
        parser.error(f"unknown targets {unknown}")
    work = options.work or Path(tempfile.mkdtemp(prefix="nvr-bench-fuzz-"))
    print(f"fuzzing {len(names)} targets for {options.seconds_per_target:g} s each, {options.jobs} at a time; "
          f"corpora and findings in {work}", flush=True)
    with ThreadPoolExecutor(options.jobs) as pool:
        outcomes = list(pool.map(lambda n: run_target(n, options.seconds_per_target, work / n), names))
    rows = []
    for o in outcomes:
        rows.append([o.target, f"{o.seconds:.0f}", o.executions, f"{o.exec_per_s:.0f}", o.cov, o.ft,
                     f"{o.corpus_inputs} / {_size(o.corpus_bytes)}", len(o.findings),
                     len(known.for_target(o.target)), o.runs])
    print_table(f"bench/fuzz: atheris {options.seconds_per_target:g} s per target, {options.jobs} at a time",
                ["target", "s", "execs", "execs/s", "cov", "ft", "corpus", "new findings", "known (skipped)", "runs"],
                rows)
    findings = [(o.target, signature, path) for o in outcomes for signature, path in o.findings.items()]
    if findings:
        print("\nNew findings (add each to tests/fuzz/crashers/TARGET/ as a regression test):\n")
        for target, signature, path in findings:
            print(f"- {target}: {signature}  ({path})")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
