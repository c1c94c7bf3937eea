"""Per-packet SRTP/SRTCP transforms over session keys; stateless (ROC and index come in).

RFC 3711 §3.1/§3.4 (packet layout), §4.1.1 AES-CM, §4.1.2 AES-f8, §4.1.3 NULL cipher, §4.2
HMAC-SHA1; RFC 6188 (AES-192/256-CM); RFC 7714 §8-§10 (AES-GCM). Every block cipher, mode and
hash comes from `cryptography`; only F8's chaining (which no library offers as a mode) is
composed here from its AES-ECB block function, as rtpengine composes it from OpenSSL's.
"""

from __future__ import annotations

import hmac as _stdlib_hmac

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher as _Cipher
from cryptography.hazmat.primitives.ciphers import CipherContext, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from relay.srtp.errors import SrtpAuthError, SrtpTooShort
from relay.srtp.kdf import SessionKeys, StreamKeys
from relay.srtp.suites import Cipher, Suite

E_BIT = 0x80000000
INDEX_MASK = 0x7FFFFFFF


def rtp_header_len(packet: bytes) -> int:
    """Length of the RTP header with CSRCs and extension (RFC 3550 §5.1, §5.3.1)."""
    n = len(packet)
    if n < 12:
        raise SrtpTooShort(f"RTP packet of {n} bytes, header needs 12")
    end = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10:
        if n < end + 4:
            raise SrtpTooShort(f"RTP packet of {n} bytes ends inside its extension header")
        end += 4 + 4 * int.from_bytes(packet[end + 2 : end + 4], "big")
    if n < end:
        raise SrtpTooShort(f"RTP packet of {n} bytes, header says {end}")
    return end


def insert_mki(packet: bytes, mki: bytes, after: int) -> bytes:
    """`packet` with `mki` placed before its last `after` bytes: the HMAC-SHA1 tag, which does
    not cover the MKI (RFC 3711 §3.1, §3.4), or nothing with AEAD, whose MKI ends the packet
    (RFC 7714 §8.1, §9.1). Layout as libsrtp and rtpengine 10.5 (docs/spec/sdp.md §1.12d)."""
    if not mki:
        return packet
    if after:
        return packet[:-after] + mki + packet[-after:]
    return packet + mki


def strip_mki(packet: bytes, mki_len: int, after: int) -> bytes:
    """`packet` without the `mki_len` MKI bytes before its last `after` bytes. The value is not
    checked: one master key per direction, and rtpengine 10.5 does not check it either."""
    if not mki_len:
        return packet
    end = len(packet) - after
    if end < mki_len:
        raise SrtpTooShort(f"packet of {len(packet)} bytes, MKI and tag need {mki_len + after}")
    return packet[: end - mki_len] + packet[end:]


def _xor(data: bytes, keystream: bytes) -> bytes:
    n = len(data)
    return (int.from_bytes(data, "big") ^ int.from_bytes(keystream[:n], "big")).to_bytes(n, "big")


class PacketCrypto:
    """Base of the per-cipher transforms; `encrypt_*`/`auth_rtp` are the SDES session
    parameters UNENCRYPTED_SRTP, UNENCRYPTED_SRTCP, UNAUTHENTICATED_SRTP (RFC 4568 §6.3)."""

    def __init__(
        self,
        suite: Suite,
        keys: SessionKeys,
        *,
        encrypt_rtp: bool = True,
        encrypt_rtcp: bool = True,
        auth_rtp: bool = True,
    ) -> None:
        self.suite = suite
        self.keys = keys
        self.encrypt_rtp = encrypt_rtp
        self.encrypt_rtcp = encrypt_rtcp
        self.rtp_tag = suite.srtp_tag_len if auth_rtp else 0
        self.rtcp_tag = suite.srtcp_tag_len

    def rtp_protect(self, packet: bytes, roc: int) -> bytes:
        raise NotImplementedError

    def rtp_unprotect(self, packet: bytes, roc: int) -> bytes:
        raise NotImplementedError

    def rtcp_protect(self, packet: bytes, index: int) -> bytes:
        raise NotImplementedError

    def rtcp_unprotect(self, packet: bytes) -> tuple[bytes, int]:
        """Plain RTCP and the SRTCP index (E bit removed) of an authentic packet."""
        raise NotImplementedError

    def rtp_min_len(self) -> int:
        return 12 + self.rtp_tag

    def rtcp_min_len(self) -> int:
        return 8 + 4 + self.rtcp_tag

    def rtp_after_mki(self) -> int:
        """Bytes that follow the MKI in an SRTP packet (the HMAC tag; 0 for AEAD)."""
        return self.rtp_tag

    def rtcp_after_mki(self) -> int:
        return self.rtcp_tag


class HmacCrypto(PacketCrypto):
    """HMAC-SHA1 authenticated suites (RFC 3711 §4.2); subclasses supply the keystream."""

    def __init__(self, suite: Suite, keys: SessionKeys, **params: bool) -> None:
        super().__init__(suite, keys, **params)
        self._rtp_mac = hmac.HMAC(keys.rtp.auth, hashes.SHA1())
        self._rtcp_mac = hmac.HMAC(keys.rtcp.auth, hashes.SHA1())

    def _rtp_apply(self, packet: bytes, roc: int, data: bytes) -> bytes:
        """XOR `data` (the payload of `packet`) with its keystream; its own inverse."""
        raise NotImplementedError

    def _rtcp_apply(self, packet: bytes, eidx: int, data: bytes) -> bytes:
        raise NotImplementedError

    def _rtp_tag(self, data: bytes, roc: int) -> bytes:
        mac = self._rtp_mac.copy()
        mac.update(data)
        mac.update(roc.to_bytes(4, "big"))
        return mac.finalize()[: self.rtp_tag]

    def rtp_protect(self, packet: bytes, roc: int) -> bytes:
        hdr = rtp_header_len(packet)
        if self.encrypt_rtp and hdr < len(packet):
            packet = packet[:hdr] + self._rtp_apply(packet, roc, packet[hdr:])
        if self.rtp_tag:
            return packet + self._rtp_tag(packet, roc)
        return packet

    def rtp_unprotect(self, packet: bytes, roc: int) -> bytes:
        if len(packet) < self.rtp_min_len():
            raise SrtpTooShort(f"SRTP packet of {len(packet)} bytes")
        if self.rtp_tag:
            body, tag = packet[: -self.rtp_tag], packet[-self.rtp_tag :]
            mac = self._rtp_mac.copy()
            mac.update(body)
            mac.update(roc.to_bytes(4, "big"))
            if not hmac_equal(mac.finalize()[: self.rtp_tag], tag):
                raise SrtpAuthError("SRTP authentication tag mismatch")
        else:
            body = packet
        hdr = rtp_header_len(body)
        if not self.encrypt_rtp or hdr == len(body):
            return body
        return body[:hdr] + self._rtp_apply(body, roc, body[hdr:])

    def rtcp_protect(self, packet: bytes, index: int) -> bytes:
        if len(packet) < 8:
            raise SrtpTooShort(f"RTCP packet of {len(packet)} bytes, header needs 8")
        eidx = (E_BIT if self.encrypt_rtcp else 0) | (index & INDEX_MASK)
        if self.encrypt_rtcp:
            packet = packet[:8] + self._rtcp_apply(packet, eidx, packet[8:])
        body = packet + eidx.to_bytes(4, "big")
        mac = self._rtcp_mac.copy()
        mac.update(body)
        return body + mac.finalize()[: self.rtcp_tag]

    def rtcp_unprotect(self, packet: bytes) -> tuple[bytes, int]:
        if len(packet) < self.rtcp_min_len():
            raise SrtpTooShort(f"SRTCP packet of {len(packet)} bytes")
        body, tag = packet[: -self.rtcp_tag], packet[-self.rtcp_tag :]
        mac = self._rtcp_mac.copy()
        mac.update(body)
        if not hmac_equal(mac.finalize()[: self.rtcp_tag], tag):
            raise SrtpAuthError("SRTCP authentication tag mismatch")
        eidx = int.from_bytes(body[-4:], "big")
        plain = body[:-4]
        if eidx & E_BIT:
            plain = plain[:8] + self._rtcp_apply(plain, eidx, plain[8:])
        return plain, eidx & INDEX_MASK


def hmac_equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison (stdlib, OpenSSL-backed)."""
    return _stdlib_hmac.compare_digest(a, b)


class CmCrypto(HmacCrypto):
    """AES Counter Mode, 128/192/256-bit keys (RFC 3711 §4.1.1, RFC 6188 §4)."""

    def __init__(self, suite: Suite, keys: SessionKeys, **params: bool) -> None:
        super().__init__(suite, keys, **params)
        self._rtp_aes = algorithms.AES(keys.rtp.enc)
        self._rtcp_aes = algorithms.AES(keys.rtcp.enc)
        self._rtp_salt = int.from_bytes(keys.rtp.salt, "big") << 16
        self._rtcp_salt = int.from_bytes(keys.rtcp.salt, "big") << 16

    def _rtp_apply(self, packet: bytes, roc: int, data: bytes) -> bytes:
        ssrc = int.from_bytes(packet[8:12], "big")
        index = (roc << 16) | int.from_bytes(packet[2:4], "big")
        iv = (self._rtp_salt ^ (ssrc << 64) ^ (index << 16)).to_bytes(16, "big")
        return _Cipher(self._rtp_aes, modes.CTR(iv)).encryptor().update(data)

    def _rtcp_apply(self, packet: bytes, eidx: int, data: bytes) -> bytes:
        ssrc = int.from_bytes(packet[4:8], "big")
        iv = (self._rtcp_salt ^ (ssrc << 64) ^ ((eidx & INDEX_MASK) << 16)).to_bytes(16, "big")
        return _Cipher(self._rtcp_aes, modes.CTR(iv)).encryptor().update(data)


class F8Crypto(HmacCrypto):
    """AES-f8 (RFC 3711 §4.1.2): IV' = E(k_e XOR m, IV); S(j) = E(k_e, IV' XOR j XOR S(j-1))."""

    def __init__(self, suite: Suite, keys: SessionKeys, **params: bool) -> None:
        super().__init__(suite, keys, **params)
        self._rtp = _f8_pair(keys.rtp)
        self._rtcp = _f8_pair(keys.rtcp)

    def _rtp_apply(self, packet: bytes, roc: int, data: bytes) -> bytes:
        iv = b"\x00" + packet[1:12] + roc.to_bytes(4, "big")  # §4.1.2.2
        return _xor(data, f8_keystream(*self._rtp, iv, len(data)))

    def _rtcp_apply(self, packet: bytes, eidx: int, data: bytes) -> bytes:
        iv = bytes(4) + eidx.to_bytes(4, "big") + packet[:8]  # §4.1.2.3
        return _xor(data, f8_keystream(*self._rtcp, iv, len(data)))


def _f8_pair(keys: StreamKeys) -> tuple[CipherContext, CipherContext]:
    """ECB encryptors for k_e and k_e XOR m, m = k_s || 0x55.. (§4.1.2.1); ECB keeps no
    state between blocks, so one encryptor serves every packet of the stream."""
    mask = keys.salt + b"\x55" * (len(keys.enc) - len(keys.salt))
    masked = _xor(keys.enc, mask)
    ecb = _Cipher(algorithms.AES(keys.enc), modes.ECB()).encryptor()
    ecb_masked = _Cipher(algorithms.AES(masked), modes.ECB()).encryptor()
    return ecb, ecb_masked


def f8_keystream(ecb: CipherContext, ecb_masked: CipherContext, iv: bytes, n: int) -> bytes:
    """`n` bytes of f8 keystream for `iv` (RFC 3711 §4.1.2.1)."""
    iv_p = int.from_bytes(ecb_masked.update(iv), "big")
    out = []
    s = 0
    for j in range((n + 15) // 16):
        block = ecb.update((iv_p ^ j ^ s).to_bytes(16, "big"))
        out.append(block)
        s = int.from_bytes(block, "big")
    return b"".join(out)


class NullCrypto(HmacCrypto):
    """NULL cipher (RFC 3711 §4.1.3): authentication only. SRTCP still sets the E bit unless
    UNENCRYPTED_SRTCP is given, as rtpengine does; the 'encryption' is the identity."""

    def _rtp_apply(self, packet: bytes, roc: int, data: bytes) -> bytes:
        return data

    def _rtcp_apply(self, packet: bytes, eidx: int, data: bytes) -> bytes:
        return data


class GcmCrypto(PacketCrypto):
    """AEAD_AES_128_GCM / AEAD_AES_256_GCM (RFC 7714 §8-§10), 16-byte tag."""

    def __init__(self, suite: Suite, keys: SessionKeys, **params: bool) -> None:
        params.pop("auth_rtp", None)  # AEAD always authenticates (RFC 7714 §13)
        super().__init__(suite, keys, **params)
        self._rtp = AESGCM(keys.rtp.enc)
        self._rtcp = AESGCM(keys.rtcp.enc)
        self._rtp_salt = int.from_bytes(keys.rtp.salt, "big")
        self._rtcp_salt = int.from_bytes(keys.rtcp.salt, "big")

    def rtp_after_mki(self) -> int:
        return 0  # the GCM tag is part of the ciphertext; the MKI comes last (RFC 7714 §8.1)

    def rtcp_after_mki(self) -> int:
        return 0  # ciphertext, tag, E+index, then the MKI (RFC 7714 §9.1)

    def _rtp_iv(self, packet: bytes, roc: int) -> bytes:
        ssrc = int.from_bytes(packet[8:12], "big")
        seq = int.from_bytes(packet[2:4], "big")
        return (self._rtp_salt ^ ((ssrc << 48) | (roc << 16) | seq)).to_bytes(12, "big")

    def rtp_protect(self, packet: bytes, roc: int) -> bytes:
        hdr = rtp_header_len(packet)
        iv = self._rtp_iv(packet, roc)
        if not self.encrypt_rtp:
            return packet + self._rtp.encrypt(iv, b"", packet)
        return packet[:hdr] + self._rtp.encrypt(iv, packet[hdr:], packet[:hdr])

    def rtp_unprotect(self, packet: bytes, roc: int) -> bytes:
        if len(packet) < self.rtp_min_len():
            raise SrtpTooShort(f"SRTP packet of {len(packet)} bytes")
        iv = self._rtp_iv(packet, roc)
        try:
            if not self.encrypt_rtp:
                body = packet[:-16]
                self._rtp.decrypt(iv, packet[-16:], body)
                return body
            hdr = rtp_header_len(packet[:-16])
            return packet[:hdr] + self._rtp.decrypt(iv, packet[hdr:], packet[:hdr])
        except InvalidTag:
            raise SrtpAuthError("SRTP GCM tag mismatch") from None

    def _rtcp_iv(self, packet: bytes, index: int) -> bytes:
        ssrc = int.from_bytes(packet[4:8], "big")
        return (self._rtcp_salt ^ ((ssrc << 48) | index)).to_bytes(12, "big")

    def rtcp_protect(self, packet: bytes, index: int) -> bytes:
        if len(packet) < 8:
            raise SrtpTooShort(f"RTCP packet of {len(packet)} bytes, header needs 8")
        index &= INDEX_MASK
        iv = self._rtcp_iv(packet, index)
        if not self.encrypt_rtcp:
            eidx = index.to_bytes(4, "big")
            return packet + self._rtcp.encrypt(iv, b"", packet + eidx) + eidx
        eidx = (E_BIT | index).to_bytes(4, "big")
        return packet[:8] + self._rtcp.encrypt(iv, packet[8:], packet[:8] + eidx) + eidx

    def rtcp_unprotect(self, packet: bytes) -> tuple[bytes, int]:
        if len(packet) < self.rtcp_min_len():
            raise SrtpTooShort(f"SRTCP packet of {len(packet)} bytes")
        eidx = int.from_bytes(packet[-4:], "big")
        index = eidx & INDEX_MASK
        iv = self._rtcp_iv(packet, index)
        body = packet[:-4]
        try:
            if eidx & E_BIT:
                aad = packet[:8] + packet[-4:]
                return packet[:8] + self._rtcp.decrypt(iv, body[8:], aad), index
            self._rtcp.decrypt(iv, body[-16:], body[:-16] + packet[-4:])
            return body[:-16], index
        except InvalidTag:
            raise SrtpAuthError("SRTCP GCM tag mismatch") from None


CRYPTO_BY_CIPHER: dict[Cipher, type[PacketCrypto]] = {
    Cipher.AES_CM: CmCrypto,
    Cipher.AES_F8: F8Crypto,
    Cipher.NULL: NullCrypto,
    Cipher.AES_GCM: GcmCrypto,
}


def packet_crypto(suite: Suite, keys: SessionKeys, **params: bool) -> PacketCrypto:
    """The transform for `suite` over already derived session keys."""
    return CRYPTO_BY_CIPHER[suite.cipher](suite, keys, **params)
