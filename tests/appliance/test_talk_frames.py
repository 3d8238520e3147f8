"""Talk frames from the browser are hostile input: the parser's table of refusals, the talker's budget
(sound at most a little faster than real time, a burst for what the page buffered), and the AUDIO OUT's
8 kHz → 48 kHz resampling keeping pitch and joining frames without a step."""
from __future__ import annotations

import time

import numpy as np
import pytest

from appliance.talk.frames import (BURST_S, MAX_FRAME_BYTES, MAX_FRAME_SAMPLES, RATE_MARGIN, SAMPLE_RATE, TalkBudget,
                                   TalkFrame, TalkFrameError, build_talk_frame, parse_talk_frame)
from appliance.talk.sinks import AUDIO_OUT_RATE, AudioOutSpeaker
from hal.audio_out import SimulatedAudioPlayback
from support.talk import dominant_frequency, tone


def test_a_frame_is_parsed_to_its_sequence_and_samples():
    frame = parse_talk_frame(b"\x01\x00\x34\x12" + b"\x01\x00\xff\xff\x00\x80")
    assert frame.sequence == 0x1234 and frame.samples.tolist() == [1, -1, -32768]
    assert frame.samples.dtype == np.int16
    samples = tone(440, 0.1)
    again = parse_talk_frame(build_talk_frame(70000, samples))
    assert again.sequence == 70000 & 0xFFFF and again.samples.tolist() == samples.tolist()


@pytest.mark.parametrize(("data", "says"), [
    (b"", "no sound"),
    (b"\x01\x00\x00\x00", "no sound"),
    (b"\x01\x00\x00\x00\x01", "no sound"),
    (b"\x02\x00\x00\x00\x00\x00", "version 2"),
    (b"\x01\x80\x00\x00\x00\x00", "flags 0x80"),
    (b"\x01\x00\x00\x00\x00\x00\x00", "whole 16-bit samples"),
    (b"\x01\x00\x00\x00" + b"\x00" * (2 * MAX_FRAME_SAMPLES + 2), f"at most {MAX_FRAME_BYTES}"),
    (b"\x01" * 10_000_000, f"at most {MAX_FRAME_BYTES}"),
])
def test_a_malformed_frame_is_refused_with_the_rule_it_broke(data, says):
    with pytest.raises(TalkFrameError, match=says):
        parse_talk_frame(data)


def frames(count: int, samples: int = 160, first: int = 0) -> list[TalkFrame]:
    return [TalkFrame((first + i) & 0xFFFF, np.zeros(samples, np.int16)) for i in range(count)]


def test_the_budget_takes_real_time_sound_and_a_burst_and_drops_a_flood():
    budget = TalkBudget(now_s=0.0)
    # Real time for a minute: 50 frames of 20 ms a second, every one admitted.
    assert all(budget.admit(f, now_s=i * 0.02) for i, f in enumerate(frames(3000)))
    assert budget.dropped_frames == 0 and budget.lost_frames == 0
    # Then ten seconds of sound at one instant: the burst allowance and no more.
    at_s = 3000 * 0.02
    admitted = sum(budget.admit(f, now_s=at_s) for f in frames(500, first=3000))
    assert admitted * 160 <= BURST_S * SAMPLE_RATE and admitted >= 0.9 * BURST_S * SAMPLE_RATE / 160 - 1
    assert budget.dropped_frames == 500 - admitted
    # Faster than RATE_MARGIN for long: the excess is dropped however it is spread.
    late = TalkBudget(now_s=0.0)
    sent = frames(2000)  # 40 s of sound in 20 s
    kept = sum(late.admit(f, now_s=i * 0.01) for i, f in enumerate(sent))
    assert kept * 160 <= (20 * RATE_MARGIN + BURST_S) * SAMPLE_RATE + 160


def test_the_budget_bounds_messages_too_and_counts_gaps_in_the_sequence():
    budget = TalkBudget(now_s=0.0)
    tiny = frames(1000, samples=1)  # a flood of one-sample messages: cheap in sound, not in work
    assert sum(budget.admit(f, now_s=0.0) for f in tiny) <= 100
    counted = TalkBudget(now_s=0.0)
    for sequence in (10, 11, 15, 14, 16):  # 12-14 missing, then 14 comes late
        counted.admit(TalkFrame(sequence, np.zeros(160, np.int16)), now_s=0.0)
    assert counted.lost_frames == 3
    wrapped = TalkBudget(now_s=0.0)
    for sequence in (65534, 65535, 0, 1):
        wrapped.admit(TalkFrame(sequence, np.zeros(160, np.int16)), now_s=0.0)
    assert wrapped.lost_frames == 0


def test_the_audio_out_plays_talk_at_48khz_at_its_pitch_without_steps_between_frames():
    speaker = SimulatedAudioPlayback()
    out = AudioOutSpeaker("simulated", playback=speaker)
    out.open()
    sound = tone(700, 1.0)
    for at in range(0, len(sound), 160):
        out.send(sound[at:at + 160])
    played = speaker.played()[:, 0]
    assert speaker.sample_rate == AUDIO_OUT_RATE and abs(len(played) - AUDIO_OUT_RATE) <= 6
    assert abs(dominant_frequency(played, AUDIO_OUT_RATE) - 700) < 3
    steps = np.abs(np.diff(played.astype(np.int32)))
    assert steps.max() <= np.abs(np.diff(sound.astype(np.int32))).max() / 6 + 2  # as smooth as the tone itself


def test_the_audio_out_plays_talk_through_alsa_on_its_null_pcm():
    """The real ALSA path (PyAV's alsa output) into ALSA's `null` PCM, which takes sound at the card's pace
    and keeps none: every frame is played, none dropped. What comes out of a card is the vivid VM's test."""
    av = pytest.importorskip("av")
    if "alsa" not in av.formats_available:
        pytest.skip("FFmpeg here has no alsa output")
    from support.waiting import wait_for

    out = AudioOutSpeaker("null")
    out.open()
    try:
        sound = tone(700, 0.4)
        for at in range(0, len(sound), 160):
            out.send(sound[at:at + 160])
        wait_for(lambda: out.statistics()["frames_played"] >= 0.39 * AUDIO_OUT_RATE,
                 what="ALSA to take the tone", details=out.statistics)
    finally:
        out.close()
    stats = out.statistics()
    assert stats["frames_dropped"] == 0 and stats["error"] is None


@pytest.mark.vivid
def test_talk_on_the_audio_out_comes_out_of_a_kernel_sound_card_at_its_pitch():
    """Against a real kernel sound driver (snd-aloop, loaded in the vivid VM): an operator's 8 kHz talk
    frames, sent to the AUDIO OUT = the loopback card's playback side through the shared output at talk
    priority (as the appliance's talk hub opens it), are captured on the card's other side at their pitch.
    Checks are about what was heard, not how fast (the guest's CPU is emulated)."""
    from appliance.sound.output import TALK, AudioOutputs
    from base.clock import RealClocks
    from hal.audio import AlsaAudioCapture
    from support.alsa_loopback import LOOPBACK_CARD
    from support.tones import loud_frames, pitch_hz
    from support.waiting import wait_for

    if not LOOPBACK_CARD.exists():
        pytest.skip("no ALSA loopback card (snd-aloop) on this kernel")
    clocks = RealClocks()
    # Both ends pinned to substream 0, the capture opened first: the card then makes the playback side take
    # the capture's rate and channels, so it asks for what the shared output opens (stereo at 48 kHz).
    microphone = AlsaAudioCapture("hw:Loopback,1,0", sample_rate=AUDIO_OUT_RATE, channels=2, clocks=clocks)
    microphone.open()
    out = AudioOutSpeaker("hw:Loopback,0,0",
                          playback=AudioOutputs().playback_by_device(name="talk", priority=TALK)("hw:Loopback,0,0"))
    chunks, seconds = [], 1.5
    try:
        out.open()
        started_us = clocks.monotonic_us()
        sound = tone(700, seconds)
        for number, at in enumerate(range(0, len(sound), 160)):  # 20-ms frames at the page's pace (the shared
            out.send(sound[at:at + 160])  # output keeps a short queue: talk is live, not a file)
            time.sleep(max(0.0, started_us / 1e6 + (number + 1) * 0.02 - clocks.monotonic_us() / 1e6))

        def heard_to_its_end() -> bool:
            chunks.extend(microphone.read())
            return bool(chunks) and chunks[-1].timestamp_us > started_us + (seconds + 1.0) * 1e6
        wait_for(heard_to_its_end, timeout_s=120, what="the talk played and captured", poll_s=0.02,
                 details=out.statistics)
    finally:
        out.close()
        microphone.close()
    samples = np.concatenate([c.samples for c in chunks])
    loud = loud_frames(samples)
    assert len(loud) > 0.5 * seconds * AUDIO_OUT_RATE, f"{len(loud)} loud frames of {seconds * AUDIO_OUT_RATE:.0f} sent"
    assert abs(pitch_hz(samples[loud[0]:loud[-1], 0], AUDIO_OUT_RATE) - 700) < 5
