"""storage.search: filters → SQL. Glob semantics checked on a real (in-memory) SQLite against a
reference matcher; plan hints and parsing checked on the compiled SQL."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from storage.models import Base, Recording
from storage.search import (
    PROBE_CAP,
    SearchError,
    SearchFilter,
    build_query,
    glob_condition,
    glob_prefix,
    glob_to_like,
    parse_meta,
    parse_sort,
    prefix_range,
    probe_query,
)

SQLITE = sqlite.dialect()
PG = postgresql.dialect()  # type: ignore[no-untyped-call]


def reference(pattern: str, value: str) -> bool:
    """Shell glob with only * and ? special (what the CLI documents)."""
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, re.DOTALL) is not None


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    e = create_engine("sqlite://")
    Base.metadata.create_all(e)
    yield e
    e.dispose()


def matches(engine: Engine, pattern: str, values: list[str]) -> list[str]:
    with engine.begin() as c:
        c.execute(delete(Recording))
        c.execute(insert(Recording), [
            {"id": f"{i:036d}", "call_id": v, "caller": v, "node": "", "started": float(i),
             "status": "complete", "format": "pcap", "path": "", "tags": [], "meta": {},
             "sidecar": {}, "codecs": "", "packets": 0, "archive_state": "local",
             "local_removed": False, "legal_hold": False, "updated": 0.0}
            for i, v in enumerate(values)])  # fmt: skip
        q = select(Recording.caller).where(glob_condition(Recording.caller, pattern))
        return sorted(c.scalars(q))


ALPHABET = "ab%_\\[]*?Aé@.+"


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(ALPHABET, max_size=6), st.lists(st.text(ALPHABET.replace("*", "").replace(
    "?", ""), max_size=6), min_size=1, max_size=8, unique=True))  # fmt: skip
def test_glob_matches_like_the_reference(engine: Engine, pattern: str, values: list[str]) -> None:
    assert matches(engine, pattern, values) == sorted(v for v in values if reference(pattern, v))


def test_glob_helpers() -> None:
    assert (
        glob_prefix("+4930*9?") == "+4930" and glob_prefix("*x") == "" and glob_prefix("ab") == "ab"
    )
    assert glob_to_like("a%b_c*d?\\") == "a\\%b\\_c%d_\\\\"


def test_prefix_range_upper_bound_skips_max_code_points() -> None:
    q = select(Recording.id).where(prefix_range(Recording.caller, "a\U0010ffff"))
    sql = str(q.compile(dialect=SQLITE, compile_kwargs={"literal_binds": True}))
    assert "recordings.caller < 'b'" in sql


def test_time_order_hides_prefix_ranges_from_sqlite_only() -> None:
    f = SearchFilter(caller="+49*", limit=50)
    lite = str(build_query(f, time_order=True).compile(dialect=SQLITE))
    assert "+recordings.caller >=" in lite and "ORDER BY recordings.started DESC" in lite
    assert "+recordings" not in str(build_query(f).compile(dialect=SQLITE))
    pg = str(build_query(f, time_order=True).compile(dialect=PG))
    assert "+recordings" not in pg


@pytest.mark.parametrize(
    ("flt", "probed"),
    [
        (SearchFilter(caller="+49*"), True),
        (SearchFilter(party="+4930111"), True),  # caller = X OR callee = X
        (SearchFilter(call_id="abc*"), True),
        (SearchFilter(caller="+4930111"), False),  # (caller, started) index is in time order
        (SearchFilter(caller="*111"), False),  # nothing to drive from
        (SearchFilter(caller="+49*", limit=None), False),
        (SearchFilter(caller="+49*", sort=(("duration", False),)), False),
        (SearchFilter(party="+49*", ip="10.0.0.1"), False),
        (SearchFilter(since=1.0), False),
    ],
)
def test_probe_only_where_it_can_help(flt: SearchFilter, probed: bool) -> None:
    assert (probe_query(flt) is not None) == probed


def test_probe_counts_are_capped(engine: Engine) -> None:
    matches(engine, "x", [f"+49{i}" for i in range(30)] + ["+44"])
    with engine.connect() as c:
        assert c.scalar(probe_query(SearchFilter(caller="+49*"))) == 30  # type: ignore[arg-type]
        assert c.scalar(probe_query(SearchFilter(party="+44"))) == 1  # type: ignore[arg-type]
    assert PROBE_CAP >= 1000


def test_every_filter_compiles_on_both_dialects() -> None:
    f = SearchFilter(since=1.0, until=2.0, call_id="a*", caller="b?", callee="c*d", party="e",
                     ip="10.0.0.1", codec="pcmu", min_duration=1, max_duration=9,
                     status=("complete",), node=("n1",), max_loss=1, min_loss=0.1,
                     max_jitter=9, min_jitter=1, min_mos=3, max_mos=4.5,
                     meta=(("k", "v"), ("k2", "v2")), ids=("0123abcd",), held=True,
                     sort=parse_sort("-mos,caller"))  # fmt: skip
    for dialect in (SQLITE, PG):
        sql = str(build_query(f).compile(dialect=dialect))
        assert sql.count("EXISTS") == 3 and "recording_ips" in sql and "NULLS LAST" in sql


def test_parse_sort_and_meta() -> None:
    assert parse_sort("-started,caller") == (("started", True), ("caller", False))
    assert parse_sort("+call-id") == (("call_id", False),)
    with pytest.raises(SearchError, match="bad sort key 'size2'"):
        parse_sort("size2")
    assert parse_meta(("a=b=c", "x=")) == (("a", "b=c"), ("x", ""))
    with pytest.raises(SearchError, match="expected KEY=VALUE"):
        parse_meta(("=v",))
