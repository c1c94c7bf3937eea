"""a=crypto codec: rtpengine's lines, its rewriting of offered lines, errors, and laws."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.srtp.sdes import Crypto, SdesError, for_rtpengine_offer, parse, render
from relay.srtp.suites import SUITES

KEY = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"

# (offered value, what rtpengine 10.5 wrote back) — docs/spec/sdp.md P3 and §1.12a
REWRITTEN = [
    (
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:32",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1:32",
    ),
    (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^31", f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}"),
    (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1:4", f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1:4"),
    (
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} KDR=1 UNENCRYPTED_SRTP",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} UNENCRYPTED_SRTP",
    ),
    (
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} UNENCRYPTED_SRTCP UNAUTHENTICATED_SRTP",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} UNENCRYPTED_SRTCP UNAUTHENTICATED_SRTP",
    ),
    (
        "1 AEAD_AES_128_GCM inline:RPlFAi7zyyOiwQSxxfj1kTDbbvb5a78Q4pGdag==",
        "1 AEAD_AES_128_GCM inline:RPlFAi7zyyOiwQSxxfj1kTDbbvb5a78Q4pGdag",
    ),
]


@pytest.mark.parametrize(("offered", "written"), REWRITTEN)
def test_offered_line_rewritten_as_rtpengine_does(offered: str, written: str) -> None:
    assert render(for_rtpengine_offer(parse(offered))) == written


def test_sdes_lifetime_and_pad_as_rtpengine() -> None:
    c = parse(f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:32")
    assert render(for_rtpengine_offer(c, lifetime=True)) == (
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^31|1:32"
    )
    gcm = parse("2 AEAD_AES_128_GCM inline:qUzBomrM22ulld7zGG2BYun3bQshCIsHTrJO5g")
    assert (
        render(gcm, pad=True)
        == "2 AEAD_AES_128_GCM inline:qUzBomrM22ulld7zGG2BYun3bQshCIsHTrJO5g=="
    )


def test_fields() -> None:
    c = parse(f"5 AES_CM_128_HMAC_SHA1_32 inline:{KEY}|2^20|7:4 UNENCRYPTED_SRTCP")
    assert c.tag == 5 and c.suite.name == "AES_CM_128_HMAC_SHA1_32"
    assert len(c.master_key) == 16 and len(c.master_salt) == 14
    assert c.lifetime == "2^20" and c.mki == (7, 4) and c.has_param("UNENCRYPTED_SRTCP")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (f"1 FOO_BAR inline:{KEY}", "unknown crypto suite 'FOO_BAR'"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVe", "must be 30 bytes, got 6"),
        (f"x AES_CM_128_HMAC_SHA1_80 inline:{KEY}", "tag must be 1-9 digits"),
        (f"1 AES_CM_128_HMAC_SHA1_80 uri:{KEY}", "key method must be 'inline:'"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1:0", "MKI length must be 1-255"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^x", "bad key lifetime"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:!!!!", "is not base64"),
        ("1 AES_CM_128_HMAC_SHA1_80", "needs '<tag> <suite> inline:<key>'"),
    ],
)
def test_errors_name_the_defect(value: str, message: str) -> None:
    with pytest.raises(SdesError, match=message.replace("^", r"\^").replace("|", r"\|")):
        parse(value)


@st.composite
def cryptos(draw: st.DrawFn) -> Crypto:
    suite = draw(st.sampled_from(SUITES))
    return Crypto(
        tag=draw(st.integers(0, 999_999_999)),
        suite=suite,
        key_salt=draw(st.binary(min_size=suite.inline_len, max_size=suite.inline_len)),
        lifetime=draw(
            st.none()
            | st.builds(lambda n, p: f"{p}{n}", st.integers(0, 10**9), st.sampled_from(["", "2^"]))
        ),
        mki=draw(st.none() | st.tuples(st.integers(0, 2**32), st.integers(1, 128))),
        params=tuple(
            draw(st.lists(st.from_regex(r"[A-Z_=0-9]{1,12}", fullmatch=True), max_size=3))
        ),
    )


@given(cryptos(), st.booleans())
def test_parse_inverts_render(c: Crypto, pad: bool) -> None:
    assert parse(render(c, pad=pad)) == c
    assert render(parse(render(c))) == render(c)


@given(st.text(max_size=120))
def test_arbitrary_text_gives_a_value_or_sdes_error(text: str) -> None:
    try:
        parse(text)
    except SdesError:
        pass


@given(cryptos(), st.integers(0, 200), st.characters())
def test_mutated_lines_give_a_value_or_sdes_error(c: Crypto, at: int, ch: str) -> None:
    text = render(c)
    at %= len(text)
    try:
        parse(text[:at] + ch + text[at + 1 :])
    except SdesError:
        pass
