"""rtpengine's own ICE lines: the exact lines rtpengine 10.5 wrote (docs/spec/sdp.md §1.9a)."""

from __future__ import annotations

import random

from relay.ice.own_lines import (
    ALPHABET,
    CandidateKind,
    LocalInterface,
    OwnIce,
    new_credentials,
    render_own_ice,
    rtpengine_priority,
)

IF1 = LocalInterface("DYJJnYCw6KH4np4a", "203.0.113.1", (51348, 51349))
IF2 = LocalInterface("6HXDGqxgr4mmNpCg", "203.0.113.2", (51350, 51351))
IF3 = LocalInterface("6DP1Kj2mcmmjYIyS", "::1", (51344, 51345))


def test_default_one_interface() -> None:
    own = OwnIce("iqwDFdY3", "V7piXl02bV2c1MytSxvHH2GfZA",
                 (LocalInterface("mWXLR2ZN6OUz0ttm", "203.0.113.1", (27392, 27393)),))
    assert render_own_ice(own) == [
        "a=ice-ufrag:iqwDFdY3",
        "a=ice-pwd:V7piXl02bV2c1MytSxvHH2GfZA",
        "a=candidate:mWXLR2ZN6OUz0ttm 1 UDP 2130706431 203.0.113.1 27392 typ host",
        "a=candidate:mWXLR2ZN6OUz0ttm 2 UDP 2130706430 203.0.113.1 27393 typ host",
    ]


def test_trickle_three_interfaces_component_major() -> None:
    own = OwnIce("sHo00Y02", "8hASD3K2h17ha2Ct7fgUPiz4ky", (IF1, IF2, IF3), trickle=True)
    assert render_own_ice(own) == [
        "a=ice-ufrag:sHo00Y02",
        "a=ice-pwd:8hASD3K2h17ha2Ct7fgUPiz4ky",
        "a=ice-options:trickle",
        "a=candidate:DYJJnYCw6KH4np4a 1 UDP 2130706431 203.0.113.1 51348 typ host",
        "a=candidate:6HXDGqxgr4mmNpCg 1 UDP 2130706175 203.0.113.2 51350 typ host",
        "a=candidate:6DP1Kj2mcmmjYIyS 1 UDP 2130705919 ::1 51344 typ host",
        "a=candidate:DYJJnYCw6KH4np4a 2 UDP 2130706430 203.0.113.1 51349 typ host",
        "a=candidate:6HXDGqxgr4mmNpCg 2 UDP 2130706174 203.0.113.2 51351 typ host",
        "a=candidate:6DP1Kj2mcmmjYIyS 2 UDP 2130705918 ::1 51345 typ host",
        "a=end-of-candidates",
    ]


def test_rtcp_mux_require_has_one_component() -> None:
    own = OwnIce("ruzS6sz7", "1AyBXe9vFiDDunmokXQLkCTyQF",
                 (LocalInterface("mWXLR2ZN6OUz0ttm", "203.0.113.1", (27506,)),), components=1)
    assert render_own_ice(own)[2:] == [
        "a=candidate:mWXLR2ZN6OUz0ttm 1 UDP 2130706431 203.0.113.1 27506 typ host"
    ]


def test_optional_keeps_offer_credentials_and_overflows_like_rtpengine() -> None:
    own = OwnIce("x", "y", (LocalInterface("HzlaaBKiCJ9FjxEb", "203.0.113.1", (40386, 40387)),
                            LocalInterface("gyBkuYbN1g2FX7Qu", "203.0.113.2", (40386, 40387))),
                 kind=CandidateKind.OPTIONAL, credentials=False)
    assert render_own_ice(own) == [
        "a=candidate:HzlaaBKiCJ9FjxEb 1 UDP 2097152255 203.0.113.1 40386 typ host",
        "a=candidate:gyBkuYbN1g2FX7Qu 1 UDP 4294967295 203.0.113.2 40386 typ host",
        "a=candidate:HzlaaBKiCJ9FjxEb 2 UDP 2097152254 203.0.113.1 40387 typ host",
        "a=candidate:gyBkuYbN1g2FX7Qu 2 UDP 4294967294 203.0.113.2 40387 typ host",
    ]


def test_force_relay() -> None:
    own = OwnIce("e4gK5QQf", "h0L1IdHAcEM1pCqWZC7wp2ZjkI",
                 (LocalInterface("HzlaaBKiCJ9FjxEb", "203.0.113.1", (40436, 40437)),
                  LocalInterface("gyBkuYbN1g2FX7Qu", "203.0.113.2", (40446, 40447))),
                 kind=CandidateKind.RELAY)
    assert render_own_ice(own)[2:] == [
        "a=candidate:HzlaaBKiCJ9FjxEb 1 UDP 16777215 203.0.113.1 40436 typ relay"
        " raddr 203.0.113.1 rport 40436",
        "a=candidate:gyBkuYbN1g2FX7Qu 1 UDP 16776959 203.0.113.2 40446 typ relay"
        " raddr 203.0.113.2 rport 40446",
        "a=candidate:HzlaaBKiCJ9FjxEb 2 UDP 16777214 203.0.113.1 40437 typ relay"
        " raddr 203.0.113.1 rport 40437",
        "a=candidate:gyBkuYbN1g2FX7Qu 2 UDP 16776958 203.0.113.2 40447 typ relay"
        " raddr 203.0.113.2 rport 40447",
    ]


def test_force_with_end_of_candidates_in_input() -> None:
    own = OwnIce("YPsYkDJ0", "sL8l9f33JrhH9g4kmCcL31x9Jg",
                 (LocalInterface("mWXLR2ZN6OUz0ttm", "203.0.113.1", (27482, 27483)),),
                 end_of_candidates=True)
    assert render_own_ice(own)[-1] == "a=end-of-candidates"
    assert "a=ice-options:trickle" not in render_own_ice(own)


def test_priority_formula() -> None:
    assert rtpengine_priority(126, 65535, 1) == 2130706431
    assert rtpengine_priority(0, 65534, 2) == 16776958


def test_credentials_shape() -> None:
    ufrag, pwd = new_credentials(random.Random(7))
    assert len(ufrag) == 8 and len(pwd) == 26
    assert set(ufrag + pwd) <= set(ALPHABET)
