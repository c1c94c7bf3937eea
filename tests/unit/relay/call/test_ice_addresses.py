"""Our ICE candidates name every address of the logical interface (docs/spec/sdp.md §1.9a): a
party that uses our ICE gets sockets on 127.0.0.1, 127.0.0.2 and ::1 (one logical interface
"lo"), component 1 on every address in interface order, then component 2, local preference
65535 − index, each address with its own ports (the first address's number where free). The
ICE agent runs on all of them; a peer (aioice, a real ICE agent) that only reaches 127.0.0.2
gets its checks answered and media both ways through that socket. Without ICE nothing changes,
and every port goes back on delete, rejection and re-allocation."""

from __future__ import annotations

import asyncio
import random
import re
import socket
import struct
from collections.abc import Iterator
from typing import Any

import aioice
import aioice.ice
import pytest

from relay.call import Registry
from relay.call.secure import SecureContext
from relay.config.interfaces import Interface
from relay.media.userspace import UserspacePlane
from relay.ng.commands import Commands
from tests.unit.relay.media.secure_rig import BOUND

SOURCE = ("127.0.0.1", 5060)
PORT_MIN, PORT_MAX = 43000, 43999
ALICE_ICE = ("a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
             "a=candidate:1 1 UDP 2130706431 127.0.0.1 {port} typ host\r\n")  # fmt: skip


LO = [
    Interface("lo", "127.0.0.1", "203.0.113.1", "IP4"),
    Interface("lo", "127.0.0.2", "203.0.113.2", "IP4"),
    Interface("lo", "::1", "::1", "IP6"),
]
FOUNDATIONS = [("F1", "203.0.113.1"), ("F2", "203.0.113.2"), ("F3", "::1")]
FOUNDATIONS6 = [("G1", "203.0.113.1"), ("G2", "203.0.113.2"), ("G3", "::1")]


def _sdp(port: int, extra: str = "") -> str:
    return ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n{extra}"
            "a=sendrecv\r\n")  # fmt: skip


def _candidates(sdp: str) -> list[tuple[str, int, int, str, int]]:
    """(foundation, component, priority, address, port) of each a=candidate line."""
    out = []
    for m in re.finditer(r"^a=candidate:(\S+) (\d) UDP (\d+) (\S+) (\d+) typ host\r$", sdp, re.M):
        out.append((m[1], int(m[2]), int(m[3]), m[4], int(m[5])))
    return out


def _registry(plane: Any = None) -> Registry:
    ctx = SecureContext(fingerprint=lambda h: f"{h} 00", interfaces=FOUNDATIONS,
                        rng=random.Random(3), interfaces6=FOUNDATIONS6)  # fmt: skip
    return Registry(LO, PORT_MIN, PORT_MAX, plane, rng=random.Random(5), secure=ctx)


def _used(reg: Registry) -> dict[str, int]:
    return {addr: len(pool.used) for addr, pool in reg.pools.items()}


def _offer(commands: Commands, sdp: str, **extra: Any) -> dict[str, Any]:
    body = {"command": "offer", "call-id": "c1", "from-tag": "a", "sdp": sdp,
            "flags": ["trust-address"], **extra}  # fmt: skip
    reply = commands.dispatch(body, SOURCE)
    assert reply["result"] == "ok", reply
    return reply


@pytest.fixture
def reg() -> Iterator[Registry]:
    r = _registry()
    try:
        yield r
    finally:
        for call_id in list(r.calls):
            r.terminate(call_id)


def test_candidates_on_every_address_component_major(reg: Registry) -> None:
    sdp = _offer(Commands(reg), _sdp(9000, ALICE_ICE.format(port=9000)))["sdp"]
    port = int(re.search(r"^m=audio (\d+)", sdp, re.M)[1])  # type: ignore[index]
    addresses = ["203.0.113.1", "203.0.113.2", "::1"]
    assert _candidates(sdp) == [
        (f, comp, (126 << 24 | (65535 - i) << 8 | (256 - comp)), addr, port + comp - 1)
        for comp in (1, 2) for i, (f, addr) in enumerate(zip(["F1", "F2", "F3"], addresses,
                                                                strict=True))
    ]  # fmt: skip
    # both sides of the call: A's (towards which no ICE went) only on 127.0.0.1
    assert _used(reg) == {"127.0.0.1": 4, "127.0.0.2": 2, "::1": 2}
    side = reg.calls["c1"].untagged[0].medias[0]
    agent = side.secure.ice_agent
    assert agent is not None
    socks = sorted((s.address, s.component, s.priority) for s in agent.sockets.values())
    assert socks == sorted(
        ((local, port + comp - 1), comp, 126 << 24 | (65535 - i) << 8 | (256 - comp))
        for comp in (1, 2) for i, local in enumerate(["127.0.0.1", "127.0.0.2", "::1"])
    )  # fmt: skip


def test_a_side_on_ipv6_lists_its_family_first_with_that_familys_foundations(
    reg: Registry,
) -> None:
    sdp = _offer(Commands(reg), _sdp(9000, ALICE_ICE.format(port=9000)),
                 **{"address family": "IP6"})["sdp"]  # fmt: skip
    assert "c=IN IP6 ::1" in sdp
    got = [(f, comp, prio >> 8 & 0xFFFF, addr) for f, comp, prio, addr, _ in _candidates(sdp)]
    assert got == [(f, comp, 65535 - i, addr) for comp in (1, 2) for i, (f, addr) in enumerate(
        [("G3", "::1"), ("G1", "203.0.113.1"), ("G2", "203.0.113.2")])]  # fmt: skip
    # the offerer's own side stays on its SDP's family (IPv4)
    assert reg.calls["c1"].parties["a"].medias[0].family == "IP4"


def test_reoffer_keeps_every_address_then_delete_frees_all(reg: Registry) -> None:
    commands = Commands(reg)
    first = _candidates(_offer(commands, _sdp(9000, ALICE_ICE.format(port=9000)))["sdp"])
    again = _candidates(_offer(commands, _sdp(9000, ALICE_ICE.format(port=9000)))["sdp"])
    assert again == first and len(first) == 6
    side = reg.calls["c1"].untagged[0].medias[0]
    others = [s for a in side.ice_addresses for s in a.streams()]
    assert len(others) == 4 and all(s.transport is not None for s in others)  # on the agent
    reg.terminate("c1")
    assert _used(reg) == {"127.0.0.1": 0, "127.0.0.2": 0, "::1": 0}
    assert all(s.sock.fileno() == -1 and s.transport is None for s in others)


def test_a_taken_port_on_the_second_address_gives_another(reg: Registry) -> None:
    # fresh pools start at port-min: occupy it (and the next pair) on 127.0.0.2 for real
    taken = []
    for port in (PORT_MIN, PORT_MIN + 1):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.2", port))
        taken.append(s)
    try:
        sdp = _offer(Commands(reg), _sdp(9000, ALICE_ICE.format(port=9000)))["sdp"]
    finally:
        for s in taken:
            s.close()
    ports = {(addr, comp): port for _, comp, _, addr, port in _candidates(sdp)}
    first = ports[("203.0.113.1", 1)]
    assert ports[("::1", 1)] == first and ports[("::1", 2)] == first + 1
    second = ports[("203.0.113.2", 1)]
    assert second != first and ports[("203.0.113.2", 2)] == second + 1


def test_without_ice_no_other_address_is_touched(reg: Registry) -> None:
    sdp = _offer(Commands(reg), _sdp(9000))["sdp"]
    assert "a=candidate" not in sdp
    assert _used(reg) == {"127.0.0.1": 4, "127.0.0.2": 0, "::1": 0}
    side = reg.calls["c1"].untagged[0].medias[0]
    assert side.ice_addresses == () and side.secure.ice_agent is None


def test_ice_removed_rejected_or_reallocated_gives_the_ports_back(reg: Registry) -> None:
    commands = Commands(reg)
    ice = _sdp(9000, ALICE_ICE.format(port=9000))
    _offer(commands, ice)
    assert _used(reg) == {"127.0.0.1": 4, "127.0.0.2": 2, "::1": 2}
    _offer(commands, ice, ICE="remove")  # no candidates to B any more
    assert _used(reg) == {"127.0.0.1": 4, "127.0.0.2": 0, "::1": 0}
    _offer(commands, ice)
    assert _used(reg) == {"127.0.0.1": 4, "127.0.0.2": 2, "::1": 2}
    _offer(commands, _sdp(9002, ALICE_ICE.format(port=9002)))  # new endpoint: new ports
    assert _used(reg) == {"127.0.0.1": 4, "127.0.0.2": 2, "::1": 2}
    _offer(commands, _sdp(0, ALICE_ICE.format(port=9002)))  # rejected line
    assert _used(reg) == {"127.0.0.1": 0, "127.0.0.2": 0, "::1": 0}


# -- media through the second address ----------------------------------------------------------


def _rtp(seq: int, ssrc: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + bytes([seq]) * 160


@pytest.fixture
def only_second_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """The aioice peer gathers 127.0.0.2 only, and hears nothing but 127.0.0.2 (as behind a
    firewall that lets only that address through): the one usable pair is on our second
    address."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.2"])
    received = aioice.ice.StunProtocol.datagram_received

    def filtered(self: aioice.ice.StunProtocol, data: bytes | str, addr: tuple[Any, ...]) -> None:
        if addr[0] == "127.0.0.2":
            received(self, data, addr)

    monkeypatch.setattr(aioice.ice.StunProtocol, "datagram_received", filtered)


async def _media_via_second_address() -> None:
    loop = asyncio.get_running_loop()
    plane = UserspacePlane(loop)
    reg = _registry(plane)
    commands = Commands(reg)
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    a.setblocking(False)
    peer = aioice.Connection(ice_controlling=False, components=1)
    try:
        offer = _offer(commands, _sdp(a.getsockname()[1]), ICE="force", **{"rtcp-mux": ["offer"]})
        sdp = offer["sdp"]
        await peer.gather_candidates()
        peer.remote_username = re.search(r"^a=ice-ufrag:(\S+)\r$", sdp, re.M)[1]  # type: ignore[index]
        peer.remote_password = re.search(r"^a=ice-pwd:(\S+)\r$", sdp, re.M)[1]  # type: ignore[index]
        for line in re.findall(r"^a=candidate:(.*)\r$", sdp, re.M):
            cand = aioice.Candidate.from_sdp(line)
            if cand.component == 1:
                # the SDP advertises 203.0.113.x: on this host they are the local addresses
                host = {"203.0.113.1": "127.0.0.1", "203.0.113.2": "127.0.0.2"}
                cand.host = host.get(cand.host, cand.host)
                await peer.add_remote_candidate(cand)
        await peer.add_remote_candidate(None)
        lines = "".join(f"a=candidate:{c.to_sdp()}\r\n" for c in peer.local_candidates)
        local = peer.local_candidates[0]
        answer = commands.dispatch({
            "command": "answer", "call-id": "c1", "from-tag": "a", "to-tag": "b",
            "sdp": _sdp(local.port, f"a=rtcp-mux\r\na=ice-ufrag:{peer.local_username}\r\n"
                        f"a=ice-pwd:{peer.local_password}\r\n{lines}").replace(
                            "IN IP4 127.0.0.1", f"IN IP4 {local.host}"),
        }, SOURCE)  # fmt: skip
        assert answer["result"] == "ok", answer
        to_a = ("127.0.0.1", int(re.search(r"^m=audio (\d+)", answer["sdp"], re.M)[1]))  # type: ignore[index]
        await asyncio.wait_for(peer.connect(), BOUND)
        side = reg.calls["c1"].parties["b"].medias[0]
        agent = side.secure.ice_agent
        assert agent is not None
        selected = agent.selected(1)
        assert selected is not None and agent.sockets[selected[0]].address[0] == "127.0.0.2"
        for seq in range(1, 4):
            a.sendto(_rtp(seq, 0xA), to_a)
            assert await asyncio.wait_for(peer.recv(), BOUND) == _rtp(seq, 0xA)
            await peer.send(_rtp(seq, 0xB))
            data, _ = await asyncio.wait_for(loop.sock_recvfrom(a, 4096), BOUND)
            assert data == _rtp(seq, 0xB)
        own = side.rtp
        assert own is not None and own.packets == 3  # counted on the side's own stream
    finally:
        await peer.close()
        for call_id in list(reg.calls):
            reg.terminate(call_id)
        plane.close()
        a.close()
    assert {addr: len(pool.used) for addr, pool in reg.pools.items()} == {
        "127.0.0.1": 0, "127.0.0.2": 0, "::1": 0}  # fmt: skip


def test_a_peer_reaching_only_the_second_address_gets_media_both_ways(
    only_second_address: None,
) -> None:
    asyncio.run(_media_via_second_address())
