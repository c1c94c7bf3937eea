"""The recordings index: SQLAlchemy 2.0 models, the same schema on SQLite and PostgreSQL.

Tables (the schema only changes through migrations/, see storage.db):

* `recordings` — one row per recording, built from its sidecar (docs/recording-sidecar.md).
  A recording in several parts (a restored call went on recording into a new file, issue 20)
  has one row per part, linked by `series_id` (the first part's id) and numbered by `part`.
  Times are Unix seconds as floats (the same type and comparisons on both databases). The worst
  per-stream quality figures (`worst_loss`, `worst_jitter`, `min_mos`) live on the row so that
  quality filters never join the streams.
* `streams` — per-SSRC statistics of a recording.
* `recording_ips`, `recording_codecs`, `recording_meta` — small side tables, one row per value,
  indexed by value, for the search CLI's `--ip`, `--codec` and `--meta KEY=VALUE` (EXISTS).
* `uploads` — the durable S3 upload queue (ARCHITECTURE rule 5): pending → uploading → done /
  failed, with attempts, next try, last error and the multipart upload id + finished parts so a
  restarted daemon resumes a multipart upload.
* `audit` — append-only, hash-chained log of who did what (storage.audit.chain). `prev_hash` is
  unique, so two writers racing for the same chain head cannot both succeed: the chain stays linear.

Index choice: every search filter is a range or equality on an indexed column, and the default
sort (`started` descending) walks the `started` index, so a `LIMIT` query reads few rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "Base",
    "Recording",
    "StreamRow",
    "RecordingIp",
    "RecordingCodec",
    "RecordingMeta",
    "Upload",
    "AuditEntry",
    "RECORDING_STATUSES",
    "UPLOAD_STATES",
]

RECORDING_STATUSES = ("recording", "complete", "interrupted", "failed")

SearchText = String(255).with_variant(String(255, collation="C"), "postgresql")
"""Text searched by prefix ranges (call-id, caller, callee): byte order on PostgreSQL whatever
the database's collation, so `x >= 'abc' AND x < 'abd'` finds exactly the `abc*` values (SQLite
compares bytes already)."""
UPLOAD_STATES = ("pending", "uploading", "done", "failed")


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Recording(Base):
    __tablename__ = "recordings"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    call_id: Mapped[str] = mapped_column(SearchText)
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    caller: Mapped[str | None] = mapped_column(SearchText)
    callee: Mapped[str | None] = mapped_column(SearchText)
    node: Mapped[str] = mapped_column(String(64), default="")
    started: Mapped[float] = mapped_column(Float)
    ended: Mapped[float | None] = mapped_column(Float)
    duration: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(8))
    link: Mapped[str | None] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(Text)
    metadata_path: Mapped[str | None] = mapped_column(Text)
    sidecar_path: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    codecs: Mapped[str] = mapped_column(String(255), default="")
    """Codec names joined with ',' (display); `recording_codecs` serves the filter."""
    metadata_text: Mapped[str | None] = mapped_column("metadata", Text)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    packets: Mapped[int] = mapped_column(BigInteger, default=0)
    worst_loss: Mapped[float | None] = mapped_column(Float)
    """Highest loss percentage of the recording's RTP streams."""
    worst_jitter: Mapped[float | None] = mapped_column(Float)
    """Highest interarrival jitter (ms) of the recording's RTP streams."""
    min_mos: Mapped[float | None] = mapped_column(Float)
    """Lowest MOS estimate of the recording's streams (G.711 only; NULL when none)."""
    archive_state: Mapped[str] = mapped_column(String(16), default="local")
    """local (no archive configured) | pending | uploading | archived | failed."""
    object_key: Mapped[str | None] = mapped_column(Text)
    object_version: Mapped[str | None] = mapped_column(Text)
    object_sha256: Mapped[str | None] = mapped_column(String(64))
    local_removed: Mapped[bool] = mapped_column(Boolean, default=False)
    legal_hold: Mapped[bool] = mapped_column(Boolean, default=False)
    hold_reason: Mapped[str | None] = mapped_column(Text)
    retain_until: Mapped[float | None] = mapped_column(Float)
    sidecar: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated: Mapped[float] = mapped_column(Float, default=0.0)
    series_id: Mapped[str | None] = mapped_column(String(36))
    """The id of the recording's first part (its own id for part 1; storage.ingest always
    fills it; NULL only in rows written before migration 0002 by other means: `id` then)."""
    part: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    """1, 2, …: which file part of the series this row is (docs/storage.md "Parts")."""

    streams: Mapped[list[StreamRow]] = relationship(
        back_populates="recording", cascade="all, delete-orphan", order_by="StreamRow.id"
    )

    __table_args__ = (
        Index("ix_recordings_started", "started"),
        Index("ix_recordings_call_id", "call_id"),
        Index("ix_recordings_caller_started", "caller", "started"),
        Index("ix_recordings_callee_started", "callee", "started"),
        Index("ix_recordings_status_started", "status", "started"),
        Index("ix_recordings_node_started", "node", "started"),
        Index("ix_recordings_worst_loss", "worst_loss"),
        Index("ix_recordings_worst_jitter", "worst_jitter"),
        Index("ix_recordings_min_mos", "min_mos"),
        Index("ix_recordings_duration", "duration"),
        Index("ix_recordings_series_id_part", "series_id", "part"),
    )


class StreamRow(Base):
    __tablename__ = "streams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recording_id: Mapped[str] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), index=True
    )
    ssrc: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(8), default="rtp")
    party: Mapped[str | None] = mapped_column(String(255))
    src: Mapped[str | None] = mapped_column(String(64))
    dst: Mapped[str | None] = mapped_column(String(64))
    codec: Mapped[str | None] = mapped_column(String(32))
    payload_types: Mapped[list[Any]] = mapped_column(JSON, default=list)
    packets: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    lost: Mapped[int] = mapped_column(BigInteger, default=0)
    out_of_order: Mapped[int] = mapped_column(BigInteger, default=0)
    duplicates: Mapped[int] = mapped_column(BigInteger, default=0)
    loss_pct: Mapped[float] = mapped_column(Float, default=0.0)
    jitter_ms: Mapped[float] = mapped_column(Float, default=0.0)
    max_jitter_ms: Mapped[float] = mapped_column(Float, default=0.0)
    mos: Mapped[float | None] = mapped_column(Float)
    first: Mapped[float | None] = mapped_column(Float)
    last: Mapped[float | None] = mapped_column(Float)

    recording: Mapped[Recording] = relationship(back_populates="streams")


class RecordingIp(Base):
    """One address (IPv4/IPv6 text, no port) a recording's parties used."""

    __tablename__ = "recording_ips"

    recording_id: Mapped[str] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), primary_key=True
    )
    ip: Mapped[str] = mapped_column(String(64), primary_key=True)

    __table_args__ = (Index("ix_recording_ips_ip", "ip"),)


class RecordingCodec(Base):
    """One codec name (as in SDP, e.g. PCMU) a recording used."""

    __tablename__ = "recording_codecs"

    recording_id: Mapped[str] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), primary_key=True
    )
    codec: Mapped[str] = mapped_column(String(32), primary_key=True)

    __table_args__ = (Index("ix_recording_codecs_codec", "codec"),)


class RecordingMeta(Base):
    """One KEY=VALUE of the call's ng `metadata` (split on | and the first :)."""

    __tablename__ = "recording_meta"

    recording_id: Mapped[str] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))

    __table_args__ = (Index("ix_recording_meta_key_value", "key", "value"),)


class Upload(Base):
    """One recording's archive job; the row IS the queue (survives restarts and crashes)."""

    __tablename__ = "uploads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recording_id: Mapped[str] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), unique=True
    )
    path: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_try: Mapped[float] = mapped_column(Float, default=0.0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created: Mapped[float] = mapped_column(Float)
    updated: Mapped[float] = mapped_column(Float)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    multipart_id: Mapped[str | None] = mapped_column(Text)
    parts: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """Finished parts of `multipart_id`: [{"PartNumber", "ETag", "ChecksumSHA256"}]."""
    version_id: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_uploads_state_next_try", "state", "next_try"),
        Index("ix_uploads_created", "created"),
    )


class AuditEntry(Base):
    """Append-only; `hash` = SHA-256 over `prev_hash` and this row's content
    (storage.audit.chain)."""

    __tablename__ = "audit"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[float] = mapped_column(Float)
    user: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[str] = mapped_column(Text, default="{}")
    """Canonical JSON text (sorted keys), exactly what the hash covers."""
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    __table_args__ = (
        Index("ix_audit_time", "time"),
        Index("ix_audit_action_time", "action", "time"),
    )
