"""An in-memory network for sans-IO ICE agents: virtual time, instant delivery, optional loss."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from relay.ice import IceAgent, IceState, LocalSocket, Transmit
from relay.ice.sdp import Candidate
from relay.ice.stun import Address

Drop = Callable[[Address, Address, bytes], bool]


def host_agent(
    name: str, host: str, base_port: int, *, controlling: bool, tie_breaker: int,
    lite: bool = False, components: int = 1,
) -> tuple[IceAgent, list[Candidate]]:
    """An agent with one socket per component and the host candidates it would advertise."""
    sockets = [
        LocalSocket(c, (host, base_port + c - 1), c, (126 << 24) | (65535 << 8) | (256 - c))
        for c in range(1, components + 1)
    ]
    agent = IceAgent(
        ufrag=f"{name}ufrag", pwd=f"{name}password0123456789ab", sockets=sockets,
        controlling=controlling, tie_breaker=tie_breaker, lite=lite,
    )
    cands = [
        Candidate(f"{name}f", s.component, "UDP", s.priority, s.address[0], s.address[1], "host")
        for s in sockets
    ]
    return agent, cands


def introduce(a: IceAgent, a_cands: list[Candidate], b: IceAgent, b_cands: list[Candidate]) -> None:
    """Exchange credentials and candidates as an offer/answer would."""
    a.set_remote(b.ufrag, b.pwd, lite=b.lite)
    a.add_remote_candidates(b_cands)
    a.end_of_candidates()
    b.set_remote(a.ufrag, a.pwd, lite=a.lite)
    b.add_remote_candidates(a_cands)
    b.end_of_candidates()


@dataclass
class MemNet:
    agents: list[IceAgent]
    now: float = 0.0
    drop: Drop = field(default=lambda src, dst, data: False)
    sent: list[tuple[float, Address, Address, bytes]] = field(default_factory=list)
    media: list[tuple[Address, Address, bytes]] = field(default_factory=list)

    def _owner(self, addr: Address) -> tuple[IceAgent, int] | None:
        for agent in self.agents:
            for sock in agent.sockets.values():
                if sock.address == addr:
                    return agent, sock.key
        return None

    def deliver(self, sender: IceAgent, tx: Transmit) -> None:
        src = sender.sockets[tx.socket].address
        self.sent.append((self.now, src, tx.addr, tx.data))
        target = self._owner(tx.addr)
        if target is None or self.drop(src, tx.addr, tx.data):
            return
        agent, key = target
        if agent.receive(tx.data, key, src, self.now).name == "MEDIA":
            self.media.append((src, tx.addr, tx.data))
        check_state(agent)


    def flush(self) -> None:
        moved = True
        while moved:
            moved = False
            for agent in self.agents:
                for tx in agent.datagrams_to_send():
                    moved = True
                    self.deliver(agent, tx)

    def run(self, until: Callable[[], bool], limit: float = 120.0) -> bool:
        """Advance virtual time timer by timer until `until()` or `limit` seconds pass."""
        stalls = 0
        while True:
            for agent in self.agents:  # as an event loop would: only when its timer is due
                due = agent.next_timer()
                if due is not None and due <= self.now:
                    agent.handle_timer(self.now)
            self.flush()
            if until():
                return True
            timers = [t for a in self.agents if (t := a.next_timer()) is not None]
            if not timers or min(timers) > limit:
                return False
            stalls = stalls + 1 if min(timers) <= self.now else 0
            assert stalls < 1000, "a timer stays due: the agent would spin the event loop"
            self.now = max(self.now, min(timers))

    def send_media(self, agent: IceAgent, data: bytes, component: int = 1) -> bool:
        """Send `data` over the agent's selected pair, as the media plane would."""
        sel = agent.selected(component)
        if sel is None:
            return False
        self.deliver(agent, Transmit(sel[0], sel[1], data))
        return True


def check_state(agent: IceAgent) -> None:
    """The state the outside reads agrees with the selected pairs after every datagram."""
    all_selected = all(agent.selected(c) is not None for c in agent.components)
    if agent.state is not IceState.FAILED and not agent.restarting:
        assert (agent.state is IceState.CONNECTED) == all_selected, agent.state
