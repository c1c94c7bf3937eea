"""`query`'s crypto suite and DTLS flags from a leg's SDP state, as rtpengine 10.5 shows them
(docs/spec/ng-protocol.md §4.4; the sec_query_* differential scenarios check them end to end)."""

from __future__ import annotations

import base64

from relay.call.secure import SecureState
from relay.ng.callstats import dtls_flags, sdes_suite
from relay.srtp import sdes

KEY = "inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"
GCM_KEY = "inline:" + base64.b64encode(bytes(range(44))).decode()


def _line(tag: int, suite: str) -> sdes.Crypto:
    return sdes.parse(f"{tag} {suite} {GCM_KEY if 'GCM' in suite else KEY}")


def test_settled_pair_shows_its_suite() -> None:
    state = SecureState(sdes_in=(_line(7, "AES_CM_128_HMAC_SHA1_80"),),
                        sdes_out=(_line(1, "AEAD_AES_256_GCM"),
                                  _line(7, "AES_CM_128_HMAC_SHA1_80")))  # fmt: skip
    assert sdes_suite(state) == "AES_CM_128_HMAC_SHA1_80"


def test_unanswered_or_dtls_only_answer_shows_our_first_line() -> None:
    state = SecureState(sdes_out=(_line(1, "AEAD_AES_256_GCM"),
                                  _line(2, "AES_CM_128_HMAC_SHA1_80")))  # fmt: skip
    assert sdes_suite(state) == "AEAD_AES_256_GCM"


def test_answer_naming_a_tag_with_another_suite_shows_none() -> None:
    state = SecureState(sdes_in=(_line(1, "AES_CM_128_HMAC_SHA1_80"),),
                        sdes_out=(_line(1, "AEAD_AES_256_GCM"),))  # fmt: skip
    assert sdes_suite(state) is None
    assert sdes_suite(SecureState()) is None
    assert sdes_suite(SecureState(sdes_in=(_line(1, "AES_CM_128_HMAC_SHA1_80"),))) is None


def test_dtls_flags_follow_the_latest_sdp() -> None:
    both = ["DTLS-SRTP", "DTLS role active", "DTLS role passive"]
    assert dtls_flags(SecureState(setup_out="actpass")) == both  # our unanswered offer
    assert dtls_flags(SecureState(setup_out="passive")) == ["DTLS-SRTP", "DTLS role passive"]
    assert dtls_flags(SecureState()) == []
    fp = object()  # any fingerprint: only its presence counts
    heard = {"heard_last": True, "fingerprint_in": fp}
    assert dtls_flags(SecureState(setup_in="actpass", **heard)) == both  # type: ignore[arg-type]
    assert dtls_flags(SecureState(setup_out="actpass", setup_in="active",
                                  **heard)) == ["DTLS-SRTP", "DTLS role passive"]  # type: ignore[arg-type]  # fmt: skip
    assert dtls_flags(SecureState(setup_in="passive", **heard)) == [  # type: ignore[arg-type]
        "DTLS-SRTP", "DTLS role active"]  # fmt: skip
    # an answer without a fingerprint to our SDES+DTLS offer: no DTLS any more
    assert dtls_flags(SecureState(setup_out="actpass", heard_last=True)) == []
