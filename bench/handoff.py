#!/usr/bin/env python3
"""Cost of handing an ng request to the worker that owns its call (`num-threads` > 1).

Two workers' sides in one process, with the real parts: rtpvault.peers over the supervisor's
datagram socketpairs, rtpvault.shard's router, relay.control.NgControlServer on each side, a
Kamailio-shaped offer (bench/ng_setup.py). The dispatch is a stand-in that returns a fixed
SDP, so what is timed is the path around a command, not the command:

* direct: the owner receives the request itself (decode, cache, dispatch, encode);
* handed: the other worker receives it (decode, route, pickle, send), then the owner's inbox
  callback (recv, unpickle, cache, dispatch, encode).

handed - direct is the hand-off's price per request. Each figure is the best of --repeat
rounds of --requests requests (CPU time of this process, so other jobs on the machine inflate
it less than wall time would). Replies to handed requests go out through listener 0 of the
owner, which has none here: the send is the same in both cases and left out.

    .venv/bin/python bench/handoff.py [--requests 5000] [--repeat 7]
    .venv/bin/python bench/handoff.py --daemon [--repeat 6] [--seconds 3]

`--daemon` measures the same in real daemons, whole calls (offer, answer, delete as
bench/ng_setup.py sends them), one client socket kept for the whole run, so the kernel gives all
its requests to the same worker of `--num-threads=2`: calls owned by worker 0 and calls owned by
worker 1 alternate by pass, so one series is never handed on and the other always is; a
`--num-threads=1` daemon with the same socket is the reference. Daemon CPU per call is the
supervisor's and the workers' (/proc), medians of the passes.

Run it under another tree's sources with PYTHONPATH=<tree> (from outside the repo directory,
as `python /path/to/handoff.py`) to compare two versions.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any, cast

REPO = Path(__file__).resolve().parents[1]
# bench/ itself (sys.path[0]) holds a relay.py that would shadow the relay package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))  # appended: a PYTHONPATH tree is measured instead

from relay.control import NgControlServer, ReplyPath  # noqa: E402
from relay.ng.codec import parse_body, split_cookie  # noqa: E402
from rtpvault.peers import Channels, Peers  # noqa: E402
from rtpvault.shard import Shard, owner_of  # noqa: E402

sys.path.append(str(REPO / "bench"))
import _common as common  # noqa: E402
import ng_setup  # noqa: E402

SOURCE = ("127.0.0.1", 40000)


class _NoWide:
    """What Shard reads of relay.ng.commands.Commands for a call's command."""

    WIDE: frozenset[str] = frozenset()


def _dispatch(body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
    return {"sdp": body["sdp"]}


def _numbers_owned_by(owner: int, n: int) -> list[int]:
    out, i = [], 0
    while len(out) < n:
        i += 1
        datagram = ng_setup.request("offer", i)
        split = split_cookie(b"c " + datagram)
        assert split is not None
        call_id = parse_body(*split).body["call-id"]
        if owner_of(call_id, 2) == owner:
            out.append(i)
    return out


def _cpu() -> float:
    return time.process_time()


def run(requests: int, repeat: int) -> dict[str, float]:
    channels = Channels(2)
    sides = []
    for index in (0, 1):
        control = NgControlServer(_dispatch)
        peers = Peers(channels, index)
        Shard(peers, control, cast(Any, _NoWide()))
        sides.append((control, peers))
    (receiver, _), (owner, owner_peers) = sides
    numbers = _numbers_owned_by(1, requests)
    path = ReplyPath(0, lambda reply: None)  # UDP listener 0
    best: dict[str, float] = {"direct": float("inf"), "handed": float("inf")}
    batch = 50  # requests queued in the owner's inbox before its callback runs (as under load)
    for rnd in range(repeat):
        cookies = [b"%d_%d" % (rnd, n) for n in numbers]
        grams = [
            c + b" " + ng_setup.request("offer", n) for c, n in zip(cookies, numbers, strict=True)
        ]
        t0 = _cpu()
        for g in grams:
            owner.handle_deferring(g, SOURCE, None)
            owner.run_deferred()
        best["direct"] = min(best["direct"], (_cpu() - t0) / requests * 1e6)
        cookies = [b"h%d_%d" % (rnd, n) for n in numbers]
        grams = [
            c + b" " + ng_setup.request("offer", n) for c, n in zip(cookies, numbers, strict=True)
        ]
        before = owner.counters.commands.get("offer", 0)
        t0 = _cpu()
        for start in range(0, requests, batch):
            for g in grams[start : start + batch]:
                assert receiver.handle_deferring(g, SOURCE, path) is None
                receiver.run_deferred()
            owner_peers._receive()
        best["handed"] = min(best["handed"], (_cpu() - t0) / requests * 1e6)
        done = owner.counters.commands.get("offer", 0) - before
        assert done == requests, f"the owner answered {done} of {requests}"
    channels.close()
    return best


def _owned(worker: int, start: int) -> Iterator[int]:
    """ng_setup call numbers whose call-id worker `worker` of 2 owns."""
    for n in count(start):
        if owner_of(f"{n:08d}-bench@127.0.0.1", 2) == worker:
            yield n


def _calls(
    port: int, pid: int, sock: socket.socket, numbers: Iterator[int], seconds: float
) -> float:
    """Whole calls one after the other for `seconds`; daemon CPU µs per call."""
    c0, t0, calls = common.cpu_seconds(pid), time.monotonic(), 0
    while time.monotonic() - t0 < seconds:
        n = next(numbers)
        for step in ("offer", "answer", "delete"):
            cookie = b"%d_%s" % (n, step.encode())
            sock.sendto(cookie + b" " + ng_setup.request(step, n), ("127.0.0.1", port))
            while not (reply := sock.recv(65535)).startswith(cookie + b" "):
                pass
            if b"6:result2:ok" not in reply:
                raise RuntimeError(reply[:200].decode(errors="replace"))
        calls += 1
    return (common.cpu_seconds(pid) - c0) / calls * 1e6


def daemon_run(repeat: int, seconds: float) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    extra = ["--log-level=6", "--timeout=3600"]
    with tempfile.TemporaryDirectory(prefix="bench-handoff-") as tmp:
        one = ng_setup.start_daemon("rtpvault", ["--num-threads=1"], Path(tmp) / "1", 2000, extra)
        two = ng_setup.start_daemon("rtpvault", ["--num-threads=2"], Path(tmp) / "2", 2000, extra)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(5)
        sock.bind(("127.0.0.1", 0))
        try:
            # ping was answered by one worker; the other may not listen yet (a reply it sends
            # for a handed request before then is lost)
            wait = time.monotonic() + 20
            while "Startup complete, rtpvault (2 workers)" not in two.log():
                if time.monotonic() > wait:
                    raise RuntimeError("the 2-worker daemon did not complete its start")
                time.sleep(0.1)
            series = {
                "1 worker": (one, count(1)),
                "2 workers, owner 0": (two, _owned(0, 1)),
                "2 workers, owner 1": (two, _owned(1, 10_000_000)),
            }
            _calls(one.ng_port, one.proc.pid, sock, count(50_000_000), 1.0)  # warm-up
            _calls(two.ng_port, two.proc.pid, sock, count(60_000_000), 1.0)
            for rnd in range(repeat):
                names = list(series) if rnd % 2 == 0 else list(reversed(series))
                for name in names:
                    d, numbers = series[name]
                    cpu = _calls(d.ng_port, d.proc.pid, sock, numbers, seconds)
                    out.setdefault(name, []).append(cpu)
                    print(f"{name}: {cpu:,.0f} us/call", flush=True)
        finally:
            sock.close()
            one.stop()
            two.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--daemon", action="store_true", help="whole calls through real daemons")
    ap.add_argument("--seconds", type=float, default=3.0, help="length of a --daemon pass")
    args = ap.parse_args(argv)
    if args.daemon:
        print(f"command: {common.command_line()}")
        res = daemon_run(args.repeat, args.seconds)
        ref = statistics.median(res["1 worker"])
        for name, cpus in res.items():
            med = statistics.median(cpus)
            print(
                f"{name:20} median {med:,.0f} us/call ({min(cpus):,.0f}-{max(cpus):,.0f}), "
                f"{med / ref:.2f}x one worker"
            )
        return 0
    import rtpvault.peers

    print(f"sources: {Path(rtpvault.peers.__file__).resolve().parents[1]}")
    best = run(args.requests, args.repeat)
    print(
        f"per request, best of {args.repeat} x {args.requests}: direct {best['direct']:.1f} us, "
        f"handed {best['handed']:.1f} us, hand-off {best['handed'] - best['direct']:.1f} us"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
