"""One Kamailio 5.6, two relay nodes in its `rtpengine_sock` set (issue 20, item 2).

Kamailio runs examples/kamailio-two-nodes.cfg (every SDP through `rtpengine_manage()`) with the
set `udp:127.0.0.1:<ng A>=1 udp:127.0.0.1:<ng B>=1` and short timeouts. Node A advertises and
relays on 127.0.0.1, node B on 127.0.0.3, so the o= address of the SDP a callee receives names
the node that handled that offer. Kamailio's choice for a new call-id is predictable
(docs/spec/ng-protocol.md §10.2): the byte sum of the call-id, & 0xff, modulo the summed weight
of the enabled nodes, so each test picks call-ids for the node it wants.

The same tests run against two rtpengine 10.5 daemons: what they assert is Kamailio's behaviour.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.support import daemons
from tests.support.daemons import Daemon
from tests.support.tools import require
from tests.support.wait import wait_for

from .capture import LoopbackCapture, UdpPacket
from .sipcall import (
    HOST,
    PARTY_ADDRESS,
    REPO,
    CallResult,
    CallSpec,
    Kamailio,
    relay_command_counts,
    run_calls,
    start_kamailio,
)

pytestmark = pytest.mark.integration

TWO_NODES_CFG = REPO / "examples" / "kamailio-two-nodes.cfg"
NODE_ADDRESSES = ("127.0.0.1", "127.0.0.3")
DISABLE_TOUT = 2  # seconds (rtpengine_disable_tout)
TOUT_MS = 300  # rtpengine_tout_ms
RETR = 2  # rtpengine_retr
FLAGS = "trust-address replace-origin replace-session-connection"


def kamailio_pick(call_id: str, enabled: int = 2) -> int:
    """Index of the node Kamailio 5.6 picks for a new call-id among `enabled` nodes of weight 1
    (hash_algo 0: the byte sum & 0xff, modulo the summed weight; docs/spec/ng-protocol.md §10.2)."""
    return (sum(call_id.encode()) & 0xFF) % enabled


def call_id_for(node: int, tag: str) -> str:
    """A call-id that Kamailio gives to `node` (0 or 1) while both nodes are enabled."""
    for n in range(100):
        cid = f"{tag}-{n}@kamset"
        if kamailio_pick(cid) == node:
            return cid
    raise AssertionError("unreachable")


@dataclass
class NodeSet:
    """Two relays and a Kamailio with both in its set."""

    nodes: list[Daemon]
    kamailio: Kamailio
    workdir: Path
    kind: str
    runs: int = 0

    def call(self, spec: CallSpec) -> CallResult:
        self.runs += 1
        return run_calls(self.kamailio, spec, self.workdir / f"sipp-{self.runs}")

    def origins(self, result: CallResult, call_id: str) -> list[str]:
        """The o= address of each INVITE the callee got in call `call_id` (with replace-origin:
        the node that rewrote it)."""
        found = []
        for m in result.uas_messages:
            if m.call_id == call_id and m.received and m.is_request and m.method == "INVITE":
                assert m.sdp is not None, result.describe()
                found.append(m.sdp.origin_address)
        return found

    def node_of(self, result: CallResult, call_id: str) -> list[int]:
        """For each INVITE the callee got in call `call_id`: which node rewrote its SDP."""
        origins = self.origins(result, call_id)
        assert all(o in NODE_ADDRESSES for o in origins), (origins, result.describe())
        return [NODE_ADDRESSES.index(o) for o in origins]

    def holds(self, node: int, call_id: str) -> bool:
        """Whether `node` answers a `query` for the call (it has or had it)."""
        reply = ng(self.nodes[node], {"command": "query", "call-id": call_id})
        return bool(reply.get("result") == "ok")

    def restart(self, node: int) -> Daemon:
        """Start node `node` again on the ng port and media ports it had."""
        old = self.nodes[node]
        d = start_node(self.kind, self.workdir / f"node{node}-again", node, old.ng_port,
                       (old.port_min, old.port_max))  # fmt: skip
        self.nodes[node] = d
        return d

    def kamcmd(self, *args: str) -> str:
        """Run a Kamailio RPC command through its ctl socket; its output."""
        socket = f"unix:{self.kamailio.workdir / 'ctl.sock'}"
        done = subprocess.run(
            [require("kamcmd"), "-s", socket, *args], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    def logs(self) -> str:
        parts = [f"--- node {i} ({d.name})\n{d.log()[-4000:]}" for i, d in enumerate(self.nodes)]
        parts.append(f"--- kamailio\n{self.kamailio.log()[-6000:]}")
        return "\n".join(parts)


def ng(node: Daemon, command: dict[str, Any]) -> dict[str, Any]:
    client = node.client()
    try:
        reply: dict[str, Any] = client.call(command)
        return reply
    finally:
        client.close()


def start_node(
    kind: str, workdir: Path, index: int, ng_port: int | None = None,
    port_range: tuple[int, int] | None = None, extra: list[str] | None = None,
) -> Daemon:  # fmt: skip
    return daemons.start(
        kind,
        workdir,
        interface=f"lo/{NODE_ADDRESSES[index]}",
        ports=100,
        ng_port=ng_port,
        port_range=port_range,
        extra=extra,
    )


def start_set(
    kind: str,
    workdir: Path,
    extra: tuple[list[str], list[str]] = ([], []),
    defines: dict[str, str] | None = None,
) -> NodeSet:
    """Two nodes of `kind` (`extra`: each one's additional options) and Kamailio in front
    (`defines`: more -A defines for its config)."""
    nodes = [start_node(kind, workdir / f"node{i}", i, extra=extra[i]) for i in range(2)]
    sock = " ".join(f"udp:{HOST}:{d.ng_port}=1" for d in nodes)
    try:
        kamailio = start_kamailio(
            workdir / "kamailio",
            nodes[0].ng_port,
            cfg=TWO_NODES_CFG,
            defines={
                "RTPENGINE_SOCK": f'"{sock}"',
                "MANAGE_FLAGS": f'"{FLAGS}"',
                "DISABLE_TOUT": str(DISABLE_TOUT),
                "TOUT_MS": str(TOUT_MS),
                "RETR": str(RETR),
                "CTL_SOCKET": f'"unix:{workdir / "kamailio" / "ctl.sock"}"',
                **(defines or {}),
            },
        )
    except BaseException:
        for d in nodes:
            d.stop()
        raise
    return NodeSet(nodes, kamailio, workdir, kind)


def stop_set(rig: NodeSet) -> None:
    rig.kamailio.stop()
    for d in rig.nodes:
        d.stop()


KINDS = ["rtpvault", "rtpengine"]


@pytest.fixture(params=KINDS)
def node_set(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NodeSet]:
    rig = start_set(str(request.param), tmp_path)
    try:
        yield rig
    finally:
        stop_set(rig)


def media_from_node(packets: list[UdpPacket], node: Daemon, address: str) -> list[UdpPacket]:
    """Packets the node sent from its media ports."""
    return [
        p for p in packets if p.src[0] == address and node.port_min <= p.src[1] <= node.port_max
    ]


def capture_filter(nodes: list[Daemon]) -> str:
    return " or ".join(f"udp portrange {d.port_min}-{d.port_max}" for d in nodes)


def test_calls_spread_over_both_nodes_and_media_flows(node_set: NodeSet) -> None:
    rig = node_set
    spec = CallSpec(calls=6, media=True, media_packets=25, call_id="spread-%u@kamset")
    with LoopbackCapture(rig.workdir / "spread.pcap", capture_filter(rig.nodes)) as cap:
        result = rig.call(spec)
    assert result.ok, result.describe() + rig.logs()
    assert len(result.call_ids) == 6, result.call_ids
    placed = {cid: rig.node_of(result, cid) for cid in result.call_ids}
    # every call is on the node Kamailio's call-id hash names, and both nodes got some
    assert placed == {cid: [kamailio_pick(cid)] for cid in result.call_ids}, placed
    per_node = [sum(1 for n in placed.values() if n == [i]) for i in range(2)]
    assert min(per_node) > 0, per_node
    for i, node in enumerate(rig.nodes):
        ours = [cid for cid, n in placed.items() if n == [i]]
        other = 1 - i
        assert all(rig.holds(i, cid) for cid in ours), rig.logs()
        assert not any(rig.holds(other, cid) for cid in ours), rig.logs()
        # each node relayed the caller's 25 packets of each of its calls to the callee, and
        # the callee's echo back to the caller
        sent = media_from_node(cap.packets(), node, NODE_ADDRESSES[i])
        to_callee = [p for p in sent if p.dst == result.uas_media]
        to_caller = [p for p in sent if p.dst == result.uac_media]
        assert len(to_callee) == 25 * per_node[i], (i, len(to_callee), per_node)
        assert len(to_caller) == 25 * per_node[i], (i, len(to_caller), per_node)


def test_reinvites_reach_the_node_that_owns_the_dialog(node_set: NodeSet) -> None:
    rig = node_set
    before = [relay_command_counts(d) for d in rig.nodes]
    # "hold": INVITE then three re-INVITEs (sendonly, c=0.0.0.0, sendrecv), then BYE
    cids = [call_id_for(0, "hold-a"), call_id_for(1, "hold-b")]
    results = [rig.call(CallSpec(callee="hold", duration_ms=200, call_id=cid)) for cid in cids]
    for node, (cid, result) in enumerate(zip(cids, results, strict=True)):
        assert result.ok, result.describe() + rig.logs()
        # all four offers of the dialog went to its node
        assert rig.node_of(result, cid) == [node] * 4, (cid, rig.node_of(result, cid))
    after = [relay_command_counts(d) for d in rig.nodes]
    for i in range(2):
        got = {c: after[i][c] - before[i][c] for c in ("offer", "answer", "delete")}
        assert got == {"offer": 4, "answer": 4, "delete": 1}, (i, got, rig.logs())


def _process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (a multi-worker rtpvault: the supervisor and its workers)."""
    pids = [pid]
    for p in pids:
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                pids += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            continue
    return pids


def _stop(d: Daemon, sig: signal.Signals) -> None:
    """SIGTERM / SIGKILL: the node exits (its ng port is closed: Kamailio's next send gets
    ECONNREFUSED). SIGSTOP: the node hangs (its port stays bound, nothing answers: Kamailio
    waits rtpengine_retr × rtpengine_tout_ms)."""
    if sig == signal.SIGSTOP:
        for pid in _process_tree(d.proc.pid):
            os.kill(pid, sig)
        return
    d.proc.send_signal(sig)
    d.proc.wait(15)


def _resume(rig: NodeSet, node: int, sig: signal.Signals) -> Daemon:
    if sig == signal.SIGSTOP:
        d = rig.nodes[node]
        for pid in _process_tree(d.proc.pid):
            os.kill(pid, signal.SIGCONT)
        return d
    return rig.restart(node)


def _wait_until(what: str, check: Callable[[], bool], logs: Callable[[], str]) -> None:
    # a bound on a stuck run, not a measured threshold
    assert wait_for(check, 20, interval=0.05), f"timed out waiting for {what}\n{logs()}"


def rtp_packets(node: Daemon, call_id: str) -> int:
    reply = ng(node, {"command": "query", "call-id": call_id})
    assert reply.get("result") == "ok", reply
    return int(reply["totals"]["RTP"]["packets"])


STOPS = [signal.SIGTERM, signal.SIGKILL, signal.SIGSTOP]
KAMAILIO_SAYS = {
    # send_rtpp_command(): the node's port is closed (ICMP port unreachable on loopback)
    signal.SIGTERM: 'can\'t send command "offer" to RTPEngine <{url}>',
    signal.SIGKILL: 'can\'t send command "offer" to RTPEngine <{url}>',
    # the node is there but does not answer
    signal.SIGSTOP: 'timeout waiting reply for command "offer" from RTPEngine <{url}>',
}


@pytest.mark.parametrize("sig", STOPS, ids=["sigterm", "kill-9", "sigstop"])
def test_stopped_node_is_disabled_and_calls_go_to_the_other(
    node_set: NodeSet, sig: signal.Signals
) -> None:
    rig = node_set
    victim, survivor = 0, 1
    victim_url = f"udp:{HOST}:{rig.nodes[victim].ng_port}"
    # two long calls with media on the survivor, running while the victim is stopped
    long_ids = [call_id_for(survivor, f"long-{n}") for n in range(2)]
    # and a dialog on the victim whose re-INVITEs come after the stop (3 s apart)
    orphan = call_id_for(victim, "orphan")
    specs = {cid: CallSpec(call_id=cid, media=True, media_packets=200) for cid in long_ids}
    specs[orphan] = CallSpec(call_id=orphan, callee="hold", duration_ms=3000)
    results: dict[str, CallResult] = {}
    failed: dict[str, BaseException] = {}

    def call(cid: str) -> None:
        try:
            results[cid] = rig.call(specs[cid])
        except BaseException as e:  # reported by the wait below, not lost in the thread
            failed[cid] = e
            raise

    def logs() -> str:
        done = [f"--- call {cid}: {r.describe()}" for cid, r in results.items()]
        done += [f"--- call {cid} raised: {e!r}" for cid, e in failed.items()]
        return "\n".join([*done, rig.logs()])

    with LoopbackCapture(rig.workdir / "stop.pcap", capture_filter(rig.nodes)) as cap:
        threads = []
        try:
            # one after the other: each sipp pair has bound its ports before the next picks
            for cid in specs:
                threads.append(threading.Thread(target=call, args=(cid,)))
                threads[-1].start()
                node = victim if cid == orphan else survivor
                _wait_until(f"{cid} on node {node}", partial(rig.holds, node, cid), logs)
            _wait_until(
                "media on the long calls",
                lambda: all(rtp_packets(rig.nodes[survivor], cid) > 0 for cid in long_ids),
                logs,
            )
            _stop(rig.nodes[victim], sig)
            counted = {cid: rtp_packets(rig.nodes[survivor], cid) for cid in long_ids}

            # new calls whose call-id hashes to the stopped node: Kamailio finds it dead,
            # disables it and sends the offer to the survivor; the calls succeed there
            moved = [call_id_for(victim, f"moved-{n}") for n in range(2)]
            for cid in moved:
                result = rig.call(CallSpec(call_id=cid))
                assert result.ok, result.describe() + rig.logs()
                assert rig.node_of(result, cid) == [survivor], rig.logs()
            disabled_at = time.monotonic()
            assert KAMAILIO_SAYS[sig].format(url=victim_url) in rig.kamailio.log(), rig.logs()

            # the survivor's calls kept their media meanwhile
            grown = {cid: rtp_packets(rig.nodes[survivor], cid) for cid in long_ids}
            assert all(grown[cid] > counted[cid] for cid in long_ids), (counted, grown)
        finally:
            for t in threads:
                t.join(120)
    for cid in long_ids:
        result = results[cid]
        assert result.ok, result.describe() + rig.logs()
        assert rig.node_of(result, cid) == [survivor]
        sent = media_from_node(cap.packets(), rig.nodes[survivor], NODE_ADDRESSES[survivor])
        # every packet the caller played reached the callee through the survivor
        assert sum(1 for p in sent if p.dst == result.uas_media) == 200, rig.logs()

    # ... and ended cleanly: the survivor got a delete for each of its calls (long and moved)
    assert relay_command_counts(rig.nodes[survivor])["delete"] == len(long_ids) + len(moved)

    # the victim's dialog is not moved: its re-INVITEs find its node disabled and go out
    # without a relay (the SDP as the caller wrote it); the survivor never heard of it
    hold = results[orphan]
    assert hold.ok, hold.describe() + rig.logs()
    assert rig.origins(hold, orphan) == [NODE_ADDRESSES[victim]] + [PARTY_ADDRESS] * 3
    assert not rig.holds(survivor, orphan)
    assert "rtpp_function_call(): no available proxies" in rig.kamailio.log(), rig.logs()

    # the stopped node comes back: once rtpengine_disable_tout has passed, Kamailio pings it
    # at the next new call and gives it its calls again
    again = _resume(rig, victim, sig)
    if sig == signal.SIGSTOP:
        # a hung node that resumes handles what queued up meanwhile: the offer Kamailio gave up
        # on (and sent to the survivor) makes a stray call here too; the next call's offer was
        # never sent to it (docs/spec/ng-protocol.md §10.4)
        _wait_until("the queued offer handled", partial(rig.holds, victim, moved[0]), rig.logs)
        assert not rig.holds(victim, moved[1]), rig.logs()
    pings = relay_command_counts(again)["ping"]
    time.sleep(max(0.0, disabled_at + DISABLE_TOUT + 1 - time.monotonic()))
    cid = call_id_for(victim, "back")
    result = rig.call(CallSpec(call_id=cid))
    assert result.ok, result.describe() + rig.logs()
    assert rig.node_of(result, cid) == [victim], rig.logs()
    assert relay_command_counts(again)["ping"] > pings, rig.logs()


@pytest.mark.parametrize("kind", KINDS)
def test_full_node_hands_new_calls_to_the_other(tmp_path: Path, kind: str) -> None:
    """A node at its session limit answers the offer `load limit` (Kamailio sends `supports:
    ["load limit"]`); Kamailio tries the next node without disabling the full one
    (docs/spec/ng-protocol.md §10.5)."""
    rig = start_set(kind, tmp_path, (["--max-sessions=0"], []))
    try:
        full_url = f"udp:{HOST}:{rig.nodes[0].ng_port}"
        cids = [call_id_for(0, f"full-{n}") for n in range(2)]
        for cid in cids:
            result = rig.call(CallSpec(call_id=cid))
            assert result.ok, result.describe() + rig.logs()
            assert rig.node_of(result, cid) == [1], rig.logs()
        said = f"proxy {full_url} has reached its load limit (Parallel session limit reached)"
        # asked for each call: the refusal does not disable the node
        assert rig.kamailio.log().count(said) == len(cids), rig.logs()
        assert relay_command_counts(rig.nodes[0])["offer"] == len(cids), rig.logs()
    finally:
        stop_set(rig)


@pytest.mark.parametrize("kind", KINDS)
def test_node_taken_out_by_hand_keeps_its_dialogs(tmp_path: Path, kind: str) -> None:
    """`kamcmd rtpengine.enable <url> 0` disables a node for good: new calls go to the other;
    with `rtpengine_allow_op` 1 the dialogs it holds still reach it (re-INVITEs, delete);
    `rtpengine.enable <url> 1` pings it and takes it back (docs/spec/ng-protocol.md §10.3)."""
    rig = start_set(kind, tmp_path, defines={"ALLOW_OP": "1"})
    try:
        drained_url = f"udp:{HOST}:{rig.nodes[0].ng_port}"
        dialog = call_id_for(0, "drained")
        results: dict[str, CallResult] = {}
        # re-INVITEs 3 s apart: the first comes well after the node is taken out below
        spec = CallSpec(call_id=dialog, callee="hold", duration_ms=3000)
        thread = threading.Thread(target=lambda: results.update({dialog: rig.call(spec)}))
        thread.start()
        try:
            _wait_until(f"{dialog} on node 0", partial(rig.holds, 0, dialog), rig.logs)
            rig.kamcmd("rtpengine.enable", drained_url, "0")
            show = rig.kamcmd("rtpengine.show", "all")
            assert "1(permanent)" in show, show
            offers = relay_command_counts(rig.nodes[0])["offer"]
            cid = call_id_for(0, "new")
            result = rig.call(CallSpec(call_id=cid))
            assert result.ok, result.describe() + rig.logs()
            assert rig.node_of(result, cid) == [1], rig.logs()
        finally:
            thread.join(120)
        hold = results[dialog]
        assert hold.ok, hold.describe() + rig.logs()
        # the three re-INVITEs after the node was taken out still reached it
        assert rig.node_of(hold, dialog) == [0] * 4, rig.logs()
        counts = relay_command_counts(rig.nodes[0])
        assert counts["offer"] - offers == 3, (counts, offers)
        assert not rig.holds(1, dialog)

        pings = relay_command_counts(rig.nodes[0])["ping"]
        rig.kamcmd("rtpengine.enable", drained_url, "1")
        assert relay_command_counts(rig.nodes[0])["ping"] == pings + 1
        cid = call_id_for(0, "again")
        result = rig.call(CallSpec(call_id=cid))
        assert result.ok, result.describe() + rig.logs()
        assert rig.node_of(result, cid) == [0], rig.logs()
    finally:
        stop_set(rig)
