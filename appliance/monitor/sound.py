"""The full-screen channel's sound on the board's audio output (HDMI on a Pi): one thread that takes the
channel's AAC from its live tap (what the recorder records: a G.711 camera's sound was transcoded once
there), decodes it and plays it at PLAY_RATE stereo, which every HDMI sink takes.

The speaker is told the sound as it comes, never waited for: `hal.audio_out` drops what would queue
beyond half a second, so the sound stays within that of the picture and a stalled card costs sound only.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import av

from base.media import EncodedPacket
from hal.audio_out import AudioPlayback, AudioPlaybackError
from recorder.aac import AacError, split_adts
from recorder.live import LiveStream, RunStarted

log = logging.getLogger("nvr.monitor")

PLAY_RATE = 48_000
PLAY_CHANNELS = 2
POLL_S = 0.25


class SoundFeed:
    """Plays the sound of `live` on a speaker made by `speaker()` until `close()`. Thread-safe."""

    def __init__(self, *, channel: int, live: LiveStream, speaker: Callable[[], AudioPlayback]):
        self.channel, self._live, self._speaker_factory = channel, live, speaker
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._decoder = None
        self._resampler = av.AudioResampler(format="s16", layout="stereo", rate=PLAY_RATE)
        self.frames_decoded = self.errors = 0
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"monitor-sound-{self.channel}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _run(self) -> None:
        speaker = self._speaker_factory()
        try:
            speaker.open(sample_rate=PLAY_RATE, channels=PLAY_CHANNELS)
        except AudioPlaybackError as exc:
            self.last_error = str(exc)
            log.warning("monitor: no sound for channel %d: %s", self.channel, exc)
            return
        try:
            with self._live.subscribe(max_items=256) as sub:
                while not self._stop.is_set():
                    item = sub.get(timeout_s=POLL_S)
                    if isinstance(item, RunStarted):
                        self._decoder = _decoder(item.info.audio)
                    elif isinstance(item, EncodedPacket) and item.track == "audio" and self._decoder is not None:
                        self._play(item, speaker)
        finally:
            speaker.close()

    def _play(self, packet: EncodedPacket, speaker: AudioPlayback) -> None:
        try:
            adts = split_adts(packet.data)
            frames = self._decoder.decode(av.Packet(packet.data if adts is None else adts[0]))
            for frame in frames:
                frame.pts = None  # the resampler times nothing: the speaker plays as it comes
                for out in self._resampler.resample(frame):
                    speaker.write(out.to_ndarray().reshape(-1, PLAY_CHANNELS))
                self.frames_decoded += 1
        except (av.FFmpegError, AacError, ValueError, AudioPlaybackError) as exc:
            self.errors += 1
            self.last_error = str(exc)

    def statistics(self) -> dict:
        return {"channel": self.channel, "frames_decoded": self.frames_decoded, "errors": self.errors,
                "last_error": self.last_error}


def _decoder(audio):
    """An AAC decoder for the stream's sound, or None when it has none (or none the tap carries: only AAC)."""
    if audio is None or audio.codec != "aac":
        return None
    decoder = av.CodecContext.create("aac", "r")
    if audio.extradata:
        decoder.extradata = audio.extradata
    return decoder
