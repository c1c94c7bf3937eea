"""rtpengine-ctl's command language over a real Daemon (real registry, userspace plane on
loopback): the tree's replies, setters that change what the daemon does, params diff/revert,
terminate, and arbitrary lines never raising. Texts are rtpengine 10.5's (docs/spec/metrics.md §3;
tests/integration/ops/test_ctl_vs_rtpengine.py compares them with the real daemon)."""

from __future__ import annotations

import logging
import os
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.limits import SESSIONS
from rtpvault.ctl.commands import run
from rtpvault.daemon import Daemon
from tests.unit.ops.conftest import answer, offer


def test_tree_help_more_and_unknown(daemon: Daemon) -> None:
    assert run(daemon, "") == "More parameters required.\n"
    assert run(daemon, "list") == "More parameters required.\n"
    assert run(daemon, "list sessions") == "More parameters required.\n"
    assert run(daemon, "bogus thing") == "Unknown or incomplete command::bogus thing\n"
    assert run(daemon, "list bogus") == "Unknown or incomplete command::bogus\n"
    assert run(daemon, "set bogus 1") == "Unknown or incomplete command::bogus 1\n"
    top = run(daemon, "help")
    assert top.startswith("Available sub-commands at this level:\n\tlist\n\tterminate\n")
    assert "\tforwarding\n" in top
    assert "\tfinaltimeout\n" in run(daemon, "set help")


def test_timeouts_set_at_run_time_reach_the_daemon(daemon: Daemon) -> None:
    assert run(daemon, "get timeout") == "TIMEOUT=60\n"
    assert run(daemon, "set timeout 90") == "Success setting timeout to 90\n"
    assert daemon.settings.timeout == 90  # what run_timers passes to the sweep each second
    assert run(daemon, "list timeout") == "TIMEOUT=90\n"
    assert run(daemon, "set silenttimeout 7") == "Success setting timeout to 7\n"
    assert daemon.settings.silent_timeout == 7
    assert run(daemon, "set offertimeout 5") == "Success setting timeout to 5\n"
    assert run(daemon, "set finaltimeout 3600") == "Success setting timeout to 3600\n"
    assert (daemon.settings.offer_timeout, daemon.settings.final_timeout) == (5, 3600)
    assert run(daemon, "set timeout abc") == "Fail setting timeout to abc; no digists found\n"
    assert run(daemon, "set timeout -5") == "Fail setting timeout to -5; errno=0\n"
    assert daemon.settings.timeout == 90


def test_params_diff_and_revert(daemon: Daemon) -> None:
    assert run(daemon, "params diff") == ""
    run(daemon, "set timeout 90")
    run(daemon, "set deletedelay 5")
    run(daemon, "set maxsessions 10")
    assert run(daemon, "params diff") == ("max-sessions: -1 => 10\ntimeout: 60 => 90\n"
                                          "delete-delay: 0 => 5\n")  # fmt: skip
    assert "timeout = 90\n" in run(daemon, "params current")
    assert "timeout = 60\n" in run(daemon, "params start")
    assert run(daemon, "params revert") == ""
    assert run(daemon, "params diff") == ""
    assert daemon.settings.timeout == 60
    assert (daemon.registry.delete_delay, daemon.commands.max_sessions) == (0, -1)


def test_maxsessions_refuses_offers(daemon: Daemon) -> None:
    assert run(daemon, "set maxsessions -2") == \
        "Fail setting maxsessions to -2; either positive or -1 values allowed\n"  # fmt: skip
    assert run(daemon, "set maxsessions 0") == "Success setting maxsessions to 0\n"
    assert run(daemon, "list maxsessions") == "Maximum sessions configured on rtpengine: 0\n"
    refused = offer(daemon, "refused")
    assert refused == {"result": "error", "error-reason": "Parallel session limit reached"}
    assert run(daemon, "set maxsessions -1") == \
        "Success setting maxsessions to -1; disable feature\n"  # fmt: skip
    offer(daemon, "accepted")
    assert "accepted" in daemon.registry.calls


def test_loglevel_all_and_per_subsystem(daemon: Daemon) -> None:
    assert run(daemon, "set loglevel 7") == "Success setting loglevel to 7\n"
    assert logging.getLogger().level == logging.DEBUG
    assert logging.getLogger("relay.control").level == logging.DEBUG
    assert run(daemon, "get loglevel internals") == "7\n"
    assert run(daemon, "set loglevel control 4") == "Success setting loglevel to 4\n"
    assert logging.getLogger("relay.control").level == logging.WARNING
    assert logging.getLogger().level == logging.DEBUG
    assert run(daemon, "get loglevel control") == "4\n"
    assert run(daemon, "list loglevel").splitlines()[:2] == ["core = 7", "spandsp = 7"]
    assert run(daemon, "set loglevel core") == "More parameters required.\n"
    assert run(daemon, "set loglevel nosuch 3").startswith("Unknown log subsystem 'nosuch'")
    lines = run(daemon, "list loglevels").splitlines()
    assert len(lines) == 13 and lines[0] == "core - Everything that isn't part of another subsystem"


def test_sessions_listing_detail_and_terminate(daemon: Daemon) -> None:
    assert run(daemon, "list sessions all") == "No sessions on this media relay.\n"
    offer(daemon, "call-a")
    answer(daemon, "call-a")
    offer(daemon, "call-b", source=("127.0.0.2", 5062))
    listing = run(daemon, "list sessions all").splitlines()
    assert [line.split("|")[0].split()[-1] for line in listing] == ["call-b", "call-a"]
    assert "| proxy:127.0.0.2:5062 |" in listing[0] and "foreign:no" in listing[0]
    assert run(daemon, "list sessions foreign") == "No foreign sessions on this media relay.\n"
    numbers = run(daemon, "list numsessions")
    assert "Current sessions own: 2\n" in numbers
    assert "Current sessions ipv4 only media: 1\n" in numbers  # only the answered call
    detail = run(daemon, "list sessions call-a")
    assert detail.startswith("\ncallid: call-a\ndeletionmark: no\n")
    assert "proxy: 127.0.0.1:5060\n" in detail
    assert "--- Tag 'ft', type: FROM_TAG" in detail and "--- Tag 'tt', type: TO_TAG" in detail
    # no packets yet: rtpengine prints query's codec, unknown until media arrives
    # (docs/spec/ng-protocol.md §4.4; tests/integration/ops/test_ctl_vs_rtpengine.py)
    assert "------ Media #1 (audio over RTP/AVP) using unknown codec\n" in detail

    def undated(text: str) -> str:
        return re.sub(r"callduration [0-9.]+", "", text)

    assert undated(run(daemon, "list session call-a")) == undated(detail)
    assert run(daemon, "list sessions nosuch") == "\nCall ID not found (nosuch).\n\n"
    rows = run(daemon, "forwarding").splitlines()
    assert len(rows) == 8 and all("path=userspace" in r for r in rows)  # 2 calls x 2 parties x 2
    ft_rtp = next(r for r in rows if r.startswith("call-a ft rtp "))
    assert ft_rtp.startswith("call-a ft rtp 127.0.0.1:40000 -> 127.0.0.1:")
    assert "-> 127.0.0.1:40100 path=userspace" in ft_rtp  # the callee's RTP port from its SDP
    assert run(daemon, "terminate nosuch") == "\nCall Id not found (nosuch).\n\n"
    assert run(daemon, "terminate call-a") == \
        "\nCall Id (call-a) successfully terminated by operator.\n\n"  # fmt: skip
    assert "call-a" not in daemon.registry.calls and daemon.registry.totals.forced == 1
    assert run(daemon, "terminate all") == "All calls terminated by operator.\n"
    assert daemon.registry.calls == {} and daemon.registry.totals.forced == 2
    assert run(daemon, "forwarding") == "No streams.\n"


def test_totals_counters_interfaces_jsonstats(daemon: Daemon) -> None:
    import json

    totals = run(daemon, "list totals")
    assert totals.startswith("\nStatistics over currently running sessions:\n\n")
    assert " Total relayed packets (userspace)               :0\n" in totals
    assert "\nControl statistics:\n\n                Proxy |       Ping |" in totals
    assert run(daemon, "list counters").startswith("\nCurrent per-second counters:\n\n")
    itf = run(daemon, "list interfaces")
    assert itf.startswith("Interface 'lo' address '127.0.0.1' (IPv4)\n Port range: ")
    assert " Ports used:     0 /   100 (  0.0%)\n" in itf
    stats = json.loads(run(daemon, "list jsonstats"))
    assert stats["totalstatistics"]["avgcallduration"] == 0.0
    assert stats["interfaces"][0]["ports"]["totals"] == 100
    assert run(daemon, "list transcoders") == "No stats entries\n"
    assert run(daemon, "kslist") == "\nSubscribed-on keyspaces:\n\n"
    assert "Redis is not configured" in run(daemon, "ksadd 1")


@settings(max_examples=200, deadline=None)
@given(line=st.text(max_size=60))
def test_any_line_gets_text_and_never_raises(line: str) -> None:
    # One daemon for all examples: hypothesis does not mix with function-scoped fixtures.
    reply = run(_shared_daemon(), line)
    assert isinstance(reply, str)


_DAEMON: list[Daemon] = []


def _shared_daemon() -> Daemon:
    import asyncio

    from relay.config import load_settings, parse_args
    from tests.support.tools import free_port_range

    if not _DAEMON:
        pmin, pmax = free_port_range(20)
        s, _ = load_settings(parse_args(["--config-file=none", "--interface=lo/127.0.0.1",
                                         "--listen-ng=127.0.0.1:1", f"--port-min={pmin}",
                                         f"--port-max={pmax}", "--table=-1"]))  # fmt: skip
        _DAEMON.append(Daemon(s, asyncio.new_event_loop()))
    return _DAEMON[0]


def test_maxsessions_set_reaches_every_worker_process(daemon: Daemon) -> None:
    """`set maxsessions` writes the daemon-wide value (relay.limits shared memory): a process
    forked from the daemon, as a worker is, sees it, and a refusal there counts every call."""
    assert run(daemon, "set maxsessions 1") == "Success setting maxsessions to 1\n"
    offer(daemon, "first")
    limits = daemon.commands.limits
    pid = os.fork()
    if pid == 0:
        ok = limits.max_sessions == 1 and limits.admit_new_call() == SESSIONS
        os._exit(0 if ok else 1)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert run(daemon, "params diff") == "max-sessions: -1 => 1\n"
