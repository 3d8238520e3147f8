"""Run one fuzz target under atheris (coverage-guided, libFuzzer inside): `./dev fuzz TARGET [--seconds N]`.

    python tests/fuzz/run.py TARGET [--seconds N | --runs N] [--work DIR] [--seed N] [-- libFuzzer options]

The committed seed corpus (tests/fuzz/corpus/TARGET) is read; new inputs go to DIR/corpus (default
/tmp/nvr-fuzz/TARGET) so the tree is not written to. A finding stops the run: libFuzzer writes the input
to DIR/artifacts/ (crash-*, timeout-*, oom-*) and prints the traceback; make it a regression test in
tests/fuzz/crashers/TARGET/ (see tests/fuzz/README.md). Only the target's own modules are instrumented,
so `cov:` counts edges in the parser, not in the standard library. Exit status 0 means no finding.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parent
ROOT = FUZZ_DIR.parents[1]
TIMEOUT_S = 10  # an input that takes longer is a finding (a hang or a super-linear parser)
RSS_LIMIT_MB = 1024  # the process may grow this far before the input is reported as out-of-memory


def load(name: str, filename: str):
    """A module of this folder, loaded by path (the folder is no package, so that it can move)."""
    spec = importlib.util.spec_from_file_location(name, FUZZ_DIR / filename)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def load_targets():
    return load("nvr_fuzz_targets", "targets.py")


def libfuzzer_args(target, *, seconds: float | None, runs: int | None, work: Path, seed: int | None) -> list[str]:
    (work / "corpus").mkdir(parents=True, exist_ok=True)
    (work / "artifacts").mkdir(parents=True, exist_ok=True)
    args = [f"-max_len={target.max_len}", f"-timeout={TIMEOUT_S}", f"-rss_limit_mb={RSS_LIMIT_MB}",
            f"-artifact_prefix={work / 'artifacts'}/", "-print_final_stats=1"]
    if seconds is not None:
        args.append(f"-max_total_time={int(seconds)}")
    if runs is not None:
        args.append(f"-runs={runs}")
    if seed is not None:
        args.append(f"-seed={seed}")
    seeds = FUZZ_DIR / "corpus" / target.name
    return args + [str(work / "corpus")] + ([str(seeds)] if seeds.is_dir() else [])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1:]
    targets = load_targets()
    parser = argparse.ArgumentParser(prog="./dev fuzz", description="Run one fuzz target under atheris.")
    parser.add_argument("target", choices=sorted(targets.TARGETS))
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--seconds", type=float, help="stop after this long (default 60)")
    budget.add_argument("--runs", type=int, help="stop after this many inputs (a fixed amount of work)")
    parser.add_argument("--work", type=Path, help="where new corpus inputs and findings go (default /tmp/nvr-fuzz/TARGET)")
    parser.add_argument("--seed", type=int, help="libFuzzer's random seed (fixed: a repeatable run)")
    parser.add_argument("--skip-known", action="store_true",
                        help="step over the known findings of tests/fuzz/known.py (to look for new ones)")
    options = parser.parse_args(argv)
    if options.seconds is None and options.runs is None:
        options.seconds = 60
    try:
        import atheris
    except ImportError:
        print("fuzz: atheris is not installed (it is in the test extras: ./dev test installs it)", file=sys.stderr)
        return 2
    target = targets.TARGETS[options.target]
    work = options.work or Path("/tmp/nvr-fuzz") / target.name
    sys.path.insert(0, str(ROOT))
    with atheris.instrument_imports(include=list(target.modules)):
        for name in target.modules:
            importlib.import_module(name)
    args = libfuzzer_args(target, seconds=options.seconds, runs=options.runs, work=work, seed=options.seed)
    run = target.run
    if options.skip_known:
        run = load("nvr_fuzz_known", "known.py").skipping_known(target.name, run)
    atheris.Setup([sys.argv[0], *args, *extra], run)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
