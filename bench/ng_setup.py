#!/usr/bin/env python3
"""ng call-setup benchmark: rtpvault against rtpengine 10.5 on the same load, in one run.

Daemons (variants): rtpengine with `--num-threads=W` (W = the largest worker count asked for:
rtpengine's default is the CPU count, 2 on the bench machine, so it is also its default there)
and rtpvault once per `--workers` count (`--num-threads=1`, `--num-threads=2`: one process, or a
supervisor forking that many workers that share the calls by call-id, rtpvault.shard).

Measures, for each daemon (started with identical rtpengine long options, `--table=-1`,
interface `lo/127.0.0.1`):

1. call setup rate: offer + answer + delete (Kamailio-shaped requests, `delete-delay` 0 in the
   delete so ports are freed) per second, with 1 client and with 8 concurrent clients (8 sockets,
   each strictly request/response), each pass bounded by --seconds and --calls;
2. memory: anonymous PSS (proportional set size, `Pss_Anon` of /proc/PID/smaps_rollup)
   summed over the daemon's processes, idle, then after --mem-calls calls set up (offer +
   answer, not deleted, no media) → KB per idle call. PSS, not RSS: forked workers share the
   supervisor's pages copy-on-write, so summed RSS counts each shared page once per process,
   and misses a shared page that a worker's write turns into two (its growth is shown too);
   anonymous only, because the share of a library's pages moves with whatever other programs
   map it;
3. CPU (utime + stime from /proc/PID/stat) used in each pass by the daemon's process and all
   its descendants (the supervisor and every worker) → µs CPU per call.

Goal lines at the end (issue 18): rtpvault (most workers) / rtpengine setup rate at 8 clients
(>= 0.8), daemon CPU per call with 2 workers / 1 worker (<= 1.10), memory per idle call
(<= 20 KB).

Run from the repo root:  .venv/bin/python bench/ng_setup.py [--workers 1,2] [--only rtpengine]
                                                               [--json out.json]
"""

from __future__ import annotations

import argparse
import functools
import runpy
import select
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

common.add_repo_to_path()

from tests.support import daemons  # noqa: E402
from tests.support.ng import encode_ordered  # noqa: E402

KINDS = ("rtpengine", "rtpvault")
REFERENCE = "rtpengine"
ANON = "Pss_Anon"
NUM = "NNNNNNNN"  # 8-digit call number placeholder (call-id, tags, branch, o= session id)
PORT = "PPPPP"  # 5-digit SDP media port placeholder
WARMUP_CALLS = 100
RETRANSMIT_AFTER = 0.5  # seconds without a reply before the same request is resent
MAX_TRIES = 4
MAX_ERRORS = 50

# ---------------------------------------------------------------- the load


def _sdp(user: str, codecs: list[tuple[int, str]]) -> str:
    """A typical softphone SDP: one audio stream, `codecs` plus telephone-event 101."""
    lines = [
        "v=0",
        f"o={user} 1{NUM} 1 IN IP4 127.0.0.1",
        "s=-",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        f"m=audio {PORT} RTP/AVP {' '.join(str(pt) for pt, _ in codecs)} 101",
        *(f"a=rtpmap:{pt} {name}/8000" for pt, name in codecs),
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
    ]
    return "\r\n".join(lines) + "\r\n"


def _offer_answer(command: str, sdp: str, to_tag: bool) -> dict[str, Any]:
    """offer/answer as Kamailio 5.6 builds them for
    `rtpengine_offer/answer("trust-address replace-origin replace-session-connection ICE=remove
    RTP/AVP via-branch=auto")` (docs/spec/ng-protocol.md §5.1, §5.4), key order kept."""
    body: dict[str, Any] = {
        "supports": ["load limit"],
        "sdp": sdp,
        "ICE": "remove",
        "flags": ["trust-address"],
        "replace": ["origin", "session-connection"],
        "transport-protocol": "RTP/AVP",
        "call-id": f"{NUM}-bench@127.0.0.1",
        "via-branch": f"z9hG4bK-{NUM}-1INVITE",
        "received-from": ["IP4", "127.0.0.1"],
        "from-tag": f"ft{NUM}",
    }
    if to_tag:
        body["to-tag"] = f"tt{NUM}"
    body["command"] = command
    return body


def templates() -> dict[str, bytes]:
    """Bencoded request bodies with the NUM / PORT placeholders still in them."""
    offer = _offer_answer("offer", _sdp("alice", [(0, "PCMU"), (8, "PCMA")]), to_tag=False)
    answer = _offer_answer("answer", _sdp("bob", [(0, "PCMU")]), to_tag=True)
    # rtpengine_delete("delete-delay=0"): Kamailio sends both keys (docs/spec/ng-protocol.md §5.4)
    delete = {
        "supports": ["load limit"],
        "delete delay": 0,
        "delete-delay": "0",
        "call-id": f"{NUM}-bench@127.0.0.1",
        "received-from": ["IP4", "127.0.0.1"],
        "from-tag": f"ft{NUM}",
        "command": "delete",
    }
    return {
        "offer": encode_ordered(offer),
        "answer": encode_ordered(answer),
        "delete": encode_ordered(delete),
    }


TEMPLATES = templates()


def request(step: str, number: int) -> bytes:
    """The body of `step` for call `number`, placeholders filled (lengths unchanged)."""
    port = 20000 + (number % 10000) * 2 + (0 if step == "offer" else 20000)
    return (
        TEMPLATES[step]
        .replace(NUM.encode(), b"%08d" % number)
        .replace(PORT.encode(), b"%05d" % port)
    )


def reply_problem(step: str, reply: bytes) -> str | None:
    """None when `reply` is a success for `step`, else a short description."""
    if b"6:result2:ok" not in reply:
        return reply[:200].decode(errors="replace")
    if step in ("offer", "answer") and b"3:sdp" not in reply:
        return "no sdp in reply: " + reply[:200].decode(errors="replace")
    if step == "delete" and b"Call-ID not found" in reply:
        return "delete did not find the call"
    return None


# ---------------------------------------------------------------- the driver


class BenchAbort(RuntimeError):
    """The daemon stopped answering or failed too often; this pass has no figure."""


@dataclass
class Pass:
    """What one measurement pass did and what it cost the daemon."""

    name: str
    clients: int
    steps: tuple[str, ...]
    calls: int = 0
    errors: int = 0
    retransmits: int = 0
    elapsed_s: float = 0.0
    daemon_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    latency_ms_p50: float | None = None
    latency_ms_p99: float | None = None
    first_error: str | None = None

    @property
    def rate(self) -> float | None:
        return self.calls / self.elapsed_s if self.calls and self.elapsed_s > 0 else None

    @property
    def cpu_us_per_call(self) -> float | None:
        return self.daemon_cpu_s / self.calls * 1e6 if self.calls else None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(rate_per_s=self.rate, daemon_cpu_us_per_call=self.cpu_us_per_call)
        return d


@dataclass
class _Client:
    sock: socket.socket
    number: int = 0
    step: int = 0
    cookie: bytes = b""
    payload: bytes = b""
    sent_at: float = 0.0
    started_at: float = 0.0
    tries: int = 0
    busy: bool = False


def drive(
    port: int,
    steps: tuple[str, ...],
    clients: int,
    max_calls: int,
    seconds: float,
    numbers: Iterator[int],
) -> tuple[int, int, int, list[float], str | None, float]:
    """Run calls (each = `steps` in order) from `clients` sockets, each strictly sequential,
    until `max_calls` were started or `seconds` passed; in-flight calls are completed.

    Returns (calls done, errors, retransmits, latencies in s, first error, elapsed s).
    """
    addr = ("127.0.0.1", port)
    ep = select.epoll()
    by_fd: dict[int, _Client] = {}
    for _ in range(clients):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        by_fd[s.fileno()] = _Client(s)
        ep.register(s.fileno(), select.EPOLLIN)
    started = done = errors = retransmits = 0
    latencies: list[float] = []
    first_error: str | None = None
    t0 = time.perf_counter()
    deadline = t0 + seconds
    last_done = t0

    def send(c: _Client, now: float) -> None:
        c.cookie = b"%d_%d_%d" % (c.sock.fileno(), c.number, c.step)
        c.payload = c.cookie + b" " + request(steps[c.step], c.number)
        c.tries, c.sent_at = 1, now
        c.sock.sendto(c.payload, addr)

    def next_call(c: _Client, now: float) -> None:
        nonlocal started
        if started >= max_calls or now >= deadline:
            c.busy = False
            return
        started += 1
        c.busy, c.number, c.step, c.started_at = True, next(numbers), 0, now
        send(c, now)

    try:
        now = time.perf_counter()
        for c in by_fd.values():
            next_call(c, now)
        active = sum(c.busy for c in by_fd.values())
        while active:
            events = ep.poll(0.1)
            now = time.perf_counter()
            for fd, _ in events:
                c = by_fd[fd]
                try:
                    data = c.sock.recv(65535)
                except (BlockingIOError, ConnectionRefusedError):
                    continue
                if not c.busy or not data.startswith(c.cookie + b" "):
                    continue  # a late reply to a retransmitted request
                problem = reply_problem(steps[c.step], data[len(c.cookie) + 1 :])
                if problem is not None:
                    errors += 1
                    first_error = first_error or f"{steps[c.step]}: {problem}"
                    if errors >= MAX_ERRORS:
                        raise BenchAbort(f"{errors} error replies; first: {first_error}")
                    next_call(c, now)
                elif c.step + 1 < len(steps):
                    c.step += 1
                    send(c, now)
                else:
                    done += 1
                    latencies.append(now - c.started_at)
                    last_done = now
                    next_call(c, now)
            for c in by_fd.values():
                if c.busy and now - c.sent_at > RETRANSMIT_AFTER:
                    if c.tries >= MAX_TRIES:
                        raise BenchAbort(
                            f"no reply to {steps[c.step]} after {MAX_TRIES} tries "
                            f"({MAX_TRIES * RETRANSMIT_AFTER:.1f} s)"
                        )
                    c.tries += 1
                    c.sent_at = now
                    retransmits += 1
                    c.sock.sendto(c.payload, addr)
            active = sum(c.busy for c in by_fd.values())
    finally:
        ep.close()
        for c in by_fd.values():
            c.sock.close()
    return done, errors, retransmits, latencies, first_error, last_done - t0


def measure(
    d: daemons.Daemon,
    name: str,
    steps: tuple[str, ...],
    clients: int,
    max_calls: int,
    seconds: float,
    numbers: Iterator[int],
) -> Pass:
    """One pass against daemon `d`, with its CPU and the client's CPU over the pass."""
    p = Pass(name, clients, steps)
    pid = d.proc.pid
    cpu0, own0 = common.cpu_seconds(pid), common.own_cpu_seconds()
    try:
        p.calls, p.errors, p.retransmits, lat, p.first_error, p.elapsed_s = drive(
            d.ng_port, steps, clients, max_calls, seconds, numbers
        )
    finally:
        if d.proc.poll() is None:
            p.daemon_cpu_s = common.cpu_seconds(pid) - cpu0
        p.client_cpu_s = common.own_cpu_seconds() - own0
    if lat:
        lat.sort()
        p.latency_ms_p50 = statistics.median(lat) * 1e3
        p.latency_ms_p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3
    return p


# ---------------------------------------------------------------- per-daemon runs


@dataclass
class Result:
    """All figures for one daemon; `failure` says why some are missing."""

    kind: str
    passes: dict[str, Pass] = field(default_factory=dict)  # the median-rate repetition
    reps: dict[str, list[Pass]] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    failure: str | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "passes": {k: v.as_dict() for k, v in self.passes.items()},
            "repetitions": {k: [p.as_dict() for p in v] for k, v in self.reps.items()},
            "memory": self.memory,
            "failure": self.failure,
            "notes": self.notes,
        }


def ng_stats(d: daemons.Daemon) -> tuple[int | None, int | None]:
    """(sessionsown, ports used) from `statistics`, None where the daemon lacks them."""
    c = d.client(timeout=5.0)
    try:
        st = c.call({"command": "statistics"}).get("statistics", {})
        own = st.get("currentstatistics", {}).get("sessionsown")
        ifs = st.get("interfaces") or [{}]
        used = ifs[0].get("ports", {}).get("used")
        return (int(own) if own is not None else None, int(used) if used is not None else None)
    except Exception:  # noqa: BLE001 - a sanity read only
        return None, None
    finally:
        c.close()


def listed_calls(d: daemons.Daemon) -> int | None:
    """How many calls `list` (limit 1000) still shows; None when it fails."""
    c = d.client(timeout=5.0)
    try:
        calls = c.call({"command": "list", "limit": 1000}).get("calls")
        return len(calls) if isinstance(calls, list) else None
    except Exception:  # noqa: BLE001 - a sanity read only
        return None
    finally:
        c.close()


def start_daemon(
    kind: str, options: list[str], workdir: Path, ports: int, extra: list[str]
) -> daemons.Daemon:
    """daemons.start, with a port-range prober that survives 20,000-port ranges.

    tools.free_port_range holds all probe sockets open at once (EMFILE at 20,000 ports) and
    wants every port free; here up to 4 % may be taken by other processes (ranges carry slack).
    """
    chooser = functools.partial(common.wide_port_range, max_busy=ports // 25)
    setattr(daemons, "free_port_range", chooser)  # noqa: B010
    try:
        return daemons.start(
            kind, workdir, interface="lo/127.0.0.1", ports=ports, extra=[*extra, *options]
        )
    except BaseException as e:  # pytest.skip from tools.require is a BaseException
        if isinstance(e, KeyboardInterrupt):
            raise
        raise RuntimeError(f"{type(e).__name__}: {e}") from e


def tail(text: str, lines: int = 12) -> str:
    """The last `lines` lines of `text`, indented for the report."""
    return "\n".join("    " + ln for ln in text.rstrip().splitlines()[-lines:])


def short(e: BaseException) -> str:
    """An exception's first line; the daemon log it may carry is shown separately."""
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def log_pass(kind: str, p: Pass, log: Callable[[str], None]) -> None:
    log(
        f"[{kind}] {p.name}: {p.calls} calls in {p.elapsed_s:.2f} s = {p.rate or 0:,.0f}/s, "
        f"daemon CPU {p.daemon_cpu_s:.2f} s, client CPU {p.client_cpu_s:.2f} s, "
        f"errors {p.errors}, retransmits {p.retransmits}"
    )


def rate_phase(
    results: dict[str, Result], args: argparse.Namespace, workdir: Path, log: Callable[[str], None]
) -> None:
    """Setup-rate passes on one fresh daemon per relay, interleaved between the relays.

    Both daemons are up at once but only the one being driven works, so they do not compete;
    interleaving (and alternating who goes first) spreads drifting background load over both.
    Ports are freed by delete-delay 0, so a small range suffices.
    """
    extra = [f"--log-level={args.log_level}", f"--timeout={args.timeout}"]
    full = ("offer", "answer", "delete")
    live: dict[str, tuple[daemons.Daemon, Iterator[int]]] = {}

    def fail(kind: str, e: BaseException, d: daemons.Daemon | None) -> None:
        results[kind].failure = f"rate phase: {short(e)}"
        log(f"[{kind}] rate phase failed: {short(e)}")
        log(tail(d.log() if d is not None else str(e)))
        live.pop(kind, None)
        if d is not None:
            d.stop()

    try:
        for kind in results:
            d: daemons.Daemon | None = None
            try:
                d = start_daemon(*args.variants[kind], workdir / kind, 2000, extra)
                log(f"[{kind}] pid {d.proc.pid}, ng :{d.ng_port}, ports {d.port_min}-{d.port_max}")
                numbers: Iterator[int] = count(1)
                measure(d, "warmup", full, 1, WARMUP_CALLS, args.seconds, numbers)
                live[kind] = (d, numbers)
            except (RuntimeError, OSError) as e:
                fail(kind, e, d)
        for rep in range(args.repeat):
            for clients in (1, args.clients):
                name = f"rate_c{clients}"
                order = list(live) if rep % 2 == 0 else list(reversed(live))
                for kind in order:
                    d, numbers = live[kind]
                    try:
                        p = measure(d, name, full, clients, args.calls, args.seconds, numbers)
                    except (RuntimeError, OSError) as e:
                        fail(kind, e, d)
                        continue
                    results[kind].reps.setdefault(name, []).append(p)
                    log_pass(kind, p, log)
                    if p.first_error:
                        results[kind].notes.append(f"{name}: first error: {p.first_error}")
        for kind, (d, _) in live.items():
            left = listed_calls(d)
            if left:
                results[kind].notes.append(
                    f"{left} calls still listed after the rate passes"
                    " (delete-delay 0 not honoured?)"
                )
    finally:
        for d, _ in live.values():
            d.stop()
    for r in results.values():
        for name, reps in r.reps.items():
            r.passes[name] = sorted(reps, key=lambda p: p.rate or 0.0)[len(reps) // 2]


def memory_phase(
    r: Result, args: argparse.Namespace, workdir: Path, log: Callable[[str], None]
) -> None:
    """RSS idle, then with --mem-calls offer+answer calls standing, on a fresh daemon."""
    kind = r.kind
    extra = [f"--log-level={args.log_level}", f"--timeout={args.timeout}"]
    full = ("offer", "answer", "delete")
    # 4 ports per call, plus slack
    n = args.mem_calls
    d: daemons.Daemon | None = None
    try:
        d = start_daemon(*args.variants[kind], workdir / kind, n * 4 + max(200, n // 10 * 4), extra)
        log(f"[{kind}] pid {d.proc.pid}, ports {d.port_min}-{d.port_max} for {n} calls")
        pid = d.proc.pid
        pss_start, rss_start = common.pss_kb(pid, ANON), common.rss_kb(pid)
        numbers = count(1)
        measure(d, "warmup", full, 1, WARMUP_CALLS, args.seconds, numbers)
        time.sleep(args.settle)
        pss_idle, rss_idle = common.pss_kb(pid, ANON), common.rss_kb(pid)
        total_idle = common.pss_kb(pid)
        # one client: the calls still spread over the workers (sharded by call-id)
        fill = measure(d, "fill", ("offer", "answer"), 1, n, args.fill_seconds, numbers)
        r.passes["fill"] = fill
        time.sleep(args.settle)
        pss_after, rss_after = common.pss_kb(pid, ANON), common.rss_kb(pid)
        total_after = common.pss_kb(pid)
        sessions, ports_used = ng_stats(d)
        r.memory = {
            "calls": fill.calls,
            "processes": len(common.process_tree(pid)),
            "pss_total_idle_kb": total_idle,
            "pss_total_after_kb": total_after,
            "pss_anon_start_kb": pss_start,
            "pss_anon_idle_kb": pss_idle,
            "pss_anon_after_kb": pss_after,
            "kb_per_call": (pss_after - pss_idle) / fill.calls if fill.calls else None,
            "rss_start_kb": rss_start,
            "rss_idle_kb": rss_idle,
            "rss_after_kb": rss_after,
            "rss_kb_per_call": (rss_after - rss_idle) / fill.calls if fill.calls else None,
            "sessions_reported": sessions,
            "ports_used_reported": ports_used,
        }
        log(
            f"[{kind}] memory: {fill.calls} calls standing, "
            f"{r.memory['processes']} process(es); anonymous PSS start {pss_start} KB, "
            f"idle {pss_idle} KB, after {pss_after} KB (all PSS {total_idle} -> {total_after} KB, "
            f"summed RSS {rss_idle} -> {rss_after} KB); "
            f"daemon reports {sessions} sessions, {ports_used} ports used"
        )
        if fill.calls < n:
            r.notes.append(
                f"memory: only {fill.calls} of {n} calls were set up "
                f"(first error: {fill.first_error})"
            )
        if fill.first_error:
            r.notes.append(f"fill: first error: {fill.first_error}")
        log_pass(kind, fill, log)
    except (RuntimeError, OSError) as e:
        r.failure = (r.failure + "; " if r.failure else "") + f"memory phase: {short(e)}"
        log(f"[{kind}] memory phase failed: {short(e)}")
        log(tail(d.log() if d is not None else str(e)))
    finally:
        if d is not None:
            d.stop()


# ---------------------------------------------------------------- report


@dataclass(frozen=True)
class Metric:
    """One table line: how to read it from a Result."""

    label: str
    unit: str
    get: Callable[[Result], float | None]
    digits: int = 1


def median_cpu(name: str) -> Callable[[Result], float | None]:
    """The median CPU per call over a setting's repetitions (the median-rate pass's own CPU
    figure would tie the CPU row to the rate's noise)."""

    def get(r: Result) -> float | None:
        cpus = [p.cpu_us_per_call for p in r.reps[name] if p.cpu_us_per_call is not None]
        return statistics.median(cpus) if cpus else None

    return get


def metrics(clients: int) -> list[Metric]:
    c = f"rate_c{clients}"
    mb = 1024.0
    return [
        Metric("setup rate, 1 client", "calls/s", lambda r: r.passes["rate_c1"].rate, 0),
        Metric(f"setup rate, {clients} clients", "calls/s", lambda r: r.passes[c].rate, 0),
        Metric("daemon CPU per call, 1 client", "us", median_cpu("rate_c1"), 0),
        Metric(f"daemon CPU per call, {clients} clients", "us", median_cpu(c), 0),
        Metric("call latency p50, 1 client", "ms", lambda r: r.passes["rate_c1"].latency_ms_p50, 3),
        Metric("call latency p99, 1 client", "ms", lambda r: r.passes["rate_c1"].latency_ms_p99, 3),
        Metric(
            f"call latency p99, {clients} clients", "ms", lambda r: r.passes[c].latency_ms_p99, 3
        ),
        Metric("offer+answer rate (memory fill)", "calls/s", lambda r: r.passes["fill"].rate, 0),
        Metric("daemon CPU per offer+answer", "us", lambda r: r.passes["fill"].cpu_us_per_call, 0),
        Metric("PSS idle (all processes)", "MB", lambda r: r.memory["pss_total_idle_kb"] / mb),
        Metric("PSS with idle calls", "MB", lambda r: r.memory["pss_total_after_kb"] / mb),
        Metric("memory per idle call (anon PSS)", "KB", lambda r: r.memory["kb_per_call"]),
        Metric("memory per idle call (summed RSS)", "KB", lambda r: r.memory["rss_kb_per_call"]),
    ]


def value(
    res: dict[str, Result], label: str, get: Callable[[Result], float | None]
) -> float | None:
    r = res.get(label)
    if r is None:
        return None
    try:
        return get(r)
    except (KeyError, TypeError):
        return None


def spread(res: dict[str, Result], label: str, name: str) -> str:
    """min-max of a rate setting's repetitions, e.g. "1,650-1,910" (the noise of the median)."""
    r = res.get(label)
    rates = [p.rate for p in (r.reps.get(name, []) if r else []) if p.rate]
    cpus = [p.cpu_us_per_call for p in (r.reps.get(name, []) if r else []) if p.cpu_us_per_call]
    if not rates:
        return "n/a"
    return (
        f"rate {min(rates):,.0f}-{max(rates):,.0f}/s, "
        f"CPU {min(cpus or [0]):,.0f}-{max(cpus or [0]):,.0f} us/call ({len(rates)} passes)"
    )


def format_table(res: dict[str, Result], labels: list[str], clients: int) -> str:
    """metric | unit | one column per daemon | each rtpvault column / rtpengine."""
    ref = REFERENCE if REFERENCE in labels else None
    cands = [lb for lb in labels if lb != ref]
    header = ["metric", "unit", *labels, *(f"{c}/{ref}" for c in cands if ref)]
    body = []
    for m in metrics(clients):
        vals = [value(res, lb, m.get) for lb in labels]
        line = [m.label, m.unit, *("n/a" if v is None else f"{v:,.{m.digits}f}" for v in vals)]
        if ref:
            r = value(res, ref, m.get)
            for c in cands:
                q = common.ratio(value(res, c, m.get), r)
                line.append("n/a" if q is None else f"{q:.2f}")
        body.append(line)
    return common.text_table(header, body)


def goals(res: dict[str, Result], labels: list[str], clients: int) -> list[dict[str, Any]]:
    """The issue 18 goal lines: name, figure, goal, met (None: a figure is missing)."""
    vaults = [lb for lb in labels if lb.startswith("rtpvault")]
    out: list[dict[str, Any]] = []

    def add(name: str, fig: float | None, goal: str, ok: Callable[[float], bool]) -> None:
        out.append(
            {"goal": name, "figure": fig, "target": goal, "met": None if fig is None else ok(fig)}
        )

    c = f"rate_c{clients}"
    if vaults and REFERENCE in labels:
        most = vaults[-1]
        add(
            f"setup rate {most}/{REFERENCE}, {clients} clients",
            common.ratio(
                value(res, most, lambda r: r.passes[c].rate),
                value(res, REFERENCE, lambda r: r.passes[c].rate),
            ),
            ">= 0.80 (moonshot >= 1.00)",
            lambda x: x >= 0.8,
        )
    if len(vaults) >= 2:
        one, most = vaults[0], vaults[-1]
        for name in ("rate_c1", c):
            n = name.removeprefix("rate_c")
            add(
                f"daemon CPU per call {most}/{one}, {n} client(s)",
                common.ratio(value(res, most, median_cpu(name)), value(res, one, median_cpu(name))),
                "<= 1.10",
                lambda x: x <= 1.10,
            )
    for v in vaults:
        add(
            f"memory per idle call (anon PSS), {v}",
            value(res, v, lambda r: r.memory["kb_per_call"]),
            "<= 20 KB",
            lambda x: x <= 20.0,
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=5.0, help="time budget of each rate pass")
    ap.add_argument("--calls", type=int, default=100_000, help="call cap of each rate pass")
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients, 2nd rate pass")
    ap.add_argument(
        "--repeat", type=int, default=3, help="rate passes per setting; the median is reported"
    )
    ap.add_argument(
        "--mem-calls",
        type=int,
        default=None,
        help="idle calls for the memory figure (default 5000, lowered to fit "
        "the open-files limit: 4 sockets per call)",
    )
    ap.add_argument(
        "--fill-seconds", type=float, default=120.0, help="time cap for setting up the memory calls"
    )
    ap.add_argument("--settle", type=float, default=1.0, help="pause before each RSS reading")
    ap.add_argument("--only", choices=KINDS, help="measure one daemon only")
    ap.add_argument(
        "--workers",
        default="1,2",
        help="rtpvault --num-threads values, one daemon each; rtpengine gets the largest",
    )
    ap.add_argument(
        "--log-level",
        type=int,
        default=6,
        help="--log-level given to both daemons (6 = rtpengine's default)",
    )
    ap.add_argument(
        "--timeout",
        type=int,
        default=3600,
        help="--timeout given to both daemons, so idle calls are not reaped",
    )
    ap.add_argument("--json", type=Path, help="also write all figures to this JSON file")
    ap.add_argument("--workdir", type=Path, help="daemon logs go here (default: a temp dir)")
    args = ap.parse_args(argv)

    print(f"command: {common.command_line()}", flush=True)
    nofile = common.nofile_limit()
    fit = (nofile - 300) // 4
    if args.mem_calls is None:
        args.mem_calls = min(5000, fit)
    if args.mem_calls > fit:
        print(
            f"note: --mem-calls {args.mem_calls} needs {args.mem_calls * 4} sockets but the "
            f"open-files limit is {nofile}; rtpengine would run out of descriptors"
        )
    print(
        f"settings: {args.seconds:g} s / {args.calls} calls per rate pass, clients 1 and "
        f"{args.clients}, {args.mem_calls} idle calls, --log-level={args.log_level} "
        f"--timeout={args.timeout}, open-files limit {nofile}",
        flush=True,
    )

    # compiled with mypyc, or from source (RTPVAULT_PURE=1, not compiled, stale); read by path:
    # `relay` here is bench/relay.py
    compiled = runpy.run_path(str(common.REPO / "relay" / "compiled.py"))
    print(f"rtpvault hot path: {compiled['state']()}", flush=True)

    def log(msg: str) -> None:
        print(msg, flush=True)

    workers = sorted({int(w) for w in args.workers.split(",")})
    args.variants = {}
    if args.only in (None, "rtpengine"):
        args.variants["rtpengine"] = ("rtpengine", [f"--num-threads={workers[-1]}"])
    if args.only in (None, "rtpvault"):
        for w in workers:
            args.variants[f"rtpvault-{w}w"] = ("rtpvault", [f"--num-threads={w}"])
    labels = list(args.variants)
    print(
        "daemons: " + ", ".join(f"{lb} ({' '.join(o)})" for lb, (_, o) in args.variants.items()),
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-ng-") as tmp:
        workdir = args.workdir or Path(tmp)
        results = {k: Result(k) for k in labels}
        rate_phase(results, args, workdir, log)
        for r in results.values():
            if r.passes or r.failure is None:  # skip a relay that does not even start
                memory_phase(r, args, workdir, log)

    print()
    print(format_table(results, labels, args.clients))
    print()
    print("noise (min-max of the repetitions):")
    for lb in labels:
        for name in ("rate_c1", f"rate_c{args.clients}"):
            print(f"  {lb:12} {name:8} {spread(results, lb, name)}")
    print()
    goal_lines = goals(results, labels, args.clients)
    for g in goal_lines:
        fig = "n/a" if g["figure"] is None else f"{g['figure']:.2f}"
        met = "" if g["met"] is None else " [met]" if g["met"] else " [NOT met]"
        print(f"goal: {g['goal']}: {fig} (goal {g['target']}){met}")
    print()
    for k, r in results.items():
        if r.failure:
            print(f"{k}: NOT MEASURED ({r.failure})")
        for note in r.notes:
            print(f"{k}: {note}")
    if args.json:
        common.write_json(
            args.json,
            {
                "command": common.command_line(),
                "settings": {
                    k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                },
                "open_files_limit": nofile,
                "results": {k: r.as_dict() for k, r in results.items()},
                "goals": goal_lines,
            },
        )
        print(f"json: {args.json}")
    ok = all(r.failure is None for r in results.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
