#!/usr/bin/env python3
"""Shutdown time on SIGTERM with many calls up, after media for a while: rtpvault and
rtpengine 10.5 on the same load, interleaved, in one run.

One daemon per repetition and relay (tests.support.daemons, loopback): --calls calls set up over ng,
every other one with `record-call` (so half are recorded to --recording-dir, pcap, SQLite
index), then RTP both ways on every call at --pps packets/s per direction for --seconds. Then
SIGTERM; the figure is the time until the process has exited (waited for by its parent), and
the daemon's log gives when it started shutting down. With --table 0 the daemon forwards
established unrecorded streams in nftables: that needs root and net.ipv4.ip_forward = 1, so
run it in a network namespace (`ip netns add t; ip netns exec t ip link set lo up; ip netns
exec t sysctl -qw net.ipv4.ip_forward=1; ip netns exec t .venv/bin/python bench/shutdown.py
--table 0`). Loopback only; bounded packet counts.

    .venv/bin/python bench/shutdown.py --calls 500 --seconds 60 --repeat 3
"""

from __future__ import annotations

import argparse
import signal
import socket
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

common.add_repo_to_path()

from tests.support import daemons  # noqa: E402

KINDS = ("rtpengine", "rtpvault")


def _sdp(port: int) -> str:
    return (f"v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=sendrecv\r\n")  # fmt: skip


def _socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    s.setblocking(False)
    return s


def _drain(s: socket.socket) -> None:
    try:
        while True:
            s.recv(2048)
    except BlockingIOError:
        pass


def one_run(args: argparse.Namespace, work: Path, kind: str) -> tuple[float, int]:
    """(seconds from SIGTERM to exit, exit status) of one daemon of `kind`."""
    extra = ["--log-level=6", f"--recording-dir={work}/spool", "--recording-method=pcap",
             f"--table={args.table}"]  # fmt: skip
    d = daemons.start(kind, work / "run", ports=4 * args.calls + 100, extra=extra)
    a, b = _socket(), _socket()
    try:
        ng = d.client(timeout=10)
        to_a, to_b = [], []
        for i in range(args.calls):
            base = {"call-id": f"shutdown-{i}", "from-tag": "a", "flags": ["trust-address"],
                    **({"record-call": "yes"} if i % 2 == 0 else {})}  # fmt: skip
            r = ng.call({**base, "command": "offer", "sdp": _sdp(a.getsockname()[1])})
            to_b.append(int(str(r["sdp"]).split("m=audio ")[1].split()[0]))
            r = ng.call({**base, "command": "answer", "to-tag": "b",
                         "sdp": _sdp(b.getsockname()[1])})  # fmt: skip
            to_a.append(int(str(r["sdp"]).split("m=audio ")[1].split()[0]))
        ng.close()
        end, tick, seq = time.monotonic() + args.seconds, time.monotonic(), 0
        while time.monotonic() < end:
            seq += 1
            for i in range(args.calls):
                for sock, port, ssrc in ((a, to_a[i], 1000 + i), (b, to_b[i], 5000 + i)):
                    head = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, seq * 160, ssrc)
                    try:
                        sock.sendto(head + b"\xff" * 160, ("127.0.0.1", port))
                    except BlockingIOError:
                        pass
            _drain(a)
            _drain(b)
            tick += 1.0 / args.pps
            time.sleep(max(0.0, tick - time.monotonic()))
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        rc = d.proc.wait(60)
        return time.monotonic() - t0, rc
    finally:
        a.close()
        b.close()
        d.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=60.0, help="media before the SIGTERM")
    ap.add_argument("--pps", type=float, default=5.0, help="packets/s per direction per call")
    ap.add_argument("--table", type=int, default=-1)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for rep in range(args.repeat):
        for kind in KINDS:
            with tempfile.TemporaryDirectory(prefix="shutdown-bench-") as tmp:
                took, rc = one_run(args, Path(tmp), kind)
            print(f"{kind} run {rep + 1}: {took:.3f} s (exit {rc})", file=sys.stderr)
            times[kind].append(took)
    print(f"# {common.command_line()}")
    print(f"# {args.calls} calls (half recorded), {args.seconds:g} s of media at {args.pps:g} "
          f"pkt/s each way, table = {args.table}; shared 2-core machine")  # fmt: skip
    for kind in KINDS:
        t = times[kind]
        print(f"{kind}: shutdown on SIGTERM median {statistics.median(t):.3f} s, "
              f"min {min(t):.3f}, max {max(t):.3f} over {len(t)} runs")  # fmt: skip
    ratio = statistics.median(times["rtpvault"]) / statistics.median(times["rtpengine"])
    print(f"rtpvault / rtpengine: {ratio:.2f}")

if __name__ == "__main__":
    main()
