"""Plain party A ↔ plane ↔ ICE party B, B being aioice.Connection (an independent agent) on
loopback: the stream's agent answers B's checks and runs its own from the stream's socket on the
loop's timer; media goes to B only once a pair is selected, and only over it."""

from __future__ import annotations

import asyncio
import contextlib

import aioice
import aioice.ice
import pytest
from aioice import stun as aioice_stun

from relay.ice import IceAgent, IceState, LocalSocket
from relay.ice.sdp import Candidate, parse_attribute, render_candidate
from relay.media.secure import attach_ice, drop_counts
from tests.unit.relay.media.secure_rig import BOUND, SecureRig, rtp

UFRAG, PWD = "rtpvAULT", "ourpassword0123456789abcd"


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice gathers every address but 127.0.0.1; keep both agents on loopback."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


async def scenario(their_controlling: bool) -> SecureRig:
    loop = asyncio.get_running_loop()
    rig = SecureRig(loop)
    conn = aioice.Connection(ice_controlling=their_controlling, components=1, use_ipv6=False)
    await conn.gather_candidates()
    port = rig.y.local_port
    agent = IceAgent(ufrag=UFRAG, pwd=PWD, controlling=not their_controlling,
                     sockets=[LocalSocket(7, ("127.0.0.1", port), 1, 2130706431)],
                     tie_breaker=2**63)  # fmt: skip
    for c in conn.local_candidates:
        parsed = parse_attribute("a=candidate:" + c.to_sdp())
        assert isinstance(parsed, Candidate)
        agent.add_remote_candidate(parsed)
    agent.set_remote(conn.local_username, conn.local_password)
    agent.end_of_candidates()
    attach_ice(rig.y, agent, 7)
    decoy = rig.y.peer  # what SDP said (rig.b): with ICE, media never goes there
    rig.start()
    t = rig.y.transport
    assert t is not None
    try:
        rig.a.sendto(rtp(1, b"too early"), rig.addr(rig.x.sock))
        await rig.until(lambda: t.not_selected == 1)  # no pair yet: dropped, counted
        conn.remote_username, conn.remote_password = UFRAG, PWD
        ours = Candidate("rtpvault1", 1, "UDP", 2130706431, "127.0.0.1", port, "host")
        await conn.add_remote_candidate(aioice.Candidate.from_sdp(render_candidate(ours)))
        await conn.add_remote_candidate(None)
        await asyncio.wait_for(conn.connect(), BOUND)
        await rig.until(lambda: agent.state is IceState.CONNECTED)
        selected = agent.selected(1)
        assert selected is not None and rig.y.peer == selected[1] != decoy
        assert t.ice_state == "connected"
        for seq in range(2, 5):
            rig.a.sendto(rtp(seq, b"over the pair"), rig.addr(rig.x.sock))
            assert await asyncio.wait_for(conn.recv(), BOUND) == rtp(seq, b"over the pair")
            await conn.send(rtp(seq, b"from aioice", ssrc=0xA10))
            assert await rig.recv(rig.a) == rtp(seq, b"from aioice", ssrc=0xA10)
        # bad integrity from a stranger: dropped, counted, unanswered; media from it dropped
        bad = aioice_stun.Message(aioice_stun.Method.BINDING, aioice_stun.Class.REQUEST)
        bad.attributes["USERNAME"] = f"{UFRAG}:{conn.local_username}"
        bad.add_message_integrity(b"not-the-password-at-all")
        bad.add_fingerprint()
        rig.b.sendto(bytes(bad), rig.addr(rig.y.sock))
        await rig.until(lambda: t.stun_bad == 1)
        assert dict(drop_counts(rig.y))["stun"] == 1  # docs/spec/metrics.md §4.1
        rig.b.sendto(rtp(9, b"injected"), rig.addr(rig.y.sock))
        await rig.until(lambda: t.not_selected == 2)
        rig.b.setblocking(False)
        with pytest.raises(BlockingIOError):  # B's SDP address got nothing, ever
            rig.b.recv(2048)
        assert rig.taps["y"] == [rtp(s, b"from aioice", ssrc=0xA10) for s in range(2, 5)]
        return rig
    finally:
        with contextlib.suppress(Exception):
            await conn.close()
        rig.close()


@pytest.mark.parametrize("their_controlling", [True, False], ids=["they-control", "we-control"])
def test_ice_peer_through_the_plane(their_controlling: bool) -> None:
    rig = asyncio.run(scenario(their_controlling))
    assert rig.x.packets == 4 and rig.y.packets == 3
