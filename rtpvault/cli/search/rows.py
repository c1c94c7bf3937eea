"""Index rows as the search commands show them, and looking one recording up by what the user
typed (an id, a unique id prefix, or a Call-ID)."""

from __future__ import annotations

import json
from typing import Any

import click
from sqlalchemy import text
from sqlalchemy.orm import Session

from rtp.redact import redact_sidecar
from storage.models import AuditEntry, Recording, Upload
from storage.search import (
    PROBE_CAP,
    SearchFilter,
    audit_query,
    build_query,
    lookup_query,
    probe_query,
)
from storage.series import missing_parts, parts_query, series_key

__all__ = ["summary", "parts", "run_search", "resolve", "audit_target", "details", "audit_row",
           "object_ref", "sidecar_of"]  # fmt: skip


def summary(rec: Recording) -> dict[str, Any]:
    """The search-result view of a recording (what table, JSON and CSV show)."""
    return {
        "id": rec.id, "started": rec.started, "ended": rec.ended, "duration": rec.duration,
        "call_id": rec.call_id, "caller": rec.caller, "callee": rec.callee,
        "status": rec.status, "codecs": [c for c in (rec.codecs or "").split(",") if c],
        "worst_loss": rec.worst_loss, "worst_jitter": rec.worst_jitter, "min_mos": rec.min_mos,
        "size": rec.size, "node": rec.node, "hold": bool(rec.legal_hold),
        "archive": rec.archive_state, "sha256": rec.sha256, "path": rec.path,
        "series": series_key(rec), "part": rec.part,
    }  # fmt: skip


def parts(session: Session, rec: Recording) -> dict[str, Any]:
    """The parts of `rec`'s recording (storage.series): each one's id, state and path, and the
    part numbers missing from the index."""
    rows = list(session.scalars(parts_query(series_key(rec))))
    listed = [{"part": r.part, "id": r.id, "status": r.status, "node": r.node,
               "started": r.started, "ended": r.ended, "size": r.size, "sha256": r.sha256,
               "archive": r.archive_state, "hold": bool(r.legal_hold), "path": r.path}
              for r in rows]  # fmt: skip
    return {"series": series_key(rec), "parts": listed,
            "missing": missing_parts([r.part for r in rows])}  # fmt: skip


def run_search(session: Session, flt: SearchFilter) -> list[Recording]:
    """Run a search. On SQLite, first count (capped) how many rows the prefix or party terms
    match; if many, let the planner walk the time index instead (see build_query)."""
    time_order = False
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        # psycopg prepares a statement run 5 times; PostgreSQL may then switch to a generic
        # plan, which cannot see how selective the actual time range or meta value is (it
        # drove a 1-day `--meta dept=billing` search from the meta index: 1.7 s instead of
        # 5 ms on 1M rows). Search plans are cheap; always plan for the actual values.
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    if dialect == "sqlite":
        probe = probe_query(flt)
        if probe is not None:
            time_order = int(session.scalar(probe) or 0) >= PROBE_CAP
    return list(session.scalars(build_query(flt, time_order=time_order)))


def resolve(session: Session, ref: str, series: str | None = None) -> list[Recording]:
    """The recording `ref` names; a clear error when none or several match. A Call-ID whose
    recording is in several parts (storage.series) names that series: `series="first"` gives
    its first indexed part, `"all"` every part, None refuses and lists the parts' ids."""
    found = list(session.scalars(lookup_query(ref, limit=6)))
    if not found:
        raise click.ClickException(f"no recording with id or Call-ID {ref!r}")
    keys = {series_key(r) for r in found}
    parts: list[Recording] = []
    if len(found) > 1 and len(keys) == 1:
        parts = list(session.scalars(parts_query(keys.pop())))
        named = {r.id for r in session.scalars(lookup_query(ref, limit=len(parts) + 1))}
        if not named <= {r.id for r in parts}:  # more rows than the first look showed
            parts = []  # not one series: the error below
    if parts:
        if series == "all":
            return parts
        if series == "first":
            return parts[:1]
        listed = ", ".join(f"part {r.part} {r.id[:13]}" for r in parts[:5])
        raise click.ClickException(f"{ref!r} is one recording in {len(parts)} parts ({listed}); "
                                   "give a part's id")  # fmt: skip
    if len(found) > 1:
        ids = ", ".join(r.id[:13] for r in found[:5])
        raise click.ClickException(
            f"{ref!r} matches {'more than 5' if len(found) > 5 else len(found)} recordings "
            f"({ids}); give a longer id"
        )
    return found


def audit_target(session: Session, ref: str) -> str:
    """The recording id `ref` names for `audit --recording`: an indexed recording, else a
    purged one, through the per-recording purge entries (they keep its id and Call-ID)."""
    from storage.audit.chain import purged_query

    if list(session.scalars(lookup_query(ref, limit=1))):
        return resolve(session, ref, "first")[0].id
    ids = list(session.scalars(purged_query(ref, limit=6)))
    if not ids:
        raise click.ClickException(f"no recording (indexed or purged) with id or Call-ID {ref!r}")
    if len(ids) > 1:
        listed = ", ".join(i[:13] for i in ids[:5])
        raise click.ClickException(f"{ref!r} matches {len(ids)} purged recordings ({listed}); "
                                   "give a longer id")  # fmt: skip
    return ids[0]


def object_ref(rec: Recording, bucket: str | None) -> tuple[str, str, str | None] | None:
    """(bucket, key, version) of the archived S3 object, None when there is none."""
    if not rec.object_key or not bucket or rec.archive_state != "archived":
        return None
    return bucket, rec.object_key, rec.object_version


def sidecar_of(rec: Recording) -> dict[str, Any] | None:
    return rec.sidecar or None


def audit_row(e: AuditEntry) -> dict[str, Any]:
    try:
        details = json.loads(e.details) if e.details else {}
    except ValueError:
        details = {"raw": e.details}
    return {"seq": e.seq, "time": e.time, "user": e.user, "action": e.action,
            "recording_id": e.target or None, "details": details}  # fmt: skip


def details(session: Session, rec: Recording) -> dict[str, Any]:
    """Everything `show` prints: the row, its streams, archive state, SDP, audit entries."""
    upload = session.scalars(select_upload(rec.id)).first()
    row = summary(rec)
    row.update({
        "tags": rec.tags, "reason": rec.reason, "format": rec.format, "link": rec.link,
        "metadata": rec.metadata_text, "meta": rec.meta, "metadata_path": rec.metadata_path,
        "sidecar_path": rec.sidecar_path, "packets": rec.packets, "legal_hold": rec.legal_hold,
        "hold_reason": rec.hold_reason, "retain_until": rec.retain_until,
        "local_removed": rec.local_removed,
    })  # fmt: skip
    archive = {
        "state": rec.archive_state,
        "object_key": rec.object_key,
        "object_version": rec.object_version,
        "object_sha256": rec.object_sha256,
    }
    if upload is not None:
        archive.update({"upload_state": upload.state, "attempts": upload.attempts,
                        "last_error": upload.last_error})  # fmt: skip
    streams = [{c: getattr(s, c) for c in (
        "ssrc", "kind", "party", "src", "dst", "codec", "payload_types", "packets", "bytes",
        "lost", "out_of_order", "duplicates", "loss_pct", "jitter_ms", "max_jitter_ms", "mos",
        "first", "last")} for s in rec.streams]  # fmt: skip
    entries = [audit_row(e) for e in session.scalars(audit_query(target=rec.id, limit=None))]
    side = redact_sidecar(rec.sidecar or {})  # rows indexed before redaction existed
    return {"recording": row, "archive": archive, "streams": streams,
            "series": parts(session, rec),
            "sdp": side.get("sdp") or [], "pauses": side.get("pauses") or [],
            "audit": list(reversed(entries)), "sidecar": side}  # fmt: skip


def select_upload(recording_id: str) -> Any:
    from sqlalchemy import select

    return select(Upload).where(Upload.recording_id == recording_id)
