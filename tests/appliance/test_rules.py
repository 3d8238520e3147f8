"""The rule engine and the alarm I/O wiring: events with pre/post-alarm time, outputs, PTZ, webhooks, board signals."""
from __future__ import annotations

import json
import logging
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from appliance.alarms.io import AlarmIO
from appliance.config.model import parse_config
from appliance.alarms.webhooks import WebhookSender, fill_template
from appliance.alarms.rules import RuleEngine
from drivers.contacts import Relay
from hal.gpio import GpiozeroGpio
from base.timers import Scheduler
from recorder.faults import FaultBoard
from recorder.live import LiveHub

S = 1_000_000


class FakePtz:
    def __init__(self):
        self.calls = []

    def preset_go(self, channel: int, preset: int) -> None:
        self.calls.append((channel, preset))


@pytest.fixture
def webhook_server():
    """A local HTTP server collecting POSTed JSON bodies: (url, bodies, got_one event)."""
    bodies, got = [], threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            bodies.append((self.path, self.headers["Content-Type"],
                           json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.send_response(204)
            self.end_headers()
            got.set()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", bodies, got
    server.shutdown()
    server.server_close()


def config_with(rules_yaml: str, outputs_yaml: str = "", tmp_path=None):
    text = f"""
storage: {{path: {tmp_path or '/tmp/nvr-rules'}}}
channels:
  - {{id: 1, source: {{type: test-pattern}}, ptz: {{port: bus, address: 1}}}}
  - {{id: 2, source: {{type: test-pattern}}}}
ptz: {{ports: [{{id: bus, url: "loop://"}}]}}
alarms:
  inputs: [{{id: door, pin: 17, contact: NC}}]
  outputs: [{{id: siren, pin: 22, pulse_s: 2}}]
  temperature: {{thermal_zones: false}}
{textwrap.dedent(rules_yaml)}
"""
    return parse_config(text)


@pytest.fixture
def engine_rig(index, clocks, mock_pins):
    made: list[Relay] = []

    def make(rules_yaml: str, *, ptz=None):
        while made:
            made.pop().close()
        config = config_with(rules_yaml)
        scheduler = Scheduler(clocks=clocks)
        gpio = GpiozeroGpio(pin_factory=mock_pins)
        relays = {"siren": Relay(id="siren", pin=gpio.output(22), mode="pulse", pulse_s=2.0, scheduler=scheduler,
                                 clocks=clocks)}
        made.extend(relays.values())
        webhooks = WebhookSender()
        engine = RuleEngine(rules=config.rules, index=index, relays=relays, scheduler=scheduler, clocks=clocks,
                            webhooks=webhooks, ptz=ptz)
        return engine, scheduler
    return make


def test_an_event_starts_pre_s_before_the_alarm_and_ends_post_s_after_it(engine_rig, index, clocks, mock_pins):
    engine, scheduler = engine_rig("""
rules:
  - name: door
    when: {alarm_input: door}
    do: [{output: {id: siren}}, {record: {channels: [1, 2], pre_s: 10, post_s: 30}}]
""")
    alarm_us = clocks.utc_now_us()
    engine.signal("alarm_input", "door", True, at_us=alarm_us)
    assert mock_pins.pin(22).state  # the siren is on before anything else
    [event] = index.events()
    assert (event.start_us, event.trigger_us, event.end_us, event.channels, event.locked) ==\
           (alarm_us - 10 * S, alarm_us, None, (1, 2), True)
    clocks.advance(5)
    engine.signal("alarm_input", "door", False, at_us=clocks.utc_now_us())
    clocks.advance(29.9)
    scheduler.run_pending()
    assert index.events()[0].end_us is None
    clocks.advance(0.2)
    scheduler.run_pending()
    assert index.events()[0].end_us == alarm_us + 35 * S
    assert not mock_pins.pin(22).state  # the 2 s pulse ended long ago


def test_an_alarm_again_within_the_post_alarm_time_extends_the_same_event(engine_rig, index, clocks):
    engine, scheduler = engine_rig("""
rules:
  - when: {alarm_input: door}
    do: [{record: {channels: [1], pre_s: 5, post_s: 10}}]
""")
    start_us = clocks.utc_now_us()
    engine.signal("alarm_input", "door", True)
    clocks.advance(1)
    engine.signal("alarm_input", "door", False)
    clocks.advance(5)
    scheduler.run_pending()
    engine.signal("alarm_input", "door", True)
    clocks.advance(2)
    engine.signal("alarm_input", "door", False)
    clocks.advance(11)
    scheduler.run_pending()
    [event] = index.events()
    assert event.start_us == start_us - 5 * S and event.end_us == start_us + 18 * S
    assert engine.statistics()["extended"] == 1


def test_ptz_presets_go_through_the_injected_service_and_a_missing_one_is_counted(engine_rig, clocks):
    ptz = FakePtz()
    rules = """
rules:
  - when: {video_loss: 2}
    do: [{ptz_preset: {channel: 1, preset: 4}}, {log: camera 2 lost}]
"""
    engine, _ = engine_rig(rules, ptz=ptz)
    engine.signal("video_loss", "2", True)
    assert ptz.calls == [(1, 4)]
    engine, _ = engine_rig(rules, ptz=None)
    engine.signal("video_loss", "2", True)
    assert engine.statistics()["ptz_missing"] == 1


def test_a_webhook_is_delivered_to_a_local_http_server_without_holding_up_the_rule(engine_rig, index, clocks,
                                                                                    webhook_server):
    url, bodies, got = webhook_server
    engine, _ = engine_rig(f"""
rules:
  - name: door opened
    when: {{alarm_input: door}}
    do:
      - webhook: {{url: "{url}/alarm", body: {{text: "{{rule}}: {{source}}", event: "{{event_id}}", ch: "{{channels}}"}}}}
      - record: {{channels: [2]}}
""")
    engine._webhooks.start()
    try:
        engine.signal("alarm_input", "door", True)
        assert got.wait(5)
    finally:
        engine._webhooks.stop()
    event_id = index.events()[0].id
    assert bodies == [("/alarm", "application/json",
                       {"text": "door opened: alarm_input:door", "event": event_id, "ch": [2]})]
    assert engine._webhooks.statistics()["delivered"] == 1


def test_a_webhook_to_a_dead_server_fails_in_the_background_and_is_counted():
    sender = WebhookSender(max_jobs=2)
    sender.start()
    try:
        assert sender.send("http://127.0.0.1:9/nothing", {"a": 1}, timeout_s=1)
        assert sender.worker.join(5)
    finally:
        sender.stop()
    assert sender.statistics()["failed"] == 1 and sender.delivered == 0


def test_templates_fill_placeholders_and_keep_json_types():
    fields = {"rule": "r", "event_id": 7, "channels": [1, 2]}
    assert fill_template({"a": "{rule}!", "b": ["{event_id}"], "c": "{channels}", "d": "{nope}", "e": 3}, fields) ==\
           {"a": "r!", "b": [7], "c": [1, 2], "d": "{nope}", "e": 3}


def test_board_alarms_become_rule_signals_and_several_disk_errors_count_as_one(tmp_path, clocks, mock_pins, index):
    config = config_with("""
rules:
  - {name: disk, when: {disk: error}, do: [{record: {channels: [1], pre_s: 0, post_s: 0}}]}
  - {name: lost, when: {video_loss: 2}, do: [{output: {id: siren, for_s: 1}}]}
""", tmp_path=tmp_path)
    board = FaultBoard(clocks=clocks)
    board.raise_fault("disk_error", "retention failed")  # before the alarm side started: replayed
    io = AlarmIO(config, clocks=clocks, index=index, faults=board, live=LiveHub(), data_root=tmp_path,
                 gpio=GpiozeroGpio(pin_factory=mock_pins))
    io.start()
    try:
        board.raise_fault("disk_error", "channel 1 write failed", channel=1)
        board.clear_fault("disk_error")
        io.scheduler.wait_idle()
        assert [e.end_us for e in index.events()] == [None]  # channel 1's disk error still stands
        board.clear_fault("disk_error", channel=1)
        board.raise_fault("video_loss", "no signal", channel=2)
        io.scheduler.wait_idle()
        assert mock_pins.pin(22).state
    finally:
        io.stop()
    events = index.events()
    assert [e.source for e in events] == ["video_loss:2", "disk:error"]  # every firing is an event
    assert all(e.end_us is not None for e in events)  # stop() ended the open ones
    assert io.engine.statistics()["fired"] == 2
    assert not mock_pins.pin(22).state  # stop() put the output back in its safe state


def test_each_disks_errors_fire_the_disk_rule_again_and_it_is_released_once_no_disk_is_bad(
        tmp_path, clocks, mock_pins, index, caplog):
    config = config_with("""
rules:
  - {name: bad disk, when: {disk: errors}, do: [{output: {id: siren}}, {log: replace the disk}]}
""", tmp_path=tmp_path)
    board = FaultBoard(clocks=clocks)
    io = AlarmIO(config, clocks=clocks, index=index, faults=board, live=LiveHub(), data_root=tmp_path,
                 gpio=GpiozeroGpio(pin_factory=mock_pins))
    io.start()
    try:
        with caplog.at_level(logging.WARNING, logger="nvr.rules"):
            board.raise_fault("disk_errors", "Bay 1 (/dev/sdc): 1 I/O error(s)", disk="Bay 1")
            io.scheduler.wait_idle()
            assert io.engine.statistics()["fired"] == 1
            board.raise_fault("disk_errors", "Bay 2 (/dev/sdd): 1 I/O error(s)", disk="Bay 2")  # the first still up
            io.scheduler.wait_idle()
        assert io.engine.statistics()["fired"] == 2
        lines = [r.getMessage() for r in caplog.records if r.name == "nvr.rules"]
        assert lines == ["bad disk: replace the disk (disk:errors on disk 'Bay 1': Bay 1 (/dev/sdc): 1 I/O error(s))",
                         "bad disk: replace the disk (disk:errors on disk 'Bay 2': Bay 2 (/dev/sdd): 1 I/O error(s))"]
        board.clear_fault("disk_errors", disk="Bay 1")
        io.scheduler.wait_idle()
        assert [e.end_us for e in index.events()] == [None]  # Bay 2 is still bad: the event goes on
        board.clear_fault("disk_errors", disk="Bay 2")
        io.scheduler.wait_idle()
        assert [e.end_us is not None for e in index.events()] == [True]
        assert io.engine.statistics()["fired"] == 2 and io.engine.statistics()["extended"] == 1
    finally:
        io.stop()


def test_the_web_controls_list_inputs_and_switch_outputs_by_hand(tmp_path, clocks, mock_pins, index):
    from appliance.web.services import WebAlarmPanel

    config = config_with("rules: []", tmp_path=tmp_path)
    io = AlarmIO(config, clocks=clocks, index=index, faults=FaultBoard(clocks=clocks), live=LiveHub(),
                 gpio=GpiozeroGpio(pin_factory=mock_pins))
    io.start()
    try:
        web = WebAlarmPanel(io)
        assert [i["id"] for i in web.inputs()] == ["door"]
        web.set_output("siren", True)
        assert mock_pins.pin(22).state and web.outputs()[0]["on"] is True
        web.set_output("siren", False)
        assert not mock_pins.pin(22).state and web.outputs()[0]["on"] is False
        with pytest.raises(KeyError, match="no alarm output 'horn'"):
            web.set_output("horn", True)
    finally:
        io.stop()


def test_alarm_board_listeners_hear_raise_and_clear_once_and_a_broken_one_harms_nobody(clocks):
    board, heard = FaultBoard(clocks=clocks), []

    def broken(alarm, active):
        raise RuntimeError("listener bug")
    board.subscribe(broken)
    unsubscribe = board.subscribe(lambda alarm, active: heard.append((alarm.kind, alarm.channel, active)))
    board.raise_fault("video_loss", "no signal", channel=3)
    board.raise_fault("video_loss", "still no signal", channel=3)  # already active: not heard again
    board.clear_fault("video_loss", channel=3)
    board.clear_fault("video_loss", channel=3)
    unsubscribe()
    board.raise_fault("disk_full", "full")
    assert heard == [("video_loss", 3, True), ("video_loss", 3, False)]
    assert [a.kind for a in board.active()] == ["disk_full"]
