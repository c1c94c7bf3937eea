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


def test_plain_or_mismatched_suite_is_no_srtp() -> None:
    assert settled_keys(SecureState()) is None
    ours = (_line(1, "AES_CM_128_HMAC_SHA1_80", 1),)
    assert settled_keys(SecureState(sdes_out=ours)) is None
    other = (_line(1, "AES_CM_128_HMAC_SHA1_32", 2),)
    assert settled_keys(SecureState(sdes_out=ours, sdes_in=other)) is None
