"""The SDES crypto suites rtpengine 10.5 offers, in its order (docs/spec/sdp.md §1.12).

Key and tag lengths: RFC 4568 §6.2 (AES_CM_128, F8_128), RFC 6188 (AES_192/256_CM),
RFC 7714 §12 (AEAD_AES_*_GCM); NULL_HMAC_SHA1_* keep AES_CM_128's key sizes as rtpengine does.
The _32 suites shorten only the SRTP tag: SRTCP keeps an 80-bit tag (RFC 4568 §6.2.2, libsrtp).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Cipher(enum.Enum):
    """How the payload is encrypted."""

    AES_CM = "AES-CM"  # RFC 3711 §4.1.1, RFC 6188
    AES_F8 = "AES-f8"  # RFC 3711 §4.1.2
    AES_GCM = "AES-GCM"  # RFC 7714 (AEAD: the tag comes from the cipher)
    NULL = "NULL"  # RFC 3711 §4.1.3: authentication only


@dataclass(frozen=True, slots=True)
class Suite:
    """One SDES crypto suite: name, cipher and the lengths (in bytes) it fixes."""

    name: str
    cipher: Cipher
    master_key_len: int
    master_salt_len: int
    srtp_tag_len: int
    srtcp_tag_len: int

    @property
    def session_key_len(self) -> int:
        """Session encryption key length: the master key's (RFC 3711 §4.3, RFC 7714 §12)."""
        return self.master_key_len

    @property
    def session_salt_len(self) -> int:
        return self.master_salt_len

    @property
    def auth_key_len(self) -> int:
        """HMAC-SHA1 session key length (RFC 3711 §4.2.1); AEAD has none."""
        return 0 if self.cipher is Cipher.AES_GCM else 20

    @property
    def inline_len(self) -> int:
        """Bytes of key||salt inside `inline:` (RFC 4568 §6.1)."""
        return self.master_key_len + self.master_salt_len


SUITES: tuple[Suite, ...] = (
    Suite("AEAD_AES_256_GCM", Cipher.AES_GCM, 32, 12, 16, 16),
    Suite("AEAD_AES_128_GCM", Cipher.AES_GCM, 16, 12, 16, 16),
    Suite("AES_256_CM_HMAC_SHA1_80", Cipher.AES_CM, 32, 14, 10, 10),
    Suite("AES_256_CM_HMAC_SHA1_32", Cipher.AES_CM, 32, 14, 4, 10),
    Suite("AES_192_CM_HMAC_SHA1_80", Cipher.AES_CM, 24, 14, 10, 10),
    Suite("AES_192_CM_HMAC_SHA1_32", Cipher.AES_CM, 24, 14, 4, 10),
    Suite("AES_CM_128_HMAC_SHA1_80", Cipher.AES_CM, 16, 14, 10, 10),
    Suite("AES_CM_128_HMAC_SHA1_32", Cipher.AES_CM, 16, 14, 4, 10),
    Suite("F8_128_HMAC_SHA1_80", Cipher.AES_F8, 16, 14, 10, 10),
    Suite("F8_128_HMAC_SHA1_32", Cipher.AES_F8, 16, 14, 4, 10),
    Suite("NULL_HMAC_SHA1_80", Cipher.NULL, 16, 14, 10, 10),
    Suite("NULL_HMAC_SHA1_32", Cipher.NULL, 16, 14, 4, 10),
)

BY_NAME: dict[str, Suite] = {s.name: s for s in SUITES}


def suite(name: str) -> Suite:
    """The suite called `name` (exact, case-sensitive as in RFC 4568); KeyError otherwise."""
    return BY_NAME[name]
