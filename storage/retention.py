"""Retention, legal hold and purge rules for recordings (and their S3 objects).

* A held recording (`legal_hold`) is never purged, whatever its age; `hold` also sets the S3
  legal hold on its archived object version when the bucket uses Object Lock (so not even a
  bucket administrator with GOVERNANCE bypass can delete it), and `release` clears it.
* `purge_query(cutoff, now)` selects what may go: started before `cutoff`, not held, not still
  recording, no S3 retention date in the future, and no upload in flight.
* A recording in several parts (storage.series) is held and purged as one: `hold`/`release`
  of any part sets every part (the CLI expands the series), a new part inherits a hold
  (storage.ingest), and no part is purged while another part of its series must be kept
  (held, still recording, started after the cutoff, retained or uploading): kept as `series`.
* `purge_one` deletes the object version first, then the local files (pcap, metadata, sidecar),
  then the index row; it stops at the first failure and leaves the row, so nothing is lost
  from the index while a copy still exists.
* Several nodes share one index (docs/storage.md "Several nodes"), so purge may run on a host
  that does not have a recording's files: a file whose folder does not exist here, or whose
  spool here is marked as another node's (storage.spool_owner), is on its node. Then the
  object goes, and the row stays with status `purged` (PURGED) until that node's daemon
  removes the files and the row (`purged_here`, rtpvault.archive). A purged row is not
  selected again. Two purges at once take each row under a row lock that the other
  skips (PostgreSQL `FOR UPDATE SKIP LOCKED`, `purge_claim`), so each is purged once.

The S3 calls go through a small `ObjectStore` protocol (boto3's client satisfies it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Connection, Select, and_, exists, func, not_, or_, select
from sqlalchemy.orm import Session, aliased

from storage.models import Recording
from storage.spool_owner import on_this_host

__all__ = ["ObjectStore", "PurgeResult", "purge_query", "purge_one", "purge_claim", "set_hold",
           "kept_counts", "purged_here", "any_purged_here", "KEPT", "PURGED"]  # fmt: skip

PURGED = "purged"
"""Status of a row purged from another host: its object is deleted, its files wait for its node."""


class ObjectStore(Protocol):
    def put_object_legal_hold(self, **kwargs: Any) -> Any: ...
    def delete_object(self, **kwargs: Any) -> Any: ...


def _purgeable(r: Any, cutoff: float, now: float) -> list[ColumnElement[bool]]:
    return [
        r.started < cutoff,
        r.legal_hold == False,  # noqa: E712 - SQL comparison
        r.status.not_in(("recording", PURGED)),
        or_(r.retain_until.is_(None), r.retain_until <= now),
        r.archive_state.not_in(("pending", "uploading")),
    ]


def _sibling_kept(cutoff: float, now: float) -> ColumnElement[bool]:
    """Another part of the row's series (storage.series) that may not go yet."""
    r, other = Recording, aliased(Recording)
    series = func.coalesce(r.series_id, r.id)
    return exists().where(
        or_(other.series_id == series, other.id == series),
        other.id != r.id,
        other.status != PURGED,  # purged from another host: gone already, keeps nothing
        not_(and_(*_purgeable(other, cutoff, now))),
    )


def purge_query(cutoff: float, now: float) -> Select[Recording]:
    """Recordings older than `cutoff` that retention allows to delete, oldest first."""
    r = Recording
    return (
        select(r)
        .where(*_purgeable(r, cutoff, now), not_(_sibling_kept(cutoff, now)))
        .order_by(r.started)
    )


KEPT = ("held", "recording", "retained", "uploading", "series")
"""Why purge keeps an old recording, in the order the reasons are counted (first one wins)."""


def _kept_reasons(cutoff: float, now: float) -> dict[str, ColumnElement[bool]]:
    r = Recording
    held = r.legal_hold == True  # noqa: E712 - SQL comparison
    recording = r.status == "recording"
    retained = and_(r.retain_until.is_not(None), r.retain_until > now)
    uploading = r.archive_state.in_(("pending", "uploading"))
    series = and_(*_purgeable(r, cutoff, now), _sibling_kept(cutoff, now))
    return {"held": held, "recording": and_(not_(held), recording),
            "retained": and_(not_(held), not_(recording), retained),
            "uploading": and_(not_(held), not_(recording), not_(retained), uploading),
            "series": series}  # fmt: skip


def kept_counts(session: Session, cutoff: float, now: float) -> dict[str, int]:
    """How many recordings older than `cutoff` purge keeps, by reason (KEPT; each counted once,
    under its first reason): the complement of `purge_query`."""
    return {
        reason: int(session.scalar(select(func.count()).select_from(Recording).where(
            Recording.started < cutoff, cond)) or 0)
        for reason, cond in _kept_reasons(cutoff, now).items()
    }  # fmt: skip


def _version(rec: Recording) -> dict[str, str]:
    return {"VersionId": rec.object_version} if rec.object_version else {}


def set_hold(
    session: Session, rec: Recording, on: bool, reason: str | None, *,
    store: ObjectStore | None, bucket: str | None, object_lock: bool,
) -> bool:  # fmt: skip
    """Set or clear the hold on the row, and on the S3 object when Object Lock is on.

    Returns True when the S3 legal hold was changed too. The S3 call comes first: if it fails
    the row is not changed, so the index never claims a hold S3 does not enforce."""
    s3_done = False
    if object_lock and store is not None and bucket and rec.object_key and (
            rec.archive_state == "archived"):  # fmt: skip
        store.put_object_legal_hold(
            Bucket=bucket, Key=rec.object_key, LegalHold={"Status": "ON" if on else "OFF"},
            **_version(rec),
        )  # fmt: skip
        s3_done = True
    rec.legal_hold = on
    rec.hold_reason = reason if on else None
    session.flush()
    return s3_done


@dataclass(frozen=True)
class PurgeResult:
    """What purging one recording removed, or why it stopped."""

    id: str
    call_id: str
    started: float
    removed: tuple[str, ...]
    error: str | None = None
    left_to: str | None = None
    """The node whose daemon removes the files this host cannot reach (row left `purged`)."""


def _files(rec: Recording) -> list[str]:
    return [p for p in (rec.path, rec.metadata_path, rec.sidecar_path) if p]


def purge_claim(rid: str, cutoff: float, now: float) -> Select[Recording]:
    """Recording `rid` if purge may still take it, locked for this transaction: another purge
    running at once skips it (PostgreSQL; SQLite has one writer at a time anyway). The rules
    are read again under the lock: a hold set since the list was made wins."""
    return (
        purge_query(cutoff, now)
        .where(Recording.id == rid)
        .with_for_update(skip_locked=True, of=Recording)
    )


def _elsewhere(rec: Recording) -> list[str]:
    """The recording's files that are on another host (storage.spool_owner)."""
    return [
        p for p in _files(rec)
        if not (p == rec.path and rec.local_removed) and not on_this_host(p, rec.node)
    ]  # fmt: skip


def purge_one(
    session: Session, rec: Recording, *, store: ObjectStore | None, bucket: str | None,
) -> PurgeResult:  # fmt: skip
    """Delete one recording everywhere (object version, local files, row); see module doc."""
    removed: list[str] = []
    elsewhere = _elsewhere(rec)

    def result(error: str | None = None) -> PurgeResult:
        left = rec.node if elsewhere and error is None else None
        return PurgeResult(rec.id, rec.call_id, rec.started, tuple(removed), error, left)

    if rec.object_key and rec.archive_state == "archived":
        if store is None or not bucket:
            return result("archived in S3 but no bucket configured: kept")
        try:
            store.delete_object(Bucket=bucket, Key=rec.object_key, **_version(rec))
        except Exception as exc:  # noqa: BLE001 - reported per recording, the rest go on
            return result(f"S3 delete failed, kept: {exc}")
        removed.append(f"s3://{bucket}/{rec.object_key}")
        rec.object_key = rec.object_version = None  # the row stays true if a file step fails
        rec.archive_state = "local"
        session.flush()
    for path in _files(rec):
        if path in elsewhere:
            continue
        try:
            os.unlink(path)
            removed.append(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            return result(f"cannot remove {path}: {exc.strerror}; row kept")
    if elsewhere:  # its node's daemon removes them, then the row (purged_here)
        rec.status = PURGED
        session.flush()
        return result()
    session.delete(rec)
    session.flush()
    return result()


def any_purged_here(conn: Connection, node: str) -> bool:
    """Whether `node` has rows purge left to it (one probe on the status index)."""
    found = conn.execute(select(Recording.id).where(
        Recording.status == PURGED, Recording.node == node).limit(1)).first()  # fmt: skip
    return found is not None


def purged_here(session: Session, node: str, limit: int = 200) -> list[Recording]:
    """Rows of `node` that purge left to it (status `purged`), locked; another process of the
    node running this at once skips them."""
    return list(session.scalars(
        select(Recording)
        .where(Recording.status == PURGED, Recording.node == node)
        .order_by(Recording.started)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Recording)
    ))  # fmt: skip
