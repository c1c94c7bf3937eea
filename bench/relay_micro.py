"""Micro-benchmark: CPU µs per relayed packet, rtpvault's UserspacePlane vs rtpengine 10.5.

A sender paces N RTP packets (12-byte header + 160 bytes) at R packets/s to the relay's port
facing A; a receiver thread counts what arrives at B. The relay's CPU (user+system, all threads,
from /proc/<pid>/stat) over the run, divided by the packets relayed, is the figure reported.

    .venv/bin/python bench/relay_micro.py --packets 100000 --rate 50000
    .venv/bin/python bench/relay_micro.py --rtpengine            # also measure rtpengine
    .venv/bin/python bench/relay_micro.py --daemon               # and `rtpvault run` via ng
    .venv/bin/python bench/relay_micro.py --loop asyncio         # without uvloop
    .venv/bin/python bench/relay_micro.py --pairs 100 --coalesce 0,0.001 --repeat 5 --rtpengine
    .venv/bin/python bench/relay_micro.py --pairs 100 --sdes AES_CM_128_HMAC_SHA1_80  # B's leg SRTP

`--pairs` spreads the packets over that many calls (100 is closer to real traffic than 1);
`--coalesce` takes a comma list of UserspacePlane coalesce intervals, run interleaved;
`--loop epoll` replaces the event loop by a bare epoll_wait loop, to see what a dedicated media
thread could save (measured: nothing over uvloop, so the plane stays on the main loop).
The relay is pinned to the last CPU and the harness to the others; the relay's CPU includes its
CPU's ksoftirqd. Results vary run to run on a shared machine: compare medians of interleaved
repeats, never a single run. Bounded packet counts; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

HOST = "127.0.0.1"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of every thread of `pid` so far, plus the relay CPU's ksoftirqd.

    Packet bursts can push loopback delivery from the sender's syscall into ksoftirqd, which is
    not charged to the relay; counting ksoftirqd of the relay's CPU keeps batching honest.
    """
    total = 0.0
    for p in (pid, *ksoftirqd_pids(pid)):
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def ksoftirqd_pids(pid: int) -> list[int]:
    """The ksoftirqd threads of the CPUs `pid` may run on."""
    cpus = os.sched_getaffinity(pid)
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                name = Path(f"/proc/{entry}/comm").read_text().strip()
            except OSError:
                continue
            if name.startswith("ksoftirqd/") and int(name.split("/")[1]) in cpus:
                found.append(int(entry))
    return found


class EpollLoop:
    """The least a loop can do: epoll_wait and call the reader (what a media thread would cost)."""

    def __init__(self) -> None:
        import select

        self.epoll = select.epoll()
        self.readers: dict[int, object] = {}
        self.stopped = False

    def add_reader(self, fd: int, callback: object) -> None:
        import select

        self.readers[fd] = callback
        self.epoll.register(fd, select.EPOLLIN)

    def stop(self) -> None:
        self.stopped = True

    def run_forever(self) -> None:
        readers = self.readers
        while not self.stopped:
            for fd, _ in self.epoll.poll():
                readers[fd]()  # type: ignore[operator]


def run_relay_child(
    loop_kind: str, pairs: int, batch: int, coalesce: float, sdes: str = ""
) -> None:
    """Child role: `pairs` linked stream pairs, ports on stdout, run until stdin ends.
    With `sdes` (a suite name), the leg facing B is SRTP: A's RTP goes through the secure
    reader and is protected with that suite (relay.media.secure)."""
    import relay.media.userspace
    from relay.media.secure import attach_sdes
    from relay.media.stream import LEARN_IMMEDIATE, Stream
    from relay.media.userspace import UserspacePlane
    from relay.srtp import open_context, suite

    relay.media.userspace.BATCH = batch

    if loop_kind == "uvloop":
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    elif loop_kind == "epoll":
        loop = EpollLoop()  # type: ignore[assignment]
    else:
        loop = asyncio.new_event_loop()
    plane = UserspacePlane(loop, coalesce=coalesce)
    line = sys.stdin.readline().split()  # "<A port> <B port>"
    xs = []
    for _ in range(pairs):
        streams = []
        for _ in range(2):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((HOST, 0))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            st = Stream(sock, HOST, sock.getsockname()[1])
            st.filled = True
            st.learning = LEARN_IMMEDIATE
            streams.append(st)
        x, y = streams
        x.sink, y.sink = y, x
        x.peer, y.peer = (HOST, int(line[0])), (HOST, int(line[1]))
        if sdes:
            key = bytes(range(suite(sdes).inline_len))  # a benchmark: any fixed key will do
            attach_sdes(y, open_context(suite(sdes), key, outbound=False),
                        open_context(suite(sdes), key, outbound=True))  # fmt: skip
        plane.add(x)
        plane.add(y)
        xs.append(x)
    print(json.dumps({"x": [x.local_port for x in xs]}), flush=True)
    loop.add_reader(sys.stdin.fileno(), loop.stop)
    loop.run_forever()


def start_daemon(
    kind: str, workdir: Path, a_port: int, b_port: int, pairs: int
) -> tuple[object, int, list[int]]:
    """`kind` via tests.support.daemons, one offer/answer per pair; (daemon, pid, A ports)."""
    sys.path.insert(0, str(REPO))
    from tests.support.daemons import start

    d = start(kind, workdir, extra=["--log-level=3"])
    c = d.client()

    def sdp(port: int) -> str:
        return (
            f"v=0\r\no=x 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=sendrecv\r\n"
        )

    def port_of(reply: dict[str, object]) -> int:
        text = str(reply["sdp"])
        return int(text.split("m=audio ")[1].split()[0])

    to_a = []
    for i in range(pairs):
        base = {"call-id": f"bench-{i}", "from-tag": "a", "flags": ["trust-address"]}
        c.call({**base, "command": "offer", "sdp": sdp(a_port)})
        reply = c.call({**base, "command": "answer", "to-tag": "b", "sdp": sdp(b_port)})
        to_a.append(port_of(reply))
    c.close()
    return d, d.proc.pid, to_a


def pin_relay(pid: int) -> None:
    """Give the relay (every thread) the last CPU and keep this harness off it, when possible."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(tid), {cpus[-1]})
    os.sched_setaffinity(0, set(cpus[:-1]))


def measure(
    relay_pid: int,
    to_a_ports: list[int],
    a: socket.socket,
    b: socket.socket,
    packets: int,
    rate: int,
) -> tuple[int, float]:
    """Send `packets` from a to the relay at `rate`; (packets received at b, relay CPU s)."""
    received = 0
    done = threading.Event()

    def receive() -> None:
        nonlocal received
        b.settimeout(1.0)
        while True:
            try:
                b.recv(2048)
            except TimeoutError:
                if done.is_set():
                    return
                continue
            received += 1

    home = os.sched_getaffinity(0)
    pin_relay(relay_pid)
    t = threading.Thread(target=receive, daemon=True)
    t.start()
    header = bytearray(b"\x80\x00\x00\x00" + b"\x00" * 4 + b"\x11\x22\x33\x44")
    payload = bytes(160)
    dests = [(HOST, p) for p in to_a_ports]
    pairs = len(dests)
    burst = max(1, rate // 5000)  # a sleep every 200 µs: close to evenly spread arrivals
    cpu0 = cpu_seconds(relay_pid)
    t0 = time.monotonic()
    for i in range(packets):
        header[2:4] = (i & 0xFFFF).to_bytes(2, "big")
        a.sendto(bytes(header) + payload, dests[i % pairs])
        if i % burst == burst - 1:
            due = t0 + (i + 1) / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    time.sleep(0.3)
    cpu1 = cpu_seconds(relay_pid)
    done.set()
    t.join()
    os.sched_setaffinity(0, home)
    return received, cpu1 - cpu0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", default="bench")
    ap.add_argument("--loop", default="uvloop", choices=["uvloop", "asyncio", "epoll"])
    ap.add_argument("--packets", type=int, default=100_000)
    ap.add_argument("--rate", type=int, default=50_000)
    ap.add_argument("--pairs", type=int, default=1, help="calls the packets are spread over")
    ap.add_argument("--batch", type=int, default=0, help="override userspace.BATCH")
    ap.add_argument("--rtpengine", action="store_true")
    ap.add_argument("--no-rtpvault", action="store_true")
    ap.add_argument("--daemon", action="store_true", help="also the full rtpvault daemon")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--coalesce", default="0", help="UserspacePlane coalesce (s), comma list")
    ap.add_argument("--sdes", default="", help="SRTP suite on B's leg (secure reader), e.g. "
                    "AES_CM_128_HMAC_SHA1_80")  # fmt: skip
    args = ap.parse_args()
    if args.role == "relay":
        run_relay_child(args.loop, args.pairs, args.batch, float(args.coalesce), args.sdes)
        return

    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind((HOST, 0))
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b.bind((HOST, 0))
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    ports = (a.getsockname()[1], b.getsockname()[1])
    results: dict[str, list[float]] = {}
    # Interleaved repeats, median reported: the machine's two cores are shared.
    for _ in range(args.repeat):
        for coalesce in [] if args.no_rtpvault else args.coalesce.split(","):
            sdes = f", SDES {args.sdes} towards B" if args.sdes else ""
            name = f"rtpvault ({args.loop}, coalesce {coalesce}, {args.pairs} pairs{sdes})"
            results.setdefault(name, []).append(bench_rtpvault(args, a, b, ports, coalesce))
        if args.daemon:
            name = f"rtpvault daemon ({args.pairs} pairs)"
            results.setdefault(name, []).append(bench_daemon("rtpvault", args, a, b, ports))
        if args.rtpengine:
            name = f"rtpengine 10.5 ({args.pairs} pairs)"
            results.setdefault(name, []).append(bench_daemon("rtpengine", args, a, b, ports))
    for name, runs in results.items():
        runs_text = " ".join(f"{r:.2f}" for r in runs)
        print(
            f"{name}: median {statistics.median(runs):.2f} µs CPU/packet "
            f"at {args.rate} pps (runs: {runs_text})"
        )


def report(name: str, got: int, sent: int, cpu: float) -> float:
    per_packet = cpu * 1e6 / max(got, 1)
    print(f"  {name}: {got}/{sent} relayed, {per_packet:.2f} µs", file=sys.stderr)
    return per_packet


def bench_rtpvault(
    args: argparse.Namespace,
    a: socket.socket,
    b: socket.socket,
    ports: tuple[int, int],
    coalesce: str,
) -> float:
    """One run through a fresh rtpvault relay child; µs CPU per relayed packet."""
    import relay.media.userspace

    batch = args.batch or relay.media.userspace.BATCH
    child = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--role",
            "relay",
            "--loop",
            args.loop,
            "--pairs",
            str(args.pairs),
            "--batch",
            str(batch),
            "--coalesce",
            coalesce,
            "--sdes",
            args.sdes,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin and child.stdout
    child.stdin.write(f"{ports[0]} {ports[1]}\n")
    child.stdin.flush()
    relay_ports = json.loads(child.stdout.readline())
    got, cpu = measure(child.pid, relay_ports["x"], a, b, args.packets, args.rate)
    child.stdin.close()
    child.wait(10)
    return report("rtpvault", got, args.packets, cpu)


def bench_daemon(
    kind: str, args: argparse.Namespace, a: socket.socket, b: socket.socket, ports: tuple[int, int]
) -> float:
    """One run through a fresh daemon (ng offer/answer per call); µs CPU per relayed packet."""
    with tempfile.TemporaryDirectory() as tmp:
        d, pid, to_a = start_daemon(kind, Path(tmp), ports[0], ports[1], args.pairs)
        try:
            got, cpu = measure(pid, to_a, a, b, args.packets, args.rate)
        finally:
            d.stop()  # type: ignore[attr-defined]
    return report(kind, got, args.packets, cpu)


if __name__ == "__main__":
    main()
