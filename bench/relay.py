"""Media relay benchmark: rtpvault vs rtpengine 10.5 (`--table=-1`) on the same load, one run.

Three network namespaces made by this script (tests/integration/media/netns.Topology, unique
per run): host A (10.99.1.2) ⇄ relay (10.99.1.1 / 10.99.2.1) ⇄ host B (10.99.2.2), joined by
veth pairs; both relays run inside the relay namespace at the same time (own port ranges,
interface 10.99.1.1), each with N calls A → relay → B set up over ng. Per session count and
offered rate, the relays take turns on the same load (interleaved, `--repeat` times):

* A sends RTP (12-byte header + 160 bytes, SSRC = session) round-robin over the N sessions,
  paced in 0.5 ms slices. Every packet carries its send time (CLOCK_MONOTONIC ns) after the
  header;
* B answers 15 of every 16 sessions on a "bulk" port whose socket is never read (tiny receive
  buffer: the kernel counts overflowing datagrams in B's `Udp RcvbufErrors`, so counting costs
  no userspace work) and every 16th session on a "probe" port that is read with timestamps:
  arrivals = RcvbufErrors delta + datagrams left queued + probe datagrams, delay = receive time
  − send time of the probe packets (one clock, same machine);
* relay CPU µs per packet = (user + system CPU of every relay thread, plus ksoftirqd of the
  relay's CPU, as bench/relay_micro.py counts it) / packets arriving at B. The relay is pinned
  to the last CPU, the harness to the others. veth delivers a packet in the softirq of the CPU
  that sent it, so the relay's figure includes B's receive path and the sender's includes the
  relay's socket enqueue — the same for both relays;
* top rate = highest offered rate with < 0.1 % median loss before the first rate that loses
  more (a relay stops climbing after its first failure; a failing median with one clean pass
  gets one extra pass first, so one pass disturbed by other jobs does not end it). A rate the
  harness could not offer (sent < 97 % of it) is marked `H` and never counted as a relay
  limit; the harness ceiling (one Python sender, sendto loop, no relay) is measured first.

    sudo .venv/bin/python bench/relay.py                  # 100, 500, 2000 sessions, 2 reps (~7 min)
    sudo .venv/bin/python bench/relay.py --quick          # 100 + 1000 sessions, 4 rates (~1.5 min)
    sudo .venv/bin/python bench/relay.py --sessions 100,2000 --rates 20000,50000 --repeat 3
    sudo .venv/bin/python bench/relay.py --workers 1,2    # rtpvault --num-threads=1 against =2

rtpvault runs with `--num-threads=1` against rtpengine (one event loop, pinned like rtpengine).
`--workers 1,2` compares rtpvault with one worker and with two instead (issue 18), no rtpengine:
the call-ids are chosen so that the calls alternate between the two workers' shares
(rtpvault.shard.owner_of), and nothing is pinned (two workers on one CPU would measure
nothing), so the relay CPU is every daemon process's CPU plus every CPU's ksoftirqd, and no
pass is marked D: "others" (the machine's busy time less the relay's and the harness's, as a
share of all CPUs) is printed, but the relay and the harness contend with each other anyway.

Needs root (network namespaces). Namespaces and links are removed at the end (also on error).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from relay_micro import TICK as TICKS  # noqa: E402
from relay_micro import cpu_seconds  # noqa: E402

from tests.integration.media.netns import Netns, Topology, _setns, ip  # noqa: E402
from tests.support import daemons  # noqa: E402
from tests.support.ng import NgClient  # noqa: E402

PORT_A, PORT_BULK, PORT_PROBE, PORT_SINK = 30000, 40000, 40002, 40004
HDR = struct.Struct("!BBHII")
STAMP = struct.Struct("!Q")
PROBE_EVERY = 16
KINDS = ("rtpengine", "rtpvault")
MEDIA_PORTS = [2000, 16000]  # the nth relay's range starts here: up to 3,475 sessions each
EXTRA: dict[str, list[str]] = {"rtpvault": ["--num-threads=1"]}
"""Extra daemon options per kind (bench/kernel.py runs rtpvault with `--table=0`)."""
SPREAD_OVER = 2
"""Call-ids are chosen so call i belongs to worker i % SPREAD_OVER (of that many workers)."""


def _enter(ns: Netns) -> None:
    with open(f"/run/netns/{ns.name}") as f:
        _setns(f.fileno())


def _udp_rcvbuf_errors() -> int:
    """`Udp: RcvbufErrors` of the calling process's network namespace."""
    lines = [ln.split() for ln in Path("/proc/self/net/snmp").read_text().splitlines()]
    head, vals = [ln for ln in lines if ln[0] == "Udp:"][:2]
    return int(vals[head.index("RcvbufErrors")])


def sender(
    ns: Netns,
    dests: list[tuple[str, int]],
    rate: int,
    seconds: float,
    cpus: set[int],
    go: Event,
    out: Any,
) -> None:
    """Send rate × seconds packets round-robin over `dests` (flat out if rate is 0)."""
    _enter(ns)
    os.sched_setaffinity(0, cpus)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", PORT_A))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    payload = bytearray(172)
    n_dest = len(dests)
    total = int((rate or 1_000_000) * seconds)
    slice_ = max(1, rate // 2000) if rate else 256
    pack_hdr, pack_stamp, stamp = HDR.pack_into, STAMP.pack_into, time.monotonic_ns
    sendto, clock = s.sendto, time.perf_counter
    go.wait()
    start = clock()
    end = start + seconds
    sent = errors = 0
    i = 0
    while sent < total:
        if rate:
            ahead = start + sent / rate - clock()
            if ahead > 0:
                time.sleep(ahead)
        elif clock() >= end:
            break
        for _ in range(min(slice_, total - sent)):
            pack_hdr(payload, 0, 0x80, 0, sent & 0xFFFF, sent * 160 & 0xFFFFFFFF, i)
            pack_stamp(payload, 12, stamp())
            try:
                sendto(payload, dests[i])
            except OSError:
                errors += 1
            sent += 1
            i += 1
            if i == n_dest:
                i = 0
    out.put(("sent", sent - errors, clock() - start))


def receiver(ns: Netns, cpus: set[int], ready: Event, done: Event, out: Any) -> None:
    """Count everything arriving at B's bulk + probe ports; time the probe packets."""
    _enter(ns)
    os.sched_setaffinity(0, cpus)
    bulk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bulk.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # the kernel's minimum
    bulk.bind(("0.0.0.0", PORT_BULK))
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    probe.bind(("0.0.0.0", PORT_PROBE))
    probe.settimeout(0.3)
    overflow0 = _udp_rcvbuf_errors()
    buf = bytearray(2048)
    delays: list[int] = []
    got = 0
    ready.set()
    quiet = 0
    while quiet < 3:  # until the sender is done and 0.9 s passed without a probe packet
        try:
            probe.recv_into(buf)
        except TimeoutError:
            quiet = quiet + 1 if done.is_set() else 0
            continue
        got += 1
        delays.append(time.monotonic_ns() - STAMP.unpack_from(buf, 12)[0])
    bulk.setblocking(False)
    queued = 0
    while True:
        try:
            bulk.recv_into(buf)
        except BlockingIOError:
            break
        queued += 1
    out.put(("got", got + queued + _udp_rcvbuf_errors() - overflow0, delays))


def call_id(i: int) -> str:
    """A call-id for call `i` owned by worker i % SPREAD_OVER when there are SPREAD_OVER
    workers (crc32 sharding, rtpvault.shard): both workers get half of the calls."""
    from rtpvault.shard import owner_of

    for salt in range(1000):
        cid = f"bench-{i}-{salt}"
        if owner_of(cid, SPREAD_OVER) == i % SPREAD_OVER:
            return cid
    raise AssertionError("crc32 never lands on that worker")


def process_tree(pid: int) -> list[int]:
    """`pid` and its live descendants (a supervisor and its workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in os.listdir(f"/proc/{p}/task"):
            try:
                todo += [
                    int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split()
                ]
            except OSError:
                continue
    return out


def tree_cpu_seconds(pid: int) -> float:
    """relay_micro.cpu_seconds (a process plus the ksoftirqd of its CPUs) over the whole tree;
    ksoftirqd only once."""
    tree = process_tree(pid)
    total = cpu_seconds(pid)
    for p in tree[1:]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def sdp(addr: str, port: int, sess: int) -> str:
    return (
        f"v=0\r\no=- {sess} 1 IN IP4 {addr}\r\ns=-\r\nc=IN IP4 {addr}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )


class Relay:
    """One relay daemon in the relay namespace with `n` calls A → relay → B."""

    def __init__(
        self,
        kind: str,
        topo: Topology,
        work: Path,
        n: int,
        *,
        label: str | None = None,
        options: tuple[str, ...] = (),
        pin: bool = True,
        slot: int | None = None,
    ) -> None:
        self.kind = label or kind
        self.pin = pin
        base = MEDIA_PORTS[slot if slot is not None else KINDS.index(kind)]
        ns = topo.hosts["relay"]
        with ns.entered():
            self.d = daemons.start(
                kind,
                work / self.kind,
                interface=topo.relay_address("a"),
                ports=8,  # overridden below (free_port_range probes 127.0.0.1, not 10.99.1.1)
                extra=[
                    # disjoint ranges in the private relay namespace, below the ephemeral ports
                    f"--port-min={base}",
                    f"--port-max={base + n * 4 + 99}",
                    "--log-level=5",
                    "--timeout=3600",
                    "--silent-timeout=3600",
                    "--final-timeout=0",
                    "--delete-delay=0",
                    *EXTRA.get(kind, []),
                    *options,
                ],
            )
            ng = self.d.client(timeout=20)
        try:
            self._setup(topo, ng, n)
        except BaseException:
            self.d.stop()
            raise
        finally:
            ng.close()

    def _setup(self, topo: Topology, ng: NgClient, n: int) -> None:
        relay_cpu = {(os.cpu_count() or 2) - 1}
        for pid in process_tree(self.d.proc.pid) if self.pin else ():
            for t in os.listdir(f"/proc/{pid}/task"):
                try:
                    os.sched_setaffinity(int(t), relay_cpu)
                except OSError:
                    pass
        self.dests: list[tuple[str, int]] = []
        a, b = topo.host_address("a"), topo.host_address("b")
        for i in range(n):
            cid = call_id(i)
            b_port = PORT_PROBE if i % PROBE_EVERY == 0 else PORT_BULK
            r = ng.call(
                {"command": "offer", "call-id": cid, "from-tag": "a", "sdp": sdp(a, PORT_A, i)}
            )
            assert r["result"] == "ok", (self.kind, i, r)
            r = ng.call(
                {
                    "command": "answer",
                    "call-id": cid,
                    "from-tag": "a",
                    "to-tag": "b",
                    "sdp": sdp(b, b_port, i),
                }
            )
            assert r["result"] == "ok", (self.kind, i, r)
            port = int(r["sdp"].split("m=audio ")[1].split()[0])
            self.dests.append((topo.relay_address("a"), port))

    def stop(self) -> None:
        self.d.stop()


def one_pass(
    topo: Topology, relay: Relay | None, dests: list[tuple[str, int]], rate: int, seconds: float
) -> dict[str, Any]:
    ncpu = os.cpu_count() or 2
    pinned = relay is None or relay.pin
    harness = (set(range(ncpu - 1)) or {0}) if pinned else set(range(ncpu))
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    ready, done, go = ctx.Event(), ctx.Event(), ctx.Event()
    rx = ctx.Process(target=receiver, args=(topo.hosts["b"], harness, ready, done, out))
    tx = ctx.Process(target=sender, args=(topo.hosts["a"], dests, rate, seconds, harness, go, out))
    rx.start()
    tx.start()
    ready.wait(10)
    time.sleep(0.2)
    pid = relay.d.proc.pid if relay else None
    c0 = tree_cpu_seconds(pid) if pid else 0.0
    relay_cpus = [ncpu - 1] if pinned else list(range(ncpu))
    b0 = sum(cpu_busy(c) for c in relay_cpus)
    h0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    go.set()
    kind, sent, elapsed = out.get(timeout=seconds * 3 + 30)
    assert kind == "sent"
    done.set()
    kind, got, delays = out.get(timeout=30)
    c1 = tree_cpu_seconds(pid) if pid else 0.0
    b1 = sum(cpu_busy(c) for c in relay_cpus)
    t1 = time.monotonic()
    tx.join()
    rx.join()
    others = b1 - b0 - (c1 - c0)  # the relay CPU's time used by other jobs
    if not pinned:  # the harness shares the CPUs: its own time is not "other jobs"
        h1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        others -= h1.ru_utime + h1.ru_stime - h0.ru_utime - h0.ru_stime
    others_share = max(0.0, others) / (t1 - t0) / len(relay_cpus)
    delays.sort()

    def q(f: float) -> float:
        return delays[min(len(delays) - 1, int(f * len(delays)))] / 1e3 if delays else float("nan")

    return {
        "offered": rate,
        "achieved": sent / elapsed,
        "sent": sent,
        "got": got,
        "loss": max(0.0, 1 - got / sent) if sent else 1.0,
        "cpu_us": (c1 - c0) / max(got, 1) * 1e6,
        "busy_us": (b1 - b0) / max(got, 1) * 1e6,
        "others": others_share,
        "p50_us": q(0.5),
        "p99_us": q(0.99),
        "probes": len(delays),
    }


def cpu_busy(cpu: int) -> float:
    """Seconds CPU `cpu` was busy (not idle/iowait) since boot, from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            ticks = [int(x) for x in line.split()[1:]]
            return (sum(ticks[:8]) - ticks[3] - ticks[4]) / TICKS
    raise LookupError(cpu)


def _mac(ns: str, dev: str) -> str:
    out = subprocess.run(["ip", "-n", ns, "-j", "link", "show", dev], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    return str(json.loads(out)[0]["address"])


def static_neighbours(topo: Topology) -> None:
    """Permanent ARP entries on every link: under a flood, ARP requests/replies are dropped
    with the data (veth backlog), the neighbour entry fails and every packet to that host is
    silently discarded for seconds — a harness artifact seen as 100 % loss with an idle relay."""
    relay = topo.hosts["relay"].name
    for name in ("a", "b"):
        host = topo.hosts[name].name
        ip("neigh", "replace", topo.host_address(name), "lladdr", _mac(host, "eth0"),
           "dev", f"to-{name}", "nud", "permanent", ns=relay)  # fmt: skip
        ip("neigh", "replace", topo.relay_address(name), "lladdr", _mac(relay, f"to-{name}"),
           "dev", "eth0", "nud", "permanent", ns=host)  # fmt: skip


def harness_ceiling(topo: Topology, seconds: float) -> float:
    """Packets/s one sender reaches flat out into an unread socket (no relay involved)."""
    relay = topo.hosts["relay"]
    with relay.entered():
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    sink.bind((topo.relay_address("a"), PORT_SINK))
    try:
        r = one_pass(topo, None, [(topo.relay_address("a"), PORT_SINK)], 0, seconds)
    finally:
        sink.close()
    return float(r["achieved"])


DISTURBED = 0.25
"""A pass in which other jobs used this share of the relay's CPU measured the neighbours, not
the relay: marked D, not used for top rates."""


def flag(r: dict[str, Any]) -> str:
    """H: the harness could not offer the rate; D: the relay was starved of CPU; " ": valid."""
    if r["achieved"] < 0.97 * r["offered"]:
        return "H"
    return "D" if r["others"] >= DISTURBED else " "


def show(r: dict[str, Any]) -> None:
    print(
        f"[{r['kind']:9}] {r['sessions']:>5} sessions {r['offered']:>7,}/s{flag(r)} "
        f"(sent {r['achieved']:>8,.0f}/s) loss {100 * r['loss']:6.3f} % "
        f"CPU {r['cpu_us']:6.2f} us/pkt, others {100 * r['others']:3.0f} % "
        f"delay p50 {r['p50_us']:7.0f} p99 {r['p99_us']:8.0f} us",
        flush=True,
    )


def sweep_rate(
    topo: Topology,
    relays: list[Relay],
    active: set[str],
    rows: list[dict[str, Any]],
    n: int,
    rate: int,
    args: argparse.Namespace,
) -> None:
    """`args.repeat` interleaved passes per active relay at `rate`; a relay whose median loss
    reaches 0.1 % gets one more pass when another pass was clean (one disturbed pass on a shared
    machine must not end its sweep), then leaves `active` if the median still fails."""

    def run(relay: Relay, rep: int) -> None:
        r = one_pass(topo, relay, relay.dests, rate, args.seconds)
        r.update(kind=relay.kind, sessions=n, rep=rep)
        rows.append(r)
        show(r)
        if relay.d.proc.poll() is not None:
            print(f"[{relay.kind:9}] EXITED with code {relay.d.proc.returncode}; last log lines:")
            print("\n".join(relay.d.log().splitlines()[-15:]), flush=True)
            active.discard(relay.kind)

    for rep in range(args.repeat):
        for relay in relays if rep % 2 == 0 else relays[::-1]:
            if relay.kind in active:
                run(relay, rep)
    for relay in relays:
        if relay.kind not in active:
            continue
        mine = [
            x for x in rows if (x["kind"], x["sessions"], x["offered"]) == (relay.kind, n, rate)
        ]
        losses = [x["loss"] for x in mine]
        if (
            median(losses) >= 0.001
            and min(losses) < 0.001
            and len(mine) % 2 == 0
            or (mine and all(flag(x) == "D" for x in mine) and len(mine) < 3)
        ):
            run(relay, len(mine))
            mine = [
                x for x in rows if (x["kind"], x["sessions"], x["offered"]) == (relay.kind, n, rate)
            ]
            losses = [x["loss"] for x in mine]
        valid = [x["loss"] for x in mine if flag(x) == " "]
        if all(flag(x) == "H" for x in mine):
            active.discard(relay.kind)  # the harness cannot offer this rate
        elif valid and median(valid) >= 0.001:
            active.discard(relay.kind)
        elif min(losses) >= 0.5:
            active.discard(relay.kind)  # lost most packets in every pass, disturbed or not


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def median(xs: list[float]) -> float:
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sessions", default="100,500,2000")
    ap.add_argument("--rates", default="20000,50000,100000,150000,200000,250000,300000,400000")
    ap.add_argument("--seconds", type=float, default=2.5, help="length of one pass")
    ap.add_argument("--repeat", type=int, default=2, help="interleaved repetitions per rate")
    ap.add_argument(
        "--reference-rate",
        type=int,
        default=50000,
        help="rate at which CPU/packet and delay are compared",
    )
    ap.add_argument("--logs", help="keep the relays' logs in this directory")
    ap.add_argument("--quick", action="store_true", help="100,1000 sessions; 4 rates; 2 s passes")
    ap.add_argument(
        "--workers",
        help="compare rtpvault --num-threads values instead (e.g. 1,2; no rtpengine, no pinning)",
    )
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/relay.py needs root for network namespaces")
    main_pid = os.getpid()

    def stop(signum: int, _frame: object) -> None:
        if os.getpid() == main_pid:  # children (fork) inherit the handler
            raise KeyboardInterrupt(f"signal {signum}")  # unwinds: relays stop, netns removed
        os._exit(1)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)  # also when started in the background (SIG_IGN)
    if args.quick:
        args.sessions, args.rates, args.seconds = "100,1000", "20000,50000,150000,300000", 2.0
        args.repeat = 1
    sessions = [int(x) for x in args.sessions.split(",")]
    # label → (kind, options, pinned)
    variants: dict[str, tuple[str, tuple[str, ...], bool]] = {k: (k, (), True) for k in KINDS}
    if args.workers:
        counts = sorted({int(w) for w in args.workers.split(",")})
        variants = {f"rtpvault-{w}w": ("rtpvault", (f"--num-threads={w}",), False) for w in counts}
        while len(MEDIA_PORTS) < len(variants):
            MEDIA_PORTS.append(MEDIA_PORTS[-1] + 14000)
        # Unpinned, the harness and the relay share both CPUs by design, and the jobs of others
        # cannot be told from the contention between them: no pass is marked D (the "others"
        # share is still printed).
        global DISTURBED
        DISTURBED = float("inf")
    rates = sorted(int(x) for x in args.rates.split(","))
    ref = args.reference_rate if args.reference_rate in rates else rates[0]
    t_start = time.monotonic()
    print(
        "command:",
        " ".join(sys.argv),
        f"(cpus: {os.cpu_count()}, load {os.getloadavg()[0]:.2f})",
        flush=True,
    )
    topo = Topology(f"rvb{os.getpid()}")
    rows: list[dict[str, Any]] = []
    try:
        topo.build(("a", "b"))
        static_neighbours(topo)
        ceiling = harness_ceiling(topo, 1.5)
        print(
            f"harness ceiling (one Python sender, no relay): {ceiling:,.0f} packets/s", flush=True
        )
        with tempfile.TemporaryDirectory() as scratch:
            tmp = args.logs or scratch
            for n in sessions:
                relays: list[Relay] = []
                try:
                    for slot, (label, (kind, options, pin)) in enumerate(variants.items()):
                        relays.append(
                            Relay(
                                kind,
                                topo,
                                Path(tmp) / str(n),
                                n,
                                label=label,
                                options=options,
                                pin=pin,
                                slot=slot,
                            )  # fmt: skip
                        )
                    active = {r.kind for r in relays}
                    for rate in rates:
                        sweep_rate(topo, relays, active, rows, n, rate, args)
                        if not active:
                            break
                finally:
                    for relay in relays:
                        relay.stop()
    finally:
        topo.destroy()
    summary(rows, sessions, rates, ref, ceiling, list(variants))
    print(
        f"\nwall time {time.monotonic() - t_start:.0f} s; machine shared with other jobs "
        f"(load at end {os.getloadavg()[0]:.2f})"
    )


def summary(
    rows: list[dict[str, Any]],
    sessions: list[int],
    rates: list[int],
    ref: int,
    ceiling: float,
    labels: list[str],
) -> None:
    """Medians per session count; ratio = the second label / the first."""
    e_, v_ = labels[0], labels[-1]

    def pick(kind: str, n: int, rate: int | None = None) -> list[dict[str, Any]]:
        return [
            r
            for r in rows
            if r["kind"] == kind and r["sessions"] == n and (rate is None or r["offered"] == rate)
        ]

    def top(kind: str, n: int) -> str:
        """Highest rate whose valid passes had < 0.1 % median loss, below the first that failed;
        rates without a valid pass (H, D) are skipped and noted."""
        best, skipped = 0, ""
        for rate in rates:
            rs = pick(kind, n, rate)
            if not rs:
                break
            valid = [r["loss"] for r in rs if flag(r) == " "]
            if not valid:
                skipped = skipped or flag(rs[-1])
                continue
            if median(valid) >= 0.001:
                return f"{best:,}{' ' + skipped if skipped else ''}"
            best = rate
        return f">={best:,}{' ' + skipped if skipped else ''}"

    def at(kind: str, n: int, key: str, rate: int | None = None) -> float:
        """Median over the passes that delivered (loss < 10 %): a cost per delivered packet
        means nothing when almost nothing was delivered."""
        return median([r[key] for r in pick(kind, n, rate or ref) if r["loss"] < 0.1])

    print(
        f"\nmedians; ratio = {v_} / {e_}; harness ceiling {ceiling:,.0f}/s; "
        f"H = harness could not offer the rate;\nD = relay starved of CPU by other jobs "
        f"(they used >= {100 * DISTURBED:.0f} % of the relay's CPU); both excluded from top rates"
        if DISTURBED != float("inf")
        else "H = harness could not offer the rate, excluded from top rates"
    )
    print(f"{'sessions':>8}  {'measure':<32} {e_:>13} {v_:>13} {'ratio':>6}")
    for n in sessions:
        te, tv = top(e_, n), top(v_, n)
        ne, nv = (float(t.split()[0].lstrip(">=").replace(",", "")) for t in (te, tv))
        print(
            f"{n:>8}  {'top rate, < 0.1 % loss (pkt/s)':<32} {te:>13} {tv:>13} "
            f"{(nv / ne if ne else float('nan')):>6.2f}"
        )
        for key, label in (
            ("cpu_us", f"CPU us/pkt @ {ref:,}/s"),
            ("p50_us", f"delay p50 us @ {ref:,}/s"),
            ("p99_us", f"delay p99 us @ {ref:,}/s"),
        ):
            fe, fv = at(e_, n, key), at(v_, n, key)
            print(f"{n:>8}  {label:<32} {fe:>13,.2f} {fv:>13,.2f} {ratio(fv, fe):>6.2f}")
    print(f"\nCPU us/pkt by rate (medians, passes with < 10 % loss): sessions rate {e_} {v_} ratio")
    for n in sessions:
        for rate in rates:
            fe, fv = at(e_, n, "cpu_us", rate), at(v_, n, "cpu_us", rate)
            if fe == fe or fv == fv:
                print(f"{n:>8} {rate:>8,} {fe:>9.2f} {fv:>9.2f} {ratio(fv, fe):>6.2f}")


if __name__ == "__main__":
    main()
