"""One media port range for all workers (issue 18 item 3): "Ran out of ports" means the range is
really full, whichever worker asks.

The workers do not split `port-min`..`port-max`: each scans the whole range and binds, and a port
another worker holds fails its bind, so it moves on (relay.ports). With a small range, the number
of calls set up before the first refusal is the same with two workers as with one, and then
every port of the range is bound, and a call of either worker is refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import daemons
from tests.support.tools import udp_port_free

from .test_handoff import offer
from .workers import owned_call_ids

pytestmark = pytest.mark.integration

PORTS = 40  # 20 RTP/RTCP pairs; an offer of one audio line takes two (one per side)


def fill(d: daemons.Daemon, workers: int) -> tuple[int, list[str]]:
    """Offers of worker 0's calls only until the first refusal (a range split between the
    workers would refuse at half), then (calls set up, the reasons of one more offer owned by
    each worker)."""
    ids = [owned_call_ids(w, PORTS, f"ports{w}", max(workers, 2)) for w in (0, 1)]
    c = d.client()
    try:
        made = 0
        for n in range(PORTS):
            reply = c.call(offer(ids[0][n]))
            if reply["result"] != "ok":
                assert reply.get("error-reason") == "Ran out of ports", reply
                break
            made += 1
        else:
            raise AssertionError("the range never ran out")
        reasons = [c.call(offer(ids[w][-1])).get("error-reason", "ok") for w in (0, 1)]
        return made, reasons
    finally:
        c.close()


def bindable(d: daemons.Daemon) -> list[int]:
    """Ports of the daemon's range that this process can still bind (on its interface)."""
    return [port for port in range(d.port_min, d.port_max + 1) if udp_port_free(port)]


def test_both_workers_draw_from_one_range_until_it_is_full(tmp_path: Path) -> None:
    made = {}
    for workers in (1, 2):
        d = daemons.start("rtpvault", tmp_path / f"w{workers}", ports=PORTS,
                          interface="lo/127.0.0.1", num_threads=workers)  # fmt: skip
        try:
            made[workers], reasons = fill(d, workers)
            assert reasons == ["Ran out of ports", "Ran out of ports"]
            assert bindable(d) == []  # really full: every port is held by a worker
        finally:
            assert d.stop() == 0
    assert made[2] == made[1] == PORTS // 4
