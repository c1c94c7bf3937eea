"""rtp.redact: SDES keys, MIKEY messages and ICE passwords out of an SDP, the rest byte for byte
(issue 17 item 5; the a=crypto grammar of RFC 4568 §9.1, docs/spec/sdp.md §1.12)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from rtp.redact import MARKER, has_secrets, redact_sdp

KEY = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"
KEY2 = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk"
PWD = "x9cml/YzichV2+XlhiMu8g"
R40 = "REDACTED" * 5  # the marker for a 40-character (30-byte) key-salt

SDP = (
    "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=Talk\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    "a=ice-pwd:sessionlevelpassword1234\r\n"
    "m=audio 16000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^31|1:4 KDR=1 UNENCRYPTED_SRTCP\r\n"
    f"a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{KEY2}==\r\n"
    "a=ice-ufrag:F7gI\r\n"
    f"a=ice-pwd:{PWD}\r\n"
    "a=key-mgmt:mikey AQAFgM0XflABAAAAAAAAAAAAAAYAyO7A8Q==\r\n"
    "a=fingerprint:sha-256 AB:CD\r\n"
    "a=candidate:1 1 UDP 2130706431 192.0.2.10 16000 typ host\r\n"
)
REDACTED = (
    "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=Talk\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    "a=ice-pwd:REDACTED\r\n"
    "m=audio 16000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{R40}|2^31|1:4 KDR=1 UNENCRYPTED_SRTCP\r\n"
    f"a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{R40}==\r\n"
    "a=ice-ufrag:F7gI\r\n"
    "a=ice-pwd:REDACTED\r\n"
    "a=key-mgmt:REDACTED\r\n"
    "a=fingerprint:sha-256 AB:CD\r\n"
    "a=candidate:1 1 UDP 2130706431 192.0.2.10 16000 typ host\r\n"
)


def test_golden() -> None:
    assert redact_sdp(SDP) == REDACTED
    assert has_secrets(SDP) and not has_secrets(REDACTED)
    assert MARKER == "REDACTED"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # several key parameters (RFC 4568 §9.1: key-params = key-param *(";" key-param))
        (f"a=crypto:3 AES_256_CM_HMAC_SHA1_80 inline:{KEY}|2^20|1:4;inline:{KEY2}|2^20|2:4",
         f"a=crypto:3 AES_256_CM_HMAC_SHA1_80 inline:{R40}|2^20|1:4;inline:{R40}|2^20|2:4"),
        # case and blanks a lenient reader accepts
        (f"A=CRYPTO:1 AES_CM_128_HMAC_SHA1_80 INLINE:{KEY}",
         f"A=CRYPTO:1 AES_CM_128_HMAC_SHA1_80 INLINE:{R40}"),
        (f"a=crypto:1  AES_CM_128_HMAC_SHA1_80\tinline:{KEY}  WSH=64",
         f"a=crypto:1  AES_CM_128_HMAC_SHA1_80\tinline:{R40}  WSH=64"),
        (f" a=Ice-Pwd:{PWD}", " a=Ice-Pwd:REDACTED"),
        # malformed: the key anywhere, another method, no method, junk where a lifetime goes
        (f"a=crypto:AES_CM_128_HMAC_SHA1_80 inline:{KEY}",
         f"a=crypto:AES_CM_128_HMAC_SHA1_80 inline:{R40}"),
        (f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 uri:{KEY}",
         f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 uri:{R40}"),
        (f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 {KEY}", f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 {R40}"),
        (f"a=crypto:1 X inline:{KEY}|{KEY2} P inline:{KEY}",
         f"a=crypto:1 X inline:{R40}|REDACTED P inline:{R40}"),
        ("a=crypto:1 X inline:abc|2^31", "a=crypto:1 X inline:REDACTED|2^31"),
        # RFC 4568 §6.3.6: FEC_KEY carries key parameters of its own
        (f"a=crypto:1 X inline:{KEY} FEC_ORDER=FEC_SRTP FEC_KEY=inline:{KEY2}|2^20;inline:{KEY}",
         f"a=crypto:1 X inline:{R40} FEC_ORDER=FEC_SRTP FEC_KEY=inline:{R40}|2^20;inline:{R40}"),
        ("a=crypto:1 X inline:", "a=crypto:1 X inline:REDACTED"),
        (f"a=key-mgmt:{KEY}", "a=key-mgmt:REDACTED"),
        ("a=ice-pwd:", "a=ice-pwd:REDACTED"),
        # not secret: kept
        ("a=crypto-suites:AES_CM_128_HMAC_SHA1_80", "a=crypto-suites:AES_CM_128_HMAC_SHA1_80"),
        ("a=ice-ufrag:F7gI", "a=ice-ufrag:F7gI"),
        ("i=a=crypto:1 X inline:notakey", "i=a=crypto:1 X inline:notakey"),
    ],
)
def test_lines(line: str, expected: str) -> None:
    assert redact_sdp(line) == expected
    assert redact_sdp(line + "\r\n") == expected + "\r\n"


@pytest.mark.parametrize("end", ["\r\n", "\n", "\r"])
def test_line_endings_kept_and_each_ends_a_line(end: str) -> None:
    text = end.join(["v=0", f"a=ice-pwd:{PWD}", f"a=crypto:1 S inline:{KEY}",
                     "m=audio 9 RTP/AVP 0", ""])  # fmt: skip
    out = redact_sdp(text)
    assert out == end.join(["v=0", "a=ice-pwd:REDACTED", f"a=crypto:1 S inline:{R40}",
                            "m=audio 9 RTP/AVP 0", ""])  # fmt: skip
    assert PWD not in out and KEY not in out


# -- properties ---------------------------------------------------------------------------------

SUITES = ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "AES_256_CM_HMAC_SHA1_80",
          "AEAD_AES_128_GCM", "F8_128_HMAC_SHA1_80", "NULL_HMAC_SHA1_80"]  # fmt: skip
ENDS = st.sampled_from(["\r\n", "\n", "\r"])
ICE_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"


@st.composite
def b64_key(draw: st.DrawFn) -> str:
    """A key||salt as SDES carries it: 30..46 random bytes, base64, padding or not."""
    raw = draw(st.binary(min_size=30, max_size=46))
    text = base64.b64encode(raw).decode()
    return text if draw(st.booleans()) else text.rstrip("=")


@st.composite
def key_param(draw: st.DrawFn, keys: list[str]) -> str:
    key = draw(b64_key())
    keys.append(key.rstrip("="))
    out = f"inline:{key}"
    if draw(st.booleans()):
        out += draw(st.sampled_from(["|2^31", "|2^20", "|1048576"]))
    if draw(st.booleans()):
        out += f"|{draw(st.integers(1, 255))}:{draw(st.integers(1, 4))}"
    return out


@st.composite
def secret_line(draw: st.DrawFn, secrets: list[str]) -> str:
    kind = draw(st.sampled_from(["crypto", "ice-pwd", "key-mgmt"]))
    if kind == "ice-pwd":
        pwd = draw(st.text(ICE_CHARS, min_size=22, max_size=40))
        secrets.append(pwd)
        return f"a=ice-pwd:{pwd}"
    if kind == "key-mgmt":
        data = draw(b64_key())
        secrets.append(data.rstrip("="))
        return f"a=key-mgmt:mikey {data}"
    params = ";".join(draw(key_param(secrets)) for _ in range(draw(st.integers(1, 3))))
    session = draw(st.lists(st.sampled_from(["KDR=1", "UNENCRYPTED_SRTP", "UNENCRYPTED_SRTCP",
                                             "UNAUTHENTICATED_SRTP", "FEC_ORDER=FEC_SRTP",
                                             "WSH=64"]), max_size=3))  # fmt: skip
    words = [str(draw(st.integers(1, 999999999))), draw(st.sampled_from(SUITES)), params, *session]
    return "a=crypto:" + " ".join(words)


# Lines that are not secret: any text without line ends, unless it is one of the three
PLAIN = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
                max_size=60).filter(lambda s: not has_secrets(s))  # fmt: skip


@st.composite
def sdp_with_secrets(draw: st.DrawFn) -> tuple[str, list[str], list[str]]:
    """(sdp, its secrets, the lines without the secret ones)."""
    secrets: list[str] = []
    lines: list[tuple[bool, str]] = []
    for _ in range(draw(st.integers(1, 12))):
        if draw(st.booleans()):
            lines.append((True, draw(secret_line(secrets))))
        else:
            lines.append((False, draw(PLAIN)))
    ends = [draw(ENDS) for _ in lines]
    text = "".join(line + end for (_, line), end in zip(lines, ends, strict=True))
    return text, secrets, [line for secret, line in lines if not secret]


@given(b64_key())
def test_the_key_marker_decodes_to_as_many_bytes(key: str) -> None:
    out = redact_sdp(f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}")
    marker = out.rsplit(":", 1)[1]
    assert set(marker.rstrip("=")) <= set(MARKER) and len(marker) == len(key)
    assert len(base64.b64decode(marker + "=" * (-len(marker) % 4))) == len(
        base64.b64decode(key + "=" * (-len(key) % 4)))


@given(sdp_with_secrets())
def test_no_secret_survives(case: tuple[str, list[str], list[str]]) -> None:
    text, secrets, plain = case
    assume(not any(secret in line for secret in secrets for line in plain))
    out = redact_sdp(text)
    for secret in secrets:
        assert secret not in out
    assert not has_secrets(out)


@given(sdp_with_secrets())
def test_only_the_secret_lines_change(case: tuple[str, list[str], list[str]]) -> None:
    text, _, plain = case
    out = redact_sdp(text)
    assert out.count("\r") == text.count("\r") and out.count("\n") == text.count("\n")
    kept = [line for line in out.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    for line in plain:
        assert line in kept


@given(st.one_of(sdp_with_secrets().map(lambda c: c[0]), st.text(max_size=300)))
def test_idempotent(text: str) -> None:
    once = redact_sdp(text)
    assert redact_sdp(once) == once


@given(st.lists(PLAIN, max_size=12), ENDS)
def test_sdp_without_secrets_is_unchanged(lines: list[str], end: str) -> None:
    text = end.join(lines)
    assert redact_sdp(text) == text
