"""Kernel forwarding: rtpvault `--table=0` (nftables plane) vs rtpengine 10.5 on the same load.

The guide's `table = 0` asks for kernel forwarding. rtpengine's kernel module is not on this
machine (it falls back to userspace, as `--table=-1`); rtpvault forwards established streams
with nftables (relay.media.kernel). Same harness as bench/relay.py (three namespaces, A →
relay → B over veth, one Python sender, B counts in the kernel), with two changes that a
kernel path needs to be measured at all:

* the relay namespace routes (`ip_forward = 1`, which rtpvault's kernel plane requires) and
  Receive Packet Steering sends everything arriving at the relay (veth `to-a`) to the relay's
  CPU, so the kernel's forwarding work lands on that CPU instead of the sender's;
* CPU per packet is the relay CPU's **whole busy time** (/proc/stat: user, system, irq,
  softirq) per packet delivered to B — it counts the daemon, the socket and forwarding paths
  and B's receive path alike for both relays (and also any other job on that CPU: run it on a
  quiet machine, compare the `idle` line).

Before measuring, a warm-up pass at 10 packets/s per session lets delayed learning confirm
every stream (3 s) and rtpvault's sweep move them into the kernel (1 s); the script prints
how many streams the kernel holds.

    sudo .venv/bin/python bench/kernel.py --sessions 100,500 --rates 50000,100000,200000,300000

Needs root and the `nft` tool (package nftables).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import relay as harness  # noqa: E402  (bench/relay.py; it puts the repo on sys.path)
from tests.integration.media.netns import Topology  # noqa: E402


def kernel_streams(topo: Topology) -> int:
    out = subprocess.run(
        ["ip", "netns", "exec", topo.hosts["relay"].name, "nft", "-j", "list", "map", "ip",
         "rtpvault", "streams"], capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode != 0:
        return 0
    return sum(
        len(item.get("map", {}).get("elem", [])) for item in json.loads(out.stdout)["nftables"]
    )


def prepare(topo: Topology) -> None:
    relay = topo.hosts["relay"].name
    cpu = (os.cpu_count() or 2) - 1
    subprocess.run(["ip", "netns", "exec", relay, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
                   check=True)  # fmt: skip
    subprocess.run(
        ["ip", "netns", "exec", relay, "sh", "-c",
         f"echo {1 << cpu:x} > /sys/class/net/to-a/queues/rx-0/rps_cpus"], check=True,
    )  # fmt: skip


def idle_busy(seconds: float) -> float:
    """Relay CPU busy share with nothing running in the benchmark (other jobs, noise)."""
    cpu = (os.cpu_count() or 2) - 1
    b0, t0 = harness.cpu_busy(cpu), time.monotonic()
    time.sleep(seconds)
    return (harness.cpu_busy(cpu) - b0) / (time.monotonic() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sessions", default="100,500")
    ap.add_argument("--rates", default="50000,100000,200000,300000")
    ap.add_argument("--seconds", type=float, default=2.5)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/kernel.py needs root")
    harness.EXTRA["rtpvault"] = [*harness.EXTRA.get("rtpvault", []), "--table=0"]  # one worker
    print("command:", " ".join(sys.argv), f"(load {os.getloadavg()[0]:.2f})", flush=True)
    print(f"relay CPU busy with no load: {idle_busy(2.0) * 100:.1f} %", flush=True)
    topo = Topology(f"rvk{os.getpid()}")
    rows: list[dict[str, Any]] = []
    try:
        topo.build(("a", "b"))
        harness.static_neighbours(topo)
        prepare(topo)
        with tempfile.TemporaryDirectory() as tmp:
            for n in (int(x) for x in args.sessions.split(",")):
                relays = [harness.Relay(k, topo, Path(tmp) / str(n), n) for k in harness.KINDS]
                try:
                    for r in relays:
                        harness.one_pass(topo, r, r.dests, n * 10, 5.0)
                    print(f"{n} sessions: {kernel_streams(topo)} streams in the kernel", flush=True)
                    for rate in (int(x) for x in args.rates.split(",")):
                        for rep in range(args.repeat):
                            for r in relays:
                                res = harness.one_pass(topo, r, r.dests, rate, args.seconds)
                                res.update(kind=r.kind, sessions=n, rep=rep)
                                rows.append(res)
                                print(
                                    f"  {n:5} {rate:7} {r.kind:9} loss {res['loss'] * 100:6.2f} % "
                                    f"cpu(busy) {res['busy_us']:5.2f} µs/pkt "
                                    f"(process {res['cpu_us']:5.2f}) "
                                    f"p50/p99 {res['p50_us']:.0f}/{res['p99_us']:.0f} µs",
                                    flush=True,
                                )
                finally:
                    for r in relays:
                        r.stop()
    finally:
        topo.destroy()
    print("\nmedians (relay CPU busy µs per packet delivered; loss)")
    print("| sessions | rate | rtpengine µs | rtpvault table=0 µs | ratio | loss e / v |")
    print("|---|---|---|---|---|---|")
    for n in sorted({r["sessions"] for r in rows}):
        for rate in sorted({r["offered"] for r in rows if r["sessions"] == n}):
            got = {}
            for kind in harness.KINDS:
                sel = [
                    r for r in rows if (r["sessions"], r["offered"], r["kind"]) == (n, rate, kind)
                ]
                got[kind] = (
                    statistics.median(r["busy_us"] for r in sel),
                    statistics.median(r["loss"] for r in sel),
                )
            e, v = got["rtpengine"], got["rtpvault"]
            print(
                f"| {n} | {rate:,} | {e[0]:.2f} | {v[0]:.2f} | {v[0] / e[0]:.2f} | "
                f"{e[1] * 100:.2f} % / {v[1] * 100:.2f} % |"
            )


if __name__ == "__main__":
    main()
