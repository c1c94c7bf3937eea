"""Contexts: round trips for every suite and session parameter, libsrtp byte-identity, errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.srtp import (
    SUITES,
    Cipher,
    SessionParams,
    SrtpAuthError,
    SrtpError,
    SrtpReplay,
    SrtpTooShort,
    Suite,
    open_context,
)
from relay.srtp.libsrtp import LibsrtpContext, supports

LIBSRTP_SUITES = [s for s in SUITES if supports(s)]
PARAMS = [
    SessionParams(),
    SessionParams(unencrypted_srtp=True),
    SessionParams(unencrypted_srtcp=True),
    SessionParams(unauthenticated_srtp=True),
]


def rtp(seq: int, ssrc: int = 0x11223344, payload: bytes = b"\x55" * 160, x: bool = False) -> bytes:
    first = 0x90 if x else 0x80
    ext = bytes.fromhex("bede0001") + b"\x10\xaa\x00\x00" if x else b""
    return (
        bytes([first, 0])
        + seq.to_bytes(2, "big")
        + (seq * 160).to_bytes(4, "big")
        + (ssrc.to_bytes(4, "big") + ext + payload)
    )


RTCP_SR = bytes.fromhex("80c80006112233440000000100000002000000030000000400000005")


def key(s: Suite) -> bytes:
    return bytes((7 * i + 3) & 0xFF for i in range(s.inline_len))


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: repr(p))
@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
@pytest.mark.parametrize("use_libsrtp", [False, True])
def test_round_trip_every_suite(suite: Suite, params: SessionParams, use_libsrtp: bool) -> None:
    tx = open_context(suite, key(suite), outbound=True, params=params, use_libsrtp=use_libsrtp)
    rx = open_context(suite, key(suite), outbound=False, params=params, use_libsrtp=use_libsrtp)
    for seq in (65533, 65534, 65535, 0, 1):  # across a ROC wrap
        for x in (False, True):
            plain = rtp(seq, x=x, ssrc=0x11223344 + x)
            protected = tx.protect_rtp(plain)
            unchanged = params.unencrypted_srtp or suite.cipher is Cipher.NULL
            assert protected != plain or (unchanged and params.unauthenticated_srtp)
            assert rx.unprotect_rtp(protected) == plain
    for _ in range(3):
        assert rx.unprotect_rtcp(tx.protect_rtcp(RTCP_SR)) == RTCP_SR


def test_unencrypted_srtp_leaves_payload_readable_but_tagged() -> None:
    s = SUITES[6]
    tx = open_context(s, key(s), outbound=True, params=SessionParams(unencrypted_srtp=True))
    out = tx.protect_rtp(rtp(1))
    assert out[: len(rtp(1))] == rtp(1) and len(out) == len(rtp(1)) + 10


@pytest.mark.parametrize("suite", LIBSRTP_SUITES, ids=lambda s: s.name)
def test_native_and_libsrtp_give_identical_bytes(suite: Suite) -> None:
    native = open_context(suite, key(suite), outbound=True, use_libsrtp=False)
    lib = open_context(suite, key(suite), outbound=True)
    assert isinstance(lib, LibsrtpContext)
    for seq in (65534, 65535, 0, 1, 2):
        assert native.protect_rtp(rtp(seq)) == lib.protect_rtp(rtp(seq))
    for _ in range(3):
        assert native.protect_rtcp(RTCP_SR) == lib.protect_rtcp(RTCP_SR)


@pytest.mark.parametrize("suite", LIBSRTP_SUITES, ids=lambda s: s.name)
def test_native_and_libsrtp_understand_each_other(suite: Suite) -> None:
    for tx_lib in (False, True):
        tx = open_context(suite, key(suite), outbound=True, use_libsrtp=tx_lib)
        rx = open_context(suite, key(suite), outbound=False, use_libsrtp=not tx_lib)
        assert rx.unprotect_rtp(tx.protect_rtp(rtp(9))) == rtp(9)
        assert rx.unprotect_rtcp(tx.protect_rtcp(RTCP_SR)) == RTCP_SR


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
@pytest.mark.parametrize("use_libsrtp", [False, True])
def test_bad_tag_replay_and_short_packets_raise_typed_errors(
    suite: Suite, use_libsrtp: bool
) -> None:
    tx = open_context(suite, key(suite), outbound=True, use_libsrtp=use_libsrtp)
    rx = open_context(suite, key(suite), outbound=False, use_libsrtp=use_libsrtp)
    good = tx.protect_rtp(rtp(100))
    bad = good[:-1] + bytes([good[-1] ^ 1])
    with pytest.raises(SrtpAuthError):
        rx.unprotect_rtp(bad)
    assert rx.unprotect_rtp(good) == rtp(100)
    with pytest.raises(SrtpReplay, match=None if use_libsrtp else r"^index 100 already received$"):
        rx.unprotect_rtp(good)
    with pytest.raises(SrtpTooShort):
        rx.unprotect_rtp(good[:12])
    with pytest.raises(SrtpTooShort):
        rx.unprotect_rtcp(RTCP_SR[:8])
    srtcp = tx.protect_rtcp(RTCP_SR)
    with pytest.raises(SrtpAuthError):
        rx.unprotect_rtcp(srtcp[:9] + bytes([srtcp[9] ^ 0x80]) + srtcp[10:])
    assert rx.unprotect_rtcp(srtcp) == RTCP_SR
    with pytest.raises(
        SrtpReplay, match=None if use_libsrtp else r"^SRTCP index 1 already received$"
    ):
        rx.unprotect_rtcp(srtcp)


def test_old_packet_beyond_the_window_is_a_replay() -> None:
    s = SUITES[8]  # F8: native only
    tx = open_context(s, key(s), outbound=True)
    rx = open_context(s, key(s), outbound=False)
    early = tx.protect_rtp(rtp(10))
    for seq in range(11, 200):
        rx.unprotect_rtp(tx.protect_rtp(rtp(seq)))
    with pytest.raises(SrtpReplay, match=r"^index 10 older than the replay window$"):
        rx.unprotect_rtp(early)


def test_wrong_key_length_is_refused() -> None:
    with pytest.raises(SrtpError, match="needs 30 bytes"):
        open_context(SUITES[6], b"short", outbound=True)


@pytest.mark.parametrize("use_libsrtp", [False, True])
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_give_plain_or_srtp_error(use_libsrtp: bool, data: bytes) -> None:
    for s in (SUITES[1], SUITES[6], SUITES[9]):
        rx = open_context(s, key(s), outbound=False, use_libsrtp=use_libsrtp)
        for fn in (rx.unprotect_rtp, rx.unprotect_rtcp):
            try:
                fn(data)
            except SrtpError:
                pass
