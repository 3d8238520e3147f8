"""Test instruments for two-way talk: a GStreamer ONVIF camera with a back channel (a subprocess under the
system python3, `backchannel_server.py`) that records what its speaker is sent, a tone, and a way to find
the pitch of what was heard, and an appliance with such a camera on one channel. None of this imports pytest."""
from __future__ import annotations

import select
import subprocess
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import numpy as np

from support.rtsp import SYSTEM_PYTHON, rtsp_available, stop_process

SERVER_SCRIPT = Path(__file__).with_name("backchannel_server.py")
HEARD_RATE = 8000  # the server records its back channel's sound as s16le mono at this rate
_PROBE = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
          "from gi.repository import Gst, GstRtspServer; Gst.init(None); GstRtspServer.RTSPOnvifMediaFactory; "
          "print(' '.join(e for e in ('rtppcmudepay', 'rtppcmadepay', 'mulawdec', 'alawdec') "
          "if Gst.ElementFactory.find(e) is None))")


@cache
def backchannel_available() -> tuple[bool, str]:
    """Whether the ONVIF back-channel server can run here, and if not, why (for pytest.skip)."""
    ok, reason = rtsp_available()
    if not ok:
        return ok, reason
    done = subprocess.run([SYSTEM_PYTHON, "-c", _PROBE], capture_output=True, text=True, timeout=30)
    if done.returncode != 0 or done.stdout.strip():
        return False, f"no GStreamer ONVIF back channel: {done.stdout.strip() or done.stderr.strip()[-200:]}"
    return True, "ok"


class BackChannelCamera:
    """The ONVIF test camera: `url`, `heard()` (int16 samples its speaker got so far), `stop()`; its jitter
    buffer `latency_ms` (GStreamer's 200 by default)."""

    def __init__(self, record: Path, *, codec: str = "pcmu", mount: str = "/talk", ready_timeout_s: float = 20.0,
                 latency_ms: int | None = None):
        """`latency_ms`: the camera's RTP jitter buffer (None: GStreamer's default, 200 ms), which holds a
        session's first packet that long before it is heard."""
        self.record, self.codec, self.mount, self.latency_ms = Path(record), codec, mount, latency_ms
        self.record.write_bytes(b"")
        cmd = [SYSTEM_PYTHON, "-u", str(SERVER_SCRIPT), "--port", "0", "--mount", mount, "--codec", codec,
               "--record", str(self.record)]
        if latency_ms is not None:
            cmd += ["--latency-ms", str(latency_ms)]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self._proc.stdout], [], [], ready_timeout_s)
        line = self._proc.stdout.readline() if ready else ""
        if not line.startswith("READY "):
            err = self._proc.stderr.read() if self._proc.poll() is not None else ""
            self.stop()
            raise RuntimeError(f"back-channel server did not start: {line.strip()!r} {err.strip()!r}")
        self.port = int(line.split()[1])

    def url(self, *, userinfo: str = "") -> str:
        at = f"{userinfo}@" if userinfo else ""
        return f"rtsp://{at}127.0.0.1:{self.port}{self.mount}"

    def heard(self) -> np.ndarray:
        data = self.record.read_bytes()
        return np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        stop_process(proc)

    def __enter__(self) -> BackChannelCamera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def appliance_with_talking_camera(tmp: Path, *, channel: int, name: str, more_channels: str = "",
                                  **start) -> Iterator[tuple[object, BackChannelCamera]]:
    """(support.web.WebRig, BackChannelCamera): an appliance started by support.web.start_appliance(tmp,
    **start) whose channel `channel`, named `name`, is a BackChannelCamera recording what its speaker hears
    into tmp/heard.raw, followed by the YAML channel items `more_channels`; both stopped after. Callers
    skip first where backchannel_available() says no."""
    from support.web import start_appliance

    with BackChannelCamera(tmp / "heard.raw") as camera:
        extra = f"  - id: {channel}\n    name: {name}\n    source: {{type: rtsp, url: '{camera.url()}'}}\n"
        app = start_appliance(tmp, extra_channels=extra + more_channels, **start)
        try:
            yield app, camera
        finally:
            app.stop()


def tone(frequency_hz: float, seconds: float, *, rate: int = 8000, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (np.sin(2 * np.pi * frequency_hz * t) * amplitude * 32767).astype(np.int16)


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.asarray(samples, dtype="<i2").tobytes())
    return path


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    """The frequency (Hz) of the strongest bin of the sound's spectrum (Hann window; DC left out)."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    spectrum = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(len(x))))
    spectrum[0] = 0
    return float(np.argmax(spectrum) * rate / len(x))


def level(samples: np.ndarray) -> float:
    """RMS of int16 samples as a fraction of full scale."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1) / 32768
    return float(np.sqrt((x ** 2).mean())) if len(x) else 0.0
