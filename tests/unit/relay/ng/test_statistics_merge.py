"""ng `statistics` of several workers (issue 18): each worker's raw `Figures`, merged, build the
reply one process with all the calls would give. The same requests go to one process and to two
"workers" (each the calls one worker owns), through the real ng server and command table; the
clocks are the tests' so durations are exact."""

from __future__ import annotations

from typing import Any

from relay.control import NgControlServer
from relay.ng.commands import Commands
from relay.ng.statistics import Figures, build, figures, merge
from tests.support.ng import encode_ordered
from tests.unit.relay.test_calls import registry

SDP = ("v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
       "m=audio 49170 RTP/AVP 0\r\n")  # fmt: skip


class Process:
    """One worker (or the single process): registry, command table, ng server, its clock."""

    def __init__(self) -> None:
        self.registry, self.clock = registry()
        self.commands = Commands(self.registry)
        self.server = NgControlServer(self.commands.dispatch)
        self.cookie = 0

    def ng(self, source: str, **body: Any) -> None:
        self.cookie += 1
        self.server.handle(f"c{self.cookie} ".encode() + encode_ordered(body), (source, 5060))

    def figures(self) -> Figures:
        uptime = 100.0 + self.cookie
        return figures(self.registry, self.server.counters, self.commands.delays, uptime,
                       self.registry.relayed())  # fmt: skip


# (call, worker, proxy, seconds it lasts: None = still up)
CALLS = [("c1", 1, "10.0.0.1", 3.0), ("c2", 0, "10.0.0.2", 10.0), ("c3", 1, "10.0.0.2", None),
         ("c4", 0, "10.0.0.1", 4.0), ("c5", 0, "10.0.0.1", None)]  # fmt: skip


def _run(single: Process, workers: list[Process]) -> None:
    for call_id, worker, proxy, _ in CALLS:
        for p in (single, workers[worker]):
            p.ng(proxy, command="offer", **{"call-id": call_id, "from-tag": "a", "sdp": SDP})
            p.ng(proxy, command="answer", **{"call-id": call_id, "from-tag": "a", "to-tag": "b",
                                             "sdp": SDP})  # fmt: skip
    for call_id, worker, proxy, lasts in sorted(CALLS, key=lambda c: c[3] or 1e9):
        if lasts is None:
            continue
        for p in (single, workers[worker]):
            p.clock.t = 1000.0 + lasts
            p.ng(proxy, command="delete",
                 **{"call-id": call_id, "from-tag": "a", "delete-delay": 0})  # fmt: skip
    for p in (single, workers[1]):
        p.ng("10.0.0.3", command="query", **{"call-id": "nosuch"})  # an error, a third proxy


def _timeless(stats: dict[str, Any]) -> dict[str, Any]:
    """Without what the perf counter measures (delays), the ports' last (each pool its own)."""
    ivl = {k: v for k, v in stats["intervalstatistics"].items() if not k.endswith("delay")}
    ports = [{**i, "ports": {**i["ports"], "last": 0}} for i in stats["interfaces"]]
    return {**stats, "intervalstatistics": ivl, "interfaces": ports}


def test_two_workers_merge_into_the_single_process_reply() -> None:
    single, workers = Process(), [Process(), Process()]
    _run(single, workers)
    theirs = build(single.figures())
    parts = [w.figures() for w in workers]
    ours = build(merge(parts))
    assert _timeless(ours) == {**_timeless(theirs),
                               "totalstatistics": {**theirs["totalstatistics"],
                                                   "uptime": ours["totalstatistics"]["uptime"]}}
    tot = ours["totalstatistics"]
    assert (tot["managedsessions"], tot["totalcallsduration"], tot["avgcallduration"]) == \
        (3, "17.000000", "5.666667")  # fmt: skip
    assert tot["totalcallsduration_stddev"] == "3.091206"
    assert tot["uptime"] == str(int(max(p.uptime for p in parts)))  # the oldest worker's
    assert [p["proxy"] for p in ours["controlstatistics"]["proxies"]] == \
        ["10.0.0.1", "10.0.0.2", "10.0.0.3"]  # first heard from, across workers  # fmt: skip
    ports = ours["interfaces"][0]["ports"]
    assert ports["used"] == 8 and ports["totals"] == theirs["interfaces"][0]["ports"]["totals"]
    assert ports["used_pct"] == theirs["interfaces"][0]["ports"]["used_pct"]


def test_delays_merge_as_min_max_and_mean_over_all_requests() -> None:
    workers = [Process(), Process()]
    for w, seconds in zip(workers, ((0.001, 0.003), (0.002, 0.010)), strict=True):
        for s in seconds:
            w.commands.delays["offer"].add(s)
    ivl = build(merge([w.figures() for w in workers]))["intervalstatistics"]
    assert (ivl["minofferdelay"], ivl["maxofferdelay"], ivl["avgofferdelay"]) == \
        ("0.001000", "0.010000", "0.004000")  # fmt: skip
    assert ivl["minanswerdelay"] == ivl["avganswerdelay"] == "0.000000"  # none on any worker


def test_the_port_last_taken_by_any_worker_is_the_last() -> None:
    workers = [Process(), Process()]
    for i, w in enumerate(workers):
        w.ng("10.0.0.1", command="offer", **{"call-id": f"x{i}", "from-tag": "a", "sdp": SDP})
    parts = [w.figures() for w in workers]
    newest = max(parts, key=lambda p: p.pools[0].last_at)
    assert build(merge(parts))["interfaces"][0]["ports"]["last"] == newest.pools[0].last
