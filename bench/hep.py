"""Relay CPU per packet with HEP export on vs off, rtpvault and rtpengine 10.5 in one run.

"On" means `--homer=127.0.0.1:PORT` (a local UDP sink that only counts): for rtpvault that is
its default export — RTCP, RTP-derived QoS and ng traces; QoS analyses each RTP stream in
windows of 2 s every 10 s (rtpvault.homer QOS_WINDOW / QOS_PERIOD), so a run of 10 s or more
(`--packets` ≥ 10 × `--rate`) shows the long-call cost and a 2 s run the cost while every packet
is analysed; for rtpengine 10.5 it is RTCP export only (it has nothing else).
Each variant starts a fresh daemon,
sends N RTP packets (plus one RTCP per call) spread over P calls at R packets/s through it
(bench/relay_micro.measure: relay pinned to the last CPU, CPU from /proc including that CPU's
ksoftirqd). Variants interleaved and repeated; medians and ratios printed. Loopback only.

    .venv/bin/python bench/hep.py --packets 500000 --rate 50000 --pairs 50 --repeat 5

`--micro` measures instead, in this process, the CPU the Homer part adds per RTP packet on the
forwarding loop (the plane's tap call with its copy of the packet, and RtpStats inside a window;
nothing between windows), averaged over one QoS period — steadier than whole-relay CPU on a
shared machine.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from record import open_calls  # noqa: E402
from relay_micro import HOST, measure, report  # noqa: E402

from tests.support.daemons import start  # noqa: E402


class Sink:
    """Counts HEP datagrams on a local UDP port."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self.stop = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stop:
            try:
                self.sock.recv(65535)
                self.count += 1
            except TimeoutError:
                pass


def run(kind: str, hep: bool, args: argparse.Namespace, a: socket.socket, b: socket.socket,
        sink: Sink) -> float:  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        extra = ["--log-level=3"]
        if hep:
            extra.append(f"--homer=127.0.0.1:{sink.port}")
            if kind == "rtpvault":
                extra.append("--homer-qos-interval=5")
        d = start(kind, Path(tmp) / "run", extra=extra)
        try:
            to_a = open_calls(d, args.pairs, a, b, {})
            got, cpu = measure(d.proc.pid, to_a, a, b, args.packets, args.rate)
        finally:
            d.stop()
    return report(f"{kind} hep {'on' if hep else 'off'}", got, args.packets, cpu)


def micro(packets: int) -> None:
    """Per-packet CPU of the tap path: no tap, a tap inside a window, and the period average."""
    import struct
    import time

    from recorder.rtpstats import RtpStats
    from rtpvault.homer import QOS_PERIOD, QOS_WINDOW, HomerComponent

    buf = bytearray(struct.pack("!BBHII", 0x80, 0, 0, 0, 0x11223344) + bytes(160))
    view = memoryview(buf)

    def loop(tap: object) -> float:
        t0 = time.process_time()
        now = 1000.0
        for i in range(packets):
            buf[2:4] = (i & 0xFFFF).to_bytes(2, "big")
            buf[4:8] = ((i * 160) & 0xFFFFFFFF).to_bytes(4, "big")
            if tap is not None:
                tap(None, bytes(view[:172]), ("127.0.0.1", 4000), now)  # type: ignore[operator]
            now += 0.02
        return (time.process_time() - t0) / packets * 1e6

    results: dict[str, list[float]] = {"none": [], "window": []}
    for _ in range(5):  # interleaved
        results["none"].append(loop(None))
        results["window"].append(loop(HomerComponent._window_tap(RtpStats().update)))
    none = statistics.median(results["none"])
    window = statistics.median(results["window"]) - none
    share = QOS_WINDOW / QOS_PERIOD
    print(f"{packets} packets, median of 5, µs CPU per packet added on the forwarding loop:")
    print(f"  inside a QoS window (tap + RtpStats)   {window:.3f}")
    print("  between windows (no tap)               0.000")
    print(f"  averaged over a period ({share:.0%} in windows) {window * share:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--micro", action="store_true", help="in-process tap cost (see docstring)")
    ap.add_argument("--packets", type=int, default=100_000)
    ap.add_argument("--rate", type=int, default=50_000)
    ap.add_argument("--pairs", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if args.micro:
        micro(args.packets)
        return
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind((HOST, 0))
    b.bind((HOST, 0))
    sink = Sink()
    results: dict[tuple[str, bool], list[float]] = {}
    for rep in range(args.repeat):
        print(f"repeat {rep + 1}/{args.repeat}", file=sys.stderr)
        for kind in ("rtpvault", "rtpengine"):
            for hep in (False, True):
                results.setdefault((kind, hep), []).append(run(kind, hep, args, a, b, sink))
    print(f"\n{args.packets} packets over {args.pairs} calls at {args.rate}/s, median of "
          f"{args.repeat} (µs relay CPU per relayed packet); HEP packets received: {sink.count}")
    for kind in ("rtpvault", "rtpengine"):
        off = statistics.median(results[(kind, False)])
        on = statistics.median(results[(kind, True)])
        paired = statistics.median(
            b / a for a, b in zip(results[(kind, False)], results[(kind, True)], strict=True))
        print(f"  {kind:10s} hep off {off:6.2f}  hep on {on:6.2f}  ratio {on / off:.2f}  "
              f"median of per-repeat ratios {paired:.2f}")


if __name__ == "__main__":
    main()
