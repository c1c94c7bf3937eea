"""relay.call.secure: the SDES/DTLS/ICE lines rtpengine 10.5 writes (docs/spec/sdp.md §1.9a,
§1.12, §1.12a, §1.12b), as pure functions over the offered media, options and side state."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from relay.call.offered import OfferedMedia
from relay.call.options import CallOptions
from relay.call.secure import (
    SecureContext,
    SecureState,
    answer_setup,
    crypto_lines,
    ice_lines,
    offer_cryptos,
    parse_candidates,
    parse_cryptos,
    passes_ice_on,
    remember_received,
    settle_answer,
)
from relay.srtp.suites import SUITES

OFFERED = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32"


def _ctx() -> SecureContext:
    return SecureContext(
        fingerprint=lambda h: f"{h} AA:BB", interfaces=[("F" * 16, "203.0.113.1")],
        rng=random.Random(1),
    )


def _media(protocol: str = "RTP/AVP", **kw: object) -> OfferedMedia:
    return OfferedMedia(type="audio", port=16000, protocol=protocol, formats=("0",),
                        address="192.0.2.10", **kw)  # type: ignore[arg-type]


def test_plain_to_savp_offers_twelve_suites_then_dtls() -> None:
    lines = crypto_lines(SecureState(), "RTP/SAVP", _media(), CallOptions(),
                         True, _ctx())
    assert [ln.split()[1] for ln in lines[:12]] == [s.name for s in SUITES]
    assert [ln.split(":")[1].split()[0] for ln in lines[:12]] == [str(i) for i in range(1, 13)]
    assert lines[12:] == ("a=setup:actpass", "a=fingerprint:sha-256 AA:BB")


def test_offered_suite_first_same_key_lifetime_dropped_mki_kept() -> None:
    media = _media("RTP/SAVP", crypto=True, crypto_values=(OFFERED,))
    lines = crypto_lines(SecureState(), "RTP/SAVP", media, CallOptions(), True,
                         _ctx())
    assert lines[0] == ("a=crypto:1 AES_CM_128_HMAC_SHA1_80 "
                        "inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|1:32")
    assert len([ln for ln in lines if ln.startswith("a=crypto:")]) == 12


def test_sdes_flags_no_off_params_lifetime() -> None:
    state = SecureState()
    out = offer_cryptos((), state, ("no-AES_CM_128_HMAC_SHA1_32", "unencrypted_srtcp",
                                    "lifetime"), random.Random(2))
    assert len(out) == 11 and all(c.params == ("UNENCRYPTED_SRTCP",) for c in out)
    assert all(c.lifetime == "2^31" for c in out)
    assert [c.tag for c in out] == list(range(1, 12))
    assert offer_cryptos((), state, ("off",), random.Random(2)) == ()


def test_keys_kept_across_reoffers() -> None:
    state = SecureState()
    first = offer_cryptos((), state, (), random.Random(3))
    again = offer_cryptos((), state, (), random.Random(4))
    assert [c.key_salt for c in first] == [c.key_salt for c in again]


def test_answer_to_sdes_offer_uses_offered_suite_with_new_key() -> None:
    offerer = SecureState()
    offerer.sdes_in = parse_cryptos([OFFERED])
    lines = crypto_lines(offerer, "RTP/SAVP", _media(), CallOptions(), False, _ctx())
    assert len(lines) == 1 and lines[0].startswith("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:")
    assert "PS1uQCVe" not in lines[0]


def test_dtls_off_and_plain_protocol() -> None:
    off = crypto_lines(SecureState(), "RTP/SAVP", _media(),
                       CallOptions(dtls="off"), True, _ctx())
    assert not any(ln.startswith(("a=setup", "a=fingerprint")) for ln in off)
    assert crypto_lines(SecureState(), "RTP/AVP", _media(), CallOptions(), True,
                        _ctx()) == ()


def test_answer_setup_table() -> None:
    assert answer_setup("actpass", None, False) == "active"
    assert answer_setup("actpass", "passive", False) == "passive"
    assert answer_setup("actpass", None, True) == "passive"
    assert answer_setup("active", "passive", False) == "passive"
    assert answer_setup("passive", None, False) == "active"
    assert answer_setup(None, "passive", False) is None


def test_ice_force_plain_offer_and_credentials_kept() -> None:
    state = SecureState()
    opts = CallOptions(ice="force")
    ports = (30000, 30001)
    lines = ice_lines(state, None, _media(), opts, True, ports, False, _ctx(), "203.0.113.1")
    assert lines[2:] == (
        "a=candidate:FFFFFFFFFFFFFFFF 1 UDP 2130706431 203.0.113.1 30000 typ host",
        "a=candidate:FFFFFFFFFFFFFFFF 2 UDP 2130706430 203.0.113.1 30001 typ host",
    )
    again = ice_lines(state, None, _media(), opts, True, ports, False, _ctx(), "203.0.113.1")
    assert again == lines
    assert ice_lines(state, None, _media(), CallOptions(ice="remove"), True, (1, 2), False,
                     _ctx()) == ()
    assert ice_lines(SecureState(), None, _media(), CallOptions(), True, (1, 2), False,
                     _ctx()) == ()


def test_ice_answer_to_trickle_offerer_with_mux() -> None:
    offer = _media(ice=True, ice_trickle=True)
    lines = ice_lines(SecureState(), offer, _media(), CallOptions(), False, (30000, 30001),
                      True, _ctx())
    assert lines[2] == "a=ice-options:trickle" and lines[-1] == "a=end-of-candidates"
    assert len([ln for ln in lines if ln.startswith("a=candidate")]) == 1


@given(st.lists(st.text(max_size=120), max_size=5))
def test_parse_cryptos_never_raises(values: list[str]) -> None:
    for c in parse_cryptos(values):
        assert c.tag >= 0


def test_remember_received_keeps_what_the_media_side_needs() -> None:
    fp = "sha-256 " + ":".join(["AB"] * 32)
    media = _media(
        "UDP/TLS/RTP/SAVPF", ice=True, fingerprint=True, fingerprint_value=fp, setup="actpass",
        ice_ufrag="Fx3k", ice_pwd="8Zk3Fv9bTTqIlmnJgB6u4YQf", crypto_values=(OFFERED, "junk"),
        candidates=("1 1 UDP 2130706431 192.0.2.10 16000 typ host", "broken"),
    )
    state = SecureState()
    remember_received(state, media)
    assert state.fingerprint_in is not None and state.fingerprint_in.render() == fp
    assert state.setup_in == "actpass" and state.remote_ice == ("Fx3k", "8Zk3Fv9bTTqIlmnJgB6u4YQf")
    assert [c.port for c in state.remote_candidates] == [16000]
    assert [c.suite.name for c in state.sdes_in] == ["AES_CM_128_HMAC_SHA1_80"]
    assert "8Zk3Fv9b" not in repr(state) and "PS1uQCVe" not in repr(state)
    remember_received(state, _media(fingerprint=True, fingerprint_value="sha-256 zz"))
    assert state.fingerprint_in is None


@given(st.lists(st.text(max_size=120), max_size=5))
def test_parse_candidates_never_raises(values: list[str]) -> None:
    assert len(parse_candidates(values)) <= len(values)


def test_candidates_only_on_the_interface_holding_the_ports() -> None:
    ctx = SecureContext(fingerprint=lambda h: h, rng=random.Random(5),
                        interfaces=[("A" * 16, "203.0.113.1"), ("B" * 16, "203.0.113.2")])
    lines = ice_lines(SecureState(), None, _media(), CallOptions(ice="force"), True,
                      (30000, 30001), False, ctx, "203.0.113.2")
    assert [ln.split()[0] for ln in lines[2:]] == ["a=candidate:" + "B" * 16] * 2
    assert all("203.0.113.2" in ln for ln in lines[2:])


def test_settle_answer_accepted_line_first_with_its_key_others_new() -> None:
    state, rng = SecureState(), random.Random(6)
    state.sdes_out = offer_cryptos((), state, (), rng)
    ours = state.sdes_out[6]  # tag 7, AES_CM_128_HMAC_SHA1_80
    answer = f"7 AES_CM_128_HMAC_SHA1_80 inline:{OFFERED.split('inline:')[1]}"
    settle_answer(state, _media(crypto_values=(answer,)))
    again = offer_cryptos((), state, (), rng)
    assert (again[0].tag, again[0].key_salt) == (7, ours.key_salt)
    assert [c.tag for c in again] == list(range(7, 19))
    old = {c.key_salt for c in state.sdes_out}
    assert not old & {c.key_salt for c in again[1:]}


def test_settle_answer_mismatch_discards_keys_and_bad_line_keeps_them() -> None:
    state, rng = SecureState(), random.Random(7)
    state.sdes_out = offer_cryptos((), state, (), rng)
    keys = [c.key_salt for c in state.sdes_out]
    settle_answer(state, _media(crypto_values=("3 AES_CM_128_HMAC_SHA1_80 inline:short",)))
    assert [c.key_salt for c in offer_cryptos((), state, (), rng)] == keys
    settle_answer(state, _media(crypto_values=(OFFERED,)))  # tag 1 is AEAD_AES_256_GCM
    fresh = offer_cryptos((), state, (), rng)
    assert [c.tag for c in fresh] == list(range(1, 13)) and not set(keys) & {
        c.key_salt for c in fresh
    }


def test_optional_and_force_relay_on_ice_offer_then_answer_candidates_only() -> None:
    ice_offer = _media(ice=True)
    for option, first in (
        ("optional", "a=candidate:FFFFFFFFFFFFFFFF 1 UDP 2097152255 203.0.113.1 30000 typ host"),
        ("force-relay", "a=candidate:FFFFFFFFFFFFFFFF 1 UDP 16777215 203.0.113.1 30000 typ relay"
                        " raddr 203.0.113.1 rport 30000"),
    ):
        opts = CallOptions(ice=option)
        assert passes_ice_on(ice_offer, opts, True)
        lines = ice_lines(SecureState(), None, ice_offer, opts, True, (30000, 30001), False,
                          _ctx(), "203.0.113.1")
        assert lines[0] == first and not any(ln.startswith("a=ice-") for ln in lines)
    offerer = SecureState(ice_passed_on=True)
    answer = ice_lines(offerer, ice_offer, _media(), CallOptions(), False, (30000, 30001), False,
                       _ctx(), "203.0.113.1")
    assert [ln.split()[0][:12] for ln in answer] == ["a=candidate:"] * 2
    relay_plain = ice_lines(SecureState(), None, _media(), CallOptions(ice="force-relay"), True,
                            (30000, 30001), False, _ctx(), "203.0.113.1")
    assert relay_plain[0].startswith("a=ice-ufrag:") and "typ relay" in relay_plain[2]


@given(st.sets(st.sampled_from([s.name for s in SUITES])), st.booleans(), st.booleans())
def test_offer_cryptos_any_no_flags(dropped: set[str], lifetime: bool, pad: bool) -> None:
    flags = [f"no-{n}" for n in sorted(dropped)] + ["lifetime"] * lifetime + ["pad"] * pad
    out = offer_cryptos((), SecureState(), flags, random.Random(8))
    assert [c.suite.name for c in out] == [s.name for s in SUITES if s.name not in dropped]
    assert [c.tag for c in out] == list(range(1, len(out) + 1))
    assert all(len(c.key_salt) == c.suite.inline_len for c in out)
    assert all((c.lifetime == "2^31") is lifetime for c in out)


def test_dtls_role_from_our_setup_and_the_answer() -> None:
    assert SecureState(setup_out="passive").dtls_role == "passive"
    assert SecureState(setup_out="actpass", setup_in="active").dtls_role == "passive"
    assert SecureState(setup_out="actpass", setup_in="passive").dtls_role == "active"
    assert SecureState(setup_out="actpass").dtls_role is None
    assert SecureState().dtls_role is None


def test_incoming_osrtp_offer_passed_on_with_its_line_first() -> None:
    media = _media(crypto=True, crypto_values=(OFFERED,))
    lines = crypto_lines(SecureState(), "RTP/AVP", media, CallOptions(), True, _ctx())
    assert lines[0].startswith("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVe")
    assert lines[-2:] == ("a=setup:actpass", "a=fingerprint:sha-256 AA:BB")
    assert crypto_lines(SecureState(), "RTP/AVP", media, CallOptions(), False, _ctx()) == ()


def test_no_crypto_back_to_an_offerer_without_sdes() -> None:
    answer = _media("RTP/SAVP", crypto=True, crypto_values=(OFFERED,))
    offerer = SecureState(setup_in="actpass")  # a DTLS browser: no a=crypto offered
    assert crypto_lines(offerer, "UDP/TLS/RTP/SAVPF", answer, CallOptions(), False, _ctx()) == ()


def test_answer_to_an_offerer_of_both_sdes_and_dtls() -> None:
    """a=crypto, a=fingerprint and a=setup offered: DTLS only back; with DTLS=off on the
    answer, SDES only; a fingerprint without a=setup: SDES (docs/spec/sdp.md §1.12d)."""
    fp = "sha-256 " + ":".join(["AB"] * 32)
    for setup, dtls, expected in (("actpass", None, ("a=setup:active",)),
                                  ("active", None, ("a=setup:passive",)),
                                  ("actpass", "passive", ("a=setup:passive",)),
                                  ("actpass", "off", ("a=crypto:1",)),
                                  (None, None, ("a=crypto:1",))):  # fmt: skip
        offerer = SecureState()
        remember_received(offerer, _media("RTP/SAVP", crypto_values=(OFFERED,),
                                          fingerprint_value=fp, setup=setup))
        lines = crypto_lines(offerer, "RTP/SAVP", _media(), CallOptions(dtls=dtls), False,
                             _ctx())
        assert tuple(ln.split()[0] for ln in lines[:1]) == expected, (setup, dtls, lines)
        assert len(lines) == (2 if expected[0].startswith("a=setup") else 1)
        assert bool(offerer.sdes_out) == (expected[0] == "a=crypto:1")
