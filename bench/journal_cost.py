"""Micro-benchmark (issue 20): CPU µs the call-state journal (relay.state.journal) adds to an
ng offer + answer, in-process.

One Registry + Commands as the daemon composes them (fake sockets: no bind cost, so the figure
is the journal's share alone), observers run inline after each request as the daemon's deferred
work does. Each round sets up `--calls` calls (offer + answer, Kamailio-shaped SDP) and deletes
them (delete-delay 0) without and with a Journal whose sink only stores the bytes (the Redis
writer's queue); rounds interleaved, the median per variant reported (CPU time,
time.process_time). Then, best of repeats (timeit, least disturbed by other jobs): the
journal's observer alone for one offer+answer on fresh documents, and one offer+answer+delete
without a journal; plus the document size of an answered call. Bounded call counts.

    .venv/bin/python bench/journal_cost.py [--calls 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from relay.call import Registry  # noqa: E402
from relay.call.secure import SecureContext  # noqa: E402
from relay.config.interfaces import Interface  # noqa: E402
from relay.ng.commands import Commands  # noqa: E402
from relay.state.journal import Journal  # noqa: E402

SDP = ("v=0\r\no=- 1545997027 1 IN IP4 192.0.2.{n}\r\ns=-\r\nc=IN IP4 192.0.2.{n}\r\nt=0 0\r\n"
       "m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
       "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n"
       "a=sendrecv\r\n")  # fmt: skip
SOURCE = ("127.0.0.1", 5060)


LOOPBACK = Interface("default", "127.0.0.1", "127.0.0.1", "IP4")


class FakeSock:
    def close(self) -> None:
        pass

    def fileno(self) -> int:
        return -1


def setup(journal: bool) -> tuple[Commands, dict[str, bytes | None]]:
    ctx = SecureContext(fingerprint=lambda h: f"{h} AA", interfaces=[("f", "127.0.0.1")],
                        rng=random.Random(1))  # fmt: skip
    reg = Registry([LOOPBACK], 20000, 59999, opener=lambda a, p, f: FakeSock(),  # type: ignore
                   secure=ctx)  # fmt: skip
    commands = Commands(reg)
    store: dict[str, bytes | None] = {}
    if journal:
        Journal(commands, reg, "bench", store.__setitem__)
    else:
        commands.observers.append(lambda *args: None)  # the same dispatch path, observer empty
    return commands, store


def run(commands: Commands, calls: int, tag: str) -> float:
    """CPU seconds for `calls` offer + answer pairs (the deletes are not timed)."""
    dispatch = commands.dispatch
    spent = 0.0
    for i in range(calls):
        cid = f"{tag}-{i}@bench"
        offer = {"command": "offer", "call-id": cid, "from-tag": "ft", "via-branch": "z9hG4bK1",
                 "sdp": SDP.format(n=1, port=30000 + i % 1000 * 2), "replace": ["origin"],
                 "flags": ["trust-address"]}  # fmt: skip
        answer = {"command": "answer", "call-id": cid, "from-tag": "ft", "to-tag": "tt",
                  "sdp": SDP.format(n=2, port=40000 + i % 1000 * 2)}  # fmt: skip
        t0 = time.process_time()
        dispatch(offer, SOURCE)
        dispatch(answer, SOURCE)
        spent += time.process_time() - t0
        dispatch({"command": "delete", "call-id": cid, "delete-delay": 0}, SOURCE)
    return spent


def observer_alone() -> float:
    """The journal's two observer calls of one offer+answer, on a fresh document each time,
    best of 7 repeats (timeit: least disturbed by other jobs)."""
    commands, store = setup(True)
    journal = next(o.__self__ for o in commands.registry.listeners if hasattr(o, "__self__"))
    offer = {"command": "offer", "call-id": "alone", "from-tag": "ft", "via-branch": "z9hG4bK1",
             "sdp": SDP.format(n=1, port=30000), "replace": ["origin"],
             "flags": ["trust-address"]}  # fmt: skip
    answer = {"command": "answer", "call-id": "alone", "from-tag": "ft", "to-tag": "tt",
              "sdp": SDP.format(n=2, port=40000)}  # fmt: skip
    commands.dispatch(offer, SOURCE)
    commands.dispatch(answer, SOURCE)
    ok = {"result": "ok"}
    observe, calls = journal.observe, journal._calls

    def once() -> None:
        calls.clear()
        observe("offer", offer, ok, SOURCE, 1.0)
        observe("answer", answer, ok, SOURCE, 1.0)

    n = 2000
    return min(timeit.repeat(once, number=n, repeat=7)) / n * 1e6


def best_setup() -> float:
    """offer + answer + delete of one call without a journal, best of 7 repeats (µs; the
    delete included: it is cheap and frees the ports)."""
    commands, _ = setup(False)
    counter = [0]

    def once() -> None:
        counter[0] += 1
        cid = f"best-{counter[0]}"
        commands.dispatch({"command": "offer", "call-id": cid, "from-tag": "ft",
                           "via-branch": "z9hG4bK1", "sdp": SDP.format(n=1, port=30000),
                           "replace": ["origin"], "flags": ["trust-address"]}, SOURCE)
        commands.dispatch({"command": "answer", "call-id": cid, "from-tag": "ft",
                           "to-tag": "tt", "sdp": SDP.format(n=2, port=40000)}, SOURCE)
        commands.dispatch({"command": "delete", "call-id": cid, "delete-delay": 0}, SOURCE)

    n = 300
    return min(timeit.repeat(once, number=n, repeat=7)) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    variants = {"without journal": setup(False), "with journal": setup(True)}
    results: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(args.rounds):
        for name, (commands, _) in variants.items():
            results[name].append(run(commands, args.calls, f"{r}") / args.calls * 1e6)
    base = statistics.median(results["without journal"])
    for name, values in results.items():
        median = statistics.median(values)
        print(f"{name:16s} {median:8.1f} µs CPU per offer+answer (median of {args.rounds})")
    added = statistics.median(results["with journal"]) - base
    print(f"journal adds     {added:8.1f} µs ({added / base * 100:.1f} %) by difference "
          "(noisy on a shared machine)")
    alone, setup_best = observer_alone(), best_setup()
    print(f"observer alone   {alone:8.1f} µs per offer+answer (best of repeats: entries, "
          "documents, sink)")
    print(f"offer+answer     {setup_best:8.1f} µs without journal (best of repeats) → the "
          f"journal is {alone / setup_best * 100:.1f} %")
    commands, store = variants["with journal"]
    commands.dispatch({"command": "offer", "call-id": "size", "from-tag": "ft",
                       "sdp": SDP.format(n=1, port=30000)}, SOURCE)  # fmt: skip
    commands.dispatch({"command": "answer", "call-id": "size", "from-tag": "ft", "to-tag": "tt",
                       "sdp": SDP.format(n=2, port=40000)}, SOURCE)  # fmt: skip
    print(f"document of an answered call: {len(store['size'] or b'')} bytes")


if __name__ == "__main__":
    main()
