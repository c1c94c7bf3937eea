"""Search on a 1,000,000-recording index: p95 of the typical queries, SQLite and PostgreSQL.

    .venv/bin/python bench/search.py                       # 1M rows, both databases
    .venv/bin/python bench/search.py --rows 100000 --backends sqlite --reps 20

For each database: a fresh index (the real migrations), bulk-loaded with bench/search_data.py
recordings (sqlite3 executemany / PostgreSQL COPY), then each typical query is timed

* through the query function alone: `build_query` + running it + turning rows into results
  (what `rtpvault search` does between parsing its options and printing), `--reps` times with
  varied parameters, interleaved across queries;
* end to end through the CLI process (`rtpvault search --db URL … --json`, fork to exit,
  Python start-up included), `--cli-reps` times.

rtpengine has no recording search, so unlike the other benches there is no side-by-side ratio:
the goal (p95 < 200 ms through the query function) is the reference. The PostgreSQL data lives
in a database of its own, dropped at the end; the SQLite file in a temporary directory.
Streams rows are not loaded (no search reads them); side tables (ips, codecs, meta) are.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import command_line  # noqa: E402
from bench.search_data import recordings  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
GOAL_MS = 200.0
REC_COLS = (
    "id", "call_id", "tags", "caller", "callee", "node", "started", "ended", "duration",
    "status", "reason", "format", "link", "path", "metadata_path", "sidecar_path", "size",
    "sha256", "codecs", "metadata", "meta", "packets", "worst_loss", "worst_jitter", "min_mos",
    "archive_state", "object_key", "object_version", "object_sha256", "local_removed",
    "legal_hold", "hold_reason", "retain_until", "sidecar", "updated",
)  # fmt: skip


def rows(n: int, now: float) -> Iterator[tuple[tuple[Any, ...], list[tuple[str, str]],
                                                 list[str], list[tuple[str, str]]]]:  # fmt: skip
    """(recording row, ips, codecs, meta pairs) per synthetic recording."""
    for d in recordings(n, seed=7, now=now):
        st = d["streams"]
        rtp = [s for s in st if s["packets"]]
        meta = dict(p.split(":", 1) for p in d["metadata"].split("|"))
        archived = d["status"] == "complete"
        sidecar = {"version": 1, "id": d["id"], "call_id": d["call_id"], "codecs": d["codecs"]}
        row = (
            d["id"], d["call_id"], json.dumps(d["tags"]), d["caller"], d["callee"], d["node"],
            d["started"], d["ended"], (d["ended"] - d["started"]) if d["ended"] else None,
            d["status"], d["reason"], d["format"], d["link"], d["path"], None, None, d["size"],
            d["sha256"], ",".join(d["codecs"]), d["metadata"], json.dumps(meta),
            sum(s["packets"] for s in st), max(s["loss_pct"] for s in rtp),
            max(s["jitter_ms"] for s in rtp),
            min(s["mos"] for s in rtp) if d["codecs"][0] != "G722" else None,
            "archived" if archived else "local", f"rec/{d['id']}.pcap" if archived else None,
            None, d["sha256"] if archived else None, False, False, None, None,
            json.dumps(sidecar), d["started"],
        )  # fmt: skip
        ips = sorted({s[k].rsplit(":", 1)[0] for s in st for k in ("src", "dst")})
        yield row, [(d["id"], ip) for ip in ips], d["codecs"], [
            (k, v) for k, v in sorted(meta.items())]  # fmt: skip


def load_sqlite(path: str, n: int, now: float, batch: int = 20000) -> None:
    con = sqlite3.connect(path)
    con.execute("PRAGMA synchronous=OFF")
    recs: list[tuple[Any, ...]] = []
    ips: list[tuple[str, str]] = []
    codecs: list[tuple[str, str]] = []
    meta: list[tuple[str, str, str]] = []

    def flush() -> None:
        con.executemany(f"INSERT INTO recordings ({','.join(REC_COLS)}) VALUES "
                        f"({','.join('?' * len(REC_COLS))})", recs)  # fmt: skip
        con.executemany("INSERT INTO recording_ips VALUES (?, ?)", ips)
        con.executemany("INSERT INTO recording_codecs VALUES (?, ?)", codecs)
        con.executemany("INSERT INTO recording_meta VALUES (?, ?, ?)", meta)
        con.commit()
        for lst in (recs, ips, codecs, meta):
            lst.clear()

    for row, ip, cs, mt in rows(n, now):
        recs.append(row)
        ips += ip
        codecs += [(row[0], c) for c in cs]
        meta += [(row[0], k, v) for k, v in mt]
        if len(recs) >= batch:
            flush()
    flush()
    con.execute("PRAGMA synchronous=NORMAL")
    con.close()


def load_postgres(url: str, n: int, now: float) -> None:
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as con, con.cursor() as cur:
        tables = {"recordings": REC_COLS, "recording_ips": ("recording_id", "ip"),
                  "recording_codecs": ("recording_id", "codec"),
                  "recording_meta": ("recording_id", "key", "value")}  # fmt: skip
        side: dict[str, list[tuple[Any, ...]]] = {t: [] for t in tables if t != "recordings"}
        with cur.copy(f"COPY recordings ({','.join(REC_COLS)}) FROM STDIN") as cp:
            for row, ip, cs, mt in rows(n, now):
                cp.write_row(row)
                side["recording_ips"] += ip
                side["recording_codecs"] += [(row[0], c) for c in cs]
                side["recording_meta"] += [(row[0], k, v) for k, v in mt]
        for table, data in side.items():
            with cur.copy(f"COPY {table} ({','.join(tables[table])}) FROM STDIN") as cp:
                for r in data:
                    cp.write_row(r)
        con.commit()
        con.autocommit = True
        cur.execute("ANALYZE")  # what autovacuum does after a bulk load


# ------------------------------------------------------------------ the queries

Query = tuple[str, Callable[[random.Random], list[str]]]


def queries(sample: list[dict[str, Any]], now: float) -> list[Query]:
    def day_window(rng: random.Random) -> list[str]:
        start = now - rng.uniform(1, 89) * 86400
        return ["--since", f"@{start}", "--until", f"@{start + 86400}"]

    def pick(rng: random.Random) -> dict[str, Any]:
        return sample[rng.randrange(len(sample))]

    return [
        ("time range (1 day window)", day_window),
        ("recent (--since 2h)", lambda rng: ["--since", "2h"]),
        ("caller exact", lambda rng: ["--caller", pick(rng)["caller"]]),
        ("caller glob prefix", lambda rng: ["--caller", pick(rng)["caller"][:9] + "*"]),
        ("party (caller or callee)", lambda rng: ["--party", pick(rng)["callee"]]),
        ("call-id exact", lambda rng: ["--call-id", pick(rng)["call_id"]]),
        ("call-id prefix", lambda rng: ["--call-id", pick(rng)["call_id"][:6] + "*"]),
        ("quality: loss ≥ 5% last 7d", lambda rng: ["--since", "7d", "--min-loss", "5"]),
        ("quality: MOS ≤ 3.5, 1 day", lambda rng: day_window(rng) + ["--max-mos", "3.5"]),
        ("meta dept=billing + 1 day", lambda rng: day_window(rng) + ["--meta", "dept=billing"]),
        ("codec G722 + 1 day", lambda rng: day_window(rng) + ["--codec", "G722"]),
        ("ip (one address)", lambda rng: ["--ip", pick(rng)["ip"]]),
    ]


def time_function(url: str, qs: list[Query], reps: int, seed: int) -> dict[str, list[float]]:
    from rtpvault.cli.search.commands import search_cmd
    from rtpvault.cli.search.opts import make_filter
    from rtpvault.cli.search.rows import run_search, summary
    from storage.db import open_index

    index = open_index(url, create=False)
    rng = random.Random(seed)
    out: dict[str, list[float]] = {name: [] for name, _ in qs}
    counts: dict[str, list[int]] = {name: [] for name, _ in qs}
    try:
        for _ in range(reps):
            for name, make in qs:
                ctx = search_cmd.make_context("search", [*make(rng), "--db", url])
                params = dict(ctx.params)
                flt = make_filter(params, limit=params["limit"], sort=params["sort"])
                t0 = time.perf_counter()
                with index.session() as s:
                    found = [summary(r) for r in run_search(s, flt)]
                out[name].append((time.perf_counter() - t0) * 1000)
                counts[name].append(len(found))
    finally:
        index.close()
    out.update({f"{k} #rows": [float(statistics.median(v))] for k, v in counts.items()})
    return out


def time_cli(url: str, qs: list[Query], reps: int, seed: int) -> dict[str, list[float]]:
    exe = Path(sys.executable).with_name("rtpvault")
    rng = random.Random(seed)
    out: dict[str, list[float]] = {name: [] for name, _ in qs}
    for _ in range(reps):
        for name, make in qs:
            t0 = time.perf_counter()
            subprocess.run([str(exe), "search", "--db", url, *make(rng), "--json"], check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
            out[name].append((time.perf_counter() - t0) * 1000)
    return out


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def sample_rows(n: int, now: float, k: int = 400) -> list[dict[str, Any]]:
    rng = random.Random(3)
    picks = set(rng.sample(range(n), min(k, n)))
    out = []
    for i, d in enumerate(recordings(n, seed=7, now=now)):
        if i in picks:
            out.append({"caller": d["caller"], "callee": d["callee"], "call_id": d["call_id"],
                        "ip": d["streams"][0]["src"].rsplit(":", 1)[0]})  # fmt: skip
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--reps", type=int, default=40, help="per query, through the function")
    ap.add_argument("--cli-reps", type=int, default=6, help="per query, through the CLI process")
    ap.add_argument("--json", help="write all timings here")
    args = ap.parse_args()
    print("command:", command_line())
    print(f"machine: {os.cpu_count()} CPUs, shared with other engineers' runs")
    from sqlalchemy import create_engine, text

    from storage.db import upgrade

    now = time.time()
    t0 = time.perf_counter()
    sample = sample_rows(args.rows, now)
    print(f"sampled query parameters in {time.perf_counter() - t0:.1f} s")
    qs = queries(sample, now)
    results: dict[str, Any] = {"rows": args.rows, "command": command_line()}
    for backend in args.backends.split(","):
        tmp = tempfile.mkdtemp(prefix="rvbench-")
        name = f"rvbench_{uuid.uuid4().hex[:10]}"
        admin = None
        if backend == "sqlite":
            url = f"sqlite:///{tmp}/index.db"
        else:
            admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(text(f'CREATE DATABASE "{name}"'))
            url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        try:
            upgrade(url)
            t0 = time.perf_counter()
            if backend == "sqlite":
                load_sqlite(f"{tmp}/index.db", args.rows, now)
            else:
                load_postgres(url, args.rows, now)
            load_s = time.perf_counter() - t0
            print(f"\n{backend}: loaded {args.rows:,} recordings in {load_s:.0f} s "
                  f"({args.rows / load_s:,.0f}/s)")  # fmt: skip
            fn = time_function(url, qs, args.reps, seed=11)
            cli = time_cli(url, qs, args.cli_reps, seed=13)
            results[backend] = {"load_seconds": load_s, "function_ms": fn, "cli_ms": cli}
            print(f"{'query':32} {'rows':>5} {'fn p50':>8} {'fn p95':>8} {'CLI p50':>8} "
                  f"{'CLI p95':>8}  goal fn p95 < {GOAL_MS:.0f} ms")  # fmt: skip
            for qname, _ in qs:
                f_ms, c_ms = fn[qname], cli[qname]
                ok = "ok" if p95(f_ms) < GOAL_MS else "MISSED"
                print(
                    f"{qname:32} {fn[qname + ' #rows'][0]:5.0f} {statistics.median(f_ms):8.1f} "
                    f"{p95(f_ms):8.1f} {statistics.median(c_ms):8.0f} {p95(c_ms):8.0f}  {ok}"
                )
        finally:
            if admin is not None:
                with admin.connect() as c:
                    c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE datname = :n"), {"n": name})  # fmt: skip
                    c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
                admin.dispose()
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
