"""Issue 18: with `num-threads = 2` the daemon answers for all its calls, as one process would.

The same calls (two owned by each worker, rtpvault.shard.owner_of, from two proxies: 127.0.0.1
and 127.0.0.2) go through a daemon with two workers and one with one; ng `statistics`, /metrics
and rtpengine-ctl (`listen-cli` and HTTP `/cli`) must then say the same in both, modulo the
figures that depend on time (uptime, durations, delays) or on chance (port numbers). Every
question is asked over several connections: the kernel spreads them over the two workers
(SO_REUSEPORT), and each must give the whole daemon's answer."""

from __future__ import annotations

import os
import re
import signal
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rtpvault.shard import owner_of
from tests.integration.recording.media import Call
from tests.support import daemons
from tests.support.ng import NgClient
from tests.support.tools import free_port
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration

ASKS = 8
"""Connections per question: each lands on a worker the kernel picks (both, in practice)."""
PROXIES = ("127.0.0.1", "127.0.0.2")


def _ids(worker: int, n: int) -> list[str]:
    ids = (f"whole-{i}" for i in range(1000))
    return [c for c in ids if owner_of(c, 2) == worker][:n]


W0, W1 = _ids(0, 2), _ids(1, 2)
ORDER = [(W1[0], PROXIES[0]), (W0[0], PROXIES[1]), (W1[1], PROXIES[0]), (W0[1], PROXIES[1])]
"""Creation order and proxy of each call: worker 1 (not the first) has the oldest calls and the
first proxy, so one process's orders (calls by age, proxies as first heard from) are not the
workers' order."""


def _start(tmp: Path, threads: int) -> daemons.Daemon:
    http, cli = free_port(), free_port(socket.SOCK_STREAM)
    d = daemons.start("rtpvault", tmp / f"t{threads}", extra=[
        f"--num-threads={threads}", f"--listen-http=127.0.0.1:{http}",
        f"--listen-cli=127.0.0.1:{cli}", "--delete-delay=0"])  # fmt: skip
    d.http_port, d.cli_port = http, cli  # type: ignore[attr-defined]
    # used at once: daemons.start returns at the first pong, maybe before the other worker
    # serves (requests handed to it then, and `set` lines, must still be answered and kept)
    return d


def _client(d: daemons.Daemon, source: str) -> NgClient:
    client = d.client()
    client.sock.close()
    client.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.sock.settimeout(5.0)
    client.sock.bind((source, 0))
    return client


def _scenario(d: daemons.Daemon) -> list[Call]:
    """Four calls with media; the first of each worker deleted; one error reply."""
    calls = []
    for call_id, proxy in ORDER:
        call = Call(d, call_id)
        call.ng.close()
        call.ng = _client(d, proxy)
        call.offer()
        call.answer()
        calls.append(call)
    for call in calls:
        call.media(5)
        call.relayed(5)
    for call in calls[:2]:
        call.delete()
    error = _client(d, PROXIES[1])
    assert error.call({"command": "query", "call-id": W1[0]})["result"] == "error"
    error.close()
    return calls


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[daemons.Daemon, ...]]:
    tmp = tmp_path_factory.mktemp("whole")
    two, one = _start(tmp, 2), _start(tmp, 1)
    calls = []
    try:
        for d in (two, one):
            calls += _scenario(d)
        yield two, one
    finally:
        for call in calls:
            call.close()
        two.stop()
        one.stop()


# --- ng statistics -----------------------------------------------------------------------------
TIMED = re.compile(r"uptime|delay|duration|^last$")


def _timeless(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _timeless(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return "T" if TIMED.search(key) else value


def _ports(stats: dict[str, Any]) -> dict[str, Any]:
    ports = dict(stats["interfaces"][0]["ports"])
    return {k: v for k, v in ports.items() if k not in ("min", "max", "last")}


def test_statistics_of_two_workers_are_one_process(pair: tuple[daemons.Daemon, ...]) -> None:
    two, one = pair
    for _ in range(ASKS):  # each `statistics` counts itself for the next: asked alike on both
        theirs = one.client().call({"command": "statistics"})["statistics"]
        ours = two.client().call({"command": "statistics"})["statistics"]
        assert _timeless(ours) == {**_timeless(theirs),
                                   "interfaces": _timeless(ours["interfaces"])}  # fmt: skip
        assert _ports(ours) == _ports(theirs)
        assert [p["proxy"] for p in ours["controlstatistics"]["proxies"]] == list(PROXIES)
        _consistent(ours, two)


def _consistent(st: dict[str, Any], d: daemons.Daemon) -> None:
    """What the provisional merge (numbers summed, the first worker's text) got wrong."""
    ports = st["interfaces"][0]["ports"]
    assert (ports["min"], ports["max"], ports["totals"]) == (d.port_min, d.port_max,
                                                             d.port_max - d.port_min + 1)
    assert ports["used"] == 8 and ports["free"] == ports["totals"] - 8  # two calls, two pairs
    assert ports["used_pct"] == f"{100.0 * 8 / ports['totals']:.2f}"
    assert d.port_min <= ports["last"] <= d.port_max
    tot = st["totalstatistics"]
    n, total = tot["managedsessions"], float(tot["totalcallsduration"])
    assert n == 2
    assert float(tot["avgcallduration"]) == pytest.approx(total / n, abs=2e-6)
    # two calls of different lengths, one per worker: |d1 - d2| / 2 (one worker's alone: 0)
    assert 0 < float(tot["totalcallsduration_stddev"]) <= total / n
    ivl = st["intervalstatistics"]
    low, high, avg = (float(ivl[f"{k}offerdelay"]) for k in ("min", "max", "avg"))
    assert 0 < low <= avg <= high
    proxies = {p["proxy"]: p for p in st["controlstatistics"]["proxies"]}
    assert {h: (p["offercount"], p["deletecount"], p["querycount"], p["errorcount"])
            for h, p in proxies.items()} == {PROXIES[0]: (2, 1, 0, 0), PROXIES[1]: (2, 1, 1, 1)}
    assert st["currentstatistics"]["sessionstotal"] == 2


def test_list_interleaves_the_workers_calls_oldest_first(pair: tuple[daemons.Daemon, ...]) -> None:
    two, one = pair
    for _ in range(ASKS):
        assert two.client().call({"command": "list"})["calls"] == [W1[1], W0[1]]
        assert one.client().call({"command": "list"})["calls"] == [W1[1], W0[1]]
        for d in pair:  # asked of both: the counts of `list` are compared below
            assert d.client().call({"command": "list", "limit": 1})["calls"] == [W1[1]]


# --- /metrics ----------------------------------------------------------------------------------
TIMED_METRICS = ("rtpengine_uptime_seconds", "rtpengine_request_seconds_total",
                 "rtpengine_call_duration_avg", "rtpengine_call_duration_total",
                 "rtpengine_call_duration2_total", "rtpvault_spool_free_bytes",
                 "rtpvault_recording_flush_lag_seconds", "rtpvault_upload_lag_seconds")  # fmt: skip


def _scrape(d: daemons.Daemon) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    port = d.http_port  # type: ignore[attr-defined]
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _untimed(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]
             ) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:  # fmt: skip
    return {k: (-1.0 if k[0] in TIMED_METRICS or k[0].startswith("rtpengine_ports") and
                k[0] != "rtpengine_ports_used" else v) for k, v in samples.items()}  # fmt: skip


def test_metrics_are_the_totals_of_every_worker(pair: tuple[daemons.Daemon, ...]) -> None:
    two, one = pair
    theirs = _untimed(_scrape(one))
    for _ in range(ASKS):
        ours = _scrape(two)
        assert _untimed(ours) == theirs
        assert ours[("rtpengine_sessions", (("type", "own"),))] == 2
        assert ours[("rtpengine_ports_used", (("address", "127.0.0.1"), ("name", "lo")))] == 8
        assert ours[("rtpengine_ports", (("address", "127.0.0.1"), ("name", "lo")))] == \
            two.port_max - two.port_min + 1  # fmt: skip
        uptime = ours[("rtpengine_uptime_seconds", ())]
        assert uptime >= _scrape(one)[("rtpengine_uptime_seconds", ())] - 1  # started first
        assert ours[("rtpengine_call_duration_avg", ())] == pytest.approx(
            ours[("rtpengine_call_duration_total", ())] / 2)


# --- rtpengine-ctl -----------------------------------------------------------------------------
def cli(d: daemons.Daemon, line: str) -> str:
    port = d.cli_port  # type: ignore[attr-defined]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(line.encode() + b"\n")
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
    return got.decode()


def http_cli(d: daemons.Daemon, line: str) -> str:
    port = d.http_port  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{port}/cli/{urllib.request.quote(line)}"
    return urllib.request.urlopen(url, timeout=10).read().decode()


MASKS = (
    (re.compile(r"created: +\d+"), "created: T"),
    (re.compile(r"(Uptime of rtpengine|duration[ a-z]*|delay|Last port used|Port range)"
                r"( +:|:) *[-\d./ ]+"), r"\1: T"),
    (re.compile(r"(callduration|last_signal:|ts$| ts\n) ?[\d.]+"), r"\1 T"),
    (re.compile(r"\d+ ts"), "T ts"),
    (re.compile(r"(port-min|port-max|num-threads) = \d+"), r"\1 = N"),  # the two daemons' own
    (re.compile(r"(per second \([a-z]+\) +:)\d+"), r"\1T"),  # rates: of the last second
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:P"),
    (re.compile(r"Port 127\.0\.0\.1:\d+ +<> +127\.0\.0\.1:\d+ *"), "Port P <> P"),
    (re.compile(r"proxy: ?127\.0\.0\.\d:\d+"), "proxy:P"),
    (re.compile(r'"(uptime|last|min|max|totals|free|used_pct|[a-z]*duration[a-z0-9_]*|'
                r'[a-z]*delay|[a-z]*rate(_user|_kernel)?)":[-\d.e]+'), r'"\1":T'),
)


def _masked(text: str) -> str:
    for pattern, to in MASKS:
        text = pattern.sub(to, text)
    return text


SHOWN = ("list numsessions", "list sessions all", "list sessions own", "list sessions foreign",
         f"list sessions {W1[1]}", f"list session {W0[1]}", "list sessions nosuch", "list totals",
         "list counters", "list interfaces", "list jsonstats", "forwarding", "params current",
         "list maxsessions", "list timeout")  # fmt: skip


def test_ctl_shows_the_whole_daemon(pair: tuple[daemons.Daemon, ...]) -> None:
    two, one = pair
    for line in SHOWN:
        theirs = _masked(cli(one, line))
        for ask in (cli, http_cli) * (ASKS // 2):
            assert _masked(ask(two, line)) == theirs, line
    assert "Current sessions own: 2\n" in cli(two, "list numsessions")
    rows = cli(two, "list sessions all")
    assert rows.index(W0[1]) < rows.index(W1[1])  # newest first, across the workers
    assert cli(two, "forwarding").count("path=userspace") == 8
    assert "Ports used:     8 / " in cli(two, "list interfaces")


def test_ctl_settings_reach_every_worker_and_terminate_the_owner(tmp_path: Path) -> None:
    d = _start(tmp_path, 2)
    calls = []
    try:
        for call_id, proxy in ORDER:
            call = Call(d, call_id)
            call.ng.close()
            call.ng = _client(d, proxy)
            call.offer()
            calls.append(call)
        assert cli(d, "set timeout 90") == "Success setting timeout to 90\n"
        assert cli(d, "set maxsessions 7") == "Success setting maxsessions to 7\n"
        assert cli(d, "set deletedelay 3") == "Success setting delete-delay to 3\n"
        assert cli(d, "set loglevel control 4") == "Success setting loglevel to 4\n"
        for _ in range(ASKS):
            assert cli(d, "get timeout") == "TIMEOUT=90\n"
            assert cli(d, "list maxsessions") == "Maximum sessions configured on rtpengine: 7\n"
            assert cli(d, "list deletedelay") == "3\n"
            assert cli(d, "get loglevel control") == "4\n"
            assert cli(d, "params diff") == ("log-level-control: 7 => 4\nmax-sessions: -1 => 7\n"
                                             "timeout: 60 => 90\ndelete-delay: 0 => 3\n")
        for call_id in (W0[0], W1[0]):  # each from whichever worker the connection lands on
            assert cli(d, f"terminate {call_id}") == \
                f"\nCall Id ({call_id}) successfully terminated by operator.\n\n"  # fmt: skip
            assert cli(d, f"terminate {call_id}") == f"\nCall Id not found ({call_id}).\n\n"
        assert d.client().call({"command": "list"})["calls"] == [W1[1], W0[1]]
        assert cli(d, "params revert") == ""
        for _ in range(ASKS):
            assert cli(d, "params diff") == ""
        assert cli(d, "terminate all") == "All calls terminated by operator.\n"
        for _ in range(ASKS):
            assert "Current sessions total: 0\n" in cli(d, "list numsessions")
        stats = d.client().call({"command": "statistics"})["statistics"]
        assert stats["totalstatistics"]["forcedterminatedsessions"] == 4
    finally:
        for call in calls:
            call.close()
        d.stop()


def _worker_pids(d: daemons.Daemon) -> dict[int, int]:
    """Worker index → pid of its newest start, from the supervisor's log."""
    found = re.findall(r"worker (\d+) started \(pid (\d+)\)", d.log())
    return {int(index): int(pid) for index, pid in found}


def test_a_worker_forked_again_takes_the_run_time_settings(tmp_path: Path) -> None:
    d = _start(tmp_path, 2)
    try:
        assert cli(d, "set timeout 90") == "Success setting timeout to 90\n"
        assert cli(d, "set loglevel http 5") == "Success setting loglevel to 5\n"
        before = _worker_pids(d)
        os.kill(before[1], signal.SIGKILL)
        assert wait_for(lambda: _worker_pids(d)[1] != before[1] and
                        d.log().count("worker 1 of 2 serving") == 2)  # fmt: skip
        assert wait_for(lambda: "run-time parameters taken from worker 0" in d.log())
        for _ in range(ASKS):
            assert cli(d, "get timeout") == "TIMEOUT=90\n"
            assert cli(d, "get loglevel http") == "5\n"
            assert cli(d, "params diff") == "log-level-http: 7 => 5\ntimeout: 60 => 90\n"
    finally:
        d.stop()
