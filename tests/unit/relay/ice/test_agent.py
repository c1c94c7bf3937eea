"""Two of our sans-IO ICE agents connect in memory (RFC 8445, RFC 7675)."""

from __future__ import annotations

from aioice import stun as aioice_stun
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.ice import DropReason, IceAgent, IceState, Inbound
from relay.ice.agent import NOMINATION_WAIT
from relay.ice.sdp import Candidate
from tests.unit.relay.ice.memnet import MemNet, host_agent, introduce

STUN_COOKIE = b"\x21\x12\xa4\x42"
REQ = b"\x00\x01"  # STUN Binding request
RTP = b"\x80\x00\x00\x01" + bytes(168)
A_ADDR = ("192.0.2.1", 4000)
B_ADDR = ("192.0.2.2", 5000)


def pair(
    *, a_controlling: bool = True, b_controlling: bool = False, b_lite: bool = False,
    components: int = 1,
) -> tuple[IceAgent, IceAgent, MemNet]:
    a, ac = host_agent("alice", "192.0.2.1", 4000, controlling=a_controlling, tie_breaker=9,
                       components=components)
    b, bc = host_agent("bob", "192.0.2.2", 5000, controlling=b_controlling, tie_breaker=5,
                       lite=b_lite, components=components)
    introduce(a, ac, b, bc)
    return a, b, MemNet([a, b])


def connected(*agents: IceAgent) -> bool:
    return all(x.state is IceState.CONNECTED for x in agents)


def test_full_agents_connect_and_media_uses_the_selected_pair() -> None:
    a, b, net = pair(components=2)
    assert a.selected() is None and not net.send_media(a, RTP)  # nothing validated yet
    assert net.run(lambda: connected(a, b))
    assert a.selected(1) == (1, B_ADDR) and b.selected(1) == (1, A_ADDR)
    assert a.selected(2) == (2, ("192.0.2.2", 5001))
    assert net.send_media(a, RTP) and net.send_media(b, RTP)
    assert net.media == [(A_ADDR, B_ADDR, RTP), (B_ADDR, A_ADDR, RTP)]
    assert b.is_selected_source(1, A_ADDR) and not b.is_selected_source(1, ("192.0.2.9", 1))
    # regular nomination: the controlling agent's first check carries no USE-CANDIDATE
    first = aioice_stun.parse_message(net.sent[0][3])
    assert "ICE-CONTROLLING" in first.attributes and "USE-CANDIDATE" not in first.attributes
    nominations = [s for s in net.sent if b"\x00\x25\x00\x00" in s[3]]
    assert nominations and all(s[1][0] == "192.0.2.1" for s in nominations)


def test_single_pair_is_nominated_without_waiting() -> None:
    a, b, net = pair()
    assert net.run(lambda: connected(a, b))
    assert net.now < NOMINATION_WAIT  # virtual time: no better pair was pending


def test_full_controlling_against_lite() -> None:
    a, b, net = pair(a_controlling=False, b_lite=True)
    assert a.controlling  # a full agent controls a lite peer
    assert net.run(lambda: connected(a, b))
    assert all(s[1][0] == "192.0.2.1" for s in net.sent
               if aioice_stun.parse_message(s[3]).message_class == aioice_stun.Class.REQUEST)


def test_role_conflict_both_controlling_resolved_by_tie_breaker() -> None:
    a, b, net = pair(a_controlling=True, b_controlling=True)
    assert net.run(lambda: connected(a, b))
    assert a.controlling and not b.controlling  # a's tie-breaker (9) is larger
    assert a.role_conflicts + b.role_conflicts >= 1
    assert any(b"\x00\x09" in s[3] and aioice_stun.parse_message(s[3]).error_code == 487
               for s in net.sent)


def test_role_conflict_both_controlled_resolved() -> None:
    a, b, net = pair(a_controlling=False, b_controlling=False)
    assert net.run(lambda: connected(a, b))
    assert a.controlling and not b.controlling


def test_peer_reflexive_learnt_from_a_check() -> None:
    a, ac = host_agent("alice", "192.0.2.1", 4000, controlling=True, tie_breaker=9)
    b, _ = host_agent("bob", "192.0.2.2", 5000, controlling=False, tie_breaker=5)
    a.set_remote(b.ufrag, b.pwd)
    a.add_remote_candidates(host_agent("bob", "192.0.2.2", 5000, controlling=False,
                                       tie_breaker=5)[1])
    b.set_remote(a.ufrag, a.pwd)  # b never hears of a's candidates
    net = MemNet([a, b])
    assert net.run(lambda: connected(a, b))
    assert b.selected() == (1, A_ADDR)


def test_retransmission_schedule_and_loss() -> None:
    a, b, net = pair()
    lost: list[float] = []

    def drop(src: tuple[str, int], dst: tuple[str, int], data: bytes) -> bool:
        if src == A_ADDR and data[:2] == REQ and len(lost) < 3:  # a's requests
            lost.append(net.now)
            return True
        return False

    net.drop = drop
    assert net.run(lambda: connected(a, b))
    assert lost == [0.0, 0.5, 1.5]  # RTO 500 ms, doubled per retransmission


def test_unanswered_checks_fail() -> None:
    a, b, net = pair()
    net.drop = lambda src, dst, data: True
    assert net.run(lambda: a.state is IceState.FAILED)
    sends = [t for t, src, _, _ in net.sent if src == A_ADDR]
    assert sends == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # Rc = 7 transmissions
    assert net.now == 39.5  # then Rm × RTO = 8 s


def test_consent_kept_then_lost_after_30_s() -> None:
    a, b, net = pair()
    assert net.run(lambda: connected(a, b))
    start = net.now
    assert not net.run(lambda: a.selected() is None, limit=start + 120)
    consent = [t for t, src, _, d in net.sent if src == A_ADDR and t > start and d[:2] == REQ]
    gaps = [y - x for x, y in zip(consent, consent[1:], strict=False)]
    assert consent and all(4.0 <= g <= 6.0 for g in gaps)
    net.drop = lambda src, dst, data: src == B_ADDR
    cut = net.now
    assert net.run(lambda: a.selected() is None, limit=cut + 60)
    assert a.state is IceState.FAILED and not net.send_media(a, RTP)
    assert cut + 24 <= net.now <= cut + 30


def test_ice_restart_renominates_with_new_credentials() -> None:
    a, b, net = pair()
    assert net.run(lambda: connected(a, b))
    a.restart("alice2ufrag", "alice2password0123456789")
    b.restart("bob2ufrag", "bob2password0123456789ab")
    assert a.state is IceState.CHECKING
    assert net.send_media(a, RTP)  # media stays on the old pair until a new one is nominated
    mark = len(net.sent)
    assert net.run(lambda: False, limit=net.now + 10) is False  # no timer spins meanwhile
    introduce(a, [], b, [])
    a.add_remote_candidates(host_agent("bob", "192.0.2.2", 5000, controlling=False,
                                       tie_breaker=5)[1])
    assert net.run(lambda: connected(a, b))
    after = [aioice_stun.parse_message(d) for _, _, _, d in net.sent[mark:] if d[:2] == REQ]
    assert all(m.attributes["USERNAME"] in ("bob2ufrag:alice2ufrag", "alice2ufrag:bob2ufrag")
               for m in after)
    assert any("USE-CANDIDATE" in m.attributes and m.attributes["USERNAME"].startswith("bob2")
               for m in after)
    assert a.selected() == (1, B_ADDR) and b.selected() == (1, A_ADDR)


def test_old_pair_expires_if_restart_never_completes() -> None:
    a, b, net = pair()
    assert net.run(lambda: connected(a, b))
    a.restart("alice2ufrag", "alice2password0123456789")
    assert net.run(lambda: a.selected() is None, limit=net.now + 60)


def test_lite_agent_takes_the_nominated_pair_and_never_checks() -> None:
    a, b, net = pair(b_lite=True, components=2)
    assert net.run(lambda: connected(a, b))
    assert b.selected(2) == (2, ("192.0.2.1", 4001))
    b_requests = [d for _, src, _, d in net.sent if src[0] == "192.0.2.2" and d[:2] == REQ]
    assert b_requests == []


def _request(username: str, key: str, *, fingerprint: bool = True) -> bytes:
    msg = aioice_stun.Message(aioice_stun.Method.BINDING, aioice_stun.Class.REQUEST)
    msg.attributes["USERNAME"] = username
    msg.attributes["PRIORITY"] = 1
    msg.attributes["ICE-CONTROLLING"] = 1
    msg.add_message_integrity(key.encode())
    if not fingerprint:
        del msg.attributes["FINGERPRINT"]
    return bytes(msg)


def test_bad_stun_is_dropped_and_counted() -> None:
    a, b, _ = pair(a_controlling=False)
    good = _request("bobufrag:aliceufrag", b.pwd)
    corrupt_fp = bytearray(good)
    corrupt_fp[-1] ^= 1
    cases = [
        (_request("bobufrag:aliceufrag", "wrong-password-wrong-pwd"), DropReason.BAD_INTEGRITY),
        (_request("nobody:aliceufrag", b.pwd), DropReason.UNKNOWN_UFRAG),
        (bytes(corrupt_fp), DropReason.BAD_FINGERPRINT),
        (_request("bobufrag:aliceufrag", b.pwd, fingerprint=False),
         DropReason.MISSING_FINGERPRINT),
        (good[:8] + b"\x00" * 30, DropReason.MALFORMED),
        (aioice_stun.Message(aioice_stun.Method.BINDING, aioice_stun.Class.RESPONSE).__bytes__(),
         DropReason.MISSING_FINGERPRINT),
    ]
    for data, reason in cases:
        assert b.receive(data, 1, A_ADDR, 0.0) is reason
    assert b.datagrams_to_send() == []
    assert b.drops[DropReason.BAD_INTEGRITY] == 1 and sum(b.drops.values()) == len(cases)
    assert b.receive(good, 1, A_ADDR, 0.0) is Inbound.STUN
    reply = aioice_stun.parse_message(b.datagrams_to_send()[0].data)
    assert reply.message_class == aioice_stun.Class.RESPONSE
    assert reply.check_message_integrity(b.pwd.encode())
    assert reply.attributes["XOR-MAPPED-ADDRESS"] == A_ADDR
    assert b.receive(RTP, 1, A_ADDR, 0.0) is Inbound.MEDIA


@given(st.binary(max_size=200), st.integers(0, 300), st.integers(0, 255))
@settings(max_examples=300)
def test_any_datagram_is_media_stun_or_a_counted_drop(noise: bytes, at: int, value: int) -> None:
    _, b, _ = pair(a_controlling=False)
    good = bytearray(_request("bobufrag:aliceufrag", b.pwd))
    if at < len(good):
        good[at] = value  # one byte of a valid check changed
    for data in (noise, bytes(good), b"\x00\x01" + noise[:2] + STUN_COOKIE + noise):
        before = sum(b.drops.values())
        result = b.receive(data, 1, A_ADDR, 0.0)
        assert result in (Inbound.MEDIA, Inbound.STUN) or (
            isinstance(result, DropReason) and sum(b.drops.values()) == before + 1
        )


def test_checks_are_paced_one_per_ta_triggered_first() -> None:
    a, ac = host_agent("alice", "192.0.2.1", 4000, controlling=True, tie_breaker=9)
    b, bc = host_agent("bob", "192.0.2.2", 5000, controlling=False, tie_breaker=5)
    silent = [Candidate(f"s{i}", 1, "UDP", 2140000000 - i, f"198.51.100.{i}", 9, "host")
              for i in (1, 2, 3)]  # better than b's real candidate, but nobody answers there
    introduce(a, ac, b, [*bc, *silent])
    net = MemNet([a, b])
    assert net.run(lambda: connected(a, b))
    firsts: dict[tuple[str, int], float] = {}
    for t, src, dst, data in net.sent:
        if src == A_ADDR and data[:2] == REQ:
            firsts.setdefault(dst, t)
    # b's check at 0 s triggers a's check towards b, which goes before the ordinary ones
    assert list(firsts) == [("198.51.100.1", 9), B_ADDR, ("198.51.100.2", 9), ("198.51.100.3", 9)]
    assert [round(t, 3) for t in firsts.values()] == [0.0, 0.05, 0.1, 0.15]
    # a valid pair, but better ones pending: regular nomination waits for them
    assert a.selected() == (1, B_ADDR) and round(net.now, 3) == 0.05 + NOMINATION_WAIT
