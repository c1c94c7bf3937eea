"""What the sidecar needs from an SDP body: media addresses, ports and codecs, the o= user.

Pure and tolerant: a line it does not understand is skipped (the relay already validated the
SDP; this only summarises it). The recorder must not import the relay's SDP model.
"""

from __future__ import annotations

from typing import Any

from rtp.payload_types import STATIC_PAYLOAD_TYPES

__all__ = ["summarise"]


def summarise(sdp: str) -> dict[str, Any]:
    """{"user": o= user or None, "media": [{type, address, port, codecs: [{pt, name, rate}]}]}"""
    user: str | None = None
    session_addr: str | None = None
    media: list[dict[str, Any]] = []
    maps: list[dict[int, tuple[str, int]]] = []
    for raw in sdp.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        fields = value.split()
        if kind == "o" and fields:
            user = fields[0] if fields[0] != "-" else None
        elif kind == "c" and len(fields) >= 3:
            addr = fields[2].split("/")[0]
            if media:
                media[-1]["address"] = addr
            else:
                session_addr = addr
        elif kind == "m" and len(fields) >= 3:
            port = int(fields[1].split("/")[0]) if fields[1].split("/")[0].isdigit() else 0
            pts = [int(f) for f in fields[3:] if f.isdigit()]
            media.append({"type": fields[0], "address": session_addr, "port": port, "pts": pts})
            maps.append({})
        elif kind == "a" and media and value.startswith("rtpmap:"):
            head, _, enc = value[7:].partition(" ")
            if head.isdigit():
                encoding, _, rest = enc.partition("/")
                clock = rest.split("/")[0]
                maps[-1][int(head)] = (encoding, int(clock) if clock.isdigit() else 8000)
    for m, rtpmap in zip(media, maps, strict=True):
        codecs = []
        for pt in m.pop("pts"):
            name, rate = rtpmap.get(pt) or STATIC_PAYLOAD_TYPES.get(pt, (str(pt), 8000))
            codecs.append({"pt": pt, "name": name, "rate": rate})
        m["codecs"] = codecs
    return {"user": user, "media": media}
