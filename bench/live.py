"""bench/live: glass-to-browser latency of the live view, in Debian's headless Chromium.

    ./dev bench live [--channels 1] [--seconds 15] [--width 1280] [--height 720] [--fps 25] [--audio]

Test-pattern channels record as in `nvr run`; each packet carries the capture time of its raw frame
(the moment the simulated sensor produced it). The browser plays the live WebSocket through Media
Source Extensions exactly as the live page does and, with requestVideoFrameCallback, notes when each
frame is presented. Latency = presentation time - capture time (same machine, same clock), split into
capture -> sent by the server (encode, mux, queue) and sent -> presented (socket, MSE, decode, paint).
Goal (issue 5): under 500 ms. Prints a Markdown table. With `--audio` each channel has a simulated
microphone and the player asks for the sound track unmuted, as the page does when its viewer unmutes:
Media Source plays only what it holds of both tracks, so the audio encoder's lag is added.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import deque
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance.config.model import parse_config  # noqa: E402
from appliance.sources import channel_sources  # noqa: E402
from appliance.app import Appliance  # noqa: E402
from bench.common import print_table  # noqa: E402
from base.clock import RealClocks  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--autoplay-policy=no-user-gesture-required"]
PASSWORD = "bench-password-1"


class CaptureStamped:
    """Wraps an encoding source so each packet's `arrival_us` is its raw frame's capture time (the
    encoder is zerolatency without B-frames: one frame in, its packet out, in order)."""

    def __init__(self, inner):
        self._inner, self.name = inner, inner.name
        self._captured: deque[int] = deque(maxlen=64)
        self._tap = None
        inner.frame_tap = self._stamp

    @property
    def frame_tap(self):
        return self._tap

    @frame_tap.setter
    def frame_tap(self, tap) -> None:
        self._tap = tap

    def _stamp(self, frame) -> None:
        self._captured.append(frame.timestamp_us)
        if self._tap is not None:
            self._tap(frame)

    def open(self):
        self._captured.clear()
        return self._inner.open()

    def packets(self):
        for packet in self._inner.packets():
            if packet.track != "video":
                yield packet  # sound: stamped by its own capture
            else:
                yield replace(packet, arrival_us=self._captured.popleft()) if self._captured else packet

    def close(self) -> None:
        self._inner.close()


def start(folder: Path, *, channels: int, width: int, height: int, fps: int, audio: bool = False):
    sound = "    audio: {device: simulated}\n" if audio else ""
    chans = "".join(f"  - id: {i}\n    source: {{type: test-pattern, width: {width}, height: {height}, fps: {fps},"
                    f" keyframe_interval_s: 2}}\n{sound}" for i in range(1, channels + 1))
    config = parse_config(f"storage:\n  path: {folder}\nchannels:\n{chans}", source="<bench>")
    clocks = RealClocks()
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    nvr = Appliance(config, clocks=clocks, sync=False, listen=("127.0.0.1", port),
                    sources=lambda ch: {k: CaptureStamped(v) for k, v in channel_sources(ch, clocks=clocks).items()})
    nvr.users.add_user("bench", PASSWORD, "viewer", replace=True)
    nvr.start()
    time.sleep(1.0)
    return nvr, f"http://127.0.0.1:{port}"


MEASURE_JS = """async ([channel, seconds, sound]) => {
  const { LivePlayer } = await import('/static/live.js');
  const video = document.createElement('video');
  document.body.append(video);
  const sent = new Map();
  const player = new LivePlayer(video, channel, 'main', { timing: true, sound });
  const orig = player.message.bind(player);
  player.message = (data) => {
    if (typeof data === 'string') { const m = JSON.parse(data); if (m.type === 'frame') sent.set(Math.round(m.media_s * 1000), [m.capture_ms, m.sent_ms]); }
    orig(data);
  };
  const samples = [];
  await new Promise((resolve) => {
    const started = performance.now();
    const onFrame = (now, meta) => {
      const key = Math.round(meta.mediaTime * 1000);
      const t = sent.get(key) || sent.get(key - 1) || sent.get(key + 1);
      if (t) samples.push([performance.timeOrigin + meta.presentationTime - t[0], t[1] - t[0]]);
      if (performance.now() - started > seconds * 1000) resolve(); else video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  });
  player.close();
  return samples;
}"""


def measure(url: str, *, channels: int, seconds: float, audio: bool = False) -> dict[int, list[tuple[float, float]]]:
    from playwright.sync_api import sync_playwright
    results = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.goto(url + "/#/health")
        page.fill("#username", "bench")
        page.fill("#password", PASSWORD)
        page.click("#login-button")
        page.wait_for_selector("#top:not([hidden])")
        for channel in range(1, channels + 1):
            results[channel] = page.evaluate(MEASURE_JS, [channel, seconds, audio])
        browser.close()
    return results


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--audio", action="store_true", help="channels with sound, played unmuted")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-live-") as folder:
        nvr, url = start(Path(folder), channels=args.channels, width=args.width, height=args.height, fps=args.fps,
                         audio=args.audio)
        try:
            results = measure(url, channels=args.channels, seconds=args.seconds, audio=args.audio)
        finally:
            nvr.stop()
    rows = []
    for channel, samples in results.items():
        if not samples:
            rows.append([channel, 0, "-", "-", "-", "-", "-"])
            continue
        total = [s[0] for s in samples]
        server_part = [s[1] for s in samples]
        rows.append([channel, len(samples), round(statistics.median(server_part), 1), round(statistics.median(total), 1),
                     round(percentile(total, 0.95), 1), round(max(total), 1), "yes" if percentile(total, 0.95) < 500 else "NO"])
    sound = ", with sound" if args.audio else ""
    print_table(f"Live view glass-to-browser latency, {args.width}x{args.height}@{args.fps}{sound}, {args.seconds:.0f} s per channel (ms)",
                ["channel", "frames", "capture->sent p50", "glass->presented p50", "p95", "max", "p95 < 500 ms"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
