"""sd_notify over a real unix datagram socket, and the watchdog that pings only while recording is healthy."""
from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest

from appliance.systemd import (ServiceWatchdog, SocketNotifier, start_service_integration, status_message,
                               watchdog_ping_interval_s)
from recorder.faults import FaultBoard


@pytest.fixture
def notify_socket(tmp_path):
    """A bound datagram socket standing in for systemd's notify socket; yields (address, receive)."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)

    def receive() -> dict[str, str]:
        data = sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.split("\n"))

    yield str(path), receive, sock
    sock.close()


class FakeRecorder:
    def __init__(self, label="channel 1 main", alive=True, connected=True):
        self.label, self.alive, self.connected, self.frames = label, alive, connected, 0

    def is_alive(self):
        return self.alive

    def statistics(self):
        return {"frames_recorded": self.frames}


class Recording:
    """Collects what a notifier was asked to send."""

    def __init__(self):
        self.messages = []

    def notify(self, message):
        self.messages.append(dict(line.split("=", 1) for line in message.split("\n")))
        return True


def test_notifier_sends_one_datagram_per_message_to_a_path_socket(notify_socket):
    address, receive, _ = notify_socket
    notifier = SocketNotifier(address)
    assert notifier.notify(status_message("ready; recovery: nothing", READY="1"))
    assert receive() == {"READY": "1", "STATUS": "ready; recovery: nothing"}
    assert notifier.statistics() == {"sent": 1, "failed": 0}


def test_notifier_reaches_an_abstract_namespace_socket():
    name = f"nvr-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        server.settimeout(2)
        assert SocketNotifier.from_environment({"NOTIFY_SOCKET": "@" + name}).notify("WATCHDOG=1")
        assert server.recv(100) == b"WATCHDOG=1"


def test_status_text_with_newlines_cannot_inject_other_keys():
    assert status_message("disk\nREADY=1 gone", WATCHDOG="1") == "WATCHDOG=1\nSTATUS=disk READY=1 gone"


def test_no_notify_socket_means_no_notifier_and_a_bad_one_is_refused():
    assert SocketNotifier.from_environment({}) is None
    assert SocketNotifier.from_environment({"NOTIFY_SOCKET": "relative/path"}) is None
    with pytest.raises(ValueError, match="relative"):
        SocketNotifier("relative")


def test_a_vanished_socket_is_counted_not_raised(tmp_path):
    notifier = SocketNotifier(str(tmp_path / "gone"))
    assert not notifier.notify("WATCHDOG=1")
    assert not notifier.notify("WATCHDOG=1")
    assert notifier.statistics() == {"sent": 0, "failed": 2}


def test_watchdog_interval_is_half_the_timeout_and_only_for_the_named_pid():
    assert watchdog_ping_interval_s({"WATCHDOG_USEC": "60000000"}) == 30.0
    assert watchdog_ping_interval_s({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "42"}, pid=42) == 10.0
    assert watchdog_ping_interval_s({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "43"}, pid=42) is None
    assert watchdog_ping_interval_s({}) is None
    assert watchdog_ping_interval_s({"WATCHDOG_USEC": "soon"}) is None


def test_pings_while_every_recording_thread_is_alive(notify_socket, clocks):
    address, receive, _ = notify_socket
    recorders = [FakeRecorder(), FakeRecorder("channel 2 main", connected=False)]
    watchdog = ServiceWatchdog(notifier=SocketNotifier(address), recorders=lambda: recorders, interval_s=5,
                               clocks=clocks, timesync_dir=None)
    assert watchdog.tick()
    assert receive() == {"WATCHDOG": "1", "STATUS": "recording 1/2 stream(s)"}


def test_a_dead_recording_thread_withholds_the_ping_so_systemd_restarts_the_service(notify_socket, clocks):
    address, receive, _ = notify_socket
    recorders = [FakeRecorder(), FakeRecorder("channel 2 main", alive=False)]
    watchdog = ServiceWatchdog(notifier=SocketNotifier(address), recorders=lambda: recorders, interval_s=5,
                               clocks=clocks, timesync_dir=None)
    assert not watchdog.tick()
    message = receive()
    assert "WATCHDOG" not in message
    assert message["STATUS"] == "unhealthy: channel 2 main: recording thread is not running"
    assert watchdog.statistics()["withheld"] == 1


def test_a_connected_stream_without_new_frames_counts_as_hung_after_the_stall_time(clocks):
    recorder = FakeRecorder()
    sent = Recording()
    watchdog = ServiceWatchdog(notifier=sent, recorders=lambda: [recorder], interval_s=5, stall_s=60,
                               clocks=clocks, timesync_dir=None)
    assert watchdog.tick()
    clocks.advance(59)
    assert watchdog.tick()
    clocks.advance(2)
    assert not watchdog.tick()
    assert "no frame recorded for 61 s" in sent.messages[-1]["STATUS"]
    recorder.frames += 25  # it records again: healthy again
    assert watchdog.tick()


def test_a_disconnected_stream_is_not_a_hang(clocks):
    recorder = FakeRecorder(connected=False)
    watchdog = ServiceWatchdog(notifier=Recording(), recorders=lambda: [recorder], interval_s=5, stall_s=60,
                               clocks=clocks, timesync_dir=None)
    for _ in range(5):
        clocks.advance(100)
        assert watchdog.tick()


def test_without_a_watchdog_only_status_is_sent(clocks):
    sent = Recording()
    watchdog = ServiceWatchdog(notifier=sent, recorders=lambda: [FakeRecorder()], interval_s=None, clocks=clocks,
                               timesync_dir=None)
    assert not watchdog.tick()
    assert sent.messages == [{"STATUS": "recording 1/1 stream(s)"}]


def test_clock_alarm_is_raised_until_timesyncd_reports_the_first_sync(tmp_path, clocks):
    timesync = tmp_path / "timesync"
    timesync.mkdir()
    faults = FaultBoard(clocks=clocks)
    sent = Recording()
    watchdog = ServiceWatchdog(notifier=sent, recorders=lambda: [], interval_s=5, faults=faults, clocks=clocks,
                               timesync_dir=timesync)
    watchdog.tick()
    assert [a.kind for a in faults.active()] == ["clock_unsynced"]
    assert sent.messages[-1]["STATUS"].endswith("clock not yet synchronised")
    (timesync / "synchronized").touch()
    watchdog.tick()
    assert faults.active() == []
    assert watchdog.clock_synced and sent.messages[-1]["STATUS"] == "recording 0/0 stream(s)"


def test_no_timesyncd_means_no_clock_alarm(tmp_path, clocks):
    faults = FaultBoard(clocks=clocks)
    ServiceWatchdog(notifier=Recording(), recorders=lambda: [], interval_s=5, faults=faults, clocks=clocks,
                    timesync_dir=tmp_path / "absent").tick()
    assert faults.active() == []


def test_service_integration_sends_ready_after_start_and_stopping_at_the_end(notify_socket, clocks):
    address, receive, _ = notify_socket
    simulated = clocks

    class Supervisor:
        recorders = []
        clocks = simulated
        faults = FaultBoard(clocks=simulated)

        class recovery:
            @staticmethod
            def summary():
                return "checked 3 rows"

    service = start_service_integration(Supervisor(), {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "2000000",
                                                       "WATCHDOG_PID": str(os.getpid())})
    try:
        ready = receive()
        assert ready["READY"] == "1" and ready["STATUS"] == "ready; recovery: checked 3 rows"
        assert receive().get("WATCHDOG") == "1"  # the loop's first pass
    finally:
        service.stop()
    while (message := receive()).get("STOPPING") != "1":
        pass
    assert message["STATUS"].startswith("stopping")


def test_outside_systemd_nothing_is_sent():
    service = start_service_integration(object(), {})
    assert service.notifier is None and service.watchdog is None
    service.stop()


def test_nvr_run_tells_a_notify_socket_ready_then_pings_then_stopping(notify_socket, tmp_path):
    """`nvr run` as systemd runs it: READY=1 once recording runs, WATCHDOG=1 pings, STOPPING=1 at SIGTERM."""
    import signal
    import subprocess
    import sys

    address, receive, sock = notify_socket
    sock.settimeout(60)
    nvr = Path(sys.executable).with_name("nvr")
    command = [str(nvr)] if nvr.exists() else [sys.executable, "-m", "appliance.cli"]
    env = dict(os.environ, NOTIFY_SOCKET=address, WATCHDOG_USEC="2000000")
    env.pop("WATCHDOG_PID", None)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([*command, "run", "--data", str(tmp_path / "data"), "--listen", f"127.0.0.1:{port}"],
                            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        ready = receive()
        assert ready["READY"] == "1" and ready["STATUS"].startswith("ready; recovery: checked 0 rows")
        assert ready["MAINPID"] == str(proc.pid)
        assert receive().get("WATCHDOG") == "1"
        proc.send_signal(signal.SIGTERM)
        while (message := receive()).get("STOPPING") != "1":
            pass
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
