"""Camera events (drivers.onvif.events): the topic table over real cameras' message shapes, the parser's
bounds against hostile answers, and the PullPoint subscriber against the replaying responder (long
poll, Renew before the termination time, a new subscription with backoff after the camera fails)."""
from __future__ import annotations

import asyncio
import threading

import pytest
from lxml import etree
from onvif import ONVIFCamera

from base.clock import RealClocks
from drivers.onvif import events as ev
from drivers.onvif.events import CameraEvent, PullPointSubscriber, parse_pull_messages
from support import onvif_events as cams
from support.onvif_events import OnvifResponder, notification, pull_messages_response
from support.waiting import wait_for

EVENTS_NS = "http://www.onvif.org/ver10/events/wsdl"


def one(message: str) -> CameraEvent | None:
    result = parse_pull_messages(pull_messages_response([message]))
    assert len(result.events) <= 1
    return result.events[0] if result.events else None


@pytest.mark.parametrize(("message", "kind", "source", "active"), [
    (cams.hikvision_motion(True), "motion", "VideoSourceToken/MyMotionDetectorRule", True),
    (cams.hikvision_motion(False), "motion", "VideoSourceToken/MyMotionDetectorRule", False),
    (cams.reolink_motion(True), "motion", "000/MyMotionDetectorRule", True),
    (cams.dahua_motion_alarm(True), "motion", "000", True),
    (cams.hikvision_line_crossed(), "line_crossing", "VideoSourceToken/MyLineDetectorRule", True),
    (cams.hikvision_field(True), "intrusion", "VideoSourceToken/MyFieldDetectorRule", True),
    (cams.hikvision_tamper(True), "tamper", "VideoSourceToken/MyTamperDetectorRule", True),
    (cams.dahua_scene_change(True), "tamper", "000", True),
    (cams.digital_input("AlarmIn_0", True), "digital_input", "AlarmIn_0", True),
    (cams.digital_input("AlarmIn_0", False), "digital_input", "AlarmIn_0", False),
    (cams.axis_port("1", True), "digital_input", "1", True),
    (notification("tns1:RuleEngine/CellMotionDetector/LineCross", {"VideoSourceConfigurationToken": "vsconf",
                  "Rule": "MyLineCrossDetectorRule"}, {"IsLineCross": "true"}), "line_crossing",
     "vsconf/MyLineCrossDetectorRule", True),  # TP-Link Tapo, as Home Assistant's tests captured it
    (notification("tns1:VideoSource/ImageTooBlurry/ImagingService", {"Source": "VideoSource_1"},
                  {"State": "true"}), "tamper", "VideoSource_1", True),
])
def test_vendor_topics_map_to_kind_source_and_state(message, kind, source, active):
    event = one(message)
    assert (event.kind, event.source, event.active) == (kind, source, active)


def test_a_line_crossing_is_a_pulse_and_an_initialized_state_is_marked():
    assert one(cams.hikvision_line_crossed()).pulse
    event = one(cams.hikvision_motion(False, operation="Initialized"))
    assert event.initial and not event.pulse


def test_topics_match_whatever_prefix_and_case_the_camera_uses():
    event = one(notification("ns7:ruleengine/ns8:CellMotionDetector/MOTION", {"VideoSourceToken": "v"},
                             {"IsMotion": "1"}))
    assert (event.kind, event.source, event.active) == ("motion", "v", True)


def test_unknown_topics_and_unreadable_states_are_counted_not_raised():
    result = parse_pull_messages(pull_messages_response([
        cams.unknown_topic(), cams.unknown_topic(),
        notification("tns1:RuleEngine/CellMotionDetector/Motion", {}, {"IsMotion": "maybe"}),
        notification("tns1:RuleEngine/CellMotionDetector/Motion", {}, {}),
        cams.hikvision_motion(True)]))
    assert [e.kind for e in result.events] == ["motion"]
    assert result.unknown_topics == ["tns1:Monitoring/ProcessorUsage"] * 2 and result.skipped == 2


@pytest.mark.parametrize("data", [
    b"",
    b"<not xml",
    b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>',
    b'<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><s:Envelope xmlns:s="x"><s:Body>&c;</s:Body></s:Envelope>',
    b"<" * 10 + b"a" + b">" * 10,
    b'<a xmlns:x="' + b"u" * 200 + b'">' + b"<b>" * 300 + b"</b>" * 300 + b"</a>",
])
def test_hostile_answers_raise_value_error_only(data):
    try:
        result = parse_pull_messages(data)
    except ValueError:
        return
    assert result.events == []


def test_an_oversized_answer_is_refused_before_parsing():
    with pytest.raises(ValueError, match="over"):
        parse_pull_messages(b" " * (ev.MAX_RESPONSE_BYTES + 1))


def test_no_more_than_the_message_bound_is_looked_at_and_long_values_are_ignored():
    many = [cams.digital_input(str(n), True) for n in range(ev.MAX_MESSAGES_PER_PULL + 50)]
    assert len(parse_pull_messages(pull_messages_response(many)).events) == ev.MAX_MESSAGES_PER_PULL
    long_token = notification("tns1:Device/Trigger/DigitalInput", {"InputToken": "x" * (ev.MAX_TEXT_CHARS + 1)},
                              {"LogicalState": "true"})
    assert one(long_token).source == ""  # the token is dropped, the state still counts
    long_topic = notification("tns1:" + "A/" * ev.MAX_TEXT_CHARS + "Motion", {}, {"State": "true"})
    assert parse_pull_messages(pull_messages_response([long_topic])).events == []


# --- the subscriber against the responder ----------------------------------------------------------


class Recorder:
    """Collects the subscriber's events and lets the test wait on them (threads: responder vs loop)."""

    def __init__(self):
        self.events: list[CameraEvent] = []
        self.states: list[tuple[bool, str | None]] = []
        self._cond = threading.Condition()

    def on_events(self, events):
        with self._cond:
            self.events.extend(events)
            self._cond.notify_all()

    def on_state(self, ok, error):
        with self._cond:
            self.states.append((ok, error))
            self._cond.notify_all()

    async def until(self, predicate, timeout_s: float = 10.0):
        loop = asyncio.get_running_loop()

        def wait():
            with self._cond:
                assert self._cond.wait_for(lambda: predicate(self), timeout_s), (self.events, self.states)
        await loop.run_in_executor(None, wait)


async def subscribed(responder, recorder, **options):
    camera = ONVIFCamera("127.0.0.1", responder.port, "admin", "secret", no_cache=True)
    await camera.update_xaddrs()
    subscriber = PullPointSubscriber(camera, name="cam", clocks=RealClocks(), on_events=recorder.on_events,
                                     on_state=recorder.on_state, **options)
    return camera, subscriber, asyncio.create_task(subscriber.run())


async def finish(camera, task):
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await camera.close()


def test_events_emitted_by_the_camera_arrive_through_the_long_poll():
    async def main(responder):
        recorder = Recorder()
        camera, subscriber, task = await subscribed(responder, recorder, pull_timeout_s=2.0)
        await recorder.until(lambda r: r.states == [(True, None)])
        responder.emit(cams.hikvision_motion(True), cams.unknown_topic(), cams.digital_input("AlarmIn_0", True))
        await recorder.until(lambda r: len(r.events) == 2)
        responder.emit(cams.unknown_topic())
        await asyncio.get_running_loop().run_in_executor(None, lambda: wait_for(
            lambda: subscriber.stats.unknown == 2, what="the second unknown topic to be counted"))
        await finish(camera, task)
        return recorder, subscriber.statistics()

    with OnvifResponder() as responder:
        recorder, stats = asyncio.run(main(responder))
        responder.wait_for("Unsubscribe")
    assert [(e.kind, e.active) for e in recorder.events] == [("motion", True), ("digital_input", True)]
    assert stats["unknown_topics"] == ["tns1:Monitoring/ProcessorUsage"] and stats["subscriptions"] == 1
    pull = etree.fromstring(next(r for r in responder.requests if r.action == "PullMessages").body)
    assert pull.findtext(f".//{{{EVENTS_NS}}}MessageLimit") == str(ev.MESSAGE_LIMIT)
    assert pull.findtext(f".//{{{EVENTS_NS}}}Timeout") == "PT2S"


def test_the_subscription_is_renewed_before_it_terminates():
    async def main(responder):
        recorder = Recorder()
        camera, subscriber, task = await subscribed(responder, recorder, pull_timeout_s=1.0, termination_s=3.0)
        await asyncio.get_running_loop().run_in_executor(None, lambda: responder.wait_for("Renew", count=2))
        await finish(camera, task)
        return subscriber.statistics()

    with OnvifResponder(termination_s=3) as responder:
        stats = asyncio.run(main(responder))
    renewals = [r for r in responder.requests if r.action == "Renew"]
    created = next(r for r in responder.requests if r.action == "CreatePullPointSubscription")
    # Each renew comes at 60 % of the 3 s the camera granted: before it ran out, never after.
    assert renewals[0].at_s - created.at_s < 3.0 and renewals[1].at_s - renewals[0].at_s < 3.0
    assert stats["subscriptions"] == 1 and stats["failures"] == 0


def test_a_failing_camera_is_subscribed_again_with_a_growing_pause():
    pauses: list[float] = []

    async def quick_sleep(seconds: float) -> None:
        pauses.append(seconds)
        await asyncio.sleep(0.01)

    async def main(responder):
        recorder = Recorder()
        camera, subscriber, task = await subscribed(responder, recorder, pull_timeout_s=0.5, sleep=quick_sleep,
                                                    backoff_first_s=1.0, backoff_max_s=4.0)
        await recorder.until(lambda r: r.states == [(True, None)])
        responder.set_broken(True)  # the camera reboots: its event service answers 500
        await recorder.until(lambda r: len(pauses) >= 4)
        responder.set_broken(False)
        await recorder.until(lambda r: r.states[-1] == (True, None) and len(r.states) > 2)
        responder.emit(cams.hikvision_motion(True))
        await recorder.until(lambda r: len(r.events) == 1)
        await finish(camera, task)
        return recorder, subscriber.statistics()

    with OnvifResponder() as responder:
        recorder, stats = asyncio.run(main(responder))
    assert pauses[:4] == [1.0, 2.0, 4.0, 4.0]
    lost, error = recorder.states[1]
    assert lost is False and error  # the subscription was reported lost, with the camera's error
    assert stats["subscriptions"] >= 2 and stats["failures"] >= 4
