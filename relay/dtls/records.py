"""DTLS record framing (RFC 6347 §4.1): split what OpenSSL wrote into records, pack datagrams.

OpenSSL writes into a memory BIO, which keeps no datagram boundaries: one read returns every
record of a flight back to back. The 13-byte record header carries the length, so the records
can be split again and packed into datagrams of at most `mtu` bytes (several records may share
a datagram, RFC 6347 §4.1.1). This reads only the framing; everything inside stays OpenSSL's.
"""

from __future__ import annotations

from relay.dtls import DtlsGarbage

__all__ = [
    "HEADER_LEN",
    "check_record_header",
    "is_client_hello",
    "split_records",
    "pack_datagrams",
]

HEADER_LEN = 13
"""type(1) version(2) epoch(2) sequence_number(6) length(2), RFC 6347 §4.1."""

_CONTENT_TYPES = frozenset({20, 21, 22, 23})
"""change_cipher_spec, alert, handshake, application_data (RFC 5246 §6.2.1)."""
_VERSIONS = frozenset({b"\xfe\xff", b"\xfe\xfd"})
"""DTLS 1.0 and 1.2 on the wire (RFC 6347 §4.1)."""


def check_record_header(datagram: bytes) -> None:
    """Raise `DtlsGarbage` unless `datagram` starts with a plausible DTLS record header."""
    if len(datagram) < HEADER_LEN:
        raise DtlsGarbage(f"datagram of {len(datagram)} bytes: a DTLS record needs 13 or more")
    if datagram[0] not in _CONTENT_TYPES:
        raise DtlsGarbage(f"DTLS content type {datagram[0]}: expected 20-23")
    if datagram[1:3] not in _VERSIONS:
        raise DtlsGarbage(f"DTLS version {datagram[1:3].hex()}: expected feff or fefd")


def is_client_hello(datagram: bytes) -> bool:
    """Epoch 0 handshake record whose message is a ClientHello (RFC 6347 §4.2.2, type 1)."""
    return (len(datagram) > HEADER_LEN and datagram[0] == 22 and datagram[3:5] == b"\0\0"
            and datagram[HEADER_LEN] == 1)  # fmt: skip


def split_records(data: bytes) -> list[bytes]:
    """Consecutive DTLS records as OpenSSL wrote them; a trailing partial record is an error."""
    records = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < HEADER_LEN:
            raise DtlsGarbage(f"{len(data) - offset} trailing bytes: not a DTLS record header")
        end = offset + HEADER_LEN + int.from_bytes(data[offset + 11 : offset + 13], "big")
        if end > len(data):
            raise DtlsGarbage(f"DTLS record of {end - offset} bytes cut at {len(data) - offset}")
        records.append(data[offset:end])
        offset = end
    return records


def pack_datagrams(records: list[bytes], mtu: int) -> list[bytes]:
    """Records packed in order into datagrams of at most `mtu` bytes (a larger one alone)."""
    out: list[bytes] = []
    current = b""
    for record in records:
        if current and len(current) + len(record) > mtu:
            out.append(current)
            current = b""
        current += record
    if current:
        out.append(current)
    return out
