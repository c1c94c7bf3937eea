"""The search filters as click options, shared by `search`, `verify` and `purge`, and their
conversion into a storage.search.SearchFilter (times parsed once, with one `now`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from storage.search import SearchFilter, parse_meta, parse_sort
from storage.timeparse import TimeParseError, parse_duration, parse_time

__all__ = ["filter_options", "output_options", "make_filter", "TimeType", "DurationType"]

F = TypeVar("F", bound=Callable[..., Any])


class _SecondsType(click.ParamType[float]):
    """A time or duration option: text → seconds; a parse error becomes click's usage error."""

    def parse(self, text: str) -> float:
        raise NotImplementedError

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        try:
            return self.parse(str(value))
        except TimeParseError as exc:
            self.fail(str(exc), param, ctx)


class TimeType(_SecondsType):
    """ISO 8601, relative (2h, 3d), now/today/yesterday, @unix → Unix seconds."""

    name = "TIME"

    def parse(self, text: str) -> float:
        return parse_time(text, datetime.now(UTC))


class DurationType(_SecondsType):
    """90d, 2h, 1h30m, 45 (seconds) → seconds."""

    name = "DURATION"

    def parse(self, text: str) -> float:
        return parse_duration(text)


def _csv(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(v.strip() for item in values for v in item.split(",") if v.strip())


_FILTERS: list[Callable[[F], F]] = [
    click.option("--since", type=TimeType(), help="Started at or after (2h, 3d, yesterday, ISO)."),
    click.option("--until", type=TimeType(), help="Started before (same forms as --since)."),
    click.option("--call-id", help="Exact Call-ID, or a prefix when it ends with '*'."),
    click.option("--caller", metavar="GLOB", help="Caller (glob: * and ?)."),
    click.option("--callee", metavar="GLOB", help="Callee (glob: * and ?)."),
    click.option("--party", metavar="GLOB", help="Caller or callee (glob)."),
    click.option("--ip", metavar="ADDR", help="A media address of any stream."),
    click.option("--codec", metavar="NAME", help="A codec used by a recorded stream (PCMU …)."),
    click.option("--min-duration", type=DurationType(), help="At least this long (30s, 5m)."),
    click.option("--max-duration", type=DurationType(), help="At most this long."),
    click.option("--status", multiple=True, metavar="S[,S]",
                 help="recording, complete, interrupted, failed, purged (repeatable)."),
    click.option("--node", multiple=True, metavar="NODE[,NODE]", help="Relay node (repeatable)."),
    click.option("--max-loss", type=float, metavar="PCT", help="Worst stream loss ≤ PCT %."),
    click.option("--min-loss", type=float, metavar="PCT", help="Worst stream loss ≥ PCT %."),
    click.option("--max-jitter", type=float, metavar="MS", help="Worst stream jitter ≤ MS."),
    click.option("--min-jitter", type=float, metavar="MS", help="Worst stream jitter ≥ MS."),
    click.option("--min-mos", type=float, metavar="MOS", help="Lowest stream MOS ≥ MOS."),
    click.option("--max-mos", type=float, metavar="MOS", help="Lowest stream MOS ≤ MOS."),
    click.option("--meta", multiple=True, metavar="KEY=VALUE",
                 help="Call metadata key equals value (repeatable, all must match)."),
    click.option("--held/--not-held", default=None, help="Only held / only not held."),
]  # fmt: skip


def filter_options(f: F) -> F:
    for option in reversed(_FILTERS):
        f = option(f)
    return f


def output_options(f: F) -> F:
    """--json / --csv / --vertical / --table into one `fmt` argument."""
    for name in ("vertical", "csv", "json"):
        f = click.option(f"--{name}", "fmt", flag_value=name, help=f"Output as {name}.")(f)
    return click.option(
        "--table",
        "fmt",
        flag_value="table",
        default="table",
        help="Output as a table sized to the terminal (default).",
    )(f)


FILTER_KEYS = ("since", "until", "call_id", "caller", "callee", "party", "ip", "codec",
               "min_duration", "max_duration", "status", "node", "max_loss", "min_loss",
               "max_jitter", "min_jitter", "min_mos", "max_mos", "meta", "held")  # fmt: skip


def make_filter(
    opts: dict[str, Any], *, limit: int | None = None, sort: str = "-started",
    ids: tuple[str, ...] = (),
) -> SearchFilter:  # fmt: skip
    """click keyword arguments → SearchFilter (pops the filter keys from `opts`)."""
    values = {k: opts.pop(k, None) for k in FILTER_KEYS}
    return SearchFilter(
        since=values["since"], until=values["until"], call_id=values["call_id"],
        caller=values["caller"], callee=values["callee"], party=values["party"],
        ip=values["ip"], codec=values["codec"], min_duration=values["min_duration"],
        max_duration=values["max_duration"], status=_csv(values["status"] or ()),
        node=_csv(values["node"] or ()), max_loss=values["max_loss"],
        min_loss=values["min_loss"], max_jitter=values["max_jitter"],
        min_jitter=values["min_jitter"], min_mos=values["min_mos"], max_mos=values["max_mos"],
        meta=parse_meta(tuple(values["meta"] or ())), held=values["held"], ids=ids,
        limit=limit if limit and limit > 0 else None, sort=parse_sort(sort),
    )  # fmt: skip


def describe_filter(flt: SearchFilter) -> dict[str, Any]:
    """The constraints actually set, for the audit log (JSON-safe)."""
    out: dict[str, Any] = {}
    for key, value in flt.__dict__.items():
        if value in (None, (), []) or key in ("limit", "sort"):
            continue
        out[key] = [list(v) if isinstance(v, tuple) else v for v in value] if isinstance(
            value, tuple) else value  # fmt: skip
    return out
