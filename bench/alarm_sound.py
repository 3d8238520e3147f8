"""bench/alarm_sound: alarm input edge -> a rule's `play` sound on the AUDIO OUT (issue 15: within 200 ms).

    ./dev bench alarm_sound [--edges 100] [--device null]

The alarm side runs as in the appliance (AlarmIO on RealClocks, its rule engine, the alarm sound player,
the shared output) with its input on a gpiozero MockFactory pin (NO contact, debounce_ms 0: the debounce
wait is configurable and adds exactly its own length). Each edge closes the contact, the rule plays a
0.3 s 1 kHz WAV (decoded at start), the contact opens 0.5 s later and the sound is stopped. Measured
from the edge to the first sample of the sound:

- written: handed to the output's backend (what the rule engine and the player cost);
- heard: for the ALSA backend (hal.audio_out.AlsaAudioPlayback: its queue, thread and flush as built),
  when the sound's first samples have been handed to the card and the card has played what its buffer
  held before them. This machine has no sound card, and alsa-lib's `null` PCM takes samples at once,
  so the card is modelled (`PacedCard`): a ring of hal.audio_out.CARD_BUFFER_S drained at 48 kHz by
  the clock, `write` blocking while it is full, `drop` emptying it. (`--device null` runs the real
  alsa-lib calls instead; its "heard" is then only the hand-over.) The vivid VM's test prints the
  same path on the kernel's snd-aloop card (tests/appliance/test_alarm_sounds.py).

Cases: the AUDIO OUT idle (the device opened on the alarm); the monitor's channel sound playing on the
same device, its queue held full (0.5 s, what `hal.audio_out` allows) — with the flush on a takeover
(as built) and without it (what the alarm would wait for otherwise); another rule's looping siren
playing (the newer alarm replaces it).
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av  # noqa: E402
import numpy as np  # noqa: E402
from gpiozero import Device  # noqa: E402
from gpiozero.pins.mock import MockFactory  # noqa: E402

from appliance.alarms.io import AlarmIO  # noqa: E402
from appliance.config.model import parse_config  # noqa: E402
from appliance.sound.output import MONITOR, AudioOutputs  # noqa: E402
from base.clock import RealClocks  # noqa: E402
from bench.common import print_table  # noqa: E402
import hal.alsa_pcm  # noqa: E402
from hal.audio_out import CARD_BUFFER_S, AlsaAudioPlayback, SimulatedAudioPlayback  # noqa: E402
from hal.gpio import GpiozeroGpio  # noqa: E402
from recorder.faults import FaultBoard  # noqa: E402
from recorder.index import Index  # noqa: E402
from recorder.live import LiveHub  # noqa: E402

RATE = 48_000
MONITOR_LEVEL = 100  # the monitor's "channel sound": a constant, told apart from the siren's tone


def write_wav(path: Path, freq_hz: float, seconds: float) -> str:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=RATE, layout="mono")
        t = np.arange(round(seconds * RATE)) / RATE
        pcm = np.round(16000 * np.sin(2 * math.pi * freq_hz * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts = RATE, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return str(path)


class PacedCard:
    """A sound card model with hal.alsa_pcm.PcmPlayback's interface: a ring of `latency_us` that the
    card empties at `sample_rate` in real time."""

    def __init__(self, device: str, *, sample_rate: int, channels: int, latency_us: int):
        self.sample_rate, self.channels = sample_rate, channels
        self.capacity = round(latency_us / 1e6 * sample_rate)
        self.ring, self.at = 0.0, time.perf_counter()
        self.underruns = 0
        self.lock = threading.Lock()

    def _level(self) -> float:
        now = time.perf_counter()
        self.ring = max(0.0, self.ring - (now - self.at) * self.sample_rate)
        self.at = now
        return self.ring

    def write(self, samples) -> None:
        left = len(samples)
        while left:
            with self.lock:
                room = int(self.capacity - self._level())
                take = min(room, left)
                self.ring += take
                left -= take
            if left:
                time.sleep(min(left, self.capacity) / self.sample_rate / 4)

    def drop(self) -> None:
        with self.lock:
            self.ring = 0.0

    def drain(self) -> None:
        with self.lock:
            wait = self._level() / self.sample_rate
        time.sleep(wait)

    def delay_frames(self) -> int:
        with self.lock:
            return round(self._level())

    def close(self) -> None:
        pass


class Timed:
    """Wraps a backend: times the first write of each siren (samples other than the monitor's level)."""

    def __init__(self, inner, *, flush: bool = True):
        self.inner, self.do_flush = inner, flush
        self.armed = False
        self.written_ns = 0
        self.card_target = None  # frames_played at which the sound is handed to the card (ALSA backend)
        self.card_ns = 0

    def open(self, *, sample_rate, channels):
        self.inner.open(sample_rate=sample_rate, channels=channels)

    def write(self, samples):
        if self.armed and np.any((samples != MONITOR_LEVEL) & (samples != 0)):
            self.armed = False
            self.written_ns = time.perf_counter_ns()
            if isinstance(self.inner, AlsaAudioPlayback):
                self.card_target = self.inner.frames_played + self.inner._queued_frames
        self.inner.write(samples)

    def flush(self):
        if self.do_flush:
            self.inner.flush()

    def close(self):
        self.inner.close()

    def statistics(self):
        return self.inner.statistics()

    def wait_card(self, timeout_s: float = 5.0) -> None:
        """Poll until the ALSA thread has handed the siren's first samples to the card; then add what the
        card's buffer held before them."""
        end = time.perf_counter() + timeout_s
        while self.card_target is None and time.perf_counter() < end:
            time.sleep(0.0002)
        while self.card_target is not None and self.inner.frames_played <= self.card_target:
            if time.perf_counter() > end:
                raise TimeoutError("the siren never reached the card")
            time.sleep(0.0002)
        ahead_s = self.inner.card_delay_s() - (self.inner.frames_played - self.card_target) / RATE  # not its own
        self.card_ns = time.perf_counter_ns() + round(max(0.0, ahead_s) * 1e9)
        self.card_target = None


def monitor_feeder(outputs: AudioOutputs, device: str, stop: threading.Event) -> threading.Thread:
    """The monitor's channel sound: 20 ms writes, kept 0.5 s ahead (its queue full, the worst case)."""
    def run():
        source = outputs.speaker(device, name="monitor", priority=MONITOR)()
        source.open(sample_rate=RATE, channels=2)
        chunk = np.full((960, 2), MONITOR_LEVEL, np.int16)
        start, sent = time.perf_counter(), 0
        while not stop.is_set():
            source.write(chunk)
            sent += 960
            ahead = sent / RATE - (time.perf_counter() - start)
            if ahead > 0.5:
                time.sleep(ahead - 0.5)
        source.close()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def run_case(name: str, *, edges: int, device: str, backend: str, flush: bool, monitor: bool, loop: bool,
             tmp: Path) -> list:
    siren = write_wav(tmp / "siren.wav", 1000, 0.3)
    loop_rule = f"  - {{when: {{alarm_input: loop}}, do: [{{play: {{file: '{write_wav(tmp / 'loop.wav', 500, 0.4)}', " \
                f"loop: true}}}}]}}\n" if loop else ""
    config = parse_config(f"""
storage: {{path: {tmp}}}
channels: [{{id: 1, source: {{type: test-pattern}}}}]
audio_out: {{device: '{device}'}}
alarms:
  inputs: [{{id: door, pin: 17, contact: "NO", debounce_ms: 0}}, {{id: loop, pin: 18, contact: "NO", debounce_ms: 0}}]
  temperature: {{thermal_zones: false}}
rules:
  - {{when: {{alarm_input: door}}, do: [{{play: '{siren}'}}]}}
{loop_rule}""")
    timed = Timed(AlsaAudioPlayback(device) if backend == "alsa" else SimulatedAudioPlayback(), flush=flush)
    outputs = AudioOutputs(playback=lambda _: timed)
    factory, previous = MockFactory(), Device.pin_factory
    Device.pin_factory = factory
    index, clocks = Index(tmp), RealClocks()
    io = AlarmIO(config, clocks=clocks, index=index, faults=FaultBoard(clocks=clocks), live=LiveHub(),
                 gpio=GpiozeroGpio(pin_factory=factory), outputs=outputs)
    stop = threading.Event()
    io.start()
    feeder = monitor_feeder(outputs, device, stop) if monitor else None
    written, carded = [], []
    try:
        if loop:
            factory.pin(18).drive_low()
            time.sleep(0.3)
        for _ in range(edges):
            time.sleep(0.2)
            timed.armed = True
            start = time.perf_counter_ns()
            factory.pin(17).drive_low()
            deadline = time.perf_counter() + 5
            while timed.armed and time.perf_counter() < deadline:
                time.sleep(0.0002)
            written.append((timed.written_ns - start) / 1e6)
            if backend == "alsa":
                timed.wait_card()
                carded.append((timed.card_ns - start) / 1e6)
            time.sleep(0.3)
            factory.pin(17).drive_high()
    finally:
        stop.set()
        if feeder is not None:
            feeder.join(5)
        io.stop()
        index.close()
        Device.pin_factory = previous
    row = [name, backend, *_stats(written)]
    return row + (_stats(carded) if carded else ["-", "-", "-"])


def _stats(values: list[float]) -> list[float]:
    ordered = sorted(values)
    return [statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))], ordered[-1]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edges", type=int, default=100)
    parser.add_argument("--device", default=None, help="an ALSA playback device for the alsa rows instead of "
                                                       "the modelled card (`null`: alsa-lib's null PCM)")
    args = parser.parse_args()
    if args.device is None:
        hal.alsa_pcm.PcmPlayback = PacedCard  # AlsaAudioPlayback opens the model
    device = args.device or "hw:0,0"
    cases = [
        ("AUDIO OUT idle", dict(flush=True, monitor=False, loop=False)),
        ("monitor sound playing (flush, as built)", dict(flush=True, monitor=True, loop=False)),
        ("monitor sound playing, no flush", dict(flush=False, monitor=True, loop=False)),
        ("another alarm's siren looping", dict(flush=True, monitor=False, loop=True)),
    ]
    rows = []
    for backend in ("simulated", "alsa"):
        for name, options in cases:
            if backend == "simulated" and not options["flush"]:
                continue  # a simulated speaker queues nothing: no difference to show
            with tempfile.TemporaryDirectory() as tmp:
                rows.append(run_case(name, edges=args.edges, device=device if backend == "alsa" else "simulated",
                                     backend=backend, tmp=Path(tmp), **options))
    card = f"ALSA {args.device!r}" if args.device else f"a modelled card, {CARD_BUFFER_S * 1000:.0f} ms buffer"
    print_table(f"edge -> alarm sound, ms ({args.edges} edges per row; alsa rows: {card})",
                ["case", "backend", "written p50", "p99", "max", "heard p50", "p99", "max"], rows)


if __name__ == "__main__":
    main()
