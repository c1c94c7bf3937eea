"""Interop: aioice.Connection (an independent ICE agent) against our sans-IO agent on UDP.

Our agent runs behind a tiny asyncio datagram edge written here: datagrams and the loop's clock
go in, its datagrams go out, one timer handle follows `next_timer()`.
"""

from __future__ import annotations

import asyncio
import contextlib

import aioice
import aioice.ice
import pytest
from aioice import stun as aioice_stun

from relay.ice import DropReason, IceAgent, IceState, Inbound, LocalSocket
from relay.ice.sdp import Candidate, parse_attribute, render_candidate

BOUND = 20.0  # only stops a stuck run; never a timing assertion
UFRAG, PWD = "rtpvAULT", "ourpassword0123456789abcd"


class Edge(asyncio.DatagramProtocol):
    """Feeds one UDP socket's datagrams to the agent and sends what the agent returns."""

    def __init__(self, agent: IceAgent, key: int) -> None:
        self.agent, self.key = agent, key
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.DatagramTransport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.media: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.requests_sent = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        result = self.agent.receive(data, self.key, (addr[0], addr[1]), self.loop.time())
        if result is Inbound.MEDIA:
            self.media.put_nowait((data, addr))
        self.pump()

    def on_timer(self) -> None:
        self.timer = None
        self.agent.handle_timer(self.loop.time())
        self.pump()

    def pump(self) -> None:
        assert self.transport is not None
        for tx in self.agent.datagrams_to_send():
            self.requests_sent += tx.data[:2] == b"\x00\x01"  # STUN Binding request
            self.transport.sendto(tx.data, tx.addr)
        if self.timer is not None:
            self.timer.cancel()
        when = self.agent.next_timer()
        if when is not None:
            self.timer = self.loop.call_at(when, self.on_timer)

    def send_media(self, data: bytes) -> None:
        """What the media plane does: send only over the selected pair."""
        assert self.transport is not None
        selected = self.agent.selected(1)
        assert selected is not None
        self.transport.sendto(data, selected[1])

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.transport is not None:
            self.transport.close()


async def _until(check: object) -> None:
    async def poll() -> None:
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), BOUND)


async def _scenario(
    their_role: bool, our_role: bool, lite: bool = False
) -> tuple[IceAgent, aioice.Connection, Edge]:
    loop = asyncio.get_running_loop()
    conn = aioice.Connection(ice_controlling=their_role, components=1, use_ipv6=False)
    await conn.gather_candidates()
    sock = LocalSocket(1, ("127.0.0.1", 0), 1, 2130706431)
    agent = IceAgent(ufrag=UFRAG, pwd=PWD, sockets=[sock], controlling=our_role,
                     tie_breaker=2**64 - 1, lite=lite)
    transport, edge = await loop.create_datagram_endpoint(
        lambda: Edge(agent, 1), local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    # the real port is known only now; the socket table is the agent's own
    agent.sockets[1] = LocalSocket(1, ("127.0.0.1", port), 1, 2130706431)
    ours = Candidate("rtpvault1", 1, "UDP", 2130706431, "127.0.0.1", port, "host")
    try:
        for c in conn.local_candidates:
            parsed = parse_attribute("a=candidate:" + c.to_sdp())
            assert isinstance(parsed, Candidate)
            agent.add_remote_candidate(parsed)
        agent.set_remote(conn.local_username, conn.local_password)
        agent.end_of_candidates()
        conn.remote_username, conn.remote_password = UFRAG, PWD
        conn.remote_is_lite = lite
        await conn.add_remote_candidate(aioice.Candidate.from_sdp(render_candidate(ours)))
        await conn.add_remote_candidate(None)
        edge.pump()
        await asyncio.wait_for(conn.connect(), BOUND)
        await _until(lambda: agent.state is IceState.CONNECTED)
        # a data packet passes both ways, over the selected pair only
        await conn.send(b"\x80from-aioice")
        data, source = await asyncio.wait_for(edge.media.get(), BOUND)
        assert data == b"\x80from-aioice"
        assert agent.is_selected_source(1, (source[0], source[1]))
        assert source[0] == "127.0.0.1"
        edge.send_media(b"\x80from-rtpvault")
        assert await asyncio.wait_for(conn.recv(), BOUND) == b"\x80from-rtpvault"
        # bad integrity from the peer's address: dropped and counted, nothing answered
        bad = aioice_stun.Message(aioice_stun.Method.BINDING, aioice_stun.Class.REQUEST)
        bad.attributes["USERNAME"] = f"{UFRAG}:{conn.local_username}"
        bad.add_message_integrity(b"not-the-password-at-all")
        assert agent.receive(bytes(bad), 1, source, loop.time()) is DropReason.BAD_INTEGRITY
        assert agent.datagrams_to_send() == []
        assert agent.drops[DropReason.BAD_INTEGRITY] == 1
        return agent, conn, edge
    finally:
        edge.close()
        with contextlib.suppress(Exception):
            await conn.close()


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice gathers every address but 127.0.0.1; keep both agents on loopback, which every
    CI machine has (aioice's ICE itself runs unchanged)."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


@pytest.mark.parametrize(("their_role", "our_role"), [(True, False), (False, True)])
def test_aioice_connects_to_our_agent(their_role: bool, our_role: bool) -> None:
    agent, conn, edge = asyncio.run(_scenario(their_role, our_role))
    assert agent.controlling is our_role
    assert agent.selected(1) is not None
    assert edge.requests_sent > 0


@pytest.mark.parametrize("both", [True, False])
def test_role_conflict_with_aioice_is_resolved(both: bool) -> None:
    # Both claim the same role; our tie-breaker (2^64 − 1) is the larger, so we keep controlling
    # (both=True) or become controlling (both=False); aioice takes the other role.
    agent, conn, _ = asyncio.run(_scenario(both, both))
    assert agent.controlling and not conn.ice_controlling
    assert agent.role_conflicts >= 1


def test_aioice_against_our_ice_lite_agent() -> None:
    agent, conn, edge = asyncio.run(_scenario(True, False, lite=True))
    assert not agent.controlling and conn.ice_controlling
    assert edge.requests_sent == 0  # a lite agent only answers
    assert agent.selected(1) is not None
