"""The suite table against rtpengine 10.5's offer (docs/spec/sdp.md §1.12, capture P1)."""

from __future__ import annotations

import re
from pathlib import Path

from relay.srtp.suites import SUITES, Cipher

SPEC = Path(__file__).resolve().parents[4] / "docs/spec/sdp.md"


def _p1_crypto_lines() -> list[str]:
    text = SPEC.read_text()
    p1 = text[text.index("#### P1 ") : text.index("#### P2 ")]
    return re.findall(r"^a=crypto:(.*)$", p1, re.M)


def test_order_names_and_tags_are_rtpengines() -> None:
    lines = _p1_crypto_lines()
    assert [line.split(" ")[0] for line in lines] == [str(i) for i in range(1, 13)]
    assert [line.split(" ")[1] for line in lines] == [s.name for s in SUITES]


def test_inline_lengths_match_the_captured_keys() -> None:
    for line, suite in zip(_p1_crypto_lines(), SUITES, strict=True):
        b64 = line.split("inline:")[1]
        assert len(b64) == -(-suite.inline_len * 4 // 3), suite.name  # unpadded base64


def test_lengths_follow_the_rfcs() -> None:
    by = {s.name: s for s in SUITES}
    assert (
        by["AES_CM_128_HMAC_SHA1_32"].srtp_tag_len,
        by["AES_CM_128_HMAC_SHA1_32"].srtcp_tag_len,
    ) == (4, 10)
    assert by["AEAD_AES_256_GCM"].inline_len == 44 and by["AEAD_AES_256_GCM"].auth_key_len == 0
    assert by["AES_192_CM_HMAC_SHA1_80"].master_key_len == 24
    assert by["F8_128_HMAC_SHA1_80"].cipher is Cipher.AES_F8
    assert by["NULL_HMAC_SHA1_32"].cipher is Cipher.NULL
