"""RFC 4568 `a=crypto` attribute values: parse and render as rtpengine 10.5 writes them.

`a=crypto:<tag> <suite> inline:<base64 key||salt>[|<lifetime>][|<mki>:<length>][ <params>]`.
rtpengine strips base64 `=` padding, drops the lifetime and keeps the MKI, its value cut to
what its MKI bytes hold (docs/spec/sdp.md §1.12, §1.12a, §1.12d); `for_rtpengine_offer` applies
that, `mki_bytes` gives the packets' MKI field. Pure: no I/O, no randomness.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from relay.srtp.suites import BY_NAME, Suite

# session parameters rtpengine reads and writes back; others (KDR=, FEC_*, WSH=) it drops
KNOWN_PARAMS = ("UNENCRYPTED_SRTCP", "UNENCRYPTED_SRTP", "UNAUTHENTICATED_SRTP")

_TAG = re.compile(r"[0-9]{1,9}\Z")
_LIFETIME = re.compile(r"(2\^)?[0-9]{1,20}\Z")
_MKI = re.compile(r"([0-9]{1,20}):([0-9]{1,3})\Z")
_B64 = re.compile(r"[A-Za-z0-9+/]+={0,2}\Z")
_PARAM = re.compile(r"[\x21-\x7e]+\Z")


class SdesError(ValueError):
    """An `a=crypto` value rtpvault cannot use; the message names the defect."""


@dataclass(frozen=True, slots=True)
class Crypto:
    """One `a=crypto` line. `key_salt` is the decoded inline key; `lifetime` the text after
    `|` (e.g. `2^20`) or None; `mki` (value, length in bytes) or None."""

    tag: int
    suite: Suite
    key_salt: bytes
    lifetime: str | None = None
    mki: tuple[int, int] | None = None
    params: tuple[str, ...] = ()

    @property
    def master_key(self) -> bytes:
        return self.key_salt[: self.suite.master_key_len]

    @property
    def master_salt(self) -> bytes:
        return self.key_salt[self.suite.master_key_len :]

    def has_param(self, name: str) -> bool:
        return name in self.params


def parse(value: str) -> Crypto:
    """Parse the value of an `a=crypto:` attribute (the text after the colon)."""
    parts = value.split(" ")
    if len(parts) < 3 or "" in parts:
        raise SdesError(f"a=crypto needs '<tag> <suite> inline:<key>', got {value!r}")
    tag_text, suite_name, key_param, *params = parts
    if not _TAG.match(tag_text):
        raise SdesError(f"a=crypto tag must be 1-9 digits, got {tag_text!r}")
    suite = BY_NAME.get(suite_name)
    if suite is None:
        raise SdesError(f"unknown crypto suite {suite_name!r}")
    if ";" in key_param:
        raise SdesError("several key parameters (';') are not supported")
    if not key_param.startswith("inline:"):
        raise SdesError(f"key method must be 'inline:', got {key_param[:16]!r}")
    key_salt, lifetime, mki = _key_info(suite, key_param[len("inline:") :])
    for p in params:
        if not _PARAM.match(p):
            raise SdesError(f"bad session parameter {p!r}")
    return Crypto(int(tag_text), suite, key_salt, lifetime, mki, tuple(params))


def _key_info(suite: Suite, text: str) -> tuple[bytes, str | None, tuple[int, int] | None]:
    key_text, *extras = text.split("|")
    if len(extras) > 2:
        raise SdesError(f"too many '|' fields in inline key of {suite.name}")
    key_salt = _decode_key(suite, key_text)
    lifetime: str | None = None
    mki: tuple[int, int] | None = None
    if len(extras) == 2:
        lifetime, mki = _lifetime(extras[0]), _mki(extras[1])
    elif extras and _MKI.match(extras[0]):
        mki = _mki(extras[0])
    elif extras:
        lifetime = _lifetime(extras[0])
    return key_salt, lifetime, mki


def _lifetime(field: str) -> str:
    if not _LIFETIME.match(field):
        raise SdesError(f"bad key lifetime {field!r}, expected '2^N' or a number")
    return field


def _mki(field: str) -> tuple[int, int]:
    m = _MKI.match(field)
    if not m:
        raise SdesError(f"bad MKI {field!r}, expected '<value>:<length>'")
    length = int(m.group(2))
    # RFC 4568 §6.1 allows 1-128; rtpengine 10.5 reads up to 255 (a byte) and mishandles 256
    if not 1 <= length <= 255:
        raise SdesError(f"MKI length must be 1-255, got {length}")
    return int(m.group(1)), length


def mki_value(mki: tuple[int, int]) -> int:
    """The MKI value rtpengine 10.5 keeps: its low 32 bits, cut to `length` bytes when shorter
    (`300:1` → 44; docs/spec/sdp.md §1.12d)."""
    value, length = mki
    return value & 0xFFFFFFFF & ((1 << (8 * min(length, 4))) - 1)


def mki_bytes(mki: tuple[int, int] | None) -> bytes:
    """The MKI field of the packets (RFC 3711 §3.1): the value big-endian in `length` bytes;
    empty without MKI."""
    if mki is None:
        return b""
    return mki_value(mki).to_bytes(mki[1], "big")


def _decode_key(suite: Suite, text: str) -> bytes:
    if not _B64.match(text):
        raise SdesError(f"inline key of {suite.name} is not base64")
    try:
        raw = base64.b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))
    except (binascii.Error, ValueError):
        raise SdesError(f"inline key of {suite.name} is not base64") from None
    if len(raw) != suite.inline_len:
        raise SdesError(
            f"inline key of {suite.name} must be {suite.inline_len} bytes, got {len(raw)}"
        )
    return raw


def render(c: Crypto, *, pad: bool = False) -> str:
    """The attribute value for `c`; base64 padding only with `pad` (rtpengine's SDES-pad)."""
    key = base64.b64encode(c.key_salt).decode("ascii")
    if not pad:
        key = key.rstrip("=")
    out = [f"{c.tag} {c.suite.name} inline:{key}"]
    if c.lifetime is not None:
        out.append(f"|{c.lifetime}")
    if c.mki is not None:
        out.append(f"|{c.mki[0]}:{c.mki[1]}")
    for p in c.params:
        out.append(f" {p}")
    return "".join(out)


def for_rtpengine_offer(c: Crypto, *, lifetime: bool = False) -> Crypto:
    """What rtpengine 10.5 writes back for an offered line: lifetime dropped (or `2^31` with
    SDES-lifetime), MKI kept with the value it holds, only the session parameters it knows kept
    (§1.12a, §1.12d)."""
    return Crypto(
        c.tag,
        c.suite,
        c.key_salt,
        "2^31" if lifetime else None,
        None if c.mki is None else (mki_value(c.mki), c.mki[1]),
        tuple(p for p in c.params if p in KNOWN_PARAMS),
    )
