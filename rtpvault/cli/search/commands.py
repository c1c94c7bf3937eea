"""`rtpvault search | show | audit` (this module) and, registered from here, `fetch | export`
(search.files), `verify` (search.verify) and `hold | release | purge` (search.gov).

Every command reads `--config-file` (rtpengine.conf: recording-dir / recording-db / s3-*) or
`--db URL`, appends what it did to the hash-chained audit log with the OS user, and reports any
failure as one line with a non-zero exit. See docs/search.md.
"""

from __future__ import annotations

import json
from typing import Any

import click

from rtpvault.cli.search import out as output
from rtpvault.cli.search.ctx import OneLineCommand, Vault, friendly, source_options, terminal_width
from rtpvault.cli.search.opts import (
    TimeType,
    describe_filter,
    filter_options,
    make_filter,
    output_options,
)

__all__ = ["register"]


@click.command("search", cls=OneLineCommand)
@source_options
@filter_options
@click.option("--limit", default=50, show_default=True, help="At most this many (0 = all).")
@click.option("--sort", default="-started", show_default=True,
              help="Keys started, duration, caller, callee, call_id, size, status, node, loss, "
                   "jitter, mos; comma-separated, '-' = descending.")  # fmt: skip
@output_options
@friendly
def search_cmd(vault: Vault, limit: int, sort: str, fmt: str, **opts: Any) -> None:
    """Find recordings. Newest first; filters combine with AND."""
    from rtpvault.cli.search.rows import run_search, summary

    flt = make_filter(opts, limit=limit, sort=sort)
    with vault.attempt("search", None, filter=describe_filter(flt)) as att:
        with vault.session() as session:
            rows = [summary(r) for r in run_search(session, flt)]
        att.details["results"] = len(rows)
    click.echo(output.render(fmt, rows, terminal_width()))


@click.command("show", cls=OneLineCommand)
@source_options
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Everything as one JSON document.")
@friendly
def show_cmd(vault: Vault, ref: str, as_json: bool) -> None:
    """Everything about one recording: streams, quality, SDP, sidecar, archive, hold, audit.

    REF is a recording ID (or a unique prefix of one, 8+ characters) or a Call-ID."""
    from rtpvault.cli.search.rows import details

    with vault.session() as session:
        (rec,) = vault.resolve(session, "show", (ref,), "first")
        vault.audit("show", rec.id, call_id=rec.call_id)
        doc = details(session, rec)
    if as_json:
        click.echo(json.dumps(doc, indent=2, default=str))
        return
    click.echo(render_details(doc))


def render_details(doc: dict[str, Any]) -> str:
    """The `show` text: the recording's fields, then one section per part."""
    out = [output.render_vertical([doc["recording"]]).split("\n", 1)[-1]]
    if doc.get("archive"):
        out += ["", "Archive:"] + [f"  {k}: {v}" for k, v in doc["archive"].items()]
    out += _render_parts(doc.get("series"))
    out += ["", "Streams:"]
    cols = ("ssrc", "kind", "party", "src", "dst", "codec", "packets", "lost", "loss_pct",
            "jitter_ms", "mos")  # fmt: skip
    table = [{c: s.get(c) for c in cols} for s in doc["streams"]]
    columns = [output.Column(c, c.upper(), 0, right=c in ("packets", "lost"),
                                fmt=(lambda v, tz: f"0x{int(v):08x}") if c == "ssrc" else None)
               for c in cols]  # fmt: skip
    out += ["  " + line for line in output.render_table(table, 400, None, columns).splitlines()]
    for sdp in doc.get("sdp") or []:
        out += ["", f"SDP {sdp.get('direction')} from {sdp.get('party')} (as sent on):"]
        out += ["  " + line for line in str(sdp.get("out") or sdp.get("in") or "").splitlines()]
    if doc.get("pauses"):
        out += ["", "Pauses:"] + [f"  {p.get('start')} – {p.get('end')}" for p in doc["pauses"]]
    out += ["", "Audit:"]
    when = output.COLUMNS[1]
    out += [f"  {output.human(when, a['time'], None)}  {a['user']}  {a['action']}  "
            f"{json.dumps(a.get('details') or {}, ensure_ascii=False)}"
            for a in doc["audit"]]  # fmt: skip
    out += ["", "Sidecar:", json.dumps(doc.get("sidecar"), indent=2, default=str)]
    return "\n".join(out)


def _render_parts(series: dict[str, Any] | None) -> list[str]:
    """The `Parts:` section of a recording in several parts (or with one missing)."""
    if not series or (len(series["parts"]) < 2 and not series["missing"]):
        return []
    out = ["", f"Parts (recording {series['series']}):"]
    cols = ("part", "id", "status", "node", "started", "size", "hold", "path")
    table = [{c: p.get(c) for c in cols} for p in series["parts"]]
    table += [{"part": n, "status": "MISSING (not in the index)"} for n in series["missing"]]
    table.sort(key=lambda p: int(p["part"]))
    columns = [output.Column(c, c.upper(), 0, fmt=output.COLUMNS[1].fmt if c == "started" else (
        (lambda v, tz: "held" if v else "") if c == "hold" else None)) for c in cols]  # fmt: skip
    out += ["  " + line for line in output.render_table(table, 400, None, columns).splitlines()]
    return out


@click.command("audit", cls=OneLineCommand)
@source_options
@click.option("--since", type=TimeType(), help="Entries at or after (2h, 3d, ISO …).")
@click.option("--until", type=TimeType(), help="Entries before.")
@click.option("--user", "users", multiple=True, help="Only this OS user (repeatable).")
@click.option(
    "--action",
    "actions",
    multiple=True,
    help="search, show, fetch, export, verify, hold, release, purge, purge-files (repeatable).",
)
@click.option("--recording", "ref", metavar="ID|CALL-ID", help="Entries about one recording.")
@click.option("--limit", default=100, show_default=True, help="Newest N entries (0 = all).")
@output_options
@friendly
def audit_cmd(vault: Vault, since: float | None, until: float | None, users: tuple[str, ...],
              actions: tuple[str, ...], ref: str | None, limit: int, fmt: str) -> None:  # fmt: skip
    """Who did what, when: the audit log, newest first."""
    from rtpvault.cli.search.rows import audit_row, audit_target
    from storage.search import audit_query

    with vault.session() as session:
        rid = None
        if ref:
            with vault.attempt("audit", None, failures_only=True, ref=ref):
                rid = audit_target(session, ref)
        q = audit_query(since=since, until=until, users=users, actions=actions,
                        target=rid, limit=limit or None)  # fmt: skip
        rows = [audit_row(e) for e in session.scalars(q)]
    vault.audit("audit", rid, results=len(rows))
    if fmt == "table":
        cols = [output.Column("time", "TIME", 0, fmt=output.COLUMNS[1].fmt),
                output.Column("user", "USER", 0, cut=True),
                output.Column("action", "ACTION", 0),
                output.Column("recording_id", "RECORDING", 0, cut=True),
                output.Column("details", "DETAILS", 1, cut=True,
                                 fmt=lambda v, tz: json.dumps(v, sort_keys=True))]  # fmt: skip
        click.echo(output.render_table(rows, terminal_width(), None, cols))
    else:
        click.echo(output.render(fmt, rows, terminal_width()))


def register(cli: click.Group) -> None:
    """Add the recording-search subcommands to the top-level `rtpvault` group."""
    import importlib

    commands = [search_cmd, show_cmd, audit_cmd]
    for name in ("files", "verify", "gov"):
        try:
            commands += importlib.import_module(f"rtpvault.cli.search.{name}").COMMANDS
        except ModuleNotFoundError as exc:  # while being built
            if exc.name != f"rtpvault.cli.search.{name}":
                raise
    for command in commands:
        cli.add_command(command)
