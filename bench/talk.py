"""bench/talk: push-to-talk's latency on the box, from the talk socket to the camera's speaker.

    ./dev bench talk [--presses 10] [--clicks 40] [--alarms 10] [--low-latency-ms 20]

A running appliance records a GStreamer ONVIF camera with a back channel (tests/support/backchannel_server.py,
which writes what its speaker is sent to a file, unbuffered) and an operator talks to it over
/api/talk/CHANNEL as the page does (20-ms frames of 8 kHz PCM, sent in real time):

1. press -> ready: the socket opened until the box answers `ready`, i.e. the camera's back channel
   DESCRIBEd, SETUP and PLAYing (what the page buffers meanwhile, up to a second, is sent then);
2. frame -> camera: between silent frames, a 20-ms click every 0.5 s; from sending its frame to its first
   loud sample being in the camera's file (the box's parse, budget, queue, G.711 encoding, RTP over the
   RTSP connection, and GStreamer's depayloading and decoding: no jitter buffer on either side);
3. alarm -> sound (the rule action `play`, issue 15's goal: within 200 ms): a rule engine with two `play`
   actions (the AUDIO OUT, and `channel: 2`'s camera speaker; appliance/sound/rule_sounds.py), fired
   `--alarms` times; from `signal()` to the first sample written to the AUDIO OUT (the
   simulated speaker: ALSA's own buffer comes on top) and to the first loud sample in the camera's file
   (a back channel opened per sound: DESCRIBE, SETUP, PLAY, then the first packet). The camera rows are
   run twice: against the test camera with GStreamer's default jitter buffer (200 ms, which holds a
   session's first packet that long before decoding it: the stand-in camera's share, not the box's) and
   with it set to `--low-latency-ms`, so the box's own share shows;
   A row "alarm -> first RTP packet sent" ends where the box's work ends: its first packet of the sound
   written to the camera's connection (the back channel's writes are timed in this process);
4. alarm during a close -> camera: the same, but each alarm fires as soon as the previous sound has been
   heard whole, while the box is still closing that back channel (its close lets the sound play out
   first); an idle camera otherwise.

The browser's own capture and worklet buffering (a 128-sample render quantum plus a 20-ms frame) and the
camera's playout buffer come on top; neither runs here.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import numpy as np  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from appliance.talk.frames import build_talk_frame  # noqa: E402
from bench.common import print_table  # noqa: E402
from hal.audio_out import SimulatedAudioPlayback  # noqa: E402
from support.talk import BackChannelCamera, tone  # noqa: E402
from support.web import PASSWORDS, start_appliance  # noqa: E402

CHANNEL = 3
FRAME_S = 0.02
LOUD = 4000


def login_cookie(url: str) -> str:
    import httpx

    client = httpx.Client(base_url=url)
    client.post("/api/login", json={"username": "operator", "password": PASSWORDS["operator"]}).raise_for_status()
    return "; ".join(f"{k}={v}" for k, v in client.cookies.items())


def talk_socket(url: str, cookie: str):
    return connect(url.replace("http", "ws") + f"/api/talk/{CHANNEL}", additional_headers={"Cookie": cookie},
                   open_timeout=10)


def ready(ws, started_s: float) -> float:
    """Seconds from `started_s` (before connecting) to the box's `ready`."""
    answer = json.loads(ws.recv(timeout=15))
    assert answer["type"] == "ready", answer
    return time.perf_counter() - started_s


def click_latencies(ws, camera: BackChannelCamera, clicks: int) -> list[float]:
    silence, click = np.zeros(160, np.int16), tone(1000, FRAME_S, amplitude=0.5)
    out, sequence = [], 0
    next_s = time.perf_counter()
    for number in range(clicks * 25):  # a click every 25 frames (0.5 s)
        loud = number % 25 == 12
        offset = len(camera.record.read_bytes()) // 2 if loud else 0
        ws.send(build_talk_frame(sequence, click if loud else silence))
        sequence += 1
        sent_s = time.perf_counter()
        if loud:
            out.append(_heard_after(camera, offset, sent_s))
        next_s += FRAME_S
        time.sleep(max(0.0, next_s - time.perf_counter()))
    return out


def _heard_after(camera: BackChannelCamera, offset: int, sent_s: float, timeout_s: float = 6.0) -> float:
    while time.perf_counter() - sent_s < timeout_s:
        heard = camera.heard()[offset:]
        if len(heard) and np.abs(heard).max() > LOUD:
            return time.perf_counter() - sent_s
        time.sleep(0.0005)
    return float("nan")


class _TimedSpeaker(SimulatedAudioPlayback):
    """The simulated AUDIO OUT, noting when each sound's first samples came."""

    def __init__(self):
        super().__init__()
        self.first_write_s: list[float] = []

    def open(self, *, sample_rate: int, channels: int) -> None:
        super().open(sample_rate=sample_rate, channels=channels)
        self._fresh = True

    def write(self, samples) -> None:
        if self._fresh:
            self.first_write_s.append(time.perf_counter())
            self._fresh = False
        super().write(samples)


_packets_written_s: list[float] = []


def _time_back_channel_writes() -> None:
    """Note when the back channel writes packets to a camera (the end of the box's share of a sound)."""
    from drivers.rtsp.backchannel import BackChannel

    write = BackChannel._write

    def timed(self, data: bytes) -> None:
        write(self, data)
        _packets_written_s.append(time.perf_counter())
    BackChannel._write = timed


def _first_written_after(fired_s: float) -> float:
    return next((t - fired_s for t in _packets_written_s if t >= fired_s), float("nan"))


def alarm_latencies(tmp: Path, camera: BackChannelCamera, alarms: int, *,
                    during_close: bool = False) -> tuple[list[float], list[float], list[float]]:
    """(alarm -> AUDIO OUT, alarm -> camera, alarm -> first packet sent) for `alarms` alarms; `during_close`:
    each alarm fires as soon as the previous camera sound was heard whole, without waiting for its back
    channel to be closed."""
    from appliance.alarms.rules import RuleEngine
    from appliance.alarms.webhooks import WebhookSender
    from appliance.config.model import parse_config
    from appliance.sound.output import TALK, AudioOutputs
    from appliance.sound.rule_sounds import RuleSounds
    from appliance.talk.session import TalkHub
    from base.clock import RealClocks
    from base.timers import Scheduler
    from recorder.index import Index
    from support.talk import write_wav

    # A 0.2-s beep and 40 ms of silence: a packet that the previous beep leaves for later is silent, so the
    # first loud sample after an alarm is that alarm's, even when it fires while the last one plays out.
    beep_s = 0.2
    sound = np.concatenate([tone(1000, beep_s, rate=16000, amplitude=0.5), np.zeros(640, np.int16)])
    beep = write_wav(tmp / "beep.wav", sound, 16000)
    config = parse_config(f"""
storage: {{path: {tmp / 'alarm-data'}}}
channels: [{{id: 2, source: {{type: rtsp, url: '{camera.url()}'}}}}]
alarms: {{inputs: [{{id: door, pin: 17}}], temperature: {{thermal_zones: false}}}}
audio_out: {{device: simulated}}
rules:
  - when: {{alarm_input: door}}
    do:
      - {{play: {{file: '{beep}', stop_on_clear: false}}}}
      - {{play: {{file: '{beep}', channel: 2, stop_on_clear: false}}}}
""")
    speaker, clocks = _TimedSpeaker(), RealClocks()
    outputs = AudioOutputs(playback=lambda device: speaker)
    hub = TalkHub(playback=outputs.playback_by_device(name="talk", priority=TALK))
    player = RuleSounds(config, outputs=outputs, clocks=clocks, talk=hub)
    if errors := player.preload():
        raise SystemExit("\n".join(errors))
    player.start()
    (tmp / "alarm-data").mkdir(exist_ok=True)
    index = Index(tmp / "alarm-data")
    scheduler = Scheduler(clocks=clocks)
    engine = RuleEngine(rules=config.rules, index=index, relays={}, scheduler=scheduler, clocks=clocks,
                        webhooks=WebhookSender(), sounds=player)
    to_audio_out, to_camera, to_wire = [], [], []
    try:
        for _ in range(alarms):
            offset = len(camera.heard())
            fired_s = time.perf_counter()
            engine.signal("alarm_input", "door", True)
            scheduler.run_pending()
            to_camera.append(_heard_after(camera, offset, fired_s))
            to_wire.append(_first_written_after(fired_s))
            engine.signal("alarm_input", "door", False)
            scheduler.run_pending()
            if during_close:  # the loud beep heard whole, its session still open
                while len(camera.heard()) - offset < beep_s * 8000 and time.perf_counter() - fired_s < 5:
                    time.sleep(0.001)
                if not hub.talking():
                    print("note: the back channel was already closed when the next alarm came", file=sys.stderr)
            # Both sounds over and, unless measuring during a close, the camera's back channel closed.
            while player.statistics()["finished"] < 2 * len(to_camera) or (hub.talking() and not during_close):
                time.sleep(0.001)
            to_audio_out.append(speaker.first_write_s[-1] - fired_s)
        while hub.talking():
            time.sleep(0.01)
    finally:
        player.close()
        index.close()
    return to_audio_out, to_camera, to_wire


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=10)
    parser.add_argument("--clicks", type=int, default=40)
    parser.add_argument("--alarms", type=int, default=10)
    parser.add_argument("--low-latency-ms", type=int, default=20,
                        help="the test camera's jitter buffer for the second run of the alarm rows")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-talk-") as tmp:
        tmp_path = Path(tmp)
        with BackChannelCamera(tmp_path / "heard.raw") as camera:
            extra = f"  - id: {CHANNEL}\n    name: Gate\n    source: {{type: rtsp, url: '{camera.url()}'}}\n"
            app = start_appliance(tmp_path, channels=0, past_seconds=0, extra_channels=extra)
            try:
                cookie = login_cookie(app.url)
                opens = []
                hub = app.nvr.web_context.talk
                for _ in range(args.presses):
                    started_s = time.perf_counter()
                    with talk_socket(app.url, cookie) as ws:
                        opens.append(ready(ws, started_s))
                    while hub.statistics()["talking"]:  # the last session's TEARDOWN
                        time.sleep(0.01)
                with talk_socket(app.url, cookie) as ws:
                    ready(ws, time.perf_counter())
                    clicks = click_latencies(ws, camera, args.clicks)
            finally:
                app.stop()
        alarm_rows = []
        _time_back_channel_writes()
        for latency_ms in (None, args.low_latency_ms):
            buffer = f"camera buffer {latency_ms if latency_ms is not None else '200 (default)'} ms"
            with BackChannelCamera(tmp_path / f"heard-{latency_ms}.raw", latency_ms=latency_ms) as camera:
                to_audio_out, to_camera, to_wire = alarm_latencies(tmp_path, camera, args.alarms)
                _, closing, closing_wire = alarm_latencies(tmp_path, camera, args.alarms, during_close=True)
            if latency_ms is None:
                alarm_rows.append(("alarm -> AUDIO OUT (rule `play`)", to_audio_out))
            alarm_rows += [(f"alarm -> first RTP packet sent, {buffer}", to_wire),
                           (f"alarm -> camera's speaker, {buffer}", to_camera),
                           (f"alarm during a close -> first RTP packet sent, {buffer}", closing_wire),
                           (f"alarm during a close -> camera's speaker, {buffer}", closing)]
    rows = []
    for name, values in (("press -> ready (back channel playing)", opens), ("frame -> camera's speaker", clicks),
                         *alarm_rows):
        ms = sorted(v * 1000 for v in values if v == v)
        rows.append((name, len(ms), statistics.median(ms), ms[int(0.95 * (len(ms) - 1))], ms[-1],
                     len(values) - len(ms)))
    print_table("push-to-talk latency on the box (ms)", ("path", "n", "median", "p95", "max", "lost"), rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
