"""Call model alone: pairing, ports, re-offers, delete, timeouts (docs/spec/sdp.md §1.15, §3)."""

from __future__ import annotations

import random
import socket

import pytest

from relay.call import Call, CallClosed, CallError, CallEvent, CallOptions, Registry
from relay.call.offered import OfferedMedia, OfferedSession
from relay.call.secure import SecureContext
from relay.config.interfaces import Interface
from relay.ng.flags import call_options, parse_flags
from relay.sdp.plan import SessionPlan

LOOPBACK = Interface("lo", "127.0.0.1", "203.0.113.1", "IP4")


class FakeSock:
    def __init__(self, port: int) -> None:
        self.port = port
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def fileno(self) -> int:
        return -1


def opener(address: str, port: int, family: int) -> FakeSock:
    return FakeSock(port)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def secure_context() -> SecureContext:
    """What the daemon gives every Registry (rtpvault.daemon._secure_context), fixed values."""
    return SecureContext(fingerprint=lambda h: f"{h} AA:BB", interfaces=[("F" * 16, "203.0.113.1")],
                         rng=random.Random(1))


def registry(port_max: int = 43999, **kw: object) -> tuple[Registry, Clock]:
    clock = Clock()
    kw.setdefault("secure", secure_context())
    reg = Registry([LOOPBACK], 43500, port_max, opener=opener, clock=clock, wallclock=clock, **kw)  # type: ignore[arg-type]
    return reg, clock


def session(addr: str = "192.0.2.10", port: int = 49170, **media: object) -> OfferedSession:
    m = OfferedMedia(
        type="audio", port=port, protocol="RTP/AVP", formats=("0", "8"), address=addr, **media  # type: ignore[arg-type]
    )
    return OfferedSession("alice", "1", "Talk", (m,))


plans: list[SessionPlan] = []


def render(plan: SessionPlan) -> str:
    plans.append(plan)
    return f"port={plan.media[0].port} rtcp={plan.media[0].rtcp_port} mux={plan.media[0].rtcp_mux}"


def flags(**body: object) -> CallOptions:
    return call_options(parse_flags(dict(body)))


def delete(
    reg: Registry, call_id: str, from_tag: str | None, to_tag: str | None, delay: int | None,
    via_branch: str | None = None,
) -> Call | None:
    """A delete as relay.ng.commands carries it out: without a from-tag the whole call, else
    the party rtpengine's lookup names; None when the call or that party is unknown."""
    call = reg.calls.get(call_id)
    if call is None:
        return None
    if not from_tag:
        reg.delete_call(call, delay)
        return call
    target = reg.delete_target(call, from_tag, to_tag, via_branch)
    if target is None:
        return None
    reg.delete_party(call, target, delay)
    return call


def test_offer_allocates_two_pairs_and_answer_reuses_the_other() -> None:
    reg, _ = registry()
    out = reg.offer("c1", "a", None, session(), flags(), render)
    assert out == "port=43500 rtcp=43501 mux=False"
    pool = reg.pools["127.0.0.1"]
    assert len(pool.used) == 4
    out = reg.answer("c1", "a", "b", session("192.0.2.20", 50000), flags(), render)
    assert len(pool.used) == 4
    call = reg.calls["c1"]
    a, b = call.parties["a"], call.parties["b"]
    assert int(out.split()[0].split("=")[1]) == a.medias[0].port
    assert b.medias[0].port == 43500
    # A packet from A arrives on A's side and leaves through B's side towards B.
    assert a.medias[0].rtp.sink is b.medias[0].rtp  # type: ignore[union-attr]
    assert b.medias[0].rtp.peer == ("192.0.2.20", 50000)  # type: ignore[union-attr]
    assert a.medias[0].rtcp.peer == ("192.0.2.10", 49171)  # type: ignore[union-attr]


def test_reoffer_keeps_ports_unless_the_endpoint_moved() -> None:
    reg, _ = registry()
    first = reg.offer("c1", "a", None, session(), flags(), render)
    assert reg.offer("c1", "a", None, session(), flags(), render) == first
    moved = reg.offer("c1", "a", None, session(port=49180), flags(), render)
    assert moved != first
    assert len(reg.pools["127.0.0.1"].used) == 4  # the old pair went back


def test_port_latching_keeps_ports_on_moved_endpoint() -> None:
    reg, _ = registry()
    first = reg.offer("c1", "a", None, session(), flags(), render)
    again = reg.offer("c1", "a", None, session(port=49180), flags(flags=["port-latching"]), render)
    assert again == first


def test_ran_out_of_ports_destroys_the_new_call_only() -> None:
    reg, _ = registry(port_max=43507)
    reg.offer("c1", "a", None, session(), flags(), render)
    reg.offer("c2", "a", None, session(), flags(), render)
    with pytest.raises(CallError, match="Ran out of ports"):
        reg.offer("c3", "a", None, session(), flags(), render)
    assert list(reg.calls) == ["c1", "c2"]
    reg.answer("c1", "a", "b", session("192.0.2.20", 50000), flags(), render)


def test_delete_frees_ports_after_delete_delay() -> None:
    reg, clock = registry(delete_delay=30)
    reg.offer("c1", "a", None, session(), flags(), render)
    assert delete(reg, "c1", "a", None, None) is not None
    assert "c1" in reg.calls
    clock.t += 31
    reg.sweep(60, 3600, 0, 3600)
    assert "c1" not in reg.calls
    assert not reg.pools["127.0.0.1"].used
    assert reg.totals.regular == 1


def test_delete_unknown_tag_or_call() -> None:
    reg, _ = registry()
    reg.offer("c1", "a", None, session(), flags(), render)
    assert delete(reg, "c1", "nope", None, 0) is None
    assert delete(reg, "nope", None, None, 0) is None
    assert delete(reg, "c1", None, None, 0) is not None
    assert not reg.calls


def test_timeouts() -> None:
    reg, clock = registry()
    reg.offer("c1", "a", None, session(), flags(), render)
    reg.offer("c2", "a", None, session(), flags(), render)
    reg.answer("c2", "a", "b", session("192.0.2.20", 50000), flags(), render)
    clock.t += 61
    reg.sweep(60, 3600, 0, 3600)
    assert list(reg.calls) == ["c1"]  # answered call timed out; the offer-only one waits
    assert reg.totals.timeout == 1
    clock.t += 3600
    reg.sweep(60, 3600, 0, 3600)
    assert not reg.calls and reg.totals.offer_timeout == 1


def test_rtcp_mux_table() -> None:
    # docs/spec/sdp.md §1.8 M1 (both mux), M5 (demux), M7 (reject).
    reg, _ = registry()
    assert reg.offer("m1", "a", None, session(rtcp_mux=True), flags(), render).endswith("mux=True")
    out = reg.answer("m1", "a", "b", session("192.0.2.20", 50000, rtcp_mux=True), flags(), render)
    port = reg.calls["m1"].parties["a"].medias[0].port
    assert out == f"port={port} rtcp={port} mux=True"
    demux = flags(**{"rtcp-mux": ["demux"]})
    assert reg.offer("m5", "a", None, session(rtcp_mux=True), demux, render).endswith("mux=False")
    out = reg.answer("m5", "a", "b", session("192.0.2.20", 50000), flags(), render)
    assert out.endswith("mux=True")
    reg.offer("m7", "a", None, session(rtcp_mux=True), flags(**{"rtcp-mux": ["reject"]}), render)
    out = reg.answer("m7", "a", "b", session("192.0.2.20", 50000, rtcp_mux=True), flags(), render)
    assert out.endswith("mux=False")


def test_real_sockets_closed_on_delete() -> None:
    from tests.support.tools import free_port_range

    lo, hi = free_port_range(8)
    reg = Registry([LOOPBACK], lo, hi, secure=secure_context())
    reg.offer("c1", "a", None, session(), flags(), render)
    socks = [s.sock for p in reg.calls["c1"].all_parties() for m in p.medias for s in m.streams()]
    assert len(socks) == 4 and all(isinstance(s, socket.socket) for s in socks)
    delete(reg, "c1", None, None, 0)
    assert all(s.fileno() == -1 for s in socks)


def test_rtcp_mux_require_binds_only_the_rtp_port_towards_the_receiver() -> None:
    from relay.ng.callstats import call_stats

    reg, _ = registry()
    out = reg.offer("c1", "a", None, session(), flags(**{"rtcp-mux": ["require"]}), render)
    assert out == "port=43500 rtcp=43500 mux=True"
    reg.answer("c1", "a", "b", session("192.0.2.20", 50000, rtcp_mux=True), flags(), render)
    pool = reg.pools["127.0.0.1"]
    b = reg.calls["c1"].parties["b"].medias[0]
    assert b.rtcp is None and b.rtcp_fallback and 43501 not in pool.used
    assert len(pool.used) == 3  # the offerer's side still has its pair
    streams = call_stats(reg.calls["c1"])["tags"]["b"]["medias"][0]["streams"]
    assert streams[0]["flags"] == ["RTP", "RTCP", "filled"]
    assert streams[1]["local port"] == 0
    assert streams[1]["flags"] == ["RTCP", "fallback RTCP", "filled"]
    assert streams[1]["endpoint"] == {"family": "IPv4", "address": "192.0.2.20", "port": 50001}
    delete(reg, "c1", None, None, 0)
    reg.sweep(3600, 3600, 0, 0)
    assert pool.used == set()


def test_answer_rejecting_a_stream_frees_both_sides() -> None:
    reg, _ = registry()
    reg.offer("c1", "a", None, session(), flags(), render)
    reg.answer("c1", "a", "b", session("192.0.2.20", 0), flags(), render)
    call = reg.calls["c1"]
    for tag in ("a", "b"):
        assert all(s.local_port == 0 for s in call.parties[tag].medias[0].streams())
    assert reg.pools["127.0.0.1"].used == set()


def test_forked_answer_keeps_the_first_answerer_subscribed() -> None:
    from relay.ng.callstats import call_stats

    reg, _ = registry()
    reg.offer("c1", "a", None, session(), flags(), render)
    reg.answer("c1", "a", "b", session("192.0.2.20", 50000), flags(), render)
    reg.answer("c1", "a", "c", session("192.0.2.30", 50010), flags(), render)
    tags = call_stats(reg.calls["c1"], {"a"}, reg.calls["c1"].parties["a"])["tags"]
    assert list(tags) == ["a", "c", "b"]
    assert [s["tag"] for s in tags["a"]["subscriptions"]] == ["c", "b"]
    assert [s["tag"] for s in tags["a"]["subscribers"]] == ["c"]
    assert tags["b"]["subscriptions"] == []
    assert [s["tag"] for s in tags["b"]["subscribers"]] == ["a"]
    assert "ICE controlling" in tags["c"]["medias"][0]["flags"]


def test_deleting_one_forked_branch_keeps_the_call() -> None:
    reg, _ = registry()
    reg.offer("c1", "a", None, session(), flags(), render)
    reg.answer("c1", "a", "b", session("192.0.2.20", 50000), flags(), render)
    reg.answer("c1", "a", "c", session("192.0.2.30", 50010), flags(), render)
    assert delete(reg, "c1", "a", "b", 0) is not None
    call = reg.calls["c1"]
    assert all(s.local_port == 0 for s in call.parties["b"].medias[0].streams())
    assert all(s.local_port for s in call.parties["c"].medias[0].streams())
    assert len(reg.pools["127.0.0.1"].used) == 4  # a's and c's pairs
    delete(reg, "c1", "a", "c", 0)  # c is a's only live partner: the whole call goes
    assert "c1" not in reg.calls and reg.pools["127.0.0.1"].used == set()


def test_delete_counts_at_once_and_defers_socket_teardown_and_listeners() -> None:
    reg, _ = registry()
    later: list = []
    events: list[CallEvent] = []
    reg.defer = later.append
    reg.listeners.append(events.append)
    reg.offer("c1", "a", None, session(), flags(), render)
    later.pop()()  # the offer's deferred work: start reading the new sockets
    socks = [s.sock for m in reg.calls["c1"].parties["a"].medias for s in m.streams()]
    assert delete(reg, "c1", "a", None, 0) is not None
    # What a following request could see is settled before the reply ...
    assert "c1" not in reg.calls and reg.totals.managed == 1 and reg.totals.regular == 1
    # ... the sockets, the ports and the "closed" listeners wait for the deferred run.
    assert not any(s.closed for s in socks) and len(reg.pools["127.0.0.1"].used) == 4
    assert [type(e).__name__ for e in events] == ["CallCreated", "CallUpdated"]
    assert len(later) == 1
    later.pop()()
    assert all(s.closed for s in socks) and not reg.pools["127.0.0.1"].used
    assert isinstance(events[-1], CallClosed) and events[-1].reason == "regular"


def test_delete_follows_rtpengines_tag_lookup() -> None:
    reg, _ = registry()
    reg.offer("c1", "a", None, session(), flags(**{"via-branch": "vb"}), render)
    reg.answer("c1", "a", "b", session("192.0.2.20", 50000), flags(), render)
    call = reg.calls["c1"]
    # a to-tag alone decides; the from-tag need not be known
    assert reg.delete_target(call, "nope", "a", None) is call.parties["a"]
    # without a to-tag the via-branch comes first
    assert reg.delete_target(call, "a", None, "vb") is call.parties["b"]
    # an unknown to-tag after the answer finds nothing
    assert reg.delete_target(call, "a", "nope", None) is None
    # without a from-tag the whole call goes, whatever the to-tag
    assert delete(reg, "c1", None, "nope", 0) is not None and not reg.calls


def test_delete_unknown_to_tag_before_answer_deletes_the_offerer() -> None:
    reg, _ = registry()
    reg.offer("c1", "a", None, session(), flags(), render)
    assert delete(reg, "c1", "a", "b", 0) is not None
    assert not reg.calls and reg.pools["127.0.0.1"].used == set()


def test_delayed_branch_delete_keeps_the_call() -> None:
    reg, clock = registry(delete_delay=30)
    reg.offer("c1", "a", None, session(), flags(), render)
    reg.answer("c1", "a", "b", session("192.0.2.20", 50000), flags(), render)
    reg.answer("c1", "a", "c", session("192.0.2.30", 50010), flags(), render)
    delete(reg, "c1", "a", "c", None)
    clock.t += 31
    reg.sweep(3600, 3600, 0, 3600)
    call = reg.calls["c1"]
    assert call.deleted_at is None
    assert all(s.local_port == 0 for s in call.parties["c"].medias[0].streams())
    assert reg.live_party(call, "c") is None and reg.live_party(call, "b") is not None


def test_answer_with_unknown_from_tag_pairs_the_answerer_with_a_new_party() -> None:
    reg, _ = registry()
    reg.offer("c1", "a", None, session(), flags(), render)
    reg.answer("c1", "z", "b", session("192.0.2.20", 50000), flags(), render)
    call = reg.calls["c1"]
    b, z = call.parties["b"], call.parties["z"]
    assert b.other is z and z.other is b
    assert [p.tag for p in call.parties["a"].subscriptions()] == [""]  # a's offer untouched


class RecordingPlane:
    def __init__(self) -> None:
        self.added: list[int] = []
        self.removed: list[int] = []

    def add(self, stream: object) -> None:
        self.added.append(stream.local_port)  # type: ignore[attr-defined]

    def update(self, stream: object) -> None:
        pass

    def remove(self, stream: object) -> None:
        self.removed.append(stream.local_port)  # type: ignore[attr-defined]


def test_new_sockets_are_read_from_after_the_reply() -> None:
    plane = RecordingPlane()
    reg, _ = registry(plane=plane)
    later: list = []
    reg.defer = later.append
    out = reg.offer("c1", "a", None, session(), flags(), render)
    assert out.startswith("port=43500") and plane.added == []
    assert len(later) == 1
    later.pop()()
    assert len(plane.added) == 4 and {43500, 43501} <= set(plane.added)
    # A re-offer from a moved endpoint replaces the pair towards the receiver; the new pair
    # starts after the reply, the old one stops at once.
    plane.added.clear()
    reg.offer("c1", "a", None, session(port=49180), flags(), render)
    assert plane.added == [] and sorted(plane.removed) == [43500, 43501]
    later.pop()()
    assert len(plane.added) == 2 and not set(plane.added) & {43500, 43501}


def test_new_sockets_are_read_from_at_once_outside_a_request() -> None:
    plane = RecordingPlane()
    reg, _ = registry(plane=plane)  # defer runs the work at once (no ng server around)
    reg.offer("c1", "a", None, session(), flags(), render)
    assert len(plane.added) == 4
    reg.answer("c1", "a", "b", session("192.0.2.20", 50000), flags(), render)
    reg.offer("c2", "x", None, session(), flags(), render)
    assert len(plane.added) == 8


def _send_recv(reg: Registry, tag: str) -> tuple[bool, bool]:
    call = reg.calls["d1"]
    side = (call.parties[tag] if tag else call.untagged[0]).medias[0]
    return side.send, side.recv


def test_direction_flags_follow_the_latest_sdp_either_way() -> None:
    """rtpengine 10.5 (query "send"/"recv"): each SDP sets the receiver's side as written and
    the sender's side mirrored; a zero address stops sending to the sender and receiving from
    the receiver."""
    reg, _ = registry()
    reg.offer("d1", "a", None, session(direction="sendonly"), flags(), render)
    assert _send_recv(reg, "a") == (False, True)
    assert _send_recv(reg, "") == (True, False)
    reg.answer("d1", "a", "b", session("192.0.2.20", 50000), flags(), render)
    assert _send_recv(reg, "a") == (True, True)  # the answer overrides a's own sendonly
    assert _send_recv(reg, "b") == (True, True)
    reg.offer("d1", "a", "b", session("0.0.0.0"), flags(), render)
    assert _send_recv(reg, "a") == (False, True)
    assert _send_recv(reg, "b") == (True, False)
    reg.offer("d1", "b", "a", session("192.0.2.20", 50000, direction="inactive"), flags(), render)
    assert _send_recv(reg, "a") == (False, False)
    assert _send_recv(reg, "b") == (False, False)
    reg.answer("d1", "b", "a", session(port=0, direction="recvonly"), flags(), render)
    assert _send_recv(reg, "b") == (False, True)  # rejected: direction counts, zero rule not
    assert _send_recv(reg, "a") == (True, False)


def test_stream_flags_come_from_each_sdp_of_the_party() -> None:
    reg, _ = registry()
    f = flags(flags=["strict-source", "media-handover", "asymmetric"])
    reg.offer("d1", "a", None, session(), f, render)
    rtp = reg.calls["d1"].parties["a"].medias[0].rtp
    assert rtp is not None and rtp.strict_source and rtp.media_handover and rtp.asymmetric
    reg.offer("d1", "a", None, session(), flags(), render)
    assert not (rtp.strict_source or rtp.media_handover or rtp.asymmetric)


def test_same_endpoint_is_rtpengines_endpoint_map_match() -> None:
    from relay.call.model import MediaSide
    from relay.call.sides import same_endpoint

    side = MediaSide(1, "audio", "RTP/AVP")
    assert same_endpoint(side, ("192.0.2.10", 16000))  # a fresh side takes the first one
    assert side.endpoint == ("192.0.2.10", 16000)
    assert not same_endpoint(side, ("192.0.2.10", 16010))
    assert not same_endpoint(side, ("192.0.2.11", 16000))
    assert same_endpoint(side, ("0.0.0.0", 16000))  # zero address: the port alone counts
    assert not same_endpoint(side, ("0.0.0.0", 16010))
    side.endpoint = ("0.0.0.0", 16010)
    assert same_endpoint(side, ("192.0.2.12", 16010))
    assert side.endpoint == ("192.0.2.12", 16010)  # filled in


def test_forked_answer_from_another_endpoint_gets_new_ports() -> None:
    reg, _ = registry()
    reg.offer("f1", "a", None, session(), flags(), render)
    reg.answer("f1", "a", "b", session("192.0.2.20", 50000), flags(), render)
    first = reg.calls["f1"].parties["a"].medias[0].port
    reg.answer("f1", "a", "c", session("192.0.2.20", 50000), flags(), render)
    assert reg.calls["f1"].parties["a"].medias[0].port == first  # same endpoint, same ports
    reg.answer("f1", "a", "d", session("192.0.2.21", 50000), flags(), render)
    assert reg.calls["f1"].parties["a"].medias[0].port != first


def test_rejected_line_without_ports_shows_rtpengines_two_portless_streams() -> None:
    from relay.call.model import MediaSide
    from relay.ng.callstats import media_stats

    side = MediaSide(2, "video", "RTP/AVP", initialized=True)
    side.sdp = OfferedMedia(type="video", port=0, protocol="RTP/AVP", formats=("96",),
                            address="192.0.2.20")
    streams = media_stats(side, None, 1000.0)["streams"]
    assert [s["endpoint"]["port"] for s in streams] == [0, 1]
    assert [s["flags"] for s in streams] == [["RTP", "filled"], ["RTCP", "filled"]]
    assert all("local port" not in s for s in streams)


def test_failed_sends_count_in_the_sinks_errors() -> None:
    from relay.media.stream import Stream
    from relay.ng.callstats import stream_stats

    s = Stream(FakeSock(43500), "127.0.0.1", 43500)  # type: ignore[arg-type]
    s.errors, s.send_errors = 1, 2
    assert stream_stats(s, 1000.0)["stats"]["errors"] == 3


def test_rejecting_party_reoffer_gets_its_ports_with_the_answer() -> None:
    reg, _ = registry()
    reg.offer("r1", "a", None, session(), flags(), render)
    reg.answer("r1", "a", "b", session("192.0.2.20", 0), flags(), render)
    b_side = reg.calls["r1"].parties["b"].medias[0]
    reg.offer("r1", "b", "a", session("192.0.2.20", 50000), flags(), render)
    assert b_side.port == 0  # the sender's released side waits for an SDP to its party
    reg.answer("r1", "b", "a", session(), flags(), render)
    assert b_side.port != 0


@pytest.mark.parametrize(
    ("a_mux", "opts", "b_mux", "a_after_offer", "b_after_offer", "a_after_answer"),
    [
        (True, set(), False, True, True, False),  # M2: the answer decides
        (True, {"accept"}, False, True, True, True),  # M6: accepted regardless
        (True, {"reject"}, True, False, True, False),  # M7: refused toward the offerer
        (False, {"offer"}, True, False, True, False),  # M3: never offered by A
        (True, {"demux"}, False, True, False, True),  # M5
    ],
)
def test_rtcp_mux_media_flag_like_rtpengine(
    a_mux: bool, opts: set[str], b_mux: bool, a_after_offer: bool, b_after_offer: bool,
    a_after_answer: bool,
) -> None:
    from relay.call.model import MediaSide
    from relay.call.sides import rtcp_mux_logic

    a, b = MediaSide(1, "audio", "RTP/AVP"), MediaSide(1, "audio", "RTP/AVP")
    rtcp_mux_logic(a, b, a_mux, frozenset(opts), offer=True)
    assert (a.rtcp_mux, b.rtcp_mux) == (a_after_offer, b_after_offer)
    rtcp_mux_logic(b, a, b_mux, frozenset(), offer=False)
    assert (a.rtcp_mux, b.rtcp_mux) == (a_after_answer, b_mux)


def test_a_deleted_call_leaves_no_cyclic_garbage() -> None:
    """Partners and their streams point at each other; teardown unlinks them so a call is
    freed by reference counting, not by the cyclic GC whose collections it would trigger every
    few calls (docs/PERFORMANCE.md, issue 18)."""
    import gc

    reg, _ = registry()
    gc.collect()
    gc.disable()
    try:
        for n in range(3):
            reg.offer(f"c{n}", "a", None, session(), flags(), render)
            reg.answer(f"c{n}", "a", "b", session("192.0.2.20", 50000), flags(), render)
            delete(reg, f"c{n}", None, None, 0)
        assert gc.collect() == 0
    finally:
        gc.enable()
