"""One masking rule for every URL the appliance shows: base.credentials.mask_credentials, used by the
drivers (camera errors) and the appliance (config errors, webhooks) alike."""
from __future__ import annotations

import pytest

from base.credentials import mask_credentials

CASES = [
    ("rtsp://admin:pa/ss@10.0.0.5/ch1", "rtsp://admin:***@10.0.0.5/ch1"),
    ("rtsp://admin:p@ss@10.0.0.5/ch1", "rtsp://admin:***@10.0.0.5/ch1"),
    ("rtsp://admin:pa:ss@10.0.0.5:554/s0", "rtsp://admin:***@10.0.0.5:554/s0"),
    ("rtsp://admin:a/b@c:d@10.0.0.5/s0?x=1", "rtsp://admin:***@10.0.0.5/s0?x=1"),
    ("rtsps://admin:@cam.local/s", "rtsps://admin:***@cam.local/s"),
    ("https://hook:t0ken@example.invalid/notify", "https://hook:***@example.invalid/notify"),
    ("rtsp://10.0.0.5/s0", "rtsp://10.0.0.5/s0"),
    ("rtsp://admin@10.0.0.5/s0", "rtsp://admin@10.0.0.5/s0"),
    ("rtsp://10.0.0.5/a:b@c", "rtsp://10.0.0.5/a:b@c"),
    ("not a url: x:y@z", "not a url: x:y@z"),
]


@pytest.mark.parametrize(("url", "shown"), CASES)
def test_passwords_with_slashes_ats_and_colons_are_masked(url, shown):
    assert mask_credentials(url) == shown


def test_no_module_defines_a_masker_of_its_own():
    """The drivers and the appliance call base.credentials; a second masker would drift from it."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    own = [f"{path.relative_to(root)}:{node.name}"
           for package in ("hal", "drivers", "recorder", "appliance")
           for path in (root / package).rglob("*.py")
           for node in ast.walk(ast.parse(path.read_text()))
           if isinstance(node, ast.FunctionDef) and ("mask" in node.name and ("url" in node.name or "cred" in node.name))]
    assert own == []


def test_masking_a_huge_url_is_linear():
    url = "rtsp://admin:" + "/@:" * 200_000 + "@10.0.0.5/s"
    assert mask_credentials(url) == "rtsp://admin:***@10.0.0.5/s"
