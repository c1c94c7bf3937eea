"""Classic libpcap records as rtpengine 10.5 writes them (docs: docs/spec/recording.md §1.2–1.4).

Pure functions over bytes. Each received UDP payload becomes one record whose frame is a
synthesised IPv4/IPv6 + UDP header (IP id 0, TTL 64, both checksums 0) preceded, for `eth`, by an
Ethernet header with zero MACs. Hand-written rather than dpkt.pcap.Writer: the writer must produce
the record as bytes for an in-memory buffer (dpkt writes straight to a file object and builds
a packet object per call, several times slower on this per-packet path); tests check the bytes
with dpkt's Reader and tshark.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from functools import lru_cache

__all__ = [
    "LINK_ETH", "LINK_RAW", "LINKTYPES", "SNAPLEN", "global_header", "frame", "record",
    "valid_prefix", "PCAP_HEADER_LEN", "record_builder",
]  # fmt: skip

LINK_ETH = "eth"
LINK_RAW = "raw"
LINKTYPES = {LINK_ETH: 1, LINK_RAW: 101}
SNAPLEN = 65535
PCAP_HEADER_LEN = 24
MAGIC = 0xA1B2C3D4

_GLOBAL = struct.Struct("<IHHiIII")
_REC = struct.Struct("<IIII")
_ETH4 = b"\0" * 12 + b"\x08\x00"
_ETH6 = b"\0" * 12 + b"\x86\xdd"
# IPv4 (20) + UDP (8): version/IHL, TOS, total length, id 0, flags 0, TTL 64, UDP, checksum 0
_IP4_UDP = struct.Struct("!BBHHHBBH4s4sHHHH")
# IPv6 (40) + UDP (8): version 6, class/flow 0, payload length, next header UDP, hop limit 64
_IP6_UDP = struct.Struct("!IHBB16s16sHHHH")


def global_header(link: str) -> bytes:
    """The 24-byte little-endian file header: v2.4, snaplen 65535, LINKTYPE_ETHERNET or _RAW."""
    return _GLOBAL.pack(MAGIC, 2, 4, 0, 0, SNAPLEN, LINKTYPES[link])


@lru_cache(maxsize=4096)
def _addr(host: str) -> tuple[int, bytes]:
    """(family, packed address) of a textual IPv4/IPv6 address (IPv4-mapped IPv6 → IPv4)."""
    if ":" in host:
        packed = socket.inet_pton(socket.AF_INET6, host)
        if packed[:12] == b"\0" * 10 + b"\xff\xff":
            return 4, packed[12:]
        return 6, packed
    return 4, socket.inet_aton(host)


def frame(link: str, src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> bytes:
    """The synthesised frame around one UDP payload: [Ethernet] + IP + UDP + payload.

    The family follows the destination (the relay's receiving socket), as rtpengine does; a
    source of the other family (cannot happen on one socket) is mapped or zeroed."""
    dfam, daddr = _addr(dst[0])
    sfam, saddr = _addr(src[0])
    n = len(payload)
    if dfam == 4:
        if sfam != 4:
            saddr = b"\0" * 4
        hdr = _IP4_UDP.pack(
            0x45, 0, 28 + n, 0, 0, 64, 17, 0, saddr, daddr, src[1], dst[1], 8 + n, 0
        )
        eth = _ETH4
    else:
        if sfam != 6:
            saddr = b"\0" * 10 + b"\xff\xff" + saddr
        hdr = _IP6_UDP.pack(0x60000000, 8 + n, 17, 64, saddr, daddr, src[1], dst[1], 8 + n, 0)
        eth = _ETH6
    if link == LINK_ETH:
        return eth + hdr + payload
    return hdr + payload


def record(
    link: str, when: float, src: tuple[str, int], dst: tuple[str, int], payload: bytes
) -> bytes:
    """One pcap record (16-byte header + frame) with microsecond time `when` (Unix seconds)."""
    data = frame(link, src, dst, payload)
    sec, usec = divmod(int(when * 1_000_000 + 0.5), 1_000_000)
    return _REC.pack(sec, usec, len(data), len(data)) + data


Builder = Callable[[float, tuple[str, int], bytes], bytes]


def record_builder(link: str, dst: tuple[str, int]) -> Builder:
    """`record` specialised for one receiving socket: fn(when, src, payload) -> record bytes.

    The per-packet path of the recorder: for IPv4 one struct pack for the record header, one
    for Ethernet+IP+UDP, the source address packed once per source."""
    dfam, daddr = _addr(dst[0])
    if dfam != 4:
        return lambda when, src, payload: record(link, when, src, dst, payload)
    eth = _ETH4 if link == LINK_ETH else b""
    hdr = struct.Struct(f"!{len(eth)}sBBHHHBBH4s4sHHHH")
    extra = len(eth) + 28
    dport = dst[1]
    pack_rec = _REC.pack
    pack_hdr = hdr.pack
    sources: dict[str, bytes] = {}

    def build(when: float, src: tuple[str, int], payload: bytes) -> bytes:
        saddr = sources.get(src[0])
        if saddr is None:
            fam, saddr = _addr(src[0])
            sources[src[0]] = saddr = saddr if fam == 4 else b"\0" * 4
        n = len(payload)
        sec, usec = divmod(int(when * 1_000_000 + 0.5), 1_000_000)
        return (
            pack_rec(sec, usec, n + extra, n + extra)
            + pack_hdr(eth, 0x45, 0, 28 + n, 0, 0, 64, 17, 0, saddr, daddr, src[1], dport, 8 + n, 0)
            + payload
        )

    return build


def valid_prefix(data: bytes | memoryview) -> int:
    """Length of the longest prefix of a classic pcap file made of whole records.

    0 if the global header itself is incomplete or not little-endian microsecond pcap (the
    caller decides what to do with such a file); a record longer than the snap length ends the
    prefix (garbage after a crash)."""
    if len(data) < PCAP_HEADER_LEN or _GLOBAL.unpack_from(data)[0] != MAGIC:
        return 0
    pos = PCAP_HEADER_LEN
    end = len(data)
    while pos + 16 <= end:
        _, usec, incl, orig = _REC.unpack_from(data, pos)
        # every record rtpvault writes holds at least an IP header; anything else is debris
        if not 20 <= incl <= SNAPLEN or incl > orig or usec >= 1_000_000 or pos + 16 + incl > end:
            break
        pos += 16 + incl
    return pos
