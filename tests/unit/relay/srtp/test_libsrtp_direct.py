"""LibsrtpContext calls libsrtp through pylibsrtp's binding with its own buffer (issue 17: the
hot path allocates only what libsrtp returns); it must give the bytes and errors pylibsrtp's
`Session` methods give, and refuse what does not fit its buffer."""

from __future__ import annotations

import pytest

from relay.srtp import SUITES, SrtpAuthError, SrtpError, SrtpReplay, SrtpTooShort, Suite
from relay.srtp.libsrtp import BUFFER, RTP_TRAILER, LibsrtpContext, supports

LIBSRTP_SUITES = [s for s in SUITES if supports(s)]
RTCP_SR = bytes.fromhex("80c80006112233440000000100000002000000030000000400000005")


def rtp(seq: int, size: int = 160, first: int = 0x80) -> bytes:
    return bytes([first, 0]) + seq.to_bytes(2, "big") + bytes(4) + b"\x11\x22\x33\x44" + (
        b"\x55" * size)  # fmt: skip


def pair(s: Suite, direct: bool) -> tuple[LibsrtpContext, LibsrtpContext]:
    key = bytes(range(s.inline_len))
    tx = LibsrtpContext(s, key, outbound=True)
    rx = LibsrtpContext(s, key, outbound=False)
    if not direct:
        tx._direct = rx._direct = None  # pylibsrtp's Session methods, the fallback
    return tx, rx


def test_the_direct_path_is_in_use() -> None:
    """With pylibsrtp 1.0 (libsrtp 2), every context drives libsrtp itself."""
    tx, rx = pair(LIBSRTP_SUITES[0], direct=True)
    assert tx._direct is not None and rx._direct is not None


@pytest.mark.parametrize("suite", LIBSRTP_SUITES, ids=lambda s: s.name)
def test_direct_and_session_paths_give_the_same_bytes(suite: Suite) -> None:
    (dtx, drx), (stx, srx) = pair(suite, True), pair(suite, False)
    for seq in (1, 2, 3, 65535):
        packet = rtp(seq)
        protected = dtx.protect_rtp(packet)
        assert protected == stx.protect_rtp(packet) != packet
        assert drx.unprotect_rtp(protected) == packet == srx.unprotect_rtp(protected)
    sr = dtx.protect_rtcp(RTCP_SR)
    assert sr == stx.protect_rtcp(RTCP_SR)
    assert drx.unprotect_rtcp(sr) == RTCP_SR == srx.unprotect_rtcp(sr)


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "session"])
def test_errors_are_ours_on_both_paths(direct: bool) -> None:
    tx, rx = pair(LIBSRTP_SUITES[0], direct)
    protected = tx.protect_rtp(rtp(7))
    rx.unprotect_rtp(protected)
    with pytest.raises(SrtpReplay):
        rx.unprotect_rtp(protected)
    forged = bytearray(tx.protect_rtp(rtp(8)))
    forged[20] ^= 1
    with pytest.raises(SrtpAuthError):
        rx.unprotect_rtp(bytes(forged))
    with pytest.raises(SrtpTooShort):
        tx.protect_rtp(rtp(9, first=0x8F)[:40])  # 15 CSRCs announced, not there


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "session"])
def test_a_packet_too_long_for_the_buffer_is_refused(direct: bool) -> None:
    tx, rx = pair(LIBSRTP_SUITES[0], direct)
    fits = rtp(1, BUFFER - RTP_TRAILER - 12)
    assert rx.unprotect_rtp(tx.protect_rtp(fits)) == fits
    with pytest.raises(SrtpError, match="too long"):
        tx.protect_rtp(rtp(2, BUFFER - RTP_TRAILER - 11))
    with pytest.raises(SrtpError, match="too long"):
        rx.unprotect_rtp(rtp(3, BUFFER))
    with pytest.raises(SrtpError, match="too long"):
        rx.unprotect_rtcp(RTCP_SR + bytes(BUFFER))
