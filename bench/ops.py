#!/usr/bin/env python3
"""Cost of watching the relay: `/metrics` scrapes and rtpengine-ctl commands, rtpvault against
rtpengine 10.5 with the same calls up, in one run.

Both daemons start with the same options plus `--listen-http` and `--listen-cli`; each gets
--calls calls set up over ng (offer + answer, no media, so the figures are the per-call walk,
not traffic). Then, interleaved daemon by daemon and repeated --repeat times, a batch of --batch
requests of each kind: `GET /metrics`, CLI `list totals`, CLI `list sessions all`. Per batch:
wall time per request (client side) and the daemon's CPU per request (/proc, whole process
tree). Medians over the repeats and the ratio rtpvault / rtpengine are printed. Loopback only.

    .venv/bin/python bench/ops.py --calls 1000 --batch 20 --repeat 5
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

common.add_repo_to_path()

from tests.support import daemons  # noqa: E402
from tests.support.tools import free_port  # noqa: E402

KINDS = ("rtpengine", "rtpvault")


def _sdp(port: int, session: int) -> str:
    return (f"v=0\r\no=- {session} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n")  # fmt: skip


def setup_calls(d: daemons.Daemon, n: int) -> None:
    ng = d.client(timeout=10)
    for i in range(n):
        cid = f"ops-bench-{i}"
        r = ng.call({"command": "offer", "call-id": cid, "from-tag": "a", "sdp": _sdp(20000, i)})
        assert r.get("result") == "ok", r
        r = ng.call({"command": "answer", "call-id": cid, "from-tag": "a", "to-tag": "b",
                     "sdp": _sdp(30000, i)})  # fmt: skip
        assert r.get("result") == "ok", r


def scrape(d: daemons.Daemon) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{d.http_port}/metrics", timeout=30) as r:  # type: ignore[attr-defined]
        return len(r.read())


def cli(line: str) -> Callable[[daemons.Daemon], int]:
    def run(d: daemons.Daemon) -> int:
        with socket.create_connection(("127.0.0.1", d.cli_port), timeout=30) as s:  # type: ignore[attr-defined]
            s.sendall(line.encode() + b"\n")
            size = 0
            while chunk := s.recv(65536):
                size += len(chunk)
        return size

    return run


def batch(
    d: daemons.Daemon, fn: Callable[[daemons.Daemon], int], n: int
) -> tuple[float, float, int]:
    """(wall ms per request, daemon CPU ms per request, reply bytes)."""
    cpu0, t0 = common.cpu_seconds(d.proc.pid), time.perf_counter()
    size = 0
    for _ in range(n):
        size = fn(d)
    wall, cpu = time.perf_counter() - t0, common.cpu_seconds(d.proc.pid) - cpu0
    return 1000 * wall / n, 1000 * cpu / n, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ops-bench-"))
    started: dict[str, daemons.Daemon] = {}
    kinds = {"GET /metrics": scrape, "list totals": cli("list totals"),
             "list sessions all": cli("list sessions all")}  # fmt: skip
    results: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
    try:
        for kind in KINDS:
            http, cli_port = free_port(), free_port()
            listen = [f"--listen-http=127.0.0.1:{http}", f"--listen-cli=127.0.0.1:{cli_port}"]
            ports = max(500, 4 * args.calls + 100)
            d = daemons.start(kind, tmp / kind, ports=ports, extra=[*listen, "--log-level=5"])
            d.http_port, d.cli_port = http, cli_port  # type: ignore[attr-defined]
            started[kind] = d
            setup_calls(d, args.calls)
        for _ in range(args.repeat):
            for name, fn in kinds.items():
                for kind in KINDS:
                    results.setdefault((name, kind), []).append(
                        batch(started[kind], fn, args.batch)
                    )
    finally:
        for d in started.values():
            d.stop()
    print(f"# {common.command_line()}")
    print(
        f"# {args.calls} calls up on each daemon; shared 2-core machine; medians of "
        f"{args.repeat} interleaved batches of {args.batch}"
    )
    print(f"{'request':<20} {'daemon':<10} {'wall ms':>9} {'CPU ms':>9} {'bytes':>9}")
    for name in kinds:
        med = {}
        for kind in KINDS:
            runs = results[(name, kind)]
            med[kind] = (statistics.median(r[0] for r in runs),
                         statistics.median(r[1] for r in runs), runs[-1][2])  # fmt: skip
            w, c, b = med[kind]
            print(f"{name:<20} {kind:<10} {w:9.2f} {c:9.2f} {b:9d}")
        ratio_w = med["rtpvault"][0] / med["rtpengine"][0] if med["rtpengine"][0] else float("nan")
        ratio_c = med["rtpvault"][1] / med["rtpengine"][1] if med["rtpengine"][1] else float("nan")
        print(f"{name:<20} {'ratio':<10} {ratio_w:9.2f} {ratio_c:9.2f}   (rtpvault / rtpengine)")


if __name__ == "__main__":
    main()
