"""`rtpvault verify`: re-hash every copy of the matching recordings, cross-check the SHA-256
the index holds with the one the sidecar and S3 recorded, and check the audit chain and its
anchors (storage.audit.anchor). What this proves, and what not: docs/search.md."""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from dataclasses import dataclass, field
from typing import Any

import click

from rtpvault.cli.search.ctx import OneLineCommand, Vault, describe, friendly, source_options
from rtpvault.cli.search.files import copies
from rtpvault.cli.search.opts import describe_filter, filter_options, make_filter
from rtpvault.cli.search.out import plural
from storage.s3.objects import composite

__all__ = ["COMMANDS", "verify_cmd"]

SKIPPED = {"recording": "still recording", "failed": "failed before a hash",
           "purged": "purged, files left to their node",
           "elsewhere": "only on their node's disk, not reachable here"}  # fmt: skip


def _here(rec: Any, path: str) -> bool:
    """Whether the recording's file `path` would be on this host. Several nodes share one index
    (docs/storage.md "Several nodes"): a recording's spool is on its node, and a host that does
    not have it (storage.spool_owner) cannot tell a missing file from one that is elsewhere;
    it checks the S3 copy."""
    from storage.spool_owner import on_this_host

    return on_this_host(path, str(rec.node or ""))


@dataclass
class Tally:
    recordings: int = 0
    copies: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _sidecar_sha(rec: Any) -> tuple[str | None, str | None]:
    """(SHA-256 the sidecar file on disk recorded, problem) — (None, None) when there is none
    to read here (no sidecar path, or neither it nor the recording's file is on this host)."""
    path = rec.sidecar_path
    if not path:
        return None, None
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read())
    except FileNotFoundError:
        gone = not rec.local_removed and _here(rec, path)
        return None, f"sidecar {path} is gone" if gone else None
    except (OSError, ValueError) as exc:
        return None, f"sidecar {path} unreadable: {describe(exc)}"
    sha = doc.get("sha256") if isinstance(doc, dict) else None
    return (str(sha), None) if sha else (None, f"sidecar {path} has no SHA-256")


class _Digest:
    """SHA-256 of a stream and, when `part_size` is given, S3's composite checksum of it (the
    SHA-256 over each part's SHA-256, as storage.s3.objects uploads multipart objects)."""

    def __init__(self, part_size: int | None) -> None:
        self.whole = hashlib.sha256()
        self.part_size = part_size
        self.part = hashlib.sha256()
        self.filled = 0
        self.parts: list[str] = []

    def update(self, chunk: bytes) -> None:
        self.whole.update(chunk)
        while self.part_size and chunk:
            take = chunk[: self.part_size - self.filled]
            self.part.update(take)
            self.filled += len(take)
            chunk = chunk[len(take):]
            if self.filled == self.part_size:
                self._close_part()

    def _close_part(self) -> None:
        self.parts.append(base64.b64encode(self.part.digest()).decode())
        self.part, self.filled = hashlib.sha256(), 0

    def composite(self) -> str:
        if self.filled:
            self._close_part()
        return f"{composite(self.parts)}-{len(self.parts)}"


@dataclass(frozen=True)
class S3Record:
    """What S3 recorded with the archived object version (head_object)."""

    name: str
    checksum: str  # base64; a multipart object's composite (AWS adds "-N", moto does not)
    metadata_sha256: str | None
    part_size: int | None  # a multipart object's first part (storage.s3.objects: all but the last)


def _s3_record(vault: Vault, rec: Any) -> S3Record | None:
    """head_object of the archived version with its checksum (None: not archived here)."""
    from rtpvault.cli.search.rows import object_ref

    ref = object_ref(rec, vault.bucket)
    if ref is None:
        return None
    bucket, key, version = ref
    extra = {"VersionId": version} if version else {}
    head = vault.s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED", **extra)
    checksum = str(head.get("ChecksumSHA256") or "")
    part_size = None
    if "-" in checksum or "-" in str(head.get("ETag") or ""):  # a multipart upload's object
        first = vault.s3.head_object(Bucket=bucket, Key=key, PartNumber=1, **extra)
        part_size = int(first["ContentLength"])
    meta = (head.get("Metadata") or {}).get("sha256")
    return S3Record(f"s3://{bucket}/{key}", checksum, str(meta) if meta else None, part_size)


def _cross_check(rec: Any, label: str, s3: S3Record | None, s3_composite: str | None
                 ) -> list[str]:  # fmt: skip
    """The indexed SHA-256 against every other record of it: the row's object_sha256, the
    sidecar on disk, and what S3 stored with the object (checksum, `sha256` metadata)."""
    expected = str(rec.sha256)
    recorded: list[tuple[str, str]] = []
    problems: list[str] = []
    if rec.object_sha256:
        recorded.append(("index object_sha256", str(rec.object_sha256)))
    sha, problem = _sidecar_sha(rec)
    if problem:
        problems.append(f"MISSING {label}: {problem}")
    if sha:
        recorded.append((f"sidecar {rec.sidecar_path}", sha))
    if s3 is not None and s3.checksum and s3.part_size is None:
        recorded.append((f"{s3.name} checksum", base64.b64decode(s3.checksum).hex()))
    if s3 is not None and s3.metadata_sha256:
        recorded.append((f"{s3.name} metadata", s3.metadata_sha256))
    for where, sha in recorded:
        if sha != expected:
            problems.append(f"MISMATCH {label}: {where} records SHA-256 {sha}, the index "
                            f"{expected}")  # fmt: skip
    if s3 is not None and s3_composite is not None and s3.checksum and (
            s3_composite.split("-")[0] != s3.checksum.split("-")[0]):  # fmt: skip
        problems.append(f"MISMATCH {label}: {s3.name} checksum {s3.checksum} is not the "
                        f"composite {s3_composite} of the bytes it returned")  # fmt: skip
    return problems


def _rehash(vault: Vault, rec: Any, label: str, s3: S3Record | None
            ) -> tuple[int, list[str], str | None]:  # fmt: skip
    """(copies read, problems, composite checksum of the S3 copy's bytes if multipart): every
    copy's bytes against the indexed SHA-256."""
    from rtpvault.cli.search.rows import object_ref

    problems, checked, s3_composite = [], 0, None
    expected = str(rec.sha256)
    found = copies(vault, rec)
    if not rec.local_removed and not any(c.where == "local" for c in found):
        if _here(rec, str(rec.path)):
            problems.append(f"MISSING {label}: local file {rec.path} is gone")
    if rec.archive_state == "archived" and object_ref(rec, vault.bucket) is None:
        problems.append(f"MISSING {label}: archived, but no bucket configured to check it in")
    if rec.local_removed and object_ref(rec, vault.bucket) is None:
        problems.append(f"MISSING {label}: local file removed and no S3 copy")
    for copy in found:
        checked += 1
        h = _Digest(s3.part_size if s3 is not None and copy.where == "s3" else None)
        try:
            for chunk in copy.chunks(vault):
                h.update(chunk)
        except Exception as exc:  # noqa: BLE001 - every failure of one copy is a finding
            problems.append(f"MISSING {label}: {copy.name}: {describe(exc)}")
            continue
        if h.part_size:
            s3_composite = h.composite()
        if h.whole.hexdigest() != expected:
            problems.append(f"MISMATCH {label}: {copy.name}: SHA-256 {h.whole.hexdigest()} != "
                            f"indexed {expected}")  # fmt: skip
    return checked, problems, s3_composite


def _check(vault: Vault, rec: Any, tally: Tally) -> list[str]:
    """Check one recording into `tally`; returns its problem lines."""
    from rtpvault.cli.search.rows import object_ref
    from storage.retention import PURGED

    label = f"{rec.id} ({rec.call_id})"
    if rec.status == PURGED:
        tally.skipped[rec.status] = tally.skipped.get(rec.status, 0) + 1
        return []
    if not rec.sha256:
        # still open, or writing failed before a hash existed (reason on the row): nothing to
        # check against, counted apart; any other recording without a hash is a finding
        if rec.status in SKIPPED:
            tally.skipped[rec.status] = tally.skipped.get(rec.status, 0) + 1
            return []
        tally.recordings += 1
        return [f"NO-HASH {label}: no SHA-256 in the index (status {rec.status})"]
    if (rec.path and not rec.local_removed and not _here(rec, str(rec.path))
            and object_ref(rec, vault.bucket) is None):  # fmt: skip
        tally.skipped["elsewhere"] = tally.skipped.get("elsewhere", 0) + 1
        return []
    tally.recordings += 1
    try:
        s3 = _s3_record(vault, rec)
    except Exception:  # noqa: BLE001 - reading the object reports the same failure
        s3 = None
    checked, problems, s3_composite = _rehash(vault, rec, label, s3)
    tally.copies += checked
    return problems + _cross_check(rec, label, s3, s3_composite)


def _audit(vault: Vault) -> tuple[list[str], str]:
    """(problem lines, one-line account) for the audit chain and its anchors."""
    from storage.audit import anchor as auditanchor
    from storage.audit import chain as audit

    lines = [f"AUDIT entry {p.seq}: {p.problem}" for p in audit.verify(vault.index)]
    head_file, store = vault.anchors()
    anchors: list[tuple[str, auditanchor.Checkpoint]] = []
    seen: list[str] = []
    if head_file is not None:
        try:
            cp = head_file.read()
        except (OSError, ValueError) as exc:
            lines.append(f"AUDIT head file {head_file.path}: {describe(exc)}")
            cp = None
        if cp is not None:
            anchors.append((f"head file {head_file.path}", cp))
            seen.append(f"head file seq {cp.seq}")
    if store is not None:
        where = f"s3://{store.bucket}/{store.prefix}"
        try:
            stored = store.newest()
        except Exception as exc:  # noqa: BLE001 - the tail cannot be proven: a finding
            lines.append(f"AUDIT checkpoints in {where} unreadable: {describe(exc)}")
            stored = []
        for st in stored:
            if st.problem:
                lines.append(f"AUDIT checkpoint s3://{store.bucket}/{st.key}: {st.problem}")
            if st.checkpoint is not None:
                anchors.append((f"s3://{store.bucket}/{st.key}", st.checkpoint))
        newest = max((cp.seq for w, cp in anchors if w.startswith("s3://")), default=None)
        seen.append(f"S3 checkpoint seq {newest}" if newest else f"no checkpoint in {where} yet")
    lines += [f"AUDIT {p}" for p in auditanchor.check(vault.index, anchors)]
    now = auditanchor.head(vault.index, 0.0)
    count = plural(now.seq if now else 0, "entry", "entries")
    anchored = "; ".join(seen) or "no anchor configured (no bucket, no recording-dir here)"
    return lines, f"audit chain: {count} up to seq {now.seq if now else 0}; {anchored}"


def _series_gaps(session: Any, series: dict[str, str]) -> list[str]:
    """A part missing from the index in any recording (series) a checked part belongs to."""
    from storage.series import missing_parts, parts_query

    out = []
    for key, call_id in series.items():
        numbers = [r.part for r in session.scalars(parts_query(key))]
        out += [f"MISSING {key} ({call_id}) part {n} of {max(numbers)}: not in the index"
                for n in missing_parts(numbers)]  # fmt: skip
    return out


@click.command("verify", cls=OneLineCommand)
@source_options
@filter_options
@friendly
def verify_cmd(vault: Vault, **opts: Any) -> None:
    """Re-hash local files and S3 objects against the index, cross-check the SHA-256 of the
    sidecar and of S3, and check the audit chain and its checkpoints.

    Prints every mismatch or missing copy; exit status 1 if there is any problem."""
    from storage.search import build_query
    from storage.series import series_key

    flt = make_filter(opts, limit=None, sort="started")
    tally = Tally()
    with vault.attempt("verify", None, failures_only=True, filter=describe_filter(flt)):
        with vault.session() as session:
            series: dict[str, str] = {}
            for rec in session.scalars(build_query(flt)):
                found = _check(vault, rec, tally)
                for line in found:
                    click.echo(line)
                tally.problems += found
                series.setdefault(series_key(rec), rec.call_id)
            for line in _series_gaps(session, series):
                click.echo(line)
                tally.problems.append(line)
        chain, account = _audit(vault)
    for line in chain:
        click.echo(line)
    vault.audit("verify", filter=describe_filter(flt), recordings=tally.recordings,
                skipped=tally.skipped, problems=len(tally.problems) + len(chain))  # fmt: skip
    skipped = ", ".join(f"{n} {SKIPPED[s]}" for s, n in sorted(tally.skipped.items()))
    click.echo(account)
    click.echo(f"verified {plural(tally.recordings, 'recording')}, "
               f"{plural(tally.copies, 'copy', 'copies')}"
               + (f" (skipped: {skipped})" if skipped else "")
               + f": {plural(len(tally.problems), 'problem')}; audit chain: "
               f"{'ok' if not chain else plural(len(chain), 'problem')}")  # fmt: skip
    if tally.problems or chain:
        sys.exit(1)


COMMANDS = [verify_cmd]
