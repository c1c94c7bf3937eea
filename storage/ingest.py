"""Sidecar document (docs/recording-sidecar.md) → index rows. Idempotent: the same document
ingested twice gives the same rows, and a later document of the same recording (started →
finished, or a recovered `interrupted` one) replaces the earlier one's rows. The stored
document's SDPs carry no SDES key, MIKEY data or ICE password (rtp.redact), whoever wrote it.
A part of a recording in several parts (`series`, `part`) is linked to its series and, when
new, inherits a legal hold already on another part of it (storage.series).
"""

from __future__ import annotations

import math
import time
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from rtp.redact import redact_sidecar
from storage.models import Recording, RecordingCodec, RecordingIp, RecordingMeta, StreamRow
from storage.series import held_part

__all__ = ["upsert_sidecar", "split_metadata", "host_of"]


def split_metadata(metadata: str | None) -> dict[str, str]:
    """`from:alice|to:bob` → {"from": "alice", "to": "bob"} (rtpengine's metadata convention)."""
    out: dict[str, str] = {}
    for part in (metadata or "").split("|"):
        key, sep, value = part.partition(":")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


def host_of(endpoint: str | None) -> str | None:
    """'192.0.2.1:4000' / '[2001:db8::1]:4000' / '2001:db8::1' → the address without port."""
    if not endpoint:
        return None
    if endpoint.startswith("["):
        return endpoint[1:].split("]", 1)[0]
    if endpoint.count(":") == 1:
        return endpoint.rsplit(":", 1)[0]
    return endpoint


_BIG = 2**63 - 1  # BIGINT's top


def _text(value: Any, limit: int | None = None) -> str | None:
    """A string value cut to its column's width (PostgreSQL refuses longer ones; SQLite would
    keep them and the two would differ); anything else is None. The `sidecar` column keeps the
    whole document as it came."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    return value[:limit] if limit is not None else value


def _num(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def _count(value: Any) -> int:
    number = _num(value)
    return int(min(max(number, 0.0), _BIG)) if number is not None else 0


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in _list(value) if isinstance(v, dict)]


def _stream_row(doc: dict[str, Any]) -> StreamRow:
    ssrc = doc.get("ssrc")
    return StreamRow(
        ssrc=ssrc if isinstance(ssrc, int) and not isinstance(ssrc, bool)
        and 0 <= ssrc < 2**32 else None,
        kind=_text(doc.get("kind"), 8) or "rtp",
        party=_text(doc.get("party"), 255),
        src=_text(doc.get("src"), 64),
        dst=_text(doc.get("dst"), 64),
        codec=_text(doc.get("codec"), 32),
        payload_types=[p for p in _list(doc.get("payload_types"))
                       if isinstance(p, int) and not isinstance(p, bool) and 0 <= p < 128],
        packets=_count(doc.get("packets")),
        bytes=_count(doc.get("bytes")),
        lost=_count(doc.get("lost")),
        out_of_order=_count(doc.get("out_of_order")),
        duplicates=_count(doc.get("duplicates")),
        loss_pct=_num(doc.get("loss_pct")) or 0.0,
        jitter_ms=_num(doc.get("jitter_ms")) or 0.0,
        max_jitter_ms=_num(doc.get("max_jitter_ms")) or 0.0,
        mos=_num(doc.get("mos")),
        first=_num(doc.get("first")),
        last=_num(doc.get("last")),
    )  # fmt: skip


def upsert_sidecar(session: Session, doc: dict[str, Any], *, node: str = "") -> Recording:
    """Insert or replace the recording described by `doc` (and its side rows)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str) or not doc["id"]:
        raise ValueError("sidecar without an `id` string: not a recording document")
    rid = doc["id"]
    if len(rid) > 36:
        raise ValueError(f"sidecar id {rid[:40]!r}… is longer than a UUID (36 characters)")
    rec = session.get(Recording, rid)
    new = rec is None
    if rec is None:
        rec = Recording(id=rid)
        session.add(rec)
    else:
        session.execute(delete(StreamRow).where(StreamRow.recording_id == rid))
        session.execute(delete(RecordingIp).where(RecordingIp.recording_id == rid))
        session.execute(delete(RecordingCodec).where(RecordingCodec.recording_id == rid))
        session.execute(delete(RecordingMeta).where(RecordingMeta.recording_id == rid))
        session.flush()
        session.expire(rec, ["streams"])
    metadata = _text(doc.get("metadata"))
    given: dict[str, Any] = (
        doc["meta"] if isinstance(doc.get("meta"), dict) else split_metadata(metadata)
    )
    meta = {str(k): str(v) for k, v in given.items()
            if isinstance(v, (str, int, float)) and not isinstance(v, bool)}  # fmt: skip
    started = _num(doc.get("started")) or time.time()
    ended = _num(doc.get("ended"))
    streams = _dicts(doc.get("streams"))
    rtp = [s for s in streams if (s.get("kind") or "rtp") == "rtp" and _count(s.get("packets"))]
    codecs = [c for c in (_text(c) for c in _list(doc.get("codecs"))) if c]
    rec.call_id = _text(doc.get("call_id"), 255) or ""
    rec.tags = [t for t in _list(doc.get("tags")) if isinstance(t, str)]
    rec.caller = _text(doc.get("caller") or meta.get("from") or meta.get("caller"), 255)
    rec.callee = _text(doc.get("callee") or meta.get("to") or meta.get("callee"), 255)
    rec.node = _text(doc.get("node"), 64) or node[:64]
    rec.started = started
    rec.ended = ended
    rec.duration = (ended - started) if ended is not None else None
    rec.status = _text(doc.get("status"), 16) or "recording"
    rec.reason = _text(doc.get("reason"))
    rec.format = _text(doc.get("format"), 8) or "pcap"
    rec.link = _text(doc.get("link"), 8)
    rec.path = _text(doc.get("path")) or ""
    rec.metadata_path = _text(doc.get("metadata_path"))
    rec.sidecar_path = _text(doc.get("sidecar_path"))
    rec.size = _count(doc["size"]) if _num(doc.get("size")) is not None else None
    rec.sha256 = _text(doc.get("sha256"), 64)
    rec.codecs = ",".join(codecs)[:255]
    rec.metadata_text = metadata
    rec.meta = meta
    rec.packets = min(sum(_count(s.get("packets")) for s in streams), _BIG)
    losses = [v for v in (_num(s.get("loss_pct")) for s in rtp) if v is not None]
    jitters = [v for v in (_num(s.get("jitter_ms")) for s in rtp) if v is not None]
    moses = [v for v in (_num(s.get("mos")) for s in rtp) if v is not None]
    rec.worst_loss = max(losses) if losses else None
    rec.worst_jitter = max(jitters) if jitters else None
    rec.min_mos = min(moses) if moses else None
    rec.sidecar = redact_sidecar(doc)  # a sidecar may predate redaction: no key in the index
    rec.updated = time.time()
    series = doc.get("series")  # not a UUID-sized string: no usable link, its own series
    rec.series_id = series if isinstance(series, str) and 0 < len(series) <= 36 else rid
    part = doc.get("part")
    rec.part = part if isinstance(part, int) and not isinstance(part, bool) and (
        1 <= part < 2**31) else 1  # fmt: skip
    if new:
        session.flush()  # the new row first: its hold is decided against the other parts
        held = held_part(session, rec.series_id, rid)
        if held is not None:  # a hold on a call covers every part of it (docs/storage.md)
            rec.legal_hold = True
            rec.hold_reason = held.hold_reason
    session.flush()
    for s in streams:
        row = _stream_row(s)
        row.recording_id = rid
        session.add(row)
    ips: set[str] = set()
    for s in streams:
        for end in (_text(s.get("src")), _text(s.get("dst"))):
            host = host_of(end)
            if host:
                ips.add(host)
    for party in _dicts(doc.get("parties")):
        for media in _dicts(party.get("media")):
            address = _text(media.get("address"))
            if address:
                ips.add(address)
    # values cut to their column first, then de-duplicated: they are primary-key parts
    session.add_all(RecordingIp(recording_id=rid, ip=ip) for ip in sorted({i[:64] for i in ips}))
    session.add_all(
        RecordingCodec(recording_id=rid, codec=c) for c in sorted({c[:32] for c in codecs})
    )
    side_meta = {str(k)[:64]: str(v)[:255] for k, v in sorted(meta.items())}
    session.add_all(RecordingMeta(recording_id=rid, key=k, value=v) for k, v in side_meta.items())
    return rec
