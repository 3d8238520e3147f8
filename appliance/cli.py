"""The `nvr` command: run the appliance, check a config, list recordings, export a clip, list disks and devices,
find ONVIF cameras."""
from __future__ import annotations

import argparse
import getpass
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from appliance.config.model import Config, ConfigError, default_config, load_config
from appliance.presentation import recording_dicts, recordings_table
from appliance.presentation import iso_utc, parse_time
from appliance.version import appliance_version
from base.clock import RealClocks
from recorder.errors import ExportError, RecorderError
from recorder.export import export
from recorder.index import Index

SYSTEM_CONFIG = Path("/etc/nvr/nvr.yaml")
EXIT_USAGE = 2
EXIT_RESTART = 75  # EX_TEMPFAIL: `nvr run` wants to be started again (the recordings disk came or went)
log = logging.getLogger("nvr")


class UsageError(Exception):
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
    except (UsageError, ExportError, FileNotFoundError) as exc:
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

    events = sub.add_parser("events", help="list alarm and motion events, newest first")
    _config_args(events)
    events.add_argument("--channel", type=int, metavar="N")
    events.add_argument("--limit", type=int, default=100, metavar="N")
    events.add_argument("--json", action="store_true", help="print one JSON array")
    events.set_defaults(handler=_cmd_events)

    exp = sub.add_parser("export", help="remux a time range of one channel into a single MP4 (no re-encode)")
    _config_args(exp)
    exp.add_argument("--channel", type=int, required=True, metavar="N")
    exp.add_argument("--stream", choices=("main", "sub"), default="main")
    exp.add_argument("--start", required=True, metavar="T", help="ISO 8601 (with Z or an offset; none = local time), 'now' or -5m")
    exp.add_argument("--end", required=True, metavar="T")
    exp.add_argument("out", type=Path, metavar="OUT.mp4")
    exp.set_defaults(handler=_cmd_export)

    _account_parsers(sub, "user", "manage web users: add NAME --role R (password on standard input), list, remove NAME",
                     roles=("admin", "operator", "viewer"),
                     add=("add a user, or set an existing one's password and role; reads the password from stdin",
                          _cmd_user_add),
                     ls=("list users and roles", _cmd_user_list), rm=("remove a user", _cmd_user_remove))
    _account_parsers(sub, "onvif-user", "manage integration accounts (Home Assistant, a VMS): ONVIF and RTSP logins "
                                        "whose passwords the box keeps recoverable for ONVIF PasswordDigest",
                     roles=("viewer", "operator"),
                     add=("add an account, or set an existing one's password and role; reads the password from "
                          "stdin", _cmd_onvif_user_add),
                     ls=("list integration accounts and roles (never their passwords)", _cmd_onvif_user_list),
                     rm=("remove an integration account", _cmd_onvif_user_remove))

    disks = sub.add_parser("disks", help="list the disks: model, serial, size, S.M.A.R.T. health, temperature, role, "
                                         "free space and how many days of recordings each holds")
    _config_args(disks)
    disks.add_argument("--json", action="store_true", help="print one JSON object")
    disks.set_defaults(handler=_cmd_disks)
    disks_sub = disks.add_subparsers(dest="disks_action", metavar="ACTION")
    init = disks_sub.add_parser("init", help="make a blank disk a recordings disk: ext4, a label, an identity file "
                                             "(refuses a disk with anything on it unless its serial is confirmed)")
    _config_args(init)
    init.add_argument("device", metavar="DEVICE", help="the whole disk, e.g. /dev/sdb")
    init.add_argument("--label", required=True, help="its name (also the filesystem label, up to 16 characters)")
    init.add_argument("--confirm-serial", metavar="SERIAL",
                      help="the disk's serial number: needed to erase a disk that is not blank")
    init.set_defaults(handler=_cmd_disks_init)

    dev = sub.add_parser("devices", help="list video capture devices, serial ports and audio inputs for the config")
    dev.add_argument("--json", action="store_true", help="print one JSON object")
    dev.set_defaults(handler=_cmd_devices)

    from appliance.ptz.cli import ACTIONS as PTZ_ACTIONS
    ptz = sub.add_parser("ptz", help="send one PTZ command straight to a channel's dome (checking the wiring)")
    _config_args(ptz)
    ptz.add_argument("--channel", type=int, required=True, metavar="N")
    ptz.add_argument("--speed", type=int, default=0x20, metavar="0-63", help="pan/tilt speed (default 32)")
    ptz.add_argument("--for", dest="for_s", type=float, metavar="SECONDS", help="with a move: send Stop after this long")
    ptz.add_argument("action", choices=PTZ_ACTIONS, metavar="ACTION", help=" ".join(PTZ_ACTIONS))
    ptz.add_argument("arg", nargs="?", metavar="ARG", help="preset number (1-255) or tour name")
    ptz.set_defaults(handler=_cmd_ptz)
    mqtt = sub.add_parser("mqtt", help="MQTT: `nvr mqtt test` connects to the broker and prints what would be published")
    mqtt_sub = mqtt.add_subparsers(dest="mqtt_command", required=True, metavar="ACTION")
    mqtt_test = mqtt_sub.add_parser("test", help="print discovery configs and states, then connect once and report")
    _config_args(mqtt_test)
    mqtt_test.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")
    mqtt_test.set_defaults(handler=_cmd_mqtt_test)
    disc = sub.add_parser("discover", help="list the ONVIF cameras on the LAN (WS-Discovery); with --user, also "
                                           "their profiles and stream URIs")
    disc.add_argument("--json", action="store_true", help="print one JSON array")
    disc.add_argument("--timeout", type=float, default=3.0, metavar="SECONDS", help="how long to wait for answers")
    disc.add_argument("--interface", metavar="IP", help="probe from the network interface with this address")
    disc.add_argument("--user", metavar="NAME", help="ONVIF user: also read each camera's profiles and stream URIs")
    disc.add_argument("--password", metavar="PASSWORD",
                      help="the ONVIF user's password (default: read from standard input)")
    disc.set_defaults(handler=_cmd_discover)
    pin = sub.add_parser("hash-pin", help="make monitor.pin_hash from a PIN typed at the prompt (or on stdin)")
    pin.set_defaults(handler=_cmd_hash_pin)
    return parser


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help=f"config file (default: {SYSTEM_CONFIG} if it exists, else the embedded default)")
    parser.add_argument("--data", type=Path, metavar="DIR", help="data folder, instead of storage.path")


def _account_parsers(sub, command: str, help_text: str, *, roles: tuple[str, ...], add: tuple[str, Callable],
                     ls: tuple[str, Callable], rm: tuple[str, Callable]) -> None:
    """`nvr COMMAND add NAME --role R | list | remove NAME`: one shape for every kind of account. Each pair is
    (help, handler)."""
    parser = sub.add_parser(command, help=help_text)
    actions = parser.add_subparsers(dest=f"{command.replace('-', '_')}_command", required=True, metavar="ACTION")
    for action, (action_help, handler) in (("add", add), ("list", ls), ("remove", rm)):
        one = actions.add_parser(action, help=action_help)
        if action != "list":
            one.add_argument("name")
        if action == "add":
            one.add_argument("--role", choices=roles, required=True)
        _config_args(one)
        one.set_defaults(handler=handler)


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
    from appliance.app import Appliance, DataRootBusy
    from appliance.config.listen import split_host_port

    config = _load(args)
    try:
        listen = split_host_port(args.listen) if args.listen else (config.web.host, config.web.port)
    except ValueError as exc:
        raise UsageError(f"--listen: {exc}") from None
    try:
        tls_cert, tls_key = _tls_files(config)  # before anything starts: a TLS mistake starts nothing
    except RuntimeError as exc:
        raise UsageError(str(exc)) from None
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    appliance = Appliance(config, clocks=RealClocks(), listen=listen, tls_cert=tls_cert, tls_key=tls_key,
                          stop_requested=stop)
    try:
        appliance.start()  # READY=1 to systemd once every part runs
    except DataRootBusy as exc:  # a runtime refusal, not a bug: say so without a traceback
        print(f"nvr: {exc}", file=sys.stderr)
        return 1
    try:
        appliance.wait()
    finally:
        log.info("stopping")
        appliance.stop()
    if appliance.disk_changed.is_set():
        # Start afresh on (or off) the disk rather than switch a running recorder's storage; under
        # systemd (Restart=always) the service comes back in a few seconds.
        log.warning("the recordings disk on %s came or went: exiting to be started again", config.storage.path)
        return EXIT_RESTART
    return 0


def _tls_files(config: Config) -> tuple[Path | None, Path | None]:
    web = config.web
    if web.tls_cert or web.tls_key:
        if not (web.tls_cert and web.tls_key):
            raise UsageError("web.tls_cert and web.tls_key go together: give both")
        return web.tls_cert, web.tls_key
    if web.tls_self_signed:
        from appliance.web.tls import ensure_self_signed

        return ensure_self_signed(Path(web.state_dir or config.storage.path))
    return None, None


def _open_index(config: Config) -> Index:
    root = config.storage.path
    if not (root / "index.sqlite3").exists():
        raise UsageError(f"nothing has been recorded under {root} (no index there); give --data or --config")
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


def _cmd_events(args: argparse.Namespace) -> int:
    from appliance.presentation import event_dict, events_table

    index = _open_index(_load(args))
    try:
        rows = [event_dict(e) for e in index.events(channel=args.channel, limit=max(1, args.limit))]
    finally:
        index.close()
    print(json.dumps(rows, indent=1) if args.json else events_table(rows))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    config = _load(args)
    now = RealClocks().utc_now_us()
    try:
        start_us, end_us = parse_time(args.start, now_us=now), parse_time(args.end, now_us=now)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not args.out.parent.exists():
        raise UsageError(f"the folder {args.out.parent} does not exist")
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


@contextmanager
def _user_store(args: argparse.Namespace, refused: tuple[type[Exception], ...] = ()):
    """The web users' store of the config's state folder, closed afterwards; an error in `refused` (a
    name or a disk the command will not take) becomes a UsageError with its message."""
    from appliance.web.users import UserStore

    config = _load(args)
    store = UserStore(Path(config.web.state_dir or config.storage.path), clocks=RealClocks())
    try:
        yield store
    except refused as exc:
        raise UsageError(str(exc)) from None
    finally:
        store.close()


def _cmd_user_add(args: argparse.Namespace) -> int:
    from appliance.web.users import AccountError

    password = sys.stdin.readline().rstrip("\r\n")
    with _user_store(args, (AccountError,)) as store:
        store.add_user(args.name, password, args.role, replace=True)
        store.audit(None, "user_add", {"username": args.name, "role": args.role}, "cli")
    print(f"user {args.name} ({args.role}) saved in {store.path}")
    return 0


def _cmd_user_list(args: argparse.Namespace) -> int:
    with _user_store(args) as store:
        users = store.users()
    print("\n".join(f"{u.name}\t{u.role}" for u in users) if users else "no users (the first web visit sets the administrator)")
    return 0


def _cmd_user_remove(args: argparse.Namespace) -> int:
    from appliance.web.users import AccountError

    with _user_store(args, (AccountError,)) as store:
        store.remove_user(args.name)
        store.audit(None, "user_remove", {"username": args.name}, "cli")
    print(f"user {args.name} removed")
    return 0


def _cmd_onvif_user_add(args: argparse.Namespace) -> int:
    from appliance.web.users import AccountError

    password = sys.stdin.readline().rstrip("\r\n")
    with _user_store(args, (AccountError,)) as store:
        existed = store.integration.add(args.name, password, args.role)
        store.audit(None, "integration_user_change" if existed else "integration_user_add",
                    {"username": args.name, "role": args.role}, "cli")
    print(f"integration account {args.name} ({args.role}) saved in {store.path}; its password is sealed with "
          f"the key beside it")
    return 0


def _cmd_onvif_user_list(args: argparse.Namespace) -> int:
    with _user_store(args) as store:
        accounts, unusable = store.integration.accounts(), set(store.integration.unusable())
    if not accounts:
        print("no integration accounts (nvr onvif-user add NAME --role viewer makes one)")
    for account in accounts:
        note = "\tunusable: the key file is missing or another; set the password again" if account.name in unusable else ""
        print(f"{account.name}\t{account.role}{note}")
    return 0


def _cmd_onvif_user_remove(args: argparse.Namespace) -> int:
    from appliance.web.users import AccountError

    with _user_store(args, (AccountError,)) as store:
        store.integration.remove(args.name)
        store.audit(None, "integration_user_remove", {"username": args.name}, "cli")
    print(f"integration account {args.name} removed")
    return 0


def _cmd_disks(args: argparse.Namespace) -> int:
    """Reads each disk once now (smartctl -n standby: a sleeping disk is not woken); beside a running
    recorder it only reads its index. Exit 1 when a disk is failing, so scripts can check."""
    from appliance.disks import disks_json, disks_text, inspect_disks
    from recorder.faults import FaultBoard

    clocks = RealClocks()
    rows = inspect_disks(_load(args), clocks=clocks, faults=FaultBoard(clocks=clocks))
    print(disks_json(rows) if args.json else disks_text(rows))
    return 1 if any(str(row.get("health", "")).startswith("failing") for row in rows) else 0


def _cmd_disks_init(args: argparse.Namespace) -> int:
    """Audit-logged (the web's audit log, user None, client 'cli'), refused or done."""
    from appliance.disks import DiskInitRefused, initialise_audited, label_problem
    from hal.block_device import BlockDeviceError

    problem = label_problem(args.label)
    if problem is not None:
        raise UsageError(f"--label: {problem}")
    with _user_store(args, (DiskInitRefused, BlockDeviceError)) as store:
        done = initialise_audited(args.device, label=args.label, confirm_serial=args.confirm_serial,
                                  audit=lambda action, detail: store.audit(None, action, detail, "cli"))
    print(f"{args.device} is now the recordings disk {args.label!r} (identity {done['uuid']}); mount it and list "
          f"it in storage.disks")
    return 0


def _cmd_devices(args: argparse.Namespace) -> int:
    from hal.devices import devices_text, list_devices

    report = list_devices()
    print(json.dumps(report, indent=1) if args.json else devices_text(report))
    return 0


def _cmd_ptz(args: argparse.Namespace) -> int:
    from appliance.ptz.cli import PtzCameraError, PtzCommandError, PtzPortBusy, run_ptz_command
    from drivers.pelco.bus import PelcoBusError

    config = _load(args)
    try:
        return run_ptz_command(config, channel=args.channel, action=args.action, arg=args.arg, speed=args.speed,
                               for_s=args.for_s)
    except PtzCommandError as exc:
        raise UsageError(str(exc)) from None
    except (PtzPortBusy, PelcoBusError, PtzCameraError) as exc:
        print(f"nvr: {exc}", file=sys.stderr)
        return 1


def _cmd_mqtt_test(args: argparse.Namespace) -> int:
    from appliance.mqtt.cli import run_mqtt_test  # paho loads only for MQTT

    return run_mqtt_test(_load(args), clocks=RealClocks(), timeout_s=args.timeout)


def _cmd_discover(args: argparse.Namespace) -> int:
    from appliance.discover import run_discover  # the ONVIF library loads only for ONVIF

    if not 0.1 <= args.timeout <= 60:
        raise UsageError(f"--timeout: expected 0.1 to 60 seconds, got {args.timeout!r}")
    password = args.password
    if args.user is not None and password is None:
        password = getpass.getpass("ONVIF password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    return run_discover(timeout_s=args.timeout, as_json=args.json, interface_ip=args.interface, username=args.user,
                        password=password, clocks=RealClocks())


def _cmd_hash_pin(args: argparse.Namespace) -> int:
    from appliance.monitor.lock import hash_pin

    pin = getpass.getpass("PIN (4-12 digits): ") if sys.stdin.isatty() else sys.stdin.readline().strip()
    try:
        print(f"pin_hash: \"{hash_pin(pin)}\"")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
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
