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

Run it under another tree's sources with PYTHONPATH=<tree> (from outside the repo directory,
as `python /path/to/handoff.py`) to compare two versions.
"""

from __future__ import annotations

import argparse
import sys
import time
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
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
