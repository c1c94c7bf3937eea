"""The MKI field: where it sits in SRTP/SRTCP (RFC 3711 §3.1, §3.4; RFC 7714 §8.1, §9.1), its
bytes from the a=crypto text, and that unprotecting cuts it unchecked, as rtpengine 10.5 does
(docs/spec/sdp.md §1.12d)."""

from __future__ import annotations

import hmac
from hashlib import sha1

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.srtp import (
    SUITES,
    Cipher,
    SessionParams,
    SrtpContext,
    SrtpError,
    Suite,
    open_context,
    suite,
)
from relay.srtp.kdf import derive
from relay.srtp.packet import insert_mki, strip_mki
from relay.srtp.sdes import for_rtpengine_offer, mki_bytes, mki_value, parse, render

MKI = bytes.fromhex("0a0b0c0d")
SR = bytes.fromhex("80c80006112233440000000100000002000000030000000400000005")


def rtp(seq: int, payload: bytes = b"\x55" * 160) -> bytes:
    return bytes([0x80, 0]) + seq.to_bytes(2, "big") + bytes(4) + b"\x11\x22\x33\x44" + payload


def key(s: Suite) -> bytes:
    return bytes((7 * i + 3) & 0xFF for i in range(s.inline_len))


DEFAULT = SessionParams()


def pair(
    s: Suite, mki: bytes, params: SessionParams = DEFAULT
) -> tuple[SrtpContext, SrtpContext]:
    return (
        open_context(s, key(s), outbound=True, params=params, mki=mki),
        open_context(s, key(s), outbound=False, params=params, mki=mki),
    )


def test_rfc3711_layout_aes_cm_80() -> None:
    """header · encrypted payload · MKI · tag, the tag an HMAC over header and payload and the
    ROC only (RFC 3711 §3.1, §4.2): computed here from the session auth key."""
    s = suite("AES_CM_128_HMAC_SHA1_80")
    tx = open_context(s, key(s), outbound=True, mki=MKI)
    out = tx.protect_rtp(rtp(7))
    assert len(out) == 12 + 160 + 4 + 10
    assert out[:12] == rtp(7)[:12] and out[172:176] == MKI
    auth = derive(s, key(s)[:16], key(s)[16:]).rtp.auth
    tag = hmac.new(auth, out[:172] + (0).to_bytes(4, "big"), sha1).digest()[:10]
    assert out[176:] == tag


def test_rfc3711_srtcp_layout_mki_between_index_and_tag() -> None:
    s = suite("AES_CM_128_HMAC_SHA1_80")
    tx = open_context(s, key(s), outbound=True, mki=MKI)
    out = tx.protect_rtcp(SR)
    assert len(out) == len(SR) + 4 + 4 + 10
    assert out[len(SR) : len(SR) + 4] == bytes.fromhex("80000001")  # E bit, index 1
    assert out[len(SR) + 4 : len(SR) + 8] == MKI
    auth = derive(s, key(s)[:16], key(s)[16:]).rtcp.auth
    assert out[-10:] == hmac.new(auth, out[: len(SR) + 4], sha1).digest()[:10]


@pytest.mark.parametrize("s", SUITES, ids=lambda s: s.name)
def test_mki_is_inserted_into_otherwise_identical_packets(s: Suite) -> None:
    """The same keys with and without MKI give the same bytes apart from the MKI, placed before
    the HMAC tag, or last with AEAD (after GCM tag; in SRTCP after E+index)."""
    plain_tx = open_context(s, key(s), outbound=True, use_libsrtp=False)
    mki_tx = open_context(s, key(s), outbound=True, mki=MKI)
    aead = s.cipher is Cipher.AES_GCM
    for seq in (1, 2, 65535, 0):
        a, b = plain_tx.protect_rtp(rtp(seq)), mki_tx.protect_rtp(rtp(seq))
        t = 0 if aead else s.srtp_tag_len
        assert b == (a + MKI if aead else a[:-t] + MKI + a[-t:])
    a, b = plain_tx.protect_rtcp(SR), mki_tx.protect_rtcp(SR)
    t = 0 if aead else s.srtcp_tag_len
    assert b == (a + MKI if aead else a[:-t] + MKI + a[-t:])


@pytest.mark.parametrize("params", [SessionParams(), SessionParams(unauthenticated_srtp=True),
                                    SessionParams(unencrypted_srtcp=True)], ids=repr)
@pytest.mark.parametrize("s", SUITES, ids=lambda s: s.name)
def test_round_trip_with_mki(s: Suite, params: SessionParams) -> None:
    tx, rx = pair(s, MKI, params)
    for seq in (65534, 65535, 0, 1):
        assert rx.unprotect_rtp(tx.protect_rtp(rtp(seq))) == rtp(seq)
    assert rx.unprotect_rtcp(tx.protect_rtcp(SR)) == SR


def test_unauthenticated_srtp_ends_with_the_mki() -> None:
    s = suite("AES_CM_128_HMAC_SHA1_80")
    tx = open_context(s, key(s), outbound=True, mki=MKI,
                      params=SessionParams(unauthenticated_srtp=True))
    assert tx.protect_rtp(rtp(1))[-4:] == MKI


@pytest.mark.parametrize("s", [suite("AES_CM_128_HMAC_SHA1_80"), suite("AEAD_AES_128_GCM")],
                         ids=lambda s: s.name)
def test_mki_value_is_not_checked_but_its_length_is_needed(s: Suite) -> None:
    """rtpengine forwards `00000002` under `1:4` and drops packets without the MKI."""
    tx = open_context(s, key(s), outbound=True, mki=bytes.fromhex("00000002"))
    rx = open_context(s, key(s), outbound=False, mki=bytes.fromhex("00000001"))
    assert rx.unprotect_rtp(tx.protect_rtp(rtp(1))) == rtp(1)
    assert rx.unprotect_rtcp(tx.protect_rtcp(SR)) == SR
    no_mki = open_context(s, key(s), outbound=True, use_libsrtp=False)
    with pytest.raises(SrtpError):
        rx.unprotect_rtp(no_mki.protect_rtp(rtp(2)))
    with pytest.raises(SrtpError):
        rx.unprotect_rtcp(no_mki.protect_rtcp(SR))


@pytest.mark.parametrize(
    ("text", "field", "line"),
    [  # measured on rtpengine 10.5.3.5: the line it writes and the bytes in its packets
        ("1:4", "00000001", "1:4"),
        ("300:1", "2c", "44:1"),
        ("300:2", "012c", "300:2"),
        ("65536:2", "0000", "0:2"),
        ("5:6", "000000000005", "5:6"),
        ("4294967297:8", "0000000000000001", "1:8"),
        ("4294967297:4", "00000001", "1:4"),
        ("168496141:4", "0a0b0c0d", "168496141:4"),
    ],
)
def test_mki_field_and_rewritten_line_as_rtpengine(text: str, field: str, line: str) -> None:
    value, length = (int(x) for x in text.split(":"))
    assert mki_bytes((value, length)).hex() == field
    assert mki_value((value, length)) == int(line.split(":")[0])
    k = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"
    c = parse(f"1 AES_CM_128_HMAC_SHA1_80 inline:{k}|2^20|{text}")
    assert render(for_rtpengine_offer(c)) == f"1 AES_CM_128_HMAC_SHA1_80 inline:{k}|{line}"


def test_mki_lengths_up_to_255_as_rtpengine() -> None:
    k = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"
    assert parse(f"1 AES_CM_128_HMAC_SHA1_80 inline:{k}|1:255").mki == (1, 255)
    assert mki_bytes((1, 129)) == bytes(128) + b"\x01"
    assert mki_bytes(None) == b""


@given(packet=st.binary(max_size=64), mki=st.binary(min_size=1, max_size=40),
       after=st.sampled_from([0, 4, 10, 16]))
def test_strip_undoes_insert(packet: bytes, mki: bytes, after: int) -> None:
    if len(packet) < after:
        return
    assert strip_mki(insert_mki(packet, mki, after), len(mki), after) == packet


@given(payload=st.binary(max_size=200), seq=st.integers(0, 0xFFFF),
       mki=st.binary(min_size=1, max_size=16), s=st.sampled_from(SUITES))
def test_any_packet_round_trips_with_any_mki(
    payload: bytes, seq: int, mki: bytes, s: Suite
) -> None:
    tx, rx = pair(s, mki)
    packet = rtp(seq, payload)
    out = tx.protect_rtp(packet)
    assert len(out) == len(packet) + s.srtp_tag_len + len(mki)
    assert rx.unprotect_rtp(out) == packet


@given(data=st.binary(max_size=300), mki_len=st.integers(1, 40))
def test_arbitrary_bytes_with_mki_give_plain_or_srtp_error(data: bytes, mki_len: int) -> None:
    for s in (SUITES[1], SUITES[6], SUITES[7], SUITES[9]):
        rx = open_context(s, key(s), outbound=False, mki=bytes(mki_len))
        for fn in (rx.unprotect_rtp, rx.unprotect_rtcp):
            try:
                fn(data)
            except SrtpError:
                pass
