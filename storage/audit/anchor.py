"""Anchors of the audit chain outside the index, so that cutting off its newest entries shows.

The hash chain (storage.audit.chain) proves that no entry *inside* it was changed, removed or
re-ordered, but not that its tail is complete: deleting the newest rows leaves a shorter,
perfectly linked chain. So after each command that appended entries, the writer records the
chain's head — a `Checkpoint` {seq, hash, time} — in two places the index does not control:

* S3: one object per checkpoint under `<literal part of s3-prefix>audit/checkpoints/`, with the
  bucket's Object Lock retention when `s3-object-lock-*` is set (then not even the writer can
  delete or overwrite that version). The key counts *down* (`KEY_TOP - seq`), so listing the
  prefix returns the newest checkpoints first: `verify` reads one page, never the whole history.
  Versions hidden behind a delete marker are listed too (and the marker is reported).
* A local head file (`recording-dir/audit-head.json`): the newest checkpoint this host wrote,
  only ever moved forward, under an `fcntl` lock (several CLI processes on one host).

Several writers on several hosts share one chain: each checkpoints whatever head it reads after
its own appends, which covers the entries of any writer whose checkpoint failed (S3 down): the
next checkpoint supersedes a missed one, nothing has to be queued. `check` compares checkpoints
with the index: a checkpointed seq that is gone, or whose hash differs, is a problem.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from storage.db import Index
from storage.models import AuditEntry

__all__ = ["Checkpoint", "AnchorError", "head", "checkpoint_prefix", "HeadFile",
           "CheckpointStore", "check", "HEAD_FILE"]  # fmt: skip

KEY_TOP = 10**20 - 1
HEAD_FILE = "audit-head.json"
_HEX = frozenset("0123456789abcdef")


class AnchorError(ValueError):
    """A checkpoint document that is not one of ours (names what is wrong)."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The audit chain's head at `time`: entry `seq` has hash `hash`."""

    seq: int
    hash: str
    time: float

    def to_json(self) -> bytes:
        doc = {"seq": self.seq, "hash": self.hash, "time": self.time}
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def parse(cls, data: bytes) -> Checkpoint:
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise AnchorError(f"checkpoint is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise AnchorError("checkpoint is not a JSON object")
        seq, hash_, time = doc.get("seq"), doc.get("hash"), doc.get("time")
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 < seq <= KEY_TOP:
            raise AnchorError(f"checkpoint seq {seq!r} is not a positive integer")
        if not isinstance(hash_, str) or len(hash_) != 64 or not set(hash_) <= _HEX:
            raise AnchorError(f"checkpoint hash {hash_!r} is not 64 hex digits")
        if not isinstance(time, (int, float)) or isinstance(time, bool):
            raise AnchorError(f"checkpoint time {time!r} is not a number")
        return cls(seq, hash_, float(time))


def head(index: Index, now: float) -> Checkpoint | None:
    """The chain's newest entry as a checkpoint taken at `now` (None: the chain is empty)."""
    with index.session() as s:
        row = s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).first()
        return None if row is None else Checkpoint(row.seq, row.hash, now)


def checkpoint_prefix(s3_prefix: str) -> str:
    """`s3-prefix` up to its first template field, plus `audit/checkpoints/` (one place for
    every node, whatever its date or node fields)."""
    literal = ""
    for text, field, _spec, _conv in string.Formatter().parse(s3_prefix):
        literal += text
        if field is not None:
            break
    if literal and not literal.endswith("/"):
        literal = literal.rsplit("/", 1)[0] + "/" if "/" in literal else ""
    return literal + "audit/checkpoints/"


class HeadFile:
    """The newest checkpoint written from this host, in one small JSON file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def read(self) -> Checkpoint | None:
        """The recorded head (None: no file yet); AnchorError when it is not a checkpoint."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        return Checkpoint.parse(data)

    def advance(self, cp: Checkpoint) -> bool:
        """Record `cp` unless the file already holds a newer head; True when written."""
        fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # another CLI on this host may advance it too
            try:
                current = self.read()
            except AnchorError:
                current = None  # unreadable: replaced by a good one (verify reports it first)
            if current is not None and current.seq >= cp.seq:
                return False
            tmp = f"{self.path}.{os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                f.write(cp.to_json())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            return True
        finally:
            os.close(fd)


@dataclass(frozen=True, slots=True)
class Stored:
    """One stored checkpoint object version as `CheckpointStore.newest` lists it."""

    key: str
    version: str | None
    checkpoint: Checkpoint | None
    problem: str | None = None


class CheckpointStore:
    """Checkpoint objects in the bucket (one per checkpoint, write-once, locked if configured)."""

    def __init__(self, client: Any, bucket: str, prefix: str, *, lock_mode: str = "none",
                 lock_days: int = 0) -> None:  # fmt: skip
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.lock_mode = lock_mode
        self.lock_days = lock_days

    def key(self, cp: Checkpoint) -> str:
        return f"{self.prefix}{KEY_TOP - cp.seq:020d}-{cp.hash[:16]}.json"

    def put(self, cp: Checkpoint) -> str:
        """Store `cp`; returns its key."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key(cp), "Body": cp.to_json(),
                                "ContentType": "application/json",
                                "ChecksumAlgorithm": "SHA256"}  # fmt: skip
        if self.lock_mode in ("GOVERNANCE", "COMPLIANCE") and self.lock_days > 0:
            args["ObjectLockMode"] = self.lock_mode
            args["ObjectLockRetainUntilDate"] = dt.datetime.now(dt.UTC) + dt.timedelta(
                days=self.lock_days
            )
        self.client.put_object(**args)
        return str(args["Key"])

    def newest(self, count: int = 10) -> list[Stored]:
        """The newest `count` checkpoint keys (every version of each), newest first; a delete
        marker or a document that is not a checkpoint comes back with its problem."""
        resp = self.client.list_object_versions(Bucket=self.bucket, Prefix=self.prefix,
                                                MaxKeys=count)  # fmt: skip
        out: list[Stored] = []
        for marker in resp.get("DeleteMarkers", []):
            out.append(Stored(marker["Key"], marker.get("VersionId"), None,
                              "hidden by a delete marker (someone deleted it)"))  # fmt: skip
        for v in resp.get("Versions", []):
            out.append(self._load(v["Key"], v.get("VersionId")))
        return sorted(out, key=lambda s: s.key)

    def _load(self, key: str, version: str | None) -> Stored:
        extra = {"VersionId": version} if version and version != "null" else {}
        body = self.client.get_object(Bucket=self.bucket, Key=key, **extra)["Body"]
        try:
            cp = Checkpoint.parse(body.read())
        except AnchorError as exc:
            return Stored(key, version, None, str(exc))
        finally:
            body.close()
        if key != self.key(cp):
            return Stored(key, version, cp, f"content (seq {cp.seq}) does not match its key")
        return Stored(key, version, cp)


def check(index: Index, anchors: Iterable[tuple[str, Checkpoint]]) -> list[str]:
    """Each (where, checkpoint) against the index: one line per checkpointed entry that is gone
    (`truncated`) or different (`rewritten`)."""
    problems: list[str] = []
    with index.session() as s:
        last = s.scalar(select(func.max(AuditEntry.seq))) or 0
        for where, cp in anchors:
            row = s.get(AuditEntry, cp.seq)
            if row is None:
                what = "truncated" if cp.seq > last else "entry removed"
                problems.append(f"audit chain {what}: checkpoint seq {cp.seq} hash "
                                f"{cp.hash[:16]}… ({where}) not in the index (it ends at seq "
                                f"{last})")  # fmt: skip
            elif row.hash != cp.hash:
                problems.append(f"audit chain rewritten: entry {cp.seq} has hash "
                                f"{row.hash[:16]}…, checkpoint ({where}) says "
                                f"{cp.hash[:16]}…")  # fmt: skip
    return problems
