"""The bounded XML reader, the SOAP requests real clients send, and the HTTP Digest check: tables, no network."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from base.clock import SimulatedClocks
from appliance.onvif_server.http_digest import DigestChecker, parse_digest_header
from appliance.onvif_server.xml_reader import (MAX_DEPTH, MAX_ELEMENTS, MAX_REQUEST_BYTES, PASSWORD_DIGEST,
                                               PASSWORD_TEXT, XmlError, parse_soap, parse_xml)

REQUESTS = Path(__file__).parents[1] / "support" / "onvif_requests"


@pytest.mark.parametrize("document, message", [
    (b'<!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><l>&b;</l>', "DOCTYPE"),
    (b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>', "DOCTYPE"),
    (b"<a>" * (MAX_DEPTH + 1) + b"</a>" * (MAX_DEPTH + 1), "deeper"),
    (b"<r>" + b"<e/>" * MAX_ELEMENTS + b"</r>", "elements"),
    (b"<r>" + b" " * MAX_REQUEST_BYTES + b"</r>", "limit"),
    (b"<r>&undefined;</r>", "not well-formed"),
    (b"<?xml version='1.0' encoding='utf-4'?><r/>", "encoding"),
    (b"", "not well-formed"),
])
def test_hostile_documents_are_refused_saying_which_rule_they_broke(document, message):
    with pytest.raises(XmlError, match=message):
        parse_xml(document)


def test_the_requests_onvif_zeep_async_sends_are_read_with_their_credentials():
    text = parse_soap((REQUESTS / "onvif-zeep-async-GetStreamUri.xml").read_bytes())
    digest = parse_soap((REQUESTS / "onvif-zeep-async-GetDeviceInformation-digest.xml").read_bytes())

    assert text.operation.name == "GetStreamUri" and text.operation.find_text("ProfileToken") == "ch1_main"
    assert (text.token.username, text.token.password, text.token.password_type) == ("viewer", "viewer-pass-1",
                                                                                     PASSWORD_TEXT)
    assert digest.token.password_type == PASSWORD_DIGEST and digest.token.nonce and digest.token.created


def test_a_document_that_is_no_soap_envelope_is_refused():
    with pytest.raises(XmlError, match="SOAP Envelope"):
        parse_soap(b"<Envelope><Body><GetProfiles/></Body></Envelope>")


def answer(challenge: str, name: str, password: str, uri: str, *, nc: str = "00000001") -> str:
    params = parse_digest_header("Digest " + challenge.split(" ", 1)[1])
    ha1 = hashlib.md5(f"{name}:{params['realm']}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"GET:{uri}".encode()).hexdigest()
    response = hashlib.md5(f"{ha1}:{params['nonce']}:{nc}:c1:auth:{ha2}".encode()).hexdigest()
    return (f'Digest username="{name}", realm="{params["realm"]}", nonce="{params["nonce"]}", uri="{uri}", '
            f'qop=auth, nc={nc}, cnonce="c1", response="{response}"')


def test_digest_accepts_the_right_answer_and_refuses_a_wrong_password_uri_or_stale_nonce():
    clocks = SimulatedClocks()
    checker = DigestChecker("nvr", clocks=clocks)
    ha1 = {"viewer": hashlib.md5(b"viewer:nvr:pass-word-1").hexdigest()}.get
    good = answer(checker.challenge(), "viewer", "pass-word-1", "/onvif/snapshot/1/main")

    assert checker.check(good, "GET", "/onvif/snapshot/1/main", ha1) == "viewer"
    assert checker.check(good, "GET", "/onvif/snapshot/2/main", ha1) is None
    assert checker.check(answer(checker.challenge(), "viewer", "wrong", "/x"), "GET", "/x", ha1) is None
    assert DigestChecker("nvr", clocks=clocks).check(good, "GET", "/onvif/snapshot/1/main", ha1) is None  # another box's nonce
    clocks.advance(301)
    assert checker.check(good, "GET", "/onvif/snapshot/1/main", ha1) is None
