#!/usr/bin/env python3
"""Issue 20: what call state in Redis costs, and how long a restore takes, for rtpvault and
rtpengine 10.5 on the same load in one run.

Both daemons get the same rtpengine long options (`--table=-1 --interface=lo/127.0.0.1
--log-level=6 --timeout=3600`, plus what tests/support/daemons.py always adds), and with Redis
`--redis=127.0.0.1:6379/DB` (the `redis` key of the config). Each daemon has a Redis DB of its
own (--db-rtpengine, --db-rtpvault; FLUSHDB of those two only), because rtpengine restores
every key of its DB (`KEYS *`, daemon/redis.c redis_restore). Loopback only.

1. **Cost per call.** Four daemons up at once: each relay without and with `redis`. Passes of
   --calls calls (offer + answer + delete, the Kamailio-shaped requests of bench/ng_setup.py,
   `delete-delay=0`), one client, strictly request then reply. Per request: latency from send to
   reply; per pass: utime+stime (/proc/<pid>/stat) of the daemon's whole process tree (every
   process, all threads: rtpengine's threads, rtpvault's supervisor, workers and their Redis
   writer threads) from just before the first request until, with Redis, the DB is empty again
   (every write and delete has landed: rtpvault writes off the event loop, so its last writes
   can trail the last reply). --repeat passes per daemon, interleaved, the order rotating; the
   table shows the median over the passes of each figure.
2. **Restore.** Per relay: a fresh daemon with `redis`, --restore-calls calls set up (offer +
   answer, no media), until the DB holds one key per call; every call is queried; then SIGKILL
   to every process of the daemon (as a crash), and the same command line again (same ng port,
   same media port range). The figure is the time from starting the new process to the first
   `list` reply that lists every call (polled every --poll-ms ms; rtpengine answers no ng
   request until its restore is done, main.c do_redis_restore runs before the poller threads
   start). Then every call is queried again and compared with its answer before the crash (tags
   and, per stream, local port and peer endpoint), every call is deleted, and the DB must be
   empty. Last, the start-up time of the same daemon with an empty DB (kill -9, FLUSHDB,
   start), so the restore's own share is the difference. The daemons' own log lines about the
   restore are printed (rtpengine: "Redis restore time = N ms"). For rtpvault also: SIGKILL to
   one worker only with the calls up; the supervisor forks a replacement that restores the
   calls it owns; the time from the kill until one of them answers `query`, and every call
   checked as above.

    .venv/bin/python bench/redis.py                        # both relays, about 2-3 minutes
    .venv/bin/python bench/redis.py --only rtpengine       # the reference alone
    .venv/bin/python bench/redis.py --calls 2000 --repeat 3 --restore-calls 1000 --json out.json
"""

from __future__ import annotations

import argparse
import os
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import _common as common  # noqa: E402
import ng_setup  # noqa: E402  (its Kamailio-shaped requests and daemon start-up)

common.add_repo_to_path()

from tests.support import daemons  # noqa: E402
from tests.support.ng import NgClient  # noqa: E402

# this file is bench/redis.py: keep `import redis` (redis-py) anywhere below from finding it
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]

KINDS = ("rtpengine", "rtpvault")
REFERENCE = "rtpengine"
STEPS = ("offer", "answer", "delete")
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
RETRANSMIT_AFTER = 1.0
# ng cookies unique over the run (and across runs): both daemons answer a repeated cookie from
# their reply cache, so a cookie used again would be timed without doing the work
RUN = os.urandom(4).hex().encode()
COOKIES = count(1)
MAX_TRIES = 4


# ---------------------------------------------------------------- Redis (redis-cli)


def redis_cli(db: int, *args: str) -> str:
    """One redis-cli command on DB `db` of the machine's Redis; its output, stripped."""
    out = subprocess.run(
        ["redis-cli", "-h", REDIS_HOST, "-p", str(REDIS_PORT), "-n", str(db), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return out.stdout.strip()


def dbsize(db: int) -> int:
    return int(redis_cli(db, "DBSIZE"))


def wait_dbsize(db: int, want: int, timeout: float) -> tuple[int, float]:
    """Poll DBSIZE until it is `want` or `timeout` passed: (last size, seconds waited)."""
    t0 = time.monotonic()
    while True:
        n = dbsize(db)
        if n == want or time.monotonic() - t0 > timeout:
            return n, time.monotonic() - t0
        time.sleep(0.05)


def key_sizes(db: int, sample: int = 20) -> tuple[int, float | None]:
    """(keys in the DB, mean STRLEN in bytes of up to `sample` of them)."""
    keys = [k for k in redis_cli(db, "--scan").splitlines() if k][:sample]
    lens = []
    for k in keys:
        try:
            lens.append(int(redis_cli(db, "STRLEN", k)))
        except (ValueError, subprocess.CalledProcessError):
            continue
    return dbsize(db), (statistics.mean(lens) if lens else None)


# ---------------------------------------------------------------- daemons


def redis_option(db: int) -> str:
    return f"--redis={REDIS_HOST}:{REDIS_PORT}/{db}"


def command(kind: str, args: list[str]) -> list[str]:
    """The command line daemons.start runs for `kind` with `args` (to start it again)."""
    if kind == "rtpengine":
        return [daemons.require("rtpengine"), *args, "--no-log-timestamps"]
    return [*daemons.rtpvault_command(), "run", *args]


def start(
    kind: str, workdir: Path, ports: int, options: list[str], base: list[str]
) -> daemons.Daemon:
    return ng_setup.start_daemon(kind, options, workdir, ports, base)


def kill_tree(d: daemons.Daemon) -> int:
    """SIGKILL to every process of the daemon at once (a crash); wait until all are gone.
    Returns how many processes there were."""
    pids = common.process_tree(d.proc.pid)
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    d.proc.wait(10)
    deadline = time.monotonic() + 10
    for p in pids[1:]:  # orphaned workers are reaped by init
        while time.monotonic() < deadline:
            try:
                state = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                break
            if state in ("Z", "X"):
                break
            time.sleep(0.01)
    return len(pids)


def relaunch(d: daemons.Daemon, workdir: Path, tag: str) -> daemons.Daemon:
    """The same daemon (same arguments: ng port, port range) started again, not waited for."""
    log_path = workdir / f"{d.name}-{d.ng_port}-{tag}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the process
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        command(d.name, d.args),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=workdir,
        env=env,
    )
    return daemons.Daemon(d.name, proc, d.ng_port, d.port_min, d.port_max, log_path, None, d.args)


# ---------------------------------------------------------------- ng client


class Sequential:
    """One UDP ng client, strictly request then reply, retransmitting a lost request."""

    def __init__(self, port: int) -> None:
        self.addr = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.retransmits = 0

    def close(self) -> None:
        self.sock.close()

    def send(self, body: bytes, timeout: float = RETRANSMIT_AFTER) -> tuple[float, bytes]:
        """(seconds from first send to the reply, reply body). TimeoutError after MAX_TRIES."""
        cookie = b"%s%d" % (RUN, next(COOKIES))  # unique: rtpengine caches replies by cookie
        payload = cookie + b" " + body
        t0 = time.perf_counter()
        for tries in range(MAX_TRIES):
            if tries:
                self.retransmits += 1
            self.sock.sendto(payload, self.addr)
            self.sock.settimeout(timeout)
            end = time.perf_counter() + timeout
            while True:
                try:
                    data = self.sock.recv(65535)
                except (TimeoutError, ConnectionRefusedError):
                    break
                if data.startswith(cookie + b" "):
                    return time.perf_counter() - t0, data[len(cookie) + 1 :]
                left = end - time.perf_counter()
                if left <= 0:
                    break
                self.sock.settimeout(left)
        raise TimeoutError(f"no reply after {MAX_TRIES} tries of {timeout:g} s")


def decode(reply: bytes) -> dict[str, Any]:
    import bencodepy

    from tests.support.ng import to_str

    return dict(to_str(bencodepy.decode(reply)))


def ng(d: daemons.Daemon, body: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    c = NgClient("127.0.0.1", d.ng_port, timeout)
    try:
        return c.call(body)
    finally:
        c.close()


# ---------------------------------------------------------------- 1. cost per call


@dataclass
class Pass:
    variant: str
    calls: int = 0
    errors: int = 0
    retransmits: int = 0
    first_error: str | None = None
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)  # step -> p50/p95
    daemon_cpu_s: float = 0.0
    drain_s: float = 0.0
    keys_left: int | None = None

    @property
    def cpu_us_per_call(self) -> float | None:
        return self.daemon_cpu_s / self.calls * 1e6 if self.calls else None


def pct(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def cost_pass(
    d: daemons.Daemon, variant: str, calls: int, numbers: Iterator[int], db: int | None
) -> Pass:
    """--calls calls of offer+answer+delete on `d`; CPU until the DB (if any) is empty again."""
    p = Pass(variant)
    lat: dict[str, list[float]] = {s: [] for s in STEPS}
    client = Sequential(d.ng_port)
    pid = d.proc.pid
    cpu0 = common.cpu_seconds(pid)
    try:
        for _ in range(calls):
            n = next(numbers)
            ok = True
            for step in STEPS:
                took, reply = client.send(ng_setup.request(step, n))
                problem = ng_setup.reply_problem(step, reply)
                if problem is not None:
                    p.errors += 1
                    p.first_error = p.first_error or f"{step}: {problem}"
                    ok = False
                    break
                lat[step].append(took)
            p.calls += ok
    finally:
        client.close()
        if db is not None:
            p.keys_left, p.drain_s = wait_dbsize(db, 0, 10.0)
        p.daemon_cpu_s = common.cpu_seconds(pid) - cpu0
        p.retransmits = client.retransmits
    for step, values in lat.items():
        if values:
            values.sort()
            p.latency_ms[step] = {
                "p50": statistics.median(values) * 1e3,
                "p95": pct(values, 0.95) * 1e3,
            }
    return p


def cost_phase(
    args: argparse.Namespace, workdir: Path, log: Callable[[str], None]
) -> tuple[dict[str, list[Pass]], list[str]]:
    """All variants up at once; --repeat interleaved passes each."""
    notes: list[str] = []
    live: dict[str, tuple[daemons.Daemon, Iterator[int], int | None]] = {}
    passes: dict[str, list[Pass]] = {}
    try:
        for kind in args.kinds:
            for mode in ("off", "on"):
                variant = f"{kind}/{mode}"
                db = args.db[kind] if mode == "on" else None
                opts = [redis_option(db)] if db is not None else []
                if db is not None:
                    redis_cli(db, "FLUSHDB")
                try:
                    d = start(kind, workdir / variant.replace("/", "-"), 400, opts, args.base)
                except RuntimeError as e:
                    notes.append(f"{variant}: NOT MEASURED, did not start: {ng_setup.short(e)}")
                    log(f"[{variant}] did not start: {ng_setup.short(e)}")
                    continue
                log(f"[{variant}] pid {d.proc.pid}, ng {d.ng_port}, {' '.join(opts) or 'no redis'}")
                live[variant] = (d, count(1), db)
        for variant, (d, numbers, db) in live.items():  # warm-up
            cost_pass(d, variant, args.warmup, numbers, db)
        order = list(live)
        for rep in range(args.repeat):
            for variant in order[rep % len(order) :] + order[: rep % len(order)]:
                d, numbers, db = live[variant]
                try:
                    p = cost_pass(d, variant, args.calls, numbers, db)
                except (TimeoutError, OSError) as e:
                    notes.append(f"{variant}: pass {rep + 1} failed: {e}")
                    log(f"[{variant}] pass {rep + 1} failed: {e}")
                    log(ng_setup.tail(d.log()))
                    continue
                passes.setdefault(variant, []).append(p)
                lat = " ".join(
                    f"{s} {v['p50']:.3f}/{v['p95']:.3f}" for s, v in p.latency_ms.items()
                )
                log(
                    f"[{variant}] pass {rep + 1}: {p.calls} calls, {p.errors} errors, "
                    f"CPU {p.cpu_us_per_call or 0:.0f} us/call, latency ms p50/p95 {lat}"
                    + (f", DB drained in {p.drain_s:.2f} s" if db is not None else "")
                )
                if p.first_error:
                    notes.append(
                        f"{variant}: pass {rep + 1}: {p.errors} errors, first: {p.first_error}"
                    )
                if p.keys_left:
                    notes.append(
                        f"{variant}: pass {rep + 1}: {p.keys_left} keys left in the "
                        "DB after every call was deleted"
                    )
    finally:
        for d, _, _ in live.values():
            d.stop()
    return passes, notes


def median_of(passes: list[Pass], get: Callable[[Pass], float | None]) -> float | None:
    values = [v for v in (get(p) for p in passes) if v is not None]
    return statistics.median(values) if values else None


# ---------------------------------------------------------------- 2. restore


@dataclass
class Restore:
    kind: str
    calls: int = 0
    setup_s: float = 0.0
    keys: int = 0
    key_bytes: float | None = None
    processes_killed: int = 0
    first_reply_s: float | None = None
    all_listed_s: float | None = None
    listed: int | None = None
    queried_ok: int = 0
    query_mismatch: int = 0
    query_errors: int = 0
    deleted_ok: int = 0
    keys_after_delete: int | None = None
    empty_start_s: float | None = None
    logged_restore_ms: float | None = None
    foreign_ports: int | None = None
    timeline: dict[str, float] = field(default_factory=dict)  # s after the start, from the log
    log_lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def call_id(n: int) -> str:
    return f"{n:08d}-bench@127.0.0.1"


def shape(q: dict[str, Any]) -> Any:
    """What a restore must keep of a `query` answer: per tag, per stream, local port and peer."""
    out = {}
    for tag, t in (q.get("tags") or {}).items():
        streams = []
        for m in t.get("medias") or []:
            for s in m.get("streams") or []:
                ep = s.get("endpoint") or {}
                streams.append((s.get("local port"), ep.get("address"), ep.get("port")))
        out[tag] = sorted(streams, key=repr)
    return out


def poll_listed(
    d: daemons.Daemon, want: int, t0: float, timeout: float, every: float, r: Restore
) -> None:
    """Send `list` every `every` s until a reply lists `want` calls; fill r's times."""
    body = ng_setup.encode_ordered({"command": "list", "limit": want + 100})
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    try:
        seq = 0
        while time.perf_counter() - t0 < timeout:
            if d.proc.poll() is not None:
                r.problems.append(f"daemon exited with {d.proc.returncode} during restore")
                return
            seq += 1
            try:
                s.sendto(b"%sp%d " % (RUN, seq) + body, ("127.0.0.1", d.ng_port))
            except OSError:
                pass
            end = time.perf_counter() + every
            while (left := end - time.perf_counter()) > 0:
                ready = select.select([s], [], [], left)[0]
                if not ready:
                    break
                try:
                    data = s.recv(1 << 20)
                except (BlockingIOError, ConnectionRefusedError):
                    continue
                now = time.perf_counter() - t0
                r.first_reply_s = r.first_reply_s if r.first_reply_s is not None else now
                try:
                    calls = decode(data.split(b" ", 1)[1]).get("calls")
                except Exception:  # noqa: BLE001 - a reply we cannot read counts as none
                    continue
                if isinstance(calls, list):
                    r.listed = len(calls)
                    if len(calls) >= want:
                        r.all_listed_s = now
                        return
    finally:
        s.close()


def restore_log_lines(text: str) -> list[str]:
    """The daemon's summary lines about the restore (rtpengine: "Redis restore time = N ms",
    rtpvault: "Redis restore: N calls restored, M skipped in X ms"), then the first few other
    lines that mention Redis or a restore (skips, errors) and how many more there were."""
    pat = re.compile(r"restor|redis", re.IGNORECASE)
    summary = re.compile(r"restore time|calls restored", re.IGNORECASE)
    skip = re.compile(r"Established initial connection|master or slave|in master mode", re.I)
    lines = [ln.strip() for ln in text.splitlines() if pat.search(ln) and not skip.search(ln)]
    head = [ln for ln in lines if summary.search(ln)]
    other = [ln for ln in lines if not summary.search(ln)]
    more = [f"... and {len(other) - 5} more such lines"] if len(other) > 5 else []
    return head + other[:5] + more


def port_holders(port: int) -> str:
    """Who has UDP `port` bound now (ss -uanp), to tell a restore's own collision from
    another program's socket."""
    out = subprocess.run(
        ["ss", "-H", "-uanp", f"sport = :{port}"], capture_output=True, text=True, timeout=10
    ).stdout
    return "; ".join(" ".join(ln.split()) for ln in out.splitlines())


class PortWatch:
    """Samples `ss -uanp` from the kill until the restore is done: who holds UDP ports of the
    daemon's range meanwhile. A restore that finds a port taken can then say whether another
    program on the host had it (other jobs run daemons with ranges of their own) or the
    restarting daemon itself."""

    USER = re.compile(r'\("([^"]*)",pid=(\d+)')

    def __init__(
        self, port_min: int, port_max: int, interval: float = 0.05, enabled: bool = True
    ) -> None:
        self.enabled = enabled
        self.range = (port_min, port_max)
        self.interval = interval
        self.seen: dict[int, set[tuple[str, int]]] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PortWatch:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.enabled:
            self._thread.join(10)

    def _run(self) -> None:
        lo, hi = self.range
        while not self._stop.is_set():
            try:
                out = subprocess.run(
                    ["ss", "-H", "-uanp"], capture_output=True, text=True, timeout=5
                ).stdout
            except (OSError, subprocess.SubprocessError):
                return
            self.samples += 1
            for ln in out.splitlines():
                parts = ln.split()
                if len(parts) < 4:
                    continue
                try:
                    port = int(parts[3].rsplit(":", 1)[1])
                except (ValueError, IndexError):
                    continue
                if lo <= port <= hi:
                    who = {(m[0], int(m[1])) for m in self.USER.findall(ln)}
                    self.seen.setdefault(port, set()).update(who)
            self._stop.wait(self.interval)

    def foreign(self, ours: set[int]) -> dict[int, set[tuple[str, int]]]:
        """Ports of the range held meanwhile by a process outside `ours`."""
        out = {}
        for port, who in self.seen.items():
            other = {w for w in who if w[1] not in ours}
            if other:
                out[port] = other
        return out


def timeline(text: str, epoch0: float) -> dict[str, float]:
    """Seconds from the process start to milestones of a log with `[epoch]` stamps (rtpvault's;
    rtpengine runs with --no-log-timestamps and logs "Startup complete" before its restore)."""
    marks = {
        "first log line": r".",
        "Redis connected": r"Established initial connection to Redis",
        "restore summary (last worker)": r"calls restored",
        "Startup complete": r"Startup complete",
    }
    out: dict[str, float] = {}
    for name, pat in marks.items():
        stamps = [
            float(m[1])
            for ln in text.splitlines()
            if re.search(pat, ln) and (m := re.match(r"\[(\d+\.\d+)\]", ln))
        ]
        if stamps:
            last = name.startswith("restore summary") or name == "Redis connected"
            out[name] = (max(stamps) if last else min(stamps)) - epoch0
    return out


def logged_restore_ms(text: str) -> float | None:
    """The restore time the daemon logs: rtpengine's "Redis restore time = N ms", rtpvault's
    "Redis restore (worker W): ... in N ms" (the slowest worker: they restore in parallel)."""
    ms = [float(x) for x in re.findall(r"Redis restore time = (\d+(?:\.\d+)?) ms", text)]
    ms += [
        float(x) for x in re.findall(r"Redis restore.*calls restored.* in (\d+(?:\.\d+)?) ms", text)
    ]
    return max(ms) if ms else None


def restore_run(
    kind: str, args: argparse.Namespace, workdir: Path, log: Callable[[str], None]
) -> Restore:
    n = args.restore_calls
    db = args.db[kind]
    r = Restore(kind)
    redis_cli(db, "FLUSHDB")
    d = start(kind, workdir / f"restore-{kind}", 4 * n + 400, [redis_option(db)], args.base)
    log(f"[{kind}] restore: pid {d.proc.pid}, ng {d.ng_port}, ports {d.port_min}-{d.port_max}")
    try:
        client = Sequential(d.ng_port)
        t0 = time.perf_counter()
        for i in range(1, n + 1):
            for step in ("offer", "answer"):
                _, reply = client.send(ng_setup.request(step, i))
                problem = ng_setup.reply_problem(step, reply)
                if problem:
                    r.problems.append(f"setup of call {i}: {step}: {problem}")
                    break
            else:
                r.calls += 1
        r.setup_s = time.perf_counter() - t0
        keys, waited = wait_dbsize(db, r.calls, 20.0)
        time.sleep(args.settle)  # a key exists after the offer; let the answer's write land too
        r.keys, r.key_bytes = key_sizes(db)
        if keys != r.calls:
            r.problems.append(f"{keys} keys in the DB for {r.calls} calls after {waited:.1f} s")
        before: dict[int, Any] = {}
        for i in range(1, n + 1):
            _, reply = client.send(
                ng_setup.encode_ordered({"command": "query", "call-id": call_id(i)})
            )
            q = decode(reply)
            if q.get("result") == "ok":
                before[i] = shape(q)
        client.close()
        log(
            f"[{kind}] {r.calls} calls set up in {r.setup_s:.2f} s, {r.keys} keys "
            f"(~{r.key_bytes or 0:.0f} bytes each), {len(before)} answer query; kill -9"
        )
        old_pids = set(common.process_tree(d.proc.pid))
        watch = PortWatch(d.port_min, d.port_max, enabled=args.watch_ports)
        with watch:
            r.processes_killed = kill_tree(d)
            t0, epoch0 = time.perf_counter(), time.time()
            d = relaunch(d, workdir / f"restore-{kind}", "restart")
            poll_listed(d, r.calls, t0, args.restore_timeout, args.poll_ms / 1000, r)
            new_pids = set(common.process_tree(d.proc.pid))
        foreign = watch.foreign(old_pids | new_pids)
        # a port a restore found taken: who held it before the kill (which call), during the
        # restart (--watch-ports) and right now, before any call is deleted
        workers = args.num_threads or os.cpu_count() or 1
        owner = {port: i for i, sh in before.items() for st in sh.values() for port, *_ in st}
        for port in sorted({int(x) for x in re.findall(r"port (\d+) taken", d.log())})[:5]:
            was = owner.get(port)
            r.problems.append(
                f"port {port} found taken at restore: before the kill it was call "
                f"{was if was is None else call_id(was)}'s"
                + (
                    f" (worker {zlib.crc32(call_id(was).encode()) % workers} of {workers})"
                    if was
                    else ""
                )
                + f"; during the restart held by {sorted(watch.seen.get(port, set())) or '?'}"
                f"; now (before the deletes) by {port_holders(port) or 'nobody'}"
            )
        r.foreign_ports = len(foreign) if args.watch_ports else None
        if foreign:
            names = sorted({f"{n}[{pid}]" for who in foreign.values() for n, pid in who})
            r.problems.append(
                f"during the restart ({watch.samples} samples of ss) {len(foreign)} ports of "
                f"the range were held by other processes: {', '.join(names[:8])}; e.g. "
                f"{sorted(foreign)[:10]}"
            )
        if r.all_listed_s is None:
            r.problems.append(
                f"not all calls listed after {args.restore_timeout:g} s (last list: {r.listed})"
            )
        log(
            f"[{kind}] restart: first ng reply {r.first_reply_s}, all {r.calls} listed at "
            f"{r.all_listed_s} s (listed {r.listed})"
        )
        if d.proc.poll() is None:
            client = Sequential(d.ng_port)
            missing: list[int] = []
            for i in range(1, n + 1):
                _, reply = client.send(
                    ng_setup.encode_ordered({"command": "query", "call-id": call_id(i)})
                )
                q = decode(reply)
                if q.get("result") != "ok":
                    r.query_errors += 1
                    missing.append(i)
                    if r.query_errors == 1:
                        r.problems.append(
                            f"query of call {i} after restore: {q.get('error-reason') or q}"
                        )
                elif i in before and shape(q) != before[i]:
                    r.query_mismatch += 1
                    if r.query_mismatch == 1:
                        r.problems.append(
                            f"call {i} differs after restore: before {before[i]}, after {shape(q)}"
                        )
                else:
                    r.queried_ok += 1
            if missing:
                r.problems.append(
                    f"{len(missing)} calls not found after restore, e.g. "
                    f"{[call_id(i) for i in missing[:5]]}"
                )
            for i in range(1, n + 1):
                _, reply = client.send(ng_setup.request("delete", i))
                if ng_setup.reply_problem("delete", reply) is None:
                    r.deleted_ok += 1
            client.close()
            r.keys_after_delete, _ = wait_dbsize(db, 0, 10.0)
            if r.keys_after_delete:
                r.problems.append(f"{r.keys_after_delete} keys left after deleting every call")
        r.log_lines = restore_log_lines(d.log())
        r.logged_restore_ms = logged_restore_ms(d.log())
        r.timeline = timeline(d.log(), epoch0)
        if d.proc.poll() is not None:
            r.problems.append(f"restarted daemon exited with {d.proc.returncode}")
            log(ng_setup.tail(d.log(), 30))
        else:
            # the same start with an empty DB: what start-up costs without a restore
            kill_tree(d)
            redis_cli(db, "FLUSHDB")
            t0 = time.perf_counter()
            d = relaunch(d, workdir / f"restore-{kind}", "empty")
            empty = Restore(kind)
            poll_listed(d, 0, t0, args.restore_timeout, args.poll_ms / 1000, empty)
            r.empty_start_s = empty.all_listed_s
        log(
            f"[{kind}] after restore: {r.queried_ok} queries as before, {r.query_mismatch} "
            f"differ, {r.query_errors} fail; {r.deleted_ok} deleted; keys left "
            f"{r.keys_after_delete}; empty start {r.empty_start_s}"
        )
    except (TimeoutError, OSError, RuntimeError) as e:
        r.problems.append(f"{type(e).__name__}: {e}")
        log(f"[{kind}] restore failed: {e}")
        log(ng_setup.tail(d.log(), 30))
    finally:
        d.stop()
        redis_cli(db, "FLUSHDB")
    return r


# ---------------------------------------------------------------- report


def f(v: float | None, digits: int) -> str:
    return "n/a" if v is None else f"{v:,.{digits}f}"


def report_cost(
    passes: dict[str, list[Pass]], kinds: list[str]
) -> tuple[str, list[dict[str, Any]]]:
    metrics: list[tuple[str, str, Callable[[Pass], float | None], int]] = [
        ("daemon CPU per call (offer+answer+delete)", "us", lambda p: p.cpu_us_per_call, 0)
    ]
    for step in STEPS:
        for q in ("p50", "p95"):
            metrics.append(
                (
                    f"{step} latency {q}",
                    "ms",
                    lambda p, s=step, q=q: p.latency_ms.get(s, {}).get(q),
                    3,
                )
            )
    header = ["metric", "unit"]
    for k in kinds:
        header += [f"{k} off", f"{k} redis", f"{k} redis/off"]
    both = set(kinds) == set(KINDS)
    if both:
        header += ["rtpvault/rtpengine off", "rtpvault/rtpengine redis"]
    rows, data = [], []
    for label, unit, get, digits in metrics:
        line = [label, unit]
        vals: dict[str, float | None] = {}
        for k in kinds:
            off = median_of(passes.get(f"{k}/off", []), get)
            on = median_of(passes.get(f"{k}/on", []), get)
            vals[f"{k}/off"], vals[f"{k}/on"] = off, on
            line += [f(off, digits), f(on, digits), f(common.ratio(on, off), 2)]
        if both:
            for mode in ("off", "on"):
                line.append(f(common.ratio(vals[f"rtpvault/{mode}"], vals[f"rtpengine/{mode}"]), 2))
        rows.append(line)
        data.append({"metric": label, "unit": unit, **vals})
    return common.text_table(header, rows), data


def worker_kill_run(
    args: argparse.Namespace, workdir: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """rtpvault only (rtpengine has threads, not worker processes): --restore-calls calls with
    `redis`, then SIGKILL to one worker; the supervisor forks a replacement, which restores the
    calls it owns from Redis. Figures: from the kill to the first `query` answered for a call of
    that worker (polled every --poll-ms ms), and whether every call answers as before."""
    n, db = args.restore_calls, args.db["rtpvault"]
    res: dict[str, Any] = {"calls": n, "problems": []}
    redis_cli(db, "FLUSHDB")
    d = start("rtpvault", workdir / "worker-kill", 4 * n + 400, [redis_option(db)], args.base)
    client = Sequential(d.ng_port)
    try:
        workers = len(common.children_of(d.proc.pid))
        res["workers"] = workers
        if workers < 2:
            res["problems"].append(f"{workers} worker process(es): nothing to kill")
            return res
        for i in range(1, n + 1):
            for step in ("offer", "answer"):
                client.send(ng_setup.request(step, i))
        wait_dbsize(db, n, 20.0)
        time.sleep(args.settle)
        before = {}
        for i in range(1, n + 1):
            q = decode(
                client.send(ng_setup.encode_ordered({"command": "query", "call-id": call_id(i)}))[1]
            )
            before[i] = shape(q)
        # worker 0 is the first child (supervisor log "worker 0 started"); its calls
        victim = sorted(common.children_of(d.proc.pid))[0]
        own = [i for i in range(1, n + 1) if zlib.crc32(call_id(i).encode()) % workers == 0]
        res["calls_of_worker"] = len(own)
        probe = ng_setup.encode_ordered({"command": "query", "call-id": call_id(own[-1])})
        os.kill(victim, signal.SIGKILL)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < args.restore_timeout:
            try:
                _, reply = client.send(probe, timeout=args.poll_ms / 1000 * 5)
            except TimeoutError:
                continue
            if decode(reply).get("result") == "ok":
                res["kill_to_answer_s"] = time.perf_counter() - t0
                break
            time.sleep(args.poll_ms / 1000)
        same = missing = 0
        for i in range(1, n + 1):
            q = decode(
                client.send(ng_setup.encode_ordered({"command": "query", "call-id": call_id(i)}))[1]
            )
            if q.get("result") != "ok":
                missing += 1
            elif shape(q) == before[i]:
                same += 1
        res["query_as_before"], res["missing"] = same, missing
        res["deleted"] = sum(
            ng_setup.reply_problem("delete", client.send(ng_setup.request("delete", i))[1]) is None
            for i in range(1, n + 1)
        )
        res["keys_left"], _ = wait_dbsize(db, 0, 10.0)
        res["log"] = [ln for ln in restore_log_lines(d.log()) if "calls restored" in ln]
        log(f"[rtpvault] worker kill: {res}")
    except (TimeoutError, OSError, RuntimeError) as e:
        res["problems"].append(f"{type(e).__name__}: {e}")
    finally:
        client.close()
        d.stop()
        redis_cli(db, "FLUSHDB")
    return res


def report_restore(res: dict[str, Restore], kinds: list[str]) -> str:
    rows_def: list[tuple[str, str, Callable[[Restore], float | None], int]] = [
        ("calls set up before the kill", "calls", lambda r: r.calls, 0),
        ("keys in Redis", "keys", lambda r: r.keys, 0),
        ("mean key size", "bytes", lambda r: r.key_bytes, 0),
        ("processes killed (kill -9)", "", lambda r: r.processes_killed, 0),
        ("start to first ng reply", "s", lambda r: r.first_reply_s, 3),
        ("start to every call listed", "s", lambda r: r.all_listed_s, 3),
        (
            "restore time the daemon logs (slowest worker)",
            "s",
            lambda r: None if r.logged_restore_ms is None else r.logged_restore_ms / 1000,
            3,
        ),
        ("start with an empty DB", "s", lambda r: r.empty_start_s, 3),
        (
            "restore share (listed - empty start)",
            "s",
            lambda r: (
                None
                if r.all_listed_s is None or r.empty_start_s is None
                else r.all_listed_s - r.empty_start_s
            ),
            3,
        ),
        ("calls that query as before", "calls", lambda r: r.queried_ok, 0),
        ("calls that query differently", "calls", lambda r: r.query_mismatch, 0),
        ("calls missing (query fails)", "calls", lambda r: r.query_errors, 0),
        ("calls deleted after restore", "calls", lambda r: r.deleted_ok, 0),
        ("keys left after the deletes", "keys", lambda r: r.keys_after_delete, 0),
        ("range ports held by other programs meanwhile", "ports", lambda r: r.foreign_ports, 0),
    ]
    header = ["metric", "unit", *kinds]
    both = set(kinds) == set(KINDS)
    if both:
        header.append("rtpvault/rtpengine")
    rows = []
    for label, unit, get, digits in rows_def:
        vals = [get(res[k]) if k in res else None for k in kinds]
        line = [label, unit, *(f(v, digits) for v in vals)]
        if both:
            line.append(f(common.ratio(vals[1], vals[0]), 2) if unit == "s" else "")
        rows.append(line)
    return common.text_table(header, rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    ap.add_argument("--calls", type=int, default=2000, help="calls per cost pass")
    ap.add_argument("--warmup", type=int, default=100, help="calls before the first pass")
    ap.add_argument("--repeat", type=int, default=3, help="cost passes per daemon")
    ap.add_argument("--restore-calls", type=int, default=1000)
    ap.add_argument("--restore-timeout", type=float, default=60.0)
    ap.add_argument("--settle", type=float, default=1.0, help="pause before the kill -9")
    ap.add_argument(
        "--watch-ports",
        action="store_true",
        help="sample `ss -uanp` during the restart (who holds ports of the range; costs CPU, "
        "so the restore times are not comparable then)",
    )
    ap.add_argument("--poll-ms", type=float, default=10.0, help="`list` interval while restoring")
    ap.add_argument("--db-rtpengine", type=int, default=11, help="Redis DB of rtpengine")
    ap.add_argument("--db-rtpvault", type=int, default=12, help="Redis DB of rtpvault")
    ap.add_argument("--num-threads", type=int, help="--num-threads for both (default: theirs)")
    ap.add_argument("--only", choices=KINDS)
    ap.add_argument("--skip", choices=("cost", "restore"), help="leave out one part")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--workdir", type=Path, help="daemon logs go here (default: a temp dir)")
    args = ap.parse_args(argv)
    args.kinds = [k for k in KINDS if args.only in (None, k)]
    args.db = {"rtpengine": args.db_rtpengine, "rtpvault": args.db_rtpvault}
    if args.db_rtpengine == args.db_rtpvault:
        ap.error("the two daemons need different Redis DBs (rtpengine restores every key)")
    args.base = ["--log-level=6", "--timeout=3600"]
    if args.num_threads:
        args.base.append(f"--num-threads={args.num_threads}")

    print(f"command: {common.command_line()}", flush=True)
    common.nofile_limit()
    print(
        f"settings: {args.calls} calls x {args.repeat} passes per daemon, "
        f"{args.restore_calls} calls restored, Redis {REDIS_HOST}:{REDIS_PORT} DB "
        f"rtpengine {args.db_rtpengine} / rtpvault {args.db_rtpvault}, "
        f"{' '.join(args.base)}",
        flush=True,
    )

    def log(msg: str) -> None:
        print(msg, flush=True)

    out: dict[str, Any] = {"command": common.command_line()}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp:
        workdir = args.workdir or Path(tmp)
        cost_text = restore_text = worker_text = ""
        if args.skip != "cost":
            passes, n = cost_phase(args, workdir, log)
            notes += n
            cost_text, out["cost"] = report_cost(passes, args.kinds)
            out["cost_passes"] = {
                v: [{**p.__dict__, "cpu_us_per_call": p.cpu_us_per_call} for p in ps]
                for v, ps in passes.items()
            }
        restores: dict[str, Restore] = {}
        if args.skip != "restore":
            for kind in args.kinds:
                restores[kind] = restore_run(kind, args, workdir, log)
            restore_text = report_restore(restores, args.kinds)
            out["restore"] = {k: r.__dict__ for k, r in restores.items()}
            if "rtpvault" in args.kinds:
                out["worker_kill"] = wk = worker_kill_run(args, workdir, log)
                ans = wk.get("kill_to_answer_s")
                worker_text = (
                    f"rtpvault, SIGKILL to one of {wk.get('workers')} workers with "
                    f"{wk['calls']} calls up ({wk.get('calls_of_worker')} of them its own): "
                    f"kill to a call of it answering query again "
                    f"{'n/a' if ans is None else f'{ans:.3f} s'}; after it, "
                    f"{wk.get('query_as_before')} calls query as before, {wk.get('missing')} "
                    f"missing, {wk.get('deleted')} deleted, keys left {wk.get('keys_left')}"
                    + "".join(f"\n  rtpvault log: {ln}" for ln in wk.get("log", []))
                    + "".join(f"\n  rtpvault PROBLEM: {p}" for p in wk["problems"])
                )

    print()
    if cost_text:
        print(f"1. cost per call: {args.calls} calls per pass, median of {args.repeat} passes")
        print(cost_text)
        print()
    if restore_text:
        print(f"2. restore of {args.restore_calls} calls after kill -9")
        print(restore_text)
        for k, r in restores.items():
            for ln in r.log_lines:
                print(f"  {k} log: {ln}")
            if r.timeline:
                marks = ", ".join(f"{n} {v:.3f}" for n, v in r.timeline.items())
                print(f"  {k} restart timeline (s after the start, its log): {marks}")
            for pr in r.problems:
                print(f"  {k} PROBLEM: {pr}")
        print()
    if worker_text:
        print(worker_text)
        print()
    for note in notes:
        print(f"note: {note}")
    if args.json:
        common.write_json(args.json, out)
        print(f"json: {args.json}")
    bad = any(r.problems for r in restores.values()) or bool(
        out.get("worker_kill", {}).get("problems")
    )
    bad = bad or any("NOT MEASURED" in x for x in notes)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
