"""The kernel's ALSA loopback card (snd-aloop, loaded in the vivid VM): what is played on its device 0
is captured on its device 1, so audio capture runs against a real sound driver."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hal.audio import DEBIAN_ALSA_CONFIG

LOOPBACK_CARD = Path("/proc/asound/Loopback")
CAPTURE_DEVICE = "hw:Loopback,1"

_TONE_PLAYER = """
import sys
import av
import numpy as np
seconds, rate = float(sys.argv[1]), int(sys.argv[2])
out = av.open("hw:Loopback,0", "w", format="alsa")
stream = out.add_stream("pcm_s16le", rate=rate, layout="mono")
n = 0
while n < seconds * rate:
    tone = (np.sin(2 * np.pi * 1000 * (np.arange(1024) + n) / rate) * 8000).astype("<i2").reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
    frame.sample_rate, frame.pts = rate, n
    n += 1024
    for packet in stream.encode(frame):
        out.mux(packet)  # blocks at the card's pace
out.close()
"""


def play_tone_on_the_loopback_card(seconds: float, rate: int = 48000) -> subprocess.Popen:
    """A 1 kHz tone at `rate` mono, amplitude 8000, played for `seconds` by another process (so, as
    with a real microphone, nothing in the capturing process paces it). The capture must ask for the
    same rate: the loopback card runs both ends at one."""
    # PyAV's own alsa-lib looks for its configuration where it was built (see hal.audio).
    env = {**os.environ, "ALSA_CONFIG_PATH": os.environ.get("ALSA_CONFIG_PATH", DEBIAN_ALSA_CONFIG)}
    return subprocess.Popen([sys.executable, "-c", _TONE_PLAYER, str(seconds), str(rate)], env=env)
