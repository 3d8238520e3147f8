"""Integration accounts: Home Assistant's ONVIF library, with its default PasswordDigest, logs in to the box
and lists its channels, FFmpeg pulls them over RTSP with the same account; replays, stale tokens and
wrong passwords are refused; the password is kept sealed with a 0600 key file and every change is audited."""
from __future__ import annotations

import base64
import datetime as dt
import secrets
import subprocess
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from appliance import cli
from appliance.onvif_server.device import DEVICE_PATH
from appliance.onvif_server.username_token import CLOCK_SKEW_S, MAX_TOKEN_AGE_S, password_digest
from appliance.web.secret_box import KEY_FILE, SecretError, SecretKey
from appliance.web.users import USERS_FILE, AccountError, UserStore
from base.clock import RealClocks
from support.box_rtsp import Box, start_box
from support.onvif_client import ask_onvif
from support.rtsp import rtsp_available
from support.waiting import wait_for
from support.web import free_port, login, start_appliance

pytest.importorskip("onvif", reason="needs onvif-zeep-async")  # support.onvif_client asks with it
zeep = pytest.importorskip("zeep")
ACCOUNT, PASSWORD = "hass", "hass-pass-123"
FFPROBE = "/usr/bin/ffprobe"
needs_rtsp = pytest.mark.skipif(not rtsp_available()[0], reason=rtsp_available()[1])


@pytest.fixture(scope="module")
def box(tmp_path_factory) -> Box:
    if not rtsp_available()[0]:
        pytest.skip(rtsp_available()[1])
    port = free_port()
    box = start_box(tmp_path_factory.mktemp("integration"), channels=2,
                    extra=f"onvif_server: {{enabled: true, listen: 127.0.0.1:{port}, discovery: false}}\n",
                    integration_accounts={ACCOUNT: PASSWORD})
    box.onvif_port = port
    yield box
    box.nvr.stop()


def ask(box: Box, steps, name: str = ACCOUNT, password: str = PASSWORD):
    """Run `steps(camera)` with onvif-zeep-async as Home Assistant makes it: default settings (PasswordDigest)."""
    return ask_onvif(box.onvif_port, steps, name, password, digest=True)


async def stream_uris(cam) -> list[tuple[str, str]]:
    media = await cam.create_media_service()
    uris = []
    for profile in await media.GetProfiles():
        uri = await media.GetStreamUri({"ProfileToken": profile.token,
                                        "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}})
        uris.append((profile.token, uri.Uri))
    return uris


def digest_request(name: str, password: str, *, created: dt.datetime | None = None, nonce: bytes | None = None) -> bytes:
    """A GetProfiles envelope with a PasswordDigest UsernameToken made as the UsernameToken Profile says."""
    stamp = (created or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    nonce = nonce or secrets.token_bytes(16)
    wsse = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
    wsu = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
    profile = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
    return (f'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header>'
            f'<wsse:Security xmlns:wsse="{wsse}" xmlns:wsu="{wsu}"><wsse:UsernameToken>'
            f'<wsse:Username>{name}</wsse:Username>'
            f'<wsse:Password Type="{profile}#PasswordDigest">{password_digest(password, nonce, stamp)}</wsse:Password>'
            f'<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce><wsu:Created>{stamp}</wsu:Created>'
            f'</wsse:UsernameToken></wsse:Security></s:Header>'
            f'<s:Body><GetProfiles xmlns="http://www.onvif.org/ver10/media/wsdl"/></s:Body></s:Envelope>').encode()


def post(box: Box, body: bytes) -> httpx.Response:
    return httpx.post(f"http://127.0.0.1:{box.onvif_port}{DEVICE_PATH}", content=body, timeout=30,
                      headers={"Content-Type": "application/soap+xml"})


@needs_rtsp
def test_home_assistants_onvif_library_with_its_defaults_lists_the_channels_and_ffprobe_pulls_them(box):
    found = ask(box, stream_uris)

    rtsp = f"rtsp://127.0.0.1:{box.rtsp_port}"
    assert found == [("ch1_main", f"{rtsp}/ch1/main"), ("ch2_main", f"{rtsp}/ch2/main")]
    for _, uri in found:
        done = subprocess.run([FFPROBE, "-v", "error", "-rtsp_transport", "tcp", "-select_streams", "v",
                               "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0",
                               uri.replace("rtsp://", f"rtsp://{ACCOUNT}:{PASSWORD}@")],
                              capture_output=True, text=True, timeout=60)
        assert done.stdout.strip() == "h264,320,240", (uri, done.stderr)


def probe(url: str) -> subprocess.CompletedProcess:
    return subprocess.run([FFPROBE, "-v", "error", "-rtsp_transport", "tcp", url], capture_output=True, text=True,
                          timeout=60)


@needs_rtsp
def test_an_account_made_while_running_pulls_rtsp_within_moments_and_not_once_removed(box):
    url = f"rtsp://late:late-pass-123@127.0.0.1:{box.rtsp_port}/ch1/main"
    box.nvr.users.integration.add("late", "late-pass-123", "operator")
    # unhurried polls: ten refusals in a minute would lock this address out of the RTSP server
    wait_for(lambda: probe(url).returncode == 0, what="the new account to be let in", poll_s=0.5)

    box.nvr.users.integration.remove("late")

    wait_for(lambda: "401" in probe(url).stderr, what="the removed account to be refused", poll_s=0.5)


@needs_rtsp
def test_a_wrong_password_is_refused_to_the_library(box):
    with pytest.raises(zeep.exceptions.Fault, match="wrong user name or password"):
        ask(box, stream_uris, password="wrong-pass-123")


@needs_rtsp
def test_a_replayed_token_is_refused_even_though_its_digest_is_right(box):
    request = digest_request(ACCOUNT, PASSWORD)

    first, replay = post(box, request), post(box, request)

    assert first.status_code == 200 and b"ch2_main" in first.content
    assert replay.status_code == 400 and b"ter:NotAuthorized" in replay.content and b"used before" in replay.content


@needs_rtsp
@pytest.mark.parametrize("offset_s, said", [(-(MAX_TOKEN_AGE_S + CLOCK_SKEW_S + 30), b"older than"),
                                            (CLOCK_SKEW_S + 30, b"ahead of")])
def test_a_token_created_outside_the_window_is_refused(box, offset_s, said):
    created = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=offset_s)

    refused = post(box, digest_request(ACCOUNT, PASSWORD, created=created))

    assert refused.status_code == 400 and said in refused.content and b"GetSystemDateAndTime" in refused.content


@needs_rtsp
def test_a_token_within_the_clock_skew_is_accepted(box):
    created = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=CLOCK_SKEW_S - 20)

    assert post(box, digest_request(ACCOUNT, PASSWORD, created=created)).status_code == 200


@needs_rtsp
def test_an_integration_account_logs_in_with_http_digest_and_password_text_too(box):
    with httpx.Client(auth=httpx.DigestAuth(ACCOUNT, PASSWORD), timeout=30) as client:
        snapshot = client.get(f"http://127.0.0.1:{box.onvif_port}/onvif/snapshot/1/main")
    in_text = ask_onvif(box.onvif_port, stream_uris, ACCOUNT, PASSWORD, digest=False)

    assert snapshot.status_code == 200 and snapshot.content[:2] == b"\xff\xd8"
    assert [token for token, _ in in_text] == ["ch1_main", "ch2_main"]


@needs_rtsp
def test_a_web_users_password_digest_is_refused_like_an_unknown_names_saying_to_make_an_integration_account(box):
    refused = post(box, digest_request("viewer", "viewer-pass-1"))
    unknown = post(box, digest_request("nobody", "viewer-pass-1"))

    assert refused.status_code == 400 and b"nvr onvif-user add" in refused.content
    assert unknown.content == refused.content  # the answer does not tell which names are web users


@needs_rtsp
def test_guessing_with_password_digest_is_throttled_like_web_logins(tmp_path):
    from appliance.web.login_guard import PAIR_FREE
    port = free_port()
    box = start_box(tmp_path, extra=f"onvif_server: {{enabled: true, listen: 127.0.0.1:{port}, discovery: false}}\n")
    box.nvr.users.integration.add(ACCOUNT, PASSWORD, "viewer")
    box.onvif_port = port
    try:
        answers = [post(box, digest_request(ACCOUNT, f"guess-{i}-guess")) for i in range(PAIR_FREE + 1)]

        assert [a.status_code for a in answers[:PAIR_FREE]] == [400] * PAIR_FREE
        assert answers[-1].status_code == 429 and int(answers[-1].headers["retry-after"]) >= 1
    finally:
        box.nvr.stop()


# the accounts, their sealed passwords and the audit log, through `nvr onvif-user`


def nvr(data: Path, *args: str, stdin: str = "", monkeypatch) -> int:
    import io
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return cli.main(["onvif-user", *args, "--data", str(data)])


def test_the_cli_adds_changes_and_removes_accounts_and_the_audit_log_has_each_change(tmp_path, monkeypatch, capsys):
    assert nvr(tmp_path, "add", ACCOUNT, "--role", "viewer", stdin=PASSWORD + "\n", monkeypatch=monkeypatch) == 0
    assert nvr(tmp_path, "add", ACCOUNT, "--role", "operator", stdin="other-pass-456\n", monkeypatch=monkeypatch) == 0
    assert nvr(tmp_path, "list", monkeypatch=monkeypatch) == 0
    listed = capsys.readouterr().out
    assert nvr(tmp_path, "remove", ACCOUNT, monkeypatch=monkeypatch) == 0

    store = UserStore(tmp_path, clocks=RealClocks())
    try:
        entries = [(e["action"], e["detail"], e["client"]) for e in reversed(store.audit_entries())]
        assert entries == [("integration_user_add", '{"role": "viewer", "username": "hass"}', "cli"),
                           ("integration_user_change", '{"role": "operator", "username": "hass"}', "cli"),
                           ("integration_user_remove", '{"username": "hass"}', "cli")]
        assert store.integration.accounts() == []
    finally:
        store.close()
    assert f"{ACCOUNT}\toperator" in listed and "other-pass-456" not in listed


def test_the_password_is_sealed_and_the_key_file_is_0600_and_separate(tmp_path, monkeypatch):
    assert nvr(tmp_path, "add", ACCOUNT, "--role", "viewer", stdin=PASSWORD + "\n", monkeypatch=monkeypatch) == 0

    key_file = tmp_path / KEY_FILE
    assert oct(key_file.stat().st_mode & 0o777) == "0o600" and oct((tmp_path / USERS_FILE).stat().st_mode & 0o777) == "0o600"
    store = UserStore(tmp_path, clocks=RealClocks())
    try:
        stored = store.execute("SELECT sealed_password FROM integration_accounts")[0][0]
        assert PASSWORD not in stored and store.integration.password_of(ACCOUNT)[1] == PASSWORD
    finally:
        store.close()
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(USERS_FILE))
    assert PASSWORD.encode() not in on_disk and base64.b64encode(PASSWORD.encode()) not in on_disk


def test_without_its_key_file_an_account_cannot_log_in_and_list_says_so(tmp_path, monkeypatch, capsys):
    assert nvr(tmp_path, "add", ACCOUNT, "--role", "viewer", stdin=PASSWORD + "\n", monkeypatch=monkeypatch) == 0
    (tmp_path / KEY_FILE).unlink()

    assert nvr(tmp_path, "list", monkeypatch=monkeypatch) == 0
    assert "unusable" in capsys.readouterr().out
    store = UserStore(tmp_path, clocks=RealClocks())
    try:
        assert store.integration.password_of(ACCOUNT) is None and store.digest_credentials() == []
    finally:
        store.close()


def test_a_name_is_either_a_web_user_or_an_integration_account(tmp_path):
    store = UserStore(tmp_path, clocks=RealClocks())
    try:
        store.add_user("viewer", "viewer-pass-1", "viewer")
        store.integration.add(ACCOUNT, PASSWORD, "viewer")
        with pytest.raises(AccountError, match="web user"):
            store.integration.add("viewer", PASSWORD, "viewer")
        with pytest.raises(AccountError, match="integration account"):
            store.add_user(ACCOUNT, PASSWORD, "viewer")
        with pytest.raises(AccountError, match="viewer or operator"):
            store.integration.add("vms", PASSWORD, "admin")
    finally:
        store.close()


def test_a_sealed_password_opens_only_for_its_account_with_its_key_unchanged(tmp_path):
    key, other = SecretKey(secrets.token_bytes(32)), SecretKey(secrets.token_bytes(32))
    sealed = key.seal(ACCOUNT, PASSWORD)
    raw = bytearray(base64.b64decode(sealed[3:]))
    raw[20] ^= 1

    assert key.open(ACCOUNT, sealed) == PASSWORD and key.seal(ACCOUNT, PASSWORD) != sealed
    for bad in (lambda: other.open(ACCOUNT, sealed), lambda: key.open("vms", sealed),
                lambda: key.open(ACCOUNT, "v1." + base64.b64encode(bytes(raw)).decode())):
        with pytest.raises(SecretError):
            bad()
    assert "hidden" in repr(key)


# the same through the web API (the Users page), for administrators only


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    app = start_appliance(tmp_path_factory.mktemp("integration-web"), channels=1, past_seconds=2)
    yield app
    app.stop()


def test_an_administrator_manages_accounts_on_the_web_and_no_answer_carries_the_password(web):
    with closing(login(web, "admin")) as admin:
        answers = [admin.post("/api/integration-accounts", json={"username": "vms", "password": PASSWORD, "role": "viewer"}),
                   admin.post("/api/integration-accounts", json={"username": "vms", "password": "other-pass-456",
                                                                 "role": "operator"}),
                   admin.get("/api/integration-accounts")]
        listed = answers[-1].json()
        answers.append(admin.delete("/api/integration-accounts/vms"))
        audit = [(e["user"], e["action"], e["detail"]) for e in admin.get("/api/audit?limit=10").json()
                 if e["action"].startswith("integration_user")]

    assert [a.status_code for a in answers] == [200, 200, 200, 200]
    assert listed == [{"username": "vms", "role": "operator", "usable": True}]
    assert not any(PASSWORD in a.text or "other-pass-456" in a.text for a in answers)
    assert audit == [("admin", "integration_user_remove", '{"username": "vms"}'),
                     ("admin", "integration_user_change", '{"role": "operator", "username": "vms"}'),
                     ("admin", "integration_user_add", '{"role": "viewer", "username": "vms"}')]


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_administrators_may_see_or_change_integration_accounts(web, role):
    with closing(login(web, role)) as client:
        assert client.get("/api/integration-accounts").status_code == 403
        assert client.post("/api/integration-accounts",
                           json={"username": "sneak", "password": PASSWORD, "role": "viewer"}).status_code == 403
        assert client.delete("/api/integration-accounts/sneak").status_code == 403


def test_the_web_refuses_an_admin_role_a_web_users_name_and_a_weak_password(web):
    with closing(login(web, "admin")) as admin:
        assert admin.post("/api/integration-accounts", json={"username": "x1", "password": PASSWORD,
                                                             "role": "admin"}).status_code == 422
        assert admin.post("/api/integration-accounts", json={"username": "viewer", "password": PASSWORD,
                                                             "role": "viewer"}).status_code == 409
        assert admin.post("/api/integration-accounts", json={"username": "x1", "password": "short",
                                                             "role": "viewer"}).status_code == 422
        assert admin.delete("/api/integration-accounts/nobody").status_code == 404


def test_an_integration_account_cannot_log_in_to_the_web(web):
    web.nvr.users.integration.add("kiosk", PASSWORD, "operator")
    with httpx.Client(base_url=web.url, timeout=20) as client:
        assert client.post("/api/login", json={"username": "kiosk", "password": PASSWORD}).status_code == 401


def test_a_key_file_readable_by_others_is_made_0600_and_one_without_a_key_is_refused_saying_what_to_do(tmp_path):
    made = SecretKey.load_or_create(tmp_path)
    key_file = tmp_path / KEY_FILE
    key_file.chmod(0o644)

    again = SecretKey.load(tmp_path)

    assert oct(key_file.stat().st_mode & 0o777) == "0o600" and again.open(ACCOUNT, made.seal(ACCOUNT, PASSWORD)) == PASSWORD
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]  # the draft it was written to is gone
    key_file.write_text("not a key\n")
    store = UserStore(tmp_path, clocks=RealClocks())
    try:
        with pytest.raises(AccountError, match="does not hold a key"):
            store.integration.add(ACCOUNT, PASSWORD, "viewer")
    finally:
        store.close()
