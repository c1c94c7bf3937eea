"""Relay CPU per packet with every call recorded vs unrecorded, rtpvault and rtpengine 10.5.

Each run starts a fresh daemon (tests.support.daemons, ng offer/answer per call, with
`record-call=yes` and `--recording-dir` for the recorded variants), sends N RTP packets spread
over P calls at R packets/s (bench/relay_micro.measure: relay pinned to the last CPU, CPU from
/proc including that CPU's ksoftirqd, so the recorder's worker thread is counted too), and
reports µs of relay CPU per relayed packet. Variants run interleaved, repeated; medians and
ratios are printed. Loopback only, bounded packet counts.

    .venv/bin/python bench/record.py --packets 30000 --rate 10000 --pairs 20 --repeat 3
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from relay_micro import HOST, measure, report  # noqa: E402

from tests.support.daemons import Daemon, start  # noqa: E402


def sdp(port: int) -> str:
    return (
        f"v=0\r\no=x 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=sendrecv\r\n"
    )


def open_calls(d: Daemon, pairs: int, a: socket.socket, b: socket.socket,
               extra: dict[str, str]) -> list[int]:  # fmt: skip
    """Offer + answer `pairs` calls between sockets a and b (with `extra` ng keys); returns the
    relay port a must send to for each call."""
    c = d.client()
    to_a = []
    for i in range(pairs):
        base = {"call-id": f"bench-{i}", "from-tag": "a", "flags": ["trust-address"], **extra}
        c.call({**base, "command": "offer", "sdp": sdp(a.getsockname()[1])})
        reply = c.call({**base, "command": "answer", "to-tag": "b",
                        "sdp": sdp(b.getsockname()[1])})  # fmt: skip
        to_a.append(int(str(reply["sdp"]).split("m=audio ")[1].split()[0]))
    c.close()
    return to_a


def run(
    kind: str,
    recorded: bool,
    fmt: str,
    args: argparse.Namespace,
    a: socket.socket,
    b: socket.socket,
) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        extra = ["--log-level=3"]
        if recorded:
            extra += [f"--recording-dir={tmp}/spool", "--recording-method=pcap",
                      f"--recording-format={fmt}"]  # fmt: skip
        d = start(kind, Path(tmp) / "run", extra=extra)
        try:
            to_a = open_calls(d, args.pairs, a, b, {"record-call": "yes"} if recorded else {})
            got, cpu = measure(d.proc.pid, to_a, a, b, args.packets, args.rate)
            if recorded:
                files = list((Path(tmp) / "spool" / "pcaps").iterdir())
                assert len(files) == args.pairs, files
        finally:
            d.stop()
    return report(
        f"{kind} {'recorded ' + fmt if recorded else 'unrecorded'}", got, args.packets, cpu
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=30_000)
    ap.add_argument("--rate", type=int, default=10_000)
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--format",
        default="eth",
        choices=["eth", "raw", "pcapng"],
        help="rtpvault's recording format (rtpengine: eth, or raw with --format raw)",
    )
    ap.add_argument("--no-rtpengine", action="store_true")
    args = ap.parse_args()
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind((HOST, 0))
    b.bind((HOST, 0))
    kinds = ["rtpvault"] + ([] if args.no_rtpengine else ["rtpengine"])
    results: dict[tuple[str, bool], list[float]] = {}
    for rep in range(args.repeat):
        print(f"repeat {rep + 1}/{args.repeat}", file=sys.stderr)
        for kind in kinds:
            for recorded in (False, True):
                fmt = args.format if kind == "rtpvault" or args.format != "pcapng" else "eth"
                results.setdefault((kind, recorded), []).append(
                    run(kind, recorded, fmt, args, a, b)
                )
    print(
        f"\n{args.packets} packets over {args.pairs} calls at {args.rate}/s, "
        f"median of {args.repeat} (µs relay CPU per relayed packet)"
    )
    for kind in kinds:
        plain = statistics.median(results[(kind, False)])
        rec = statistics.median(results[(kind, True)])
        print(f"  {kind:10s} unrecorded {plain:6.2f}  recorded {rec:6.2f}  ratio {rec / plain:.2f}")
    if "rtpengine" in kinds:
        v = statistics.median(results[("rtpvault", True)])
        e = statistics.median(results[("rtpengine", True)])
        print(f"  recorded rtpvault / recorded rtpengine: {v / e:.2f}")


if __name__ == "__main__":
    main()
