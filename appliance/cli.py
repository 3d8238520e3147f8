"""The `nvr` command: run the appliance, check a config, list recordings, export a clip, list devices."""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from appliance.config import Config, ConfigError, default_config, load_config
from appliance.recordings import recording_dicts, recordings_table
from appliance.timefmt import iso_utc, parse_time
from appliance.version import appliance_version
from hal.clock import RealClocks
from recorder.errors import ExportError, RecorderError
from recorder.export import export
from recorder.index import Index

SYSTEM_CONFIG = Path("/etc/nvr/nvr.yaml")
EXIT_USAGE = 2
log = logging.getLogger("nvr")


class UserError(Exception):
    """Something the person at the command line can fix; printed without a traceback, exit 2."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return args.handler(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) in the config; nothing was started.", file=sys.stderr)
        return EXIT_USAGE
    except (UserError, ExportError, FileNotFoundError) as exc:
        print(f"nvr: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (RecorderError, OSError) as exc:
        print(f"nvr: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nvr", description="Hybrid DVR/NVR recorder appliance.")
    parser.add_argument("--version", action="version", version=f"nvr {appliance_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="record every configured channel and serve the status page")
    _config_args(run)
    run.add_argument("--listen", metavar="HOST:PORT", help="serve the web page here instead of web.listen")
    run.set_defaults(handler=_cmd_run)

    check = sub.add_parser("check-config", help="validate a config file; exit 2 listing every problem")
    check.add_argument("file", type=Path)
    check.set_defaults(handler=_cmd_check_config)

    rec = sub.add_parser("recordings", help="list indexed segments")
    _config_args(rec)
    rec.add_argument("--channel", type=int, metavar="N")
    rec.add_argument("--stream", choices=("main", "sub"))
    rec.add_argument("--json", action="store_true", help="print one JSON array")
    rec.set_defaults(handler=_cmd_recordings)

    exp = sub.add_parser("export", help="remux a time range of one channel into a single MP4 (no re-encode)")
    _config_args(exp)
    exp.add_argument("--channel", type=int, required=True, metavar="N")
    exp.add_argument("--stream", choices=("main", "sub"), default="main")
    exp.add_argument("--start", required=True, metavar="T", help="ISO 8601 (with Z or an offset; none = local time), 'now' or -5m")
    exp.add_argument("--end", required=True, metavar="T")
    exp.add_argument("out", type=Path, metavar="OUT.mp4")
    exp.set_defaults(handler=_cmd_export)

    dev = sub.add_parser("devices", help="list video capture devices, serial ports and audio inputs for the config")
    dev.add_argument("--json", action="store_true", help="print one JSON object")
    dev.set_defaults(handler=_cmd_devices)
    return parser


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help=f"config file (default: {SYSTEM_CONFIG} if it exists, else the embedded default)")
    parser.add_argument("--data", type=Path, metavar="DIR", help="data folder, instead of storage.path")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")


def _load(args: argparse.Namespace) -> Config:
    if args.config is not None:
        config = load_config(args.config)
    elif SYSTEM_CONFIG.exists():
        config = load_config(SYSTEM_CONFIG)
    else:
        config = default_config()
    if getattr(args, "data", None) is not None:
        config.storage.path = args.data.expanduser().resolve()
    return config


# commands


def _cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    print(f"{args.file}: OK ({len(config.channels)} channel(s), recording to {config.storage.path})")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from appliance.config import split_host_port
    from appliance.supervisor import DataRootBusy, Supervisor
    from appliance.systemd import start_service_integration
    from appliance.web import WebServer, create_app

    config = _load(args)
    try:
        host, port = split_host_port(args.listen) if args.listen else (config.web.host, config.web.port)
    except ValueError as exc:
        raise UserError(f"--listen: {exc}") from None
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    supervisor = Supervisor(config, clocks=RealClocks())
    try:
        supervisor.start()
    except DataRootBusy as exc:  # a runtime refusal, not a bug: say so without a traceback
        print(f"nvr: {exc}", file=sys.stderr)
        return 1
    web = WebServer(create_app(supervisor), host=host, port=port)
    web.start()
    log.info("status page on %s (config: %s)", web.address, config.source_name)
    service = start_service_integration(supervisor)  # READY=1 and watchdog pings under systemd
    try:
        stop.wait()
    finally:
        log.info("stopping")
        service.stop()
        web.stop()
        supervisor.stop()
    return 0


def _open_index(config: Config) -> Index:
    root = config.storage.path
    if not (root / "index.sqlite3").exists():
        raise UserError(f"nothing has been recorded under {root} (no index there); give --data or --config")
    return Index(root, create=False)


def _cmd_recordings(args: argparse.Namespace) -> int:
    config = _load(args)
    index = _open_index(config)
    try:
        rows = recording_dicts(index, config.storage.path, channel=args.channel, stream=args.stream)
    finally:
        index.close()
    print(json.dumps(rows, indent=1) if args.json else recordings_table(rows))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    config = _load(args)
    now = RealClocks().utc_now_us()
    try:
        start_us, end_us = parse_time(args.start, now_us=now), parse_time(args.end, now_us=now)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if not args.out.parent.exists():
        raise UserError(f"the folder {args.out.parent} does not exist")
    index = _open_index(config)
    bar = _ProgressBar() if sys.stderr.isatty() else None
    try:
        result = export(index, config.storage.path, channel=args.channel, stream=args.stream, start_us=start_us,
                        end_us=end_us, out=args.out, progress=bar)
    finally:
        index.close()
        if bar:
            bar.done()
    gaps = f", {result.gaps} gap(s) closed up" if result.gaps else ""
    print(f"wrote {result.path}: {result.frames} frames, {result.bytes / 1e6:.1f} MB, "
          f"{iso_utc(result.start_us)} to {iso_utc(result.end_us)}{gaps}")
    return 0


def _cmd_devices(args: argparse.Namespace) -> int:
    from hal.devices import devices_text, list_devices

    report = list_devices()
    print(json.dumps(report, indent=1) if args.json else devices_text(report))
    return 0


class _ProgressBar:
    """A one-line progress bar on standard error, for a terminal."""

    def __init__(self, width: int = 40):
        self._width = width

    def __call__(self, done: int, total: int) -> None:
        filled = self._width * done // max(total, 1)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (self._width - filled)}] {100 * done // max(total, 1):3d}% "
                         f"{done / 1e6:.1f}/{total / 1e6:.1f} MB")
        sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\n")


if __name__ == "__main__":
    sys.exit(main())
