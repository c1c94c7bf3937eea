"""SRTP key derivation with the AES-CM PRF (RFC 3711 §4.3, RFC 6188 §7, RFC 7714 §11).

Built on `cryptography`'s AES-CTR: the PRF is AES in counter mode keyed with the master key,
counter = (master salt XOR label<<48) * 2^16. A key derivation rate of 0 (the SDES default, and
all rtpengine uses) makes `index DIV kdr` zero, so each key is derived once per master key.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher as _Cipher
from cryptography.hazmat.primitives.ciphers import algorithms, modes

from relay.srtp.suites import Suite

# RFC 3711 §4.3.2 labels
LABEL_RTP_ENCRYPTION = 0x00
LABEL_RTP_AUTH = 0x01
LABEL_RTP_SALT = 0x02
LABEL_RTCP_ENCRYPTION = 0x03
LABEL_RTCP_AUTH = 0x04
LABEL_RTCP_SALT = 0x05


@dataclass(frozen=True, slots=True)
class StreamKeys:
    """Session keys for one of SRTP or SRTCP: encryption key, salt, HMAC key (b"" for AEAD)."""

    enc: bytes
    salt: bytes
    auth: bytes


@dataclass(frozen=True, slots=True)
class SessionKeys:
    rtp: StreamKeys
    rtcp: StreamKeys


def prf(master_key: bytes, master_salt: bytes, label: int, length: int) -> bytes:
    """`length` bytes of AES-CM keystream for `label` (RFC 3711 §4.3.1/§4.3.3).

    A 96-bit (GCM) master salt is used left-aligned in the 112-bit slot, as libsrtp does.
    """
    salt = master_salt.ljust(14, b"\x00")
    x = int.from_bytes(salt, "big") ^ (label << 48)
    iv = (x << 16).to_bytes(16, "big")
    enc = _Cipher(algorithms.AES(master_key), modes.CTR(iv)).encryptor()
    return enc.update(bytes(length)) + enc.finalize()


def derive(suite: Suite, master_key: bytes, master_salt: bytes) -> SessionKeys:
    """All six session keys of `suite` from its master key and salt."""
    if len(master_key) != suite.master_key_len or len(master_salt) != suite.master_salt_len:
        raise ValueError(
            f"{suite.name} needs a {suite.master_key_len}-byte key and "
            f"{suite.master_salt_len}-byte salt, got {len(master_key)} and {len(master_salt)}"
        )

    def one(enc: int, auth: int, salt: int) -> StreamKeys:
        return StreamKeys(
            prf(master_key, master_salt, enc, suite.session_key_len),
            prf(master_key, master_salt, salt, suite.session_salt_len),
            prf(master_key, master_salt, auth, suite.auth_key_len) if suite.auth_key_len else b"",
        )

    return SessionKeys(
        one(LABEL_RTP_ENCRYPTION, LABEL_RTP_AUTH, LABEL_RTP_SALT),
        one(LABEL_RTCP_ENCRYPTION, LABEL_RTCP_AUTH, LABEL_RTCP_SALT),
    )
