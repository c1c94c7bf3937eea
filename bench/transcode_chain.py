"""Micro-benchmark: CPU µs per 20 ms frame of relay.transcode.chain.Chain, per codec pair.

No relay, no sockets: packets of a 1 kHz tone (made once by FFmpeg) are fed to a fresh chain
in a loop and the process CPU time (time.process_time) is divided by the frames fed. The
figure is what one direction of one transcoded call costs the worker per packet; a call has
two directions, and 50 frames a second each.

    .venv/bin/python bench/transcode_chain.py                  # every pair, 1500 frames each
    .venv/bin/python bench/transcode_chain.py --frames 5000 --repeat 5 --pairs PCMU-opus
    .venv/bin/python bench/transcode_chain.py --detect        # with in-band DTMF detection

The side-by-side figure against rtpengine (CPU per transcoded call-second) is bench/transcode.py.
Results vary on a shared machine: report the median of repeats.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from relay.transcode.chain import Chain  # noqa: E402
from relay.transcode.plan import Codec, DirectionPlan  # noqa: E402
from tests.support.chains import G722, OPUS, PCMA, PCMU, PT, TE8, tone_packets  # noqa: E402

CODECS = {"PCMU": PCMU, "PCMA": PCMA, "G722": G722, "opus": OPUS}
PAIRS = ["PCMU-PCMA", "PCMU-G722", "G722-PCMU", "PCMU-opus", "opus-PCMU", "opus-G722",
         "PCMU-PCMU/30"]  # fmt: skip


def make_plan(src: Codec, dst: Codec, ptime: int | None, detect: bool) -> DirectionPlan:
    outputs = {PT[dst.name]: dst} | ({101: TE8} if detect else {})
    return DirectionPlan(inputs={PT[src.name]: src}, outputs=outputs, encode_pt=PT[dst.name],
                         ptime=ptime, dtmf_out_pt=101 if detect else None,
                         inband_to_dtmf=detect)  # fmt: skip


def measure(pair: str, frames: int, detect: bool) -> float:
    """µs of CPU per input frame (20 ms) for one chain of `pair` (`SRC-DST[/ptime]`)."""
    names, _, ptime = pair.partition("/")
    src, dst = (CODECS[n] for n in names.split("-"))
    packets = tone_packets(src, 1000, 2.0)  # 100 packets, reused with new timestamps
    plan = make_plan(src, dst, int(ptime) if ptime else None, detect)
    chain = Chain(plan, 0x1234)
    step = 960 if src is OPUS else 160
    feed: list[bytes] = []
    for i in range(frames):
        raw = bytearray(packets[i % len(packets)])
        raw[2:4] = (i & 0xFFFF).to_bytes(2, "big")
        raw[4:8] = ((1000 + i * step) & 0xFFFFFFFF).to_bytes(4, "big")
        feed.append(bytes(raw))
    start = time.process_time()
    for i, pkt in enumerate(feed):
        chain.feed(pkt, i * 0.02)
    spent = time.process_time() - start
    assert chain.decode_errors == 0 and chain.packets_out > 0
    return spent / frames * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=1500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pairs", default=",".join(PAIRS))
    ap.add_argument("--detect", action="store_true", help="in-band DTMF detection on")
    args = ap.parse_args()
    print(f"{'pair':<14} µs CPU / 20 ms frame (median of {args.repeat})")
    for pair in args.pairs.split(","):
        runs = [measure(pair, args.frames, args.detect) for _ in range(args.repeat)]
        print(f"{pair:<14} {statistics.median(runs):8.1f}   "
              f"(runs: {', '.join(f'{r:.1f}' for r in runs)})")  # fmt: skip


if __name__ == "__main__":
    main()
