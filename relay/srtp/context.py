"""An SRTP session for one direction of one stream: protect (sending) or unprotect (receiving)
RTP and RTCP, with ROC tracking and a replay window (RFC 3711 §3.3, §3.4).

`open_context` picks libsrtp (through pylibsrtp) for the suites pylibsrtp exposes and the native
transforms of `relay.srtp.packet` (cryptography's AES and HMAC-SHA1) for the rest; both give the
same bytes for the same keys (tests/unit/relay/srtp/test_libsrtp_crosscheck.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from relay.srtp.errors import SrtpError, SrtpReplay, SrtpTooShort
from relay.srtp.kdf import derive
from relay.srtp.packet import INDEX_MASK, PacketCrypto, insert_mki, packet_crypto, strip_mki
from relay.srtp.replay import ReplayWindow, RtpIndex
from relay.srtp.suites import Suite


@dataclass(frozen=True, slots=True)
class SessionParams:
    """The SDES session parameters that change the transform (RFC 4568 §6.3)."""

    unencrypted_srtp: bool = False
    unencrypted_srtcp: bool = False
    unauthenticated_srtp: bool = False

    @property
    def default(self) -> bool:
        return not (self.unencrypted_srtp or self.unencrypted_srtcp or self.unauthenticated_srtp)


class SrtpContext(Protocol):
    """What the media plane calls per packet; each raises an SrtpError subclass on bad input."""

    suite: Suite

    def protect_rtp(self, packet: bytes) -> bytes: ...

    def unprotect_rtp(self, packet: bytes) -> bytes: ...

    def protect_rtcp(self, packet: bytes) -> bytes: ...

    def unprotect_rtcp(self, packet: bytes) -> bytes: ...


class NativeContext:
    """SRTP over `relay.srtp.packet`; keeps per-SSRC ROC, replay window and SRTCP index.
    `mki`: written into every packet protected, and its length cut from every packet
    unprotected (value unchecked, docs/spec/sdp.md §1.12d)."""

    def __init__(
        self, suite: Suite, crypto: PacketCrypto, first_rtcp_index: int = 1, mki: bytes = b""
    ) -> None:
        self.suite = suite
        self.mki = mki
        self._crypto = crypto
        self._rtp: dict[int, RtpIndex] = {}
        self._rtcp_in: dict[int, ReplayWindow] = {}
        self._rtcp_out: dict[int, int] = {}
        self._first_rtcp_index = first_rtcp_index

    def _state(self, packet: bytes) -> tuple[RtpIndex, int, int]:
        if len(packet) < 12:
            raise SrtpTooShort(f"RTP packet of {len(packet)} bytes, header needs 12")
        ssrc = int.from_bytes(packet[8:12], "big")
        state = self._rtp.get(ssrc)
        if state is None:
            state = self._rtp[ssrc] = RtpIndex()
        seq = (packet[2] << 8) | packet[3]
        return state, state.estimate(seq), seq

    def protect_rtp(self, packet: bytes) -> bytes:
        state, roc, seq = self._state(packet)
        out = self._crypto.rtp_protect(packet, roc)
        state.accept(roc, seq)
        return insert_mki(out, self.mki, self._crypto.rtp_after_mki())

    def unprotect_rtp(self, packet: bytes) -> bytes:
        if len(packet) < self._crypto.rtp_min_len() + len(self.mki):
            raise SrtpTooShort(f"SRTP packet of {len(packet)} bytes")
        packet = strip_mki(packet, len(self.mki), self._crypto.rtp_after_mki())
        state, roc, seq = self._state(packet)
        state.check((roc << 16) | seq)
        out = self._crypto.rtp_unprotect(packet, roc)
        state.accept(roc, seq)
        return out

    def protect_rtcp(self, packet: bytes) -> bytes:
        if len(packet) < 8:
            raise SrtpTooShort(f"RTCP packet of {len(packet)} bytes, header needs 8")
        ssrc = int.from_bytes(packet[4:8], "big")
        index = self._rtcp_out.get(ssrc, self._first_rtcp_index)
        self._rtcp_out[ssrc] = (index + 1) & INDEX_MASK
        out = self._crypto.rtcp_protect(packet, index)
        return insert_mki(out, self.mki, self._crypto.rtcp_after_mki())

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        if len(packet) < self._crypto.rtcp_min_len() + len(self.mki):
            raise SrtpTooShort(f"SRTCP packet of {len(packet)} bytes")
        packet = strip_mki(packet, len(self.mki), self._crypto.rtcp_after_mki())
        ssrc = int.from_bytes(packet[4:8], "big")
        window = self._rtcp_in.get(ssrc)
        if window is None:
            window = self._rtcp_in[ssrc] = ReplayWindow("SRTCP index")
        plain, index = self._crypto.rtcp_unprotect(packet)
        window.check(index)
        window.commit(index)
        return plain


def open_context(
    suite: Suite,
    key_salt: bytes,
    *,
    outbound: bool,
    params: SessionParams = SessionParams(),
    use_libsrtp: bool = True,
    mki: bytes = b"",
) -> SrtpContext:
    """A context for `suite` keyed with `inline:` key||salt; `outbound` protects, else unprotects.
    `mki`: the MKI field of every packet (relay.srtp.sdes.mki_bytes), empty for none.

    libsrtp serves the suites pylibsrtp exposes when no session parameter changes the transform
    and there is no MKI (pylibsrtp 1.0 has no MKI in its policy).
    """
    if len(key_salt) != suite.inline_len:
        raise SrtpError(f"{suite.name} needs {suite.inline_len} bytes of key||salt")
    key, salt = key_salt[: suite.master_key_len], key_salt[suite.master_key_len :]
    if use_libsrtp and params.default and not mki:
        from relay.srtp import libsrtp

        if libsrtp.supports(suite):
            return libsrtp.LibsrtpContext(suite, key_salt, outbound=outbound)
    crypto = packet_crypto(
        suite,
        derive(suite, key, salt),
        encrypt_rtp=not params.unencrypted_srtp,
        encrypt_rtcp=not params.unencrypted_srtcp,
        auth_rtp=not params.unauthenticated_srtp,
    )
    return NativeContext(suite, crypto, mki=mki)


__all__ = ["NativeContext", "SessionParams", "SrtpContext", "SrtpReplay", "open_context"]
