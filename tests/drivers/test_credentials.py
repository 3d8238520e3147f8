"""One masking rule for every URL the appliance shows: base.credentials.mask_credentials, used by the
drivers (camera errors) and the appliance (config errors, webhooks) alike."""
from __future__ import annotations

import pytest

from appliance.config.model import mask_credentials as config_mask
from drivers.rtsp.ffmpeg import mask_url
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
def test_every_caller_masks_passwords_with_slashes_ats_and_colons(url, shown):
    assert mask_credentials(url) == shown
    assert mask_url(url) == shown
    assert config_mask(url) == shown


def test_masking_a_huge_url_is_linear():
    url = "rtsp://admin:" + "/@:" * 200_000 + "@10.0.0.5/s"
    assert mask_credentials(url) == "rtsp://admin:***@10.0.0.5/s"
