"""relay.call.sdes_media.settled_keys: which a=crypto pair an answer settled, per side."""

from __future__ import annotations

from relay.call.sdes_media import settled_keys
from relay.call.secure import SecureState
from relay.srtp.sdes import Crypto
from relay.srtp.suites import BY_NAME


def _line(tag: int, suite: str, fill: int) -> Crypto:
    s = BY_NAME[suite]
    return Crypto(tag, s, bytes([fill]) * s.inline_len)


def test_answerer_side_pairs_its_line_with_our_offered_line_of_that_tag() -> None:
    ours = (_line(1, "AES_CM_128_HMAC_SHA1_80", 1), _line(2, "AES_CM_128_HMAC_SHA1_32", 2))
    theirs = _line(2, "AES_CM_128_HMAC_SHA1_32", 9)
    assert settled_keys(SecureState(sdes_out=ours, sdes_in=(theirs,))) == (theirs, ours[1])


def test_offerer_side_pairs_our_answer_with_its_offered_line() -> None:
    offered = (_line(3, "AES_CM_128_HMAC_SHA1_32", 4), _line(4, "AES_CM_128_HMAC_SHA1_80", 5))
    answer = _line(4, "AES_CM_128_HMAC_SHA1_80", 6)
    assert settled_keys(SecureState(sdes_out=(answer,), sdes_in=offered)) == (offered[1], answer)


def test_plain_is_no_srtp() -> None:
    assert settled_keys(SecureState()) is None
    ours = (_line(1, "AES_CM_128_HMAC_SHA1_80", 1),)
    assert settled_keys(SecureState(sdes_out=ours)) is None
    assert settled_keys(SecureState(sdes_in=ours)) is None


def test_mismatched_tag_and_suite_decrypts_theirs_and_sends_nothing() -> None:
    """rtpengine 10.5 (docs/spec/sdp.md §1.12c): the party's packets are read under its line,
    nothing goes to it; before, the leg fell back to plain RTP towards an SRTP party."""
    ours = (_line(1, "AES_CM_128_HMAC_SHA1_80", 1), _line(2, "AES_CM_128_HMAC_SHA1_32", 2))
    other = (_line(1, "AES_CM_128_HMAC_SHA1_32", 3),)
    assert settled_keys(SecureState(sdes_out=ours, sdes_in=other)) == (other[0], None)
