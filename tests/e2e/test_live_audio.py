"""Live view with sound (issue 15, part 2): a G.711 camera recorded by the appliance, its sound transcoded
once to AAC by the recorder and shared with every live viewer. Over the WebSocket a viewer who asks
(`?audio=1`) gets an init segment with an `mp4a` track and the very AAC frames the recording holds; in
Chromium the tile's sound button unmutes it and the page's AudioContext hears the camera's beeps."""
from __future__ import annotations

import json

import pytest

from recorder.fmp4 import read_segment
from support.rtsp import rtsp_audio_available
from support.waiting import DEFAULT_TIMEOUT_S, wait_for
from support.web import PASSWORDS, start_appliance, wait_recording

pytestmark = pytest.mark.rtsp

CAMERA = 5
MOUNT = "live:320x240@25,gop=25,bitrate=300,audio=pcmu"


@pytest.fixture(scope="module")
def sound_appliance(tmp_path_factory):
    ok, reason = rtsp_audio_available()
    if not ok:
        pytest.skip(f"RTSP test server unavailable: {reason}")
    from support.rtsp import RtspServer

    with RtspServer() as server:
        server.start({"/pcmu": MOUNT})
        extra = f"  - id: {CAMERA}\n    name: Door\n    source: {{type: rtsp, url: '{server.url('/pcmu')}'}}\n"
        app = start_appliance(tmp_path_factory.mktemp("live-audio"), channels=1, past_seconds=0, extra_channels=extra)
        try:
            wait_recording(app)
            yield app
        finally:
            app.stop()


def viewer_cookie(app) -> str:
    import httpx

    client = httpx.Client(base_url=app.url)
    client.post("/api/login", json={"username": "viewer", "password": PASSWORDS["viewer"]}).raise_for_status()
    return "; ".join(f"{k}={v}" for k, v in client.cookies.items())


def receive_live(app, query: str, *, audio_frames: int, video_frames: int = 1) -> tuple[dict, bytes, list[bytes]]:
    from websockets.sync.client import connect

    url = app.url.replace("http", "ws") + f"/api/live/{CAMERA}/main{query}"
    with connect(url, additional_headers={"Cookie": viewer_cookie(app)}, open_timeout=5) as ws:
        init = json.loads(ws.recv(timeout=10))
        init_segment = ws.recv(timeout=5)
        fragments: list[bytes] = []
        counts = {"audio": 0, "video": 0}
        while counts["audio"] < audio_frames or counts["video"] < video_frames:
            message = ws.recv(timeout=10)
            assert isinstance(message, bytes), message
            fragments.append(message)
            counts["audio" if _track_of(message) == 2 else "video"] += 1
            assert counts["video"] < 300, f"no sound in {counts['video']} pictures"
    return init, init_segment, fragments


def _track_of(fragment: bytes) -> int:
    """The track id of the first `traf` of a fragment (its `tfhd`)."""
    at = fragment.index(b"tfhd")
    return int.from_bytes(fragment[at + 8:at + 12], "big")


def test_the_live_socket_carries_the_cameras_sound_as_aac_for_a_viewer_who_asks(sound_appliance, tmp_path):
    init, init_segment, fragments = receive_live(sound_appliance, "?audio=1", audio_frames=20)
    assert init["type"] == "init" and init["has_audio"] is True
    assert init["codec"].startswith("avc1.") and init["codec"].endswith(",mp4a.40.2")
    stream = tmp_path / "live.mp4"
    stream.write_bytes(init_segment + b"".join(fragments))
    live = read_segment(stream)  # the project's own MP4 reader: the init segment's mp4a track, and its frames
    assert live.audio is not None and live.audio.sample_rate == 8000 and live.audio.channels == 1
    assert len(live.audio_samples) >= 20
    data = stream.read_bytes()
    live_frames = {data[s.offset:s.offset + s.size] for s in live.audio_samples}
    # Transcoded once: the recording holds the very AAC frames the viewer got.
    recorder = next(r for r in sound_appliance.supervisor.recorders if r.segmenter.channel == CAMERA)
    assert recorder.transcoder is not None and recorder.transcoder.source.codec == "pcm_mulaw"

    def recorded_frames() -> set[bytes]:
        found = set()
        for path in (sound_appliance.root / f"ch{CAMERA:02d}" / "main").glob("*.mp4"):
            contents = read_segment(path)
            raw = path.read_bytes()
            found |= {raw[s.offset:s.offset + s.size] for s in contents.audio_samples}
        return found
    wait_for(lambda: len(live_frames & recorded_frames()) >= len(live_frames) - 2, timeout_s=DEFAULT_TIMEOUT_S * 2,
             what="the live AAC frames to be in the recording (fragments are written about every second)")


def test_a_viewer_who_does_not_ask_gets_the_picture_only_and_is_told_there_is_sound(sound_appliance):
    init, init_segment, fragments = receive_live(sound_appliance, "", audio_frames=0, video_frames=10)
    assert init["has_audio"] is True and "mp4a" not in init["codec"] and b"mp4a" not in init_segment
    assert all(_track_of(f) == 1 for f in fragments)


LEVEL_METER = """(tile) => {
    const video = tile.querySelector('video');
    const ctx = new AudioContext();
    const analyser = ctx.createAnalyser(); analyser.fftSize = 2048;
    ctx.createMediaElementSource(video).connect(analyser); analyser.connect(ctx.destination);
    const buf = new Float32Array(analyser.fftSize);
    window.soundPeak = 0;
    setInterval(() => { analyser.getFloatTimeDomainData(buf);
      for (const x of buf) window.soundPeak = Math.max(window.soundPeak, Math.abs(x)); }, 20);
    return ctx.resume().then(() => ctx.state);
}"""


def test_chromium_plays_the_live_sound_unmuted_when_asked_and_hears_the_beeps(sound_appliance):
    from test_web_browser import CHROMIUM, FLAGS, shot

    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(sound_appliance.url + "/")
        page.fill("#username", "viewer")
        page.fill("#password", PASSWORDS["viewer"])
        page.click("#login-button")
        tile = f"#live-grid .tile[data-channel='{CAMERA}']"
        page.wait_for_function(f"() => {{ const v = document.querySelector(\"{tile} video\"); return v && v.currentTime > 0.5 }}",
                               timeout=DEFAULT_TIMEOUT_S * 1000)
        # Muted by default, picture only; the button is there because the stream has sound.
        assert page.evaluate(f"document.querySelector(\"{tile} video\").muted") is True
        assert "mp4a" not in page.evaluate(f"document.querySelector(\"{tile}\").nvrPlayer.codec")
        page.wait_for_selector(f"{tile} button.sound:not([hidden])")
        assert page.locator(f"{tile} button.sound").get_attribute("aria-pressed") == "false"
        assert page.evaluate(LEVEL_METER, page.query_selector(tile)) == "running"
        page.wait_for_timeout(1500)  # over a beep (one a second): a muted element gives the meter silence
        assert page.evaluate("window.soundPeak") < 0.01

        page.click(f"{tile} button.sound")
        assert not page.evaluate("location.hash").endswith("full")
        assert page.locator(".tile.full").count() == 0  # the click was for the sound, not full screen
        page.wait_for_function(f"""() => {{ const t = document.querySelector("{tile}"), v = t.querySelector('video');
            return !v.muted && (t.nvrPlayer.codec || '').includes('mp4a.40.2') && v.currentTime > 0.5
                   && v.webkitAudioDecodedByteCount > 0 }}""", timeout=DEFAULT_TIMEOUT_S * 1000)
        page.wait_for_function("() => window.soundPeak > 0.1", timeout=DEFAULT_TIMEOUT_S * 1000)
        assert page.locator(f"{tile} button.sound").get_attribute("aria-pressed") == "true"
        shot(page, "live-sound")

        # Full screen has the control too, muted until asked.
        page.click(tile)
        page.wait_for_selector(".tile.full button.sound:not([hidden])", timeout=DEFAULT_TIMEOUT_S * 1000)
        assert page.evaluate("document.querySelector('.tile.full video').muted") is True
        page.click(".tile.full button.sound")
        page.wait_for_function("""() => { const t = document.querySelector('.tile.full');
            return !t.querySelector('video').muted && (t.nvrPlayer.codec || '').includes('mp4a.40.2') }""",
                               timeout=DEFAULT_TIMEOUT_S * 1000)
        assert page.locator(".tile.full").count() == 1
        browser.close()
    assert not errors, errors
