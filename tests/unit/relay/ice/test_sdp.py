"""RFC 8839 ICE attributes: fields, exact round trip, error text, and hypothesis laws."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.ice.sdp import (
    Candidate,
    EndOfCandidates,
    IceLite,
    IceOptions,
    IcePwd,
    IceSdpError,
    IceUfrag,
    RemoteCandidate,
    RemoteCandidates,
    parse_attribute,
    render_attribute,
)
from relay.sdp import SdpError

# Lines as browsers, rtpengine and RFC 8839 write them.
GOLDEN = [
    "a=ice-ufrag:iqwDFdY3",
    "a=ice-pwd:V7piXl02bV2c1MytSxvHH2GfZA",
    "a=ice-options:trickle",
    "a=ice-options:trickle ice2",
    "a=ice-lite",
    "a=end-of-candidates",
    "a=remote-candidates:1 192.0.2.3 45664 2 192.0.2.3 45665",
    "a=candidate:mWXLR2ZN6OUz0ttm 1 UDP 2130706431 203.0.113.1 27392 typ host",
    "a=candidate:2 1 UDP 1694498815 198.51.100.7 6000 typ srflx raddr 192.0.2.10 rport 49170",
    "a=candidate:842163049 1 udp 1677729535 198.51.100.9 61665 typ srflx raddr 0.0.0.0 rport 0"
    " generation 0 network-cost 999",
    "a=candidate:1 1 tcp 1518280447 2001:db8::1 9 typ host tcptype active generation 0"
    " network-id 1",
    "a=candidate:3 1 udp 2122260223 0fb4b5f4-5c6d-4e1c-9b84-6ac2d0e0c2c1.local 54321 typ host",
    "a=candidate:mWXLR2ZN6OUz0ttm 1 UDP 16777215 203.0.113.1 27526 typ relay"
    " raddr 203.0.113.1 rport 27526",
]


@pytest.mark.parametrize("line", GOLDEN)
def test_golden_lines_round_trip(line: str) -> None:
    assert render_attribute(parse_attribute(line)) == line


def test_candidate_fields_and_extension_order() -> None:
    c = parse_attribute(GOLDEN[10])
    assert isinstance(c, Candidate)
    assert (c.foundation, c.component, c.transport, c.priority) == ("1", 1, "tcp", 1518280447)
    assert (c.address, c.port, c.typ, c.raddr, c.rport) == ("2001:db8::1", 9, "host", None, None)
    assert c.extensions == (("tcptype", "active"), ("generation", "0"), ("network-id", "1"))
    assert c.tcptype == "active" and c.generation == 0
    s = parse_attribute(GOLDEN[8])
    assert isinstance(s, Candidate)
    assert (s.typ, s.raddr, s.rport, s.extensions) == ("srflx", "192.0.2.10", 49170, ())


def test_simple_attributes() -> None:
    assert parse_attribute(GOLDEN[0]) == IceUfrag("iqwDFdY3")
    assert parse_attribute(GOLDEN[1]) == IcePwd("V7piXl02bV2c1MytSxvHH2GfZA")
    assert parse_attribute(GOLDEN[3]) == IceOptions(("trickle", "ice2"))
    assert parse_attribute("a=ice-lite") == IceLite()
    assert parse_attribute("a=end-of-candidates") == EndOfCandidates()
    assert parse_attribute(GOLDEN[6]) == RemoteCandidates(
        (RemoteCandidate(1, "192.0.2.3", 45664), RemoteCandidate(2, "192.0.2.3", 45665))
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("a=ice-ufrag:abc", "ICE ufrag 'abc': expected 4-256 characters of [A-Za-z0-9+/]"),
        ("a=ice-pwd:short", "ICE pwd 'short': expected 22-256 characters of [A-Za-z0-9+/]"),
        ("a=ice-ufrag:ab-cd", "ICE ufrag 'ab-cd': expected 4-256 characters of [A-Za-z0-9+/]"),
        ("a=candidate:1 0 UDP 1 192.0.2.1 5 typ host", "ICE component '0': expected a number"),
        ("a=candidate:1 1 UDP 1 192.0.2.1 70000 typ host", "ICE port '70000': expected"),
        ("a=candidate:1 1 UDP 1 192.0.2.1 5 type host", "ICE candidate '1 1 UDP 1 192.0.2.1"),
        ("a=candidate:1 1 UDP 1 192.0.2.1 5 typ host raddr", "ICE raddr"),
        ("a=candidate:1 1 UDP 1 192.0.2.1 5 typ host generation", "ICE candidate extensions"),
        ("a=candidate:1 1 UDP 0 192.0.2.1 5 typ host", "ICE priority '0': expected a number"),
        ("a=ice-lite:x", "ICE ice-lite 'x': expected no value"),
        ("a=ice-ufrag", "ICE ice-ufrag '': expected a value after ':'"),
        ("a=remote-candidates:1 192.0.2.3", "ICE remote-candidates"),
        ("a=rtcp:5", "ICE attribute 'rtcp': expected one of candidate"),
    ],
)
def test_bad_lines_name_the_field(line: str, message: str) -> None:
    with pytest.raises(IceSdpError) as err:
        parse_attribute(line)
    assert str(err.value).startswith(message)
    assert isinstance(err.value, SdpError)


ICE_CHARS = st.text("abcXYZ019+/", min_size=1)
TOKENS = st.text("abcz-._!0189", min_size=1, max_size=12)
ADDRESSES = st.sampled_from(["192.0.2.1", "2001:db8::7", "::1", "x.local", "0.0.0.0"])
PORTS = st.integers(0, 65535)


@st.composite
def candidates(draw: st.DrawFn) -> Candidate:
    related = draw(st.booleans())
    return Candidate(
        foundation=draw(ICE_CHARS.filter(lambda s: len(s) <= 32)),
        component=draw(st.integers(1, 256)),
        transport=draw(st.sampled_from(["UDP", "udp", "TCP"])),
        priority=draw(st.integers(1, 2**32 - 1)),
        address=draw(ADDRESSES),
        port=draw(PORTS),
        typ=draw(st.sampled_from(["host", "srflx", "prflx", "relay", "x-new"])),
        raddr=draw(ADDRESSES) if related else None,
        rport=draw(PORTS) if related and draw(st.booleans()) else None,
        extensions=tuple(draw(st.lists(st.tuples(TOKENS, TOKENS), max_size=4))),
    )


ATTRS = st.one_of(
    candidates(),
    st.builds(IceUfrag, ICE_CHARS.filter(lambda s: 4 <= len(s) <= 256)),
    st.builds(IcePwd, st.text("aZ9+/", min_size=22, max_size=40)),
    st.builds(IceOptions, st.lists(TOKENS, min_size=1, max_size=3).map(tuple)),
    st.just(IceLite()),
    st.just(EndOfCandidates()),
    st.builds(
        RemoteCandidates,
        st.lists(
            st.builds(RemoteCandidate, st.integers(1, 256), ADDRESSES, PORTS), min_size=1
        ).map(tuple),
    ),
)


@given(ATTRS)
def test_parse_of_render_is_identity(attr: object) -> None:
    assert parse_attribute(render_attribute(attr)) == attr  # type: ignore[arg-type]


@given(st.text(max_size=120))
def test_any_text_gives_a_value_or_our_error(text: str) -> None:
    for line in (text, "a=candidate:" + text, "a=ice-ufrag:" + text, "a=remote-candidates:" + text):
        try:
            attr = parse_attribute(line)
        except IceSdpError:
            continue
        assert render_attribute(attr) == line
