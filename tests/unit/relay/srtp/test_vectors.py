"""Published test vectors: RFC 3711 Appendix B.1-B.3, RFC 7714 §16.1.1, §16.2.1, §17.1."""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from relay.srtp.kdf import SessionKeys, StreamKeys, prf
from relay.srtp.packet import CmCrypto, F8Crypto, GcmCrypto, f8_keystream
from relay.srtp.suites import suite

H = bytes.fromhex


def _keys(enc: bytes, salt: bytes, auth: bytes = bytes(20)) -> SessionKeys:
    return SessionKeys(StreamKeys(enc, salt, auth), StreamKeys(enc, salt, auth))


# RFC 3711 B.1 (AES-f8)
F8_KEY = H("234829008467be186c3de14aae72d62c")
F8_SALT = H("32f2870d")
F8_PLAIN = H("70736575646f72616e646f6d6e65737320697320746865206e6578742062657374207468696e67")
F8_CIPHER = H("019ce7a26e7854014a6366aa95d4eefd1ad4172a14f9faf455b7f1d4b62bd08f562c0eef7c4802")


def test_rfc3711_b1_f8_keystream() -> None:
    mask = F8_SALT + b"\x55" * 12
    masked = bytes(a ^ b for a, b in zip(F8_KEY, mask, strict=True))
    assert masked == H("11baae0dd132eb4d3968b41ffb278379")
    ecb = Cipher(algorithms.AES(F8_KEY), modes.ECB()).encryptor()
    ecb_m = Cipher(algorithms.AES(masked), modes.ECB()).encryptor()
    ks = f8_keystream(ecb, ecb_m, H("006e5cba50681de55c621599d462564a"), len(F8_PLAIN))
    assert bytes(a ^ b for a, b in zip(F8_PLAIN, ks, strict=False)) == F8_CIPHER


def test_rfc3711_b1_f8_through_the_rtp_transform() -> None:
    crypto = F8Crypto(suite("F8_128_HMAC_SHA1_80"), _keys(F8_KEY, F8_SALT))
    header = H("806e5cba50681de55c621599")
    out = crypto.rtp_protect(header + F8_PLAIN, roc=0xD462564A)
    assert out[:12] == header and out[12:-10] == F8_CIPHER
    assert crypto.rtp_unprotect(out, roc=0xD462564A) == header + F8_PLAIN


# RFC 3711 B.2 (AES-CM keystream; SSRC, ROC and SEQ zero)
def test_rfc3711_b2_aes_cm_keystream() -> None:
    crypto = CmCrypto(
        suite("AES_CM_128_HMAC_SHA1_80"),
        _keys(H("2B7E151628AED2A6ABF7158809CF4F3C"), H("F0F1F2F3F4F5F6F7F8F9FAFBFCFD")),
    )
    header = H("800000000000000000000000")
    out = crypto.rtp_protect(header + bytes(1044512), roc=0)
    ks = out[12:-10]
    assert ks[:48] == H(
        "E03EAD0935C95E80E166B16DD92B4EB4D23513162B02D0F72A43A2FE4A5F97AB"
        "41E95B3BB0A2E8DD477901E4FCA894C0"
    )
    assert ks[-48:] == H(
        "EC8CDF7398607CB0F2D21675EA9EA1E4362B7C3C6773516318A077D7FC5073AE"
        "6A2CC3787889374FBEB4C81B17BA6C44"
    )


# RFC 3711 B.3 (key derivation)
def test_rfc3711_b3_key_derivation() -> None:
    mk, ms = H("E1F97A0D3E018BE0D64FA32C06DE4139"), H("0EC675AD498AFEEBB6960B3AABE6")
    assert prf(mk, ms, 0x00, 16) == H("C61E7A93744F39EE10734AFE3FF7A087")
    assert prf(mk, ms, 0x02, 14) == H("30CBBC08863D8C85D49DB34A9AE1")
    assert prf(mk, ms, 0x01, 94) == H(
        "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA48F0A0ACF3C34E2359E6CDBCE"
        "E049646C43D9327AD175578EF72270986371C10C9A369AC2F94A8C5FBCDDDC25"
        "6D6E919A48B610EF17C2041E474035766B68642C59BBFC2F34DB60DBDFB2"
    )


# RFC 7714 §16 / §17 (session key and salt given directly)
GCM_SALT = H("517569642070726f2071756f")
GCM_RTP = H("8040f17b8041f8d35501a0b2") + b"Gallia est omnis divisa in partes tres"
GCM_128 = H(
    "8040f17b8041f8d35501a0b2f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7"
    "d19b36de3adf8833899d7f27beb16a9152cf765ee4390cce"
)
GCM_256 = H(
    "8040f17b8041f8d35501a0b232b1de78a822fe12ef9f78fa332e33aab18012389a58e2f3b50b2a0276ff"
    "ae0f1ba63799b87b7aa3db36dfffd6b0f9bb7878d7a76c13"
)
GCM_RTCP = H(
    "81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61deadbeefdeadbeefdead"
    "beefdeadbeefdeadbeef"
)
GCM_SRTCP_128 = H(
    "81c8000d4d61727363e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32dc676a5f1730d6fda4ce0"
    "9b4686303ded0bb9275bc84aa45896cf4d2fc5abf87245d9eade800005d4"
)


def test_rfc7714_16_1_1_aes_128_gcm_srtp() -> None:
    crypto = GcmCrypto(suite("AEAD_AES_128_GCM"), _keys(bytes(range(16)), GCM_SALT, b""))
    assert crypto.rtp_protect(GCM_RTP, roc=0) == GCM_128
    assert crypto.rtp_unprotect(GCM_128, roc=0) == GCM_RTP


def test_rfc7714_16_2_1_aes_256_gcm_srtp() -> None:
    crypto = GcmCrypto(suite("AEAD_AES_256_GCM"), _keys(bytes(range(32)), GCM_SALT, b""))
    assert crypto.rtp_protect(GCM_RTP, roc=0) == GCM_256
    assert crypto.rtp_unprotect(GCM_256, roc=0) == GCM_RTP


def test_rfc7714_17_1_aes_128_gcm_srtcp() -> None:
    crypto = GcmCrypto(suite("AEAD_AES_128_GCM"), _keys(bytes(range(16)), GCM_SALT, b""))
    assert crypto.rtcp_protect(GCM_RTCP, index=0x5D4) == GCM_SRTCP_128
    assert crypto.rtcp_unprotect(GCM_SRTCP_128) == (GCM_RTCP, 0x5D4)
