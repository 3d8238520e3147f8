"""An analog channel whose microphone fails or hangs keeps its video: the sound is the microphone's share.

The image smoke test saw channel 2 (a test pattern with an ALSA microphone on snd-aloop) stay in video
loss after a run ended: reopening the channel reopened the microphone on the recording thread, and a
microphone open that fails (EIO when it opens second on the loopback card) or blocks kept the video
from coming back. These tests put a microphone that fails or blocks on its second open under a
test-pattern channel, through VideoLossGuard, EncodedCapture and a StreamRecorder.
"""
from __future__ import annotations

import threading

import pytest

from base.clock import RealClocks, SimulatedClocks
from hal.audio import AudioCaptureError, SimulatedAudioCapture
from hal.video.simulated import TestPatternCapture
from recorder.audio_encode import CapturedAudio
from recorder.encode import EncodedCapture
from recorder.errors import TracksChanged, VideoLoss
from recorder.faults import FaultBoard
from recorder.microphone import AUDIO_LOST, OPENER_THREAD
from recorder.video_loss import VideoLossGuard
from support.waiting import wait_for

CHANNEL = 2


class ScriptedMicrophone(SimulatedAudioCapture):
    """A simulated microphone whose opens after the first fail (`fail`) or block until `release` (`block`)."""

    def __init__(self, *, clocks, after_first: str):
        super().__init__(sample_rate=16000, clocks=clocks, name="hw:Loopback,1,0")
        self.after_first = after_first  # "fail", "block" or "ok"
        self.opens = 0
        self.release = threading.Event()
        self.blocked = threading.Event()

    def open(self):
        self.opens += 1
        if self.opens > 1 and self.after_first == "fail":
            raise AudioCaptureError(f"cannot open ALSA device {self.name}: Input/output error")
        if self.opens > 1 and self.after_first == "block":
            self.blocked.set()
            self.release.wait()
        return super().open()


def channel(clocks, microphone, faults, **kwargs):
    capture = TestPatternCapture(width=64, height=48, fps=10, clocks=clocks, channel_id=CHANNEL)
    encoded = EncodedCapture(capture, name="ch2", clocks=clocks, bitrate=100_000, keyframe_interval_s=1.0,
                             audio=CapturedAudio(microphone, bitrate=32_000, clocks=clocks), faults=faults,
                             channel=CHANNEL, **kwargs)
    return capture, VideoLossGuard(encoded, capture, channel=CHANNEL, faults=faults, clocks=clocks)


def lose_the_picture(guard, capture) -> None:
    """Record until audio and video flowed, cut the camera, and end the run as the recorder does."""
    packets = guard.packets()
    tracks = set()
    while tracks != {"audio", "video"}:
        tracks.add(next(packets).track)
    capture.cut_signal()
    with pytest.raises(VideoLoss):
        for _ in packets:
            pass
    guard.close()
    capture.restore_signal()


def kinds(faults) -> list[str]:
    return sorted(fault.kind for fault in faults.active())


def test_video_comes_back_while_the_microphone_reopen_blocks():
    clocks = RealClocks()
    faults = FaultBoard(clocks=clocks)
    microphone = ScriptedMicrophone(clocks=clocks, after_first="block")
    capture, guard = channel(clocks, microphone, faults, audio_open_wait_s=0.2)
    assert guard.open().audio is not None
    lose_the_picture(guard, capture)
    got: dict[str, object] = {}

    def reopen() -> None:
        got["info"] = guard.open()
        got["first"] = next(packet for packet in guard.packets() if packet.track == "video")

    threading.Thread(target=reopen, daemon=True).start()
    try:
        wait_for(lambda: "first" in got, timeout_s=10, what="a video packet while the microphone's open hangs",
                 details=lambda: kinds(faults))
        assert microphone.blocked.is_set() and got["info"].audio is None
        assert kinds(faults) == [AUDIO_LOST]  # video_loss cleared by the picture; the sound is still lost
        [lost] = [fault for fault in faults.active() if fault.kind == AUDIO_LOST]
        assert lost.channel == CHANNEL and "did not open within" in lost.message
    finally:
        microphone.release.set()
        guard.close()


def test_a_microphone_that_fails_its_second_open_costs_only_the_sound_and_returns_in_a_new_run(clocks):
    faults = FaultBoard(clocks=clocks)
    microphone = ScriptedMicrophone(clocks=clocks, after_first="fail")
    capture, guard = channel(clocks, microphone, faults)
    guard.open()
    lose_the_picture(guard, capture)

    failed_us = clocks.monotonic_us()
    info = guard.open()  # the picture is back; the microphone fails (EIO)
    assert info.audio is None
    packets = guard.packets()
    assert next(packets).track == "video"
    assert kinds(faults) == [AUDIO_LOST]
    [lost] = faults.active()
    assert "Input/output error" in lost.message and lost.channel == CHANNEL
    assert "Input/output error" in guard.statistics()["audio_error"]

    microphone.after_first = "ok"  # the device works again: the next retry (after 5 s) opens it
    with pytest.raises(TracksChanged, match="microphone is back"):
        for packet in packets:
            assert packet.track == "video"  # no sound in a run that declared none
    assert clocks.monotonic_us() - failed_us >= 4.9e6 and microphone.opens == 3  # retried once, after 5 s
    guard.close()  # as the recorder does at the end of a run; the open microphone is kept for the next
    info = guard.open()
    assert info.audio is not None and faults.active() == []
    tracks = set()
    for packet in guard.packets():
        tracks.add(packet.track)
        if tracks == {"audio", "video"}:
            break
    guard.close()


def test_retries_back_off_and_a_hanging_open_holds_one_thread_however_long_it_hangs(clocks):
    faults = FaultBoard(clocks=clocks)
    microphone = ScriptedMicrophone(clocks=clocks, after_first="fail")
    capture, guard = channel(clocks, microphone, faults)
    guard.open()
    lose_the_picture(guard, capture)
    guard.open()
    packets = guard.packets()
    began_us, opens = clocks.monotonic_us(), microphone.opens
    while clocks.monotonic_us() - began_us < 60_000_000:  # a minute of failing retries
        next(packets)
    # 5 s, doubling: retries at about 5, 15, 35 s: three in a minute, not one per frame or per second.
    assert 2 <= microphone.opens - opens <= 4
    microphone.after_first = "block"
    while not microphone.blocked.is_set():
        next(packets)
    for _ in range(600):  # another minute on the video while the open hangs
        assert next(packets).track == "video"
    openers = [t for t in threading.enumerate() if t.name.startswith(OPENER_THREAD)]
    assert len(openers) == 1
    microphone.release.set()
    wait_for(lambda: not any(t.name.startswith(OPENER_THREAD) for t in threading.enumerate()),
             what="the opener thread to end once the open returns")
    guard.close()


def test_through_the_recorder_a_lost_microphone_costs_no_video_and_no_source_lost(tmp_path, index, clocks):
    from recorder.stream_recorder import StreamRecorder
    from support.recording import make_segmenter

    faults = FaultBoard(clocks=clocks)
    changes: list[tuple[str, bool]] = []
    faults.subscribe(lambda fault, active: changes.append((fault.kind, active)))
    microphone = ScriptedMicrophone(clocks=clocks, after_first="fail")
    capture, guard = channel(clocks, microphone, faults)
    segmenter = make_segmenter(tmp_path, index, clocks, channel=CHANNEL, faults=faults)
    recorder = StreamRecorder(source=guard, segmenter=segmenter, faults=faults, clocks=clocks)
    recorder.start()
    try:
        wait_for(lambda: segmenter.stats.audio_frames_recorded > 0, what="sound in the first run")
        capture.cut_signal()
        wait_for(lambda: ("video_loss", True) in changes, what="video_loss")
        capture.restore_signal()
        wait_for(lambda: ("video_loss", False) in changes and recorder.connects >= 2,
                 what="the picture back in a run of its own", details=lambda: (changes, recorder.connects))
        assert ("audio_lost", True) in changes
        audio_before = segmenter.stats.audio_frames_recorded
        microphone.after_first = "ok"
        wait_for(lambda: ("audio_lost", False) in changes and segmenter.stats.audio_frames_recorded > audio_before,
                 what="the microphone back, in a new run", details=lambda: (changes, recorder.connects))
        assert recorder.connects >= 3  # first, after the picture came back, with the microphone back
    finally:
        recorder.stop()
    assert recorder.failures == 0 and "source_lost" not in {kind for kind, _ in changes}
    assert not recorder.is_alive()


def test_a_microphone_that_opens_after_the_channel_stopped_is_closed_not_left_open():
    clocks = RealClocks()
    faults = FaultBoard(clocks=clocks)
    microphone = ScriptedMicrophone(clocks=clocks, after_first="block")
    capture, guard = channel(clocks, microphone, faults, audio_open_wait_s=0.05)
    guard.open()
    lose_the_picture(guard, capture)
    assert guard.open().audio is None  # the microphone's open hangs
    guard.close()  # the channel stops while it hangs
    microphone.release.set()
    wait_for(lambda: not any(t.name.startswith(OPENER_THREAD) for t in threading.enumerate()),
             what="the opener thread to end once the open returns")
    assert microphone._start_us is None  # closed by the opener, since nobody took it
