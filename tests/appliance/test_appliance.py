"""The Appliance starts its parts in one order and stops them in the reverse: a stop closes and indexes every
open segment and the web server refuses connections afterwards; a part that fails to start stops the
parts already started."""
from __future__ import annotations

import fcntl
import logging
import os
import socket
import urllib.request

import pytest
from support.waiting import wait_for
from support.web import free_port

from appliance.alarms.io import AlarmIO
from appliance.app import Appliance, DataRootBusy
from appliance.config.model import parse_config
from appliance.supervisor import LOCK_FILE
from base.clock import RealClocks
from recorder.index import Index

ORDER = ["recorder", "PTZ service", "alarm I/O", "web server", "systemd integration"]


def config_for(root):
    return parse_config(f"storage: {{path: '{root}', segment_seconds: 30}}\n"
                        "channels:\n"
                        "  - {id: 1, source: {type: test-pattern, width: 160, height: 120, fps: 10}}\n"
                        "  - {id: 2, source: {type: test-pattern, width: 160, height: 120, fps: 10}}\n"
                        "alarms: {temperature: {thermal_zones: false}}\n")


def answers(url: str) -> bool:
    try:
        return urllib.request.urlopen(url + "api/ping", timeout=2).status == 200
    except OSError:
        return False


def refuses(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
    return False


def lock_is_free(root) -> bool:
    fd = os.open(root / LOCK_FILE, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def part_log(caplog, verb: str) -> list[str]:
    prefix = f"{verb} the "
    return [r.getMessage()[len(prefix):] for r in caplog.records if r.name == "nvr" and r.getMessage().startswith(prefix)]


def test_stop_runs_the_start_order_backwards_indexes_every_open_segment_and_closes_the_web(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="nvr")
    port = free_port()
    nvr = Appliance(config_for(tmp_path), clocks=RealClocks(), listen=("127.0.0.1", port), sync=False, environ={})
    nvr.start()
    try:
        assert nvr.running == ORDER and part_log(caplog, "started") == ORDER
        wait_for(lambda: answers(nvr.url), what="the web server")
        open_rows = wait_for(lambda: len(rows := nvr.open_segments()) == 2 and rows, what="a segment open on each channel")
    finally:
        nvr.stop()
    assert part_log(caplog, "stopped") == ORDER[::-1] and nvr.running == []
    assert refuses(port)
    assert lock_is_free(tmp_path)
    assert not any(r.is_alive() for r in nvr.supervisor.recorders)
    index = Index(tmp_path)
    try:
        indexed = {s.path: s for s in index.segments()}
    finally:
        index.close()
    for row in open_rows:  # the segments open at the stop are closed and indexed, at least as long as they were
        assert row.path in indexed and indexed[row.path].end_us >= row.end_us


def test_a_part_that_fails_to_start_stops_itself_and_the_parts_already_started(tmp_path, caplog, monkeypatch):
    def broken(self):
        raise OSError("the GPIO chip went away")

    monkeypatch.setattr(AlarmIO, "start", broken)
    caplog.set_level(logging.DEBUG, logger="nvr")
    port = free_port()
    nvr = Appliance(config_for(tmp_path), clocks=RealClocks(), listen=("127.0.0.1", port), sync=False, environ={})
    with pytest.raises(OSError, match="GPIO chip went away"):
        nvr.start()
    assert part_log(caplog, "started") == ["recorder", "PTZ service"]
    assert part_log(caplog, "stopped") == ["alarm I/O", "PTZ service", "recorder"]
    assert nvr.running == [] and refuses(port)  # the web server never started
    assert lock_is_free(tmp_path) and not any(r.is_alive() for r in nvr.supervisor.recorders)
    assert nvr.web_context is None  # the web's stores are closed too


def test_a_second_appliance_on_the_same_data_root_starts_nothing(tmp_path):
    first = Appliance(config_for(tmp_path), clocks=RealClocks(), sync=False, environ={})
    first.start()
    try:
        second = Appliance(config_for(tmp_path), clocks=RealClocks(), sync=False, environ={})
        with pytest.raises(DataRootBusy, match="already recording"):
            second.start()
        assert second.running == [] and second.alarm_io is None
        assert first.running and all(r.is_alive() for r in first.supervisor.recorders)
    finally:
        first.stop()
