"""The append-only, hash-chained audit log: who did what to which recording, and when.

Each row's `hash` is SHA-256 over the previous row's hash and this row's content in a fixed
text form (see `entry_hash`); the first row's `prev_hash` is GENESIS (64 zeros). Changing,
deleting or re-ordering any row breaks every later link, which `verify` reports. `prev_hash` is
UNIQUE in the schema: two writers (CLI, daemons) that read the same chain head race on the
insert, one wins and `append` retries the other on the new head — the chain never forks.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.exc import IntegrityError

from storage.db import Index
from storage.models import AuditEntry

__all__ = ["GENESIS", "append", "verify", "entry_hash", "ChainProblem", "purged_query"]

GENESIS = "0" * 64
_RETRIES = 20


def canonical(details: dict[str, Any] | None) -> str:
    return json.dumps(details or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(
    prev_hash: str, when: float, user: str, action: str, target: str, details: str
) -> str:
    """SHA-256 hex over the link and the row's content, fields separated by NUL."""
    text = "\0".join((prev_hash, repr(float(when)), user, action, target, details))
    return hashlib.sha256(text.encode()).hexdigest()


def append(
    index: Index,
    action: str,
    target: str = "",
    details: dict[str, Any] | None = None,
    *,
    user: str,
    when: float | None = None,
) -> AuditEntry:
    """Append one entry at the chain's head and return it; `user` is who acted (the CLI passes
    the OS user, rtpvault.cli.search.ctx.os_user)."""
    text = canonical(details)
    last_exc: Exception | None = None
    for _ in range(_RETRIES):
        now = time.time() if when is None else when
        try:
            with index.session() as s:
                head = s.scalars(
                    select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)
                ).first()
                prev = head.hash if head is not None else GENESIS
                row = AuditEntry(
                    time=now,
                    user=user,
                    action=action,
                    target=target,
                    details=text,
                    prev_hash=prev,
                    hash=entry_hash(prev, now, user, action, target, text),
                )
                s.add(row)
            return row
        except IntegrityError as exc:  # another writer took this head: retry on the new one
            last_exc = exc
    raise RuntimeError(f"audit append failed after {_RETRIES} tries: {last_exc}")


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    problem: str


def verify(index: Index) -> list[ChainProblem]:
    """Walk the whole chain; return every broken link or altered row (empty: intact)."""
    problems: list[ChainProblem] = []
    prev = GENESIS
    expected_seq: int | None = None
    with index.session() as s:
        rows = s.execute(
            select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=2000)
        ).scalars()  # streamed: the chain may hold millions of rows
        for row in rows:
            if row.prev_hash != prev:
                problems.append(ChainProblem(row.seq, "link broken (row missing or re-ordered)"))
            want = entry_hash(
                row.prev_hash, row.time, row.user, row.action, row.target, row.details
            )
            if row.hash != want:
                problems.append(ChainProblem(row.seq, "content altered (hash mismatch)"))
            if expected_seq is not None and row.seq != expected_seq:
                problems.append(ChainProblem(row.seq, f"sequence gap before {row.seq}"))
            expected_seq = row.seq + 1
            prev = row.hash
    return problems


def purged_query(ref: str, limit: int = 6) -> Select[str]:
    """Ids of purged recordings that `ref` names — the id, an 8+ character id prefix, or the
    Call-ID — from the per-recording `purge` entries (their target is the id, their details
    carry the Call-ID in canonical JSON)."""
    a = AuditEntry
    by_id = a.target == ref
    if len(ref) >= 8:
        by_id = or_(by_id, a.target.startswith(ref, autoescape=True))
    by_call = a.details.contains(f'"call_id":{json.dumps(ref, ensure_ascii=False)}',
                                 autoescape=True)  # fmt: skip
    return (
        select(a.target)
        .where(a.action == "purge", a.target != "", or_(by_id, by_call))
        .group_by(a.target)
        .order_by(a.target)
        .limit(limit)
    )
