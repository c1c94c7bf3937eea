"""Search filters → one SQLAlchemy `select()` over recordings. Builds the query, never runs it.

Every filter is chosen so an index can serve it on SQLite and PostgreSQL alike:

* time range → `recordings.started` (index), and sort by `started` (the default) walks it;
* `call_id` exact → equality; `call_id` ending in `*` → a half-open range
  (`call_id >= 'abc' AND call_id < 'abd'`), which both databases answer from the plain b-tree
  index whatever the collation (LIKE 'abc%' only does so on PostgreSQL with text_pattern_ops);
* caller/callee globs: a literal prefix before the first wildcard becomes the same range, the
  rest is matched with GLOB on SQLite and LIKE on PostgreSQL — both case-sensitive, so the two
  databases return the same rows (SQLite's LIKE would ignore case);
* quality filters use the per-recording worst values kept on the row (worst loss, worst
  jitter, lowest MOS), not a join over streams;
* `ip`, `codec` and `meta` are EXISTS sub-queries on small side tables, indexed by value.

Pure: the caller passes `now` where relative times were parsed (see storage.timeparse).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, literal, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Boolean

from storage.models import AuditEntry, Recording, RecordingCodec, RecordingIp, RecordingMeta

__all__ = ["SearchFilter", "SearchError", "build_query", "glob_match", "glob_prefix",
           "glob_condition", "SORT_KEYS", "parse_sort", "parse_meta", "lookup_query",
           "audit_query", "probe_query", "PROBE_CAP"]  # fmt: skip


class SearchError(ValueError):
    """A filter value the query cannot use (bad sort key, bad KEY=VALUE, bad number)."""


@dataclass(frozen=True)
class SearchFilter:
    """What the user asked for; every field None/empty means "no constraint"."""

    since: float | None = None
    until: float | None = None
    call_id: str | None = None  # exact, or prefix when it ends with '*'
    caller: str | None = None  # glob: * ? [..]
    callee: str | None = None
    party: str | None = None  # caller or callee
    ip: str | None = None
    codec: str | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    status: tuple[str, ...] = ()
    node: tuple[str, ...] = ()
    max_loss: float | None = None  # worst stream loss ≤ (percent)
    min_loss: float | None = None  # worst stream loss ≥ (find the bad calls)
    max_jitter: float | None = None  # worst stream jitter ≤ (ms)
    min_jitter: float | None = None
    min_mos: float | None = None  # lowest stream MOS ≥
    max_mos: float | None = None
    meta: tuple[tuple[str, str], ...] = ()
    ids: tuple[str, ...] = ()
    held: bool | None = None
    limit: int | None = 50
    sort: tuple[tuple[str, bool], ...] = field(default=(("started", True),))  # (key, descending)


# ------------------------------------------------------------------ glob → SQL

_WILD = "*?"  # shell-style; '[' is an ordinary character (LIKE has no classes)


def glob_prefix(pattern: str) -> str:
    """The literal text before the first wildcard of a glob."""
    cut = min((i for i, ch in enumerate(pattern) if ch in _WILD), default=len(pattern))
    return pattern[:cut]


def _next_string(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix` (None: no bound)."""
    for i in range(len(prefix) - 1, -1, -1):
        if ord(prefix[i]) < 0x10FFFF:
            return prefix[:i] + chr(ord(prefix[i]) + 1)
    return None


def glob_to_like(pattern: str) -> str:
    """Glob (* ?) → LIKE pattern with '\\' as its escape character."""
    table = {"*": "%", "?": "_", "%": "\\%", "_": "\\_", "\\": "\\\\"}
    return "".join(table.get(ch, ch) for ch in pattern)


def glob_to_sqlite(pattern: str) -> str:
    """Glob (* ?) → SQLite GLOB pattern ('[' must be written as a class there)."""
    return pattern.replace("[", "[[]")


class glob_match(FunctionElement[bool]):
    """glob_match(column, sqlite_glob, like_pattern): case-sensitive on every database —
    GLOB on SQLite, LIKE … ESCAPE elsewhere (PostgreSQL's LIKE is case-sensitive)."""

    type = Boolean()
    inherit_cache = True
    name = "glob_match"


@compiles(glob_match, "sqlite")
def _glob_sqlite(element: glob_match, compiler: Any, **kw: Any) -> str:
    col, glob, _ = list(element.clauses)
    return f"({compiler.process(col, **kw)} GLOB {compiler.process(glob, **kw)})"


@compiles(glob_match)
def _glob_default(element: glob_match, compiler: Any, **kw: Any) -> str:
    col, _, like = list(element.clauses)
    return f"({compiler.process(col, **kw)} LIKE {compiler.process(like, **kw)} ESCAPE '\\')"


class noindex(FunctionElement[Any]):
    """The column's value, hidden from SQLite's planner (unary +) so it walks the sort index
    instead; plain elsewhere. See `build_query(time_order=True)`."""

    inherit_cache = True
    name = "noindex"


@compiles(noindex, "sqlite")
def _noindex_sqlite(element: noindex, compiler: Any, **kw: Any) -> str:
    (col,) = list(element.clauses)
    return f"+{compiler.process(col, **kw)}"


@compiles(noindex)
def _noindex_default(element: noindex, compiler: Any, **kw: Any) -> str:
    (col,) = list(element.clauses)
    return str(compiler.process(col, **kw))


def prefix_range(col: Any, prefix: str, indexed: bool = True) -> ColumnElement[bool]:
    """`col` starts with `prefix`: a half-open range any b-tree index serves (exact under
    binary/C collation, which SQLite uses and PostgreSQL should), plus an exact substr check
    so a linguistic collation can never add rows that do not start with `prefix`."""
    exact = func.substr(col, 1, len(prefix)) == prefix
    upper = _next_string(prefix)
    key = col if indexed else noindex(col)
    return and_(key >= prefix, key < upper, exact) if upper is not None else and_(
        key >= prefix, exact)  # fmt: skip


def glob_condition(col: Any, pattern: str, indexed: bool = True) -> ColumnElement[bool]:
    """Equality for a plain value; index range on the literal prefix plus the glob otherwise."""
    if not any(ch in pattern for ch in _WILD):
        key: Any = col if indexed else noindex(col)
        return key == pattern  # type: ignore[no-any-return]
    match = glob_match(col, literal(glob_to_sqlite(pattern)), literal(glob_to_like(pattern)))
    prefix = glob_prefix(pattern)
    if prefix and pattern == prefix + "*":
        return prefix_range(col, prefix, indexed)  # no wildcard left to check
    return and_(prefix_range(col, prefix, indexed), match) if prefix else match


# ------------------------------------------------------------------ parsing helpers

SORT_KEYS: dict[str, Any] = {
    "started": Recording.started, "ended": Recording.ended, "duration": Recording.duration,
    "call_id": Recording.call_id, "caller": Recording.caller, "callee": Recording.callee,
    "size": Recording.size, "status": Recording.status, "node": Recording.node,
    "loss": Recording.worst_loss, "jitter": Recording.worst_jitter, "mos": Recording.min_mos,
}  # fmt: skip


def parse_sort(text: str) -> tuple[tuple[str, bool], ...]:
    """`-started,caller` → ((started, desc), (caller, asc)); '-' means descending."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        desc = part.startswith("-")
        key = part.lstrip("+-").replace("-", "_")
        if key not in SORT_KEYS:
            raise SearchError(
                f"bad sort key {part!r}: expected one of {', '.join(sorted(SORT_KEYS))} "
                f"(prefix '-' for descending)"
            )
        out.append((key, desc))
    return tuple(out)


def parse_meta(items: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """('from=alice', …) → (('from', 'alice'), …); a missing '=' or empty key is an error."""
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SearchError(f"bad --meta {item!r}: expected KEY=VALUE")
        out.append((key, value))
    return tuple(out)


# ------------------------------------------------------------------ the queries


def _call_id(value: str, indexed: bool = True) -> ColumnElement[bool]:
    if value.endswith("*") and len(value) > 1:
        return prefix_range(Recording.call_id, value[:-1], indexed)
    return Recording.call_id == value


def _range(col: Any, low: float | None, high: float | None) -> list[ColumnElement[bool]]:
    out = []
    if low is not None:
        out.append(col >= low)
    if high is not None:
        out.append(col <= high)
    return out


def conditions(f: SearchFilter, time_order: bool = False) -> list[ColumnElement[bool]]:
    """The WHERE terms of a filter (ANDed by the caller); see build_query for `time_order`."""
    r = Recording
    ix = not time_order
    where: list[ColumnElement[bool]] = []
    if f.since is not None:
        where.append(r.started >= f.since)
    if f.until is not None:
        where.append(r.started < f.until)
    if f.call_id:
        where.append(_call_id(f.call_id, ix))
    if f.caller:
        where.append(glob_condition(r.caller, f.caller, ix))
    if f.callee:
        where.append(glob_condition(r.callee, f.callee, ix))
    if f.party:
        where.append(or_(glob_condition(r.caller, f.party, ix),
                         glob_condition(r.callee, f.party, ix)))  # fmt: skip
    if f.ip:  # selective: drive from the ip index (IN), not by probing every recording
        where.append(r.id.in_(select(RecordingIp.recording_id).where(RecordingIp.ip == f.ip)))
    if f.codec:
        names = {f.codec, f.codec.upper(), f.codec.lower()}
        where.append(exists().where(RecordingCodec.recording_id == r.id,
                                    RecordingCodec.codec.in_(sorted(names))))  # fmt: skip
    for key, value in f.meta:
        where.append(
            exists().where(
                RecordingMeta.recording_id == r.id,
                RecordingMeta.key == key,
                RecordingMeta.value == value,
            )
        )
    where += _range(r.duration, f.min_duration, f.max_duration)
    where += _range(r.worst_loss, f.min_loss, f.max_loss)
    where += _range(r.worst_jitter, f.min_jitter, f.max_jitter)
    where += _range(r.min_mos, f.min_mos, f.max_mos)
    if f.status:
        where.append(r.status.in_(f.status))
    if f.node:
        where.append(r.node.in_(f.node))
    if f.held is not None:
        where.append(r.legal_hold == f.held)
    if f.ids:
        where.append(or_(*(id_condition(i) for i in f.ids)))
    return where


def build_query(f: SearchFilter, *, time_order: bool = False) -> Select[Recording]:
    """SELECT recordings matching `f`, sorted and limited as it says.

    `time_order=True` hides the prefix ranges (call-id, caller, callee, party) from SQLite's
    planner, so it walks the `started` index and stops at the limit instead of collecting and
    sorting every row in the range — the better plan when the prefix matches many rows (a call
    centre's number). SQLite keeps no per-value statistics to see that itself; `probe_query`
    measures it. PostgreSQL's planner has the statistics and needs no hint."""
    q = select(Recording).where(*conditions(f, time_order))
    order = []
    for key, desc in f.sort:
        col = SORT_KEYS[key]
        term = col.desc() if desc else col.asc()
        # NULLs last on both databases (their defaults differ); never on NOT NULL columns,
        # where it would stop PostgreSQL from walking the index in that order
        order.append(term.nulls_last() if col.nullable else term)
    q = q.order_by(*order)
    return q.limit(f.limit) if f.limit else q


PROBE_CAP = 5000
"""More prefix matches than this: walking the time index beats sorting the matches."""


def _drivers(f: SearchFilter) -> list[ColumnElement[bool]] | None:
    """The index conditions that would drive the query, when a time-ordered walk might beat
    them; None when an index already gives the rows in time order (exact caller or callee,
    exact call-id, ip) or nothing else could drive."""
    exact = [v for v in (f.caller, f.callee) if v and not any(c in v for c in _WILD)]
    if exact or (f.call_id and not f.call_id.endswith("*")) or f.ip:
        return None
    out: list[ColumnElement[bool]] = []
    if f.call_id and len(f.call_id) > 1:
        out.append(prefix_range(Recording.call_id, f.call_id[:-1]))
    for col, pattern in ((Recording.caller, f.caller), (Recording.callee, f.callee),
                         (Recording.caller, f.party), (Recording.callee, f.party)):  # fmt: skip
        if not pattern:
            continue
        if not any(ch in pattern for ch in _WILD):
            out.append(col == pattern)  # party: caller = X OR callee = X
        elif glob_prefix(pattern):
            out.append(prefix_range(col, glob_prefix(pattern)))
    return out or None


def probe_query(f: SearchFilter) -> Select[int] | None:
    """How many rows the driving index conditions match, each counted up to PROBE_CAP (an
    index-only scan), or None when a time-ordered walk cannot help (no limit, not sorted by
    start, or an index that already yields rows in time order)."""
    drivers = _drivers(f)
    if drivers is None or not f.limit or not f.sort or f.sort[0][0] != "started":
        return None
    counts = [select(func.count()).select_from(
        select(literal(1)).where(d).limit(PROBE_CAP).subquery()).scalar_subquery()
        for d in drivers]  # fmt: skip
    return select(sum(counts[1:], counts[0]))


def id_condition(ref: str) -> ColumnElement[bool]:
    """A full recording id, or a prefix of one (8+ characters)."""
    ref = ref.lower()
    if len(ref) == 36:
        return Recording.id == ref
    return prefix_range(Recording.id, ref)


def lookup_query(ref: str, limit: int = 2) -> Select[Recording]:
    """Recordings that `ref` names: an id (or unique 8+ character id prefix) or a Call-ID."""
    looks_like_id = len(ref) >= 8 and all(c in "0123456789abcdefABCDEF-" for c in ref)
    cond = or_(id_condition(ref), Recording.call_id == ref) if looks_like_id else (
        Recording.call_id == ref)  # fmt: skip
    return select(Recording).where(cond).order_by(Recording.started.desc()).limit(limit)


def audit_query(
    *, since: float | None = None, until: float | None = None, users: tuple[str, ...] = (),
    actions: tuple[str, ...] = (), target: str | None = None, limit: int | None = 100,
) -> Select[AuditEntry]:  # fmt: skip
    """Audit entries, newest first."""
    a = AuditEntry
    q = select(a)
    if since is not None:
        q = q.where(a.time >= since)
    if until is not None:
        q = q.where(a.time < until)
    if users:
        q = q.where(a.user.in_(users))
    if actions:
        q = q.where(a.action.in_(actions))
    if target:
        q = q.where(a.target == target)
    q = q.order_by(a.seq.desc())
    return q.limit(limit) if limit else q
