"""relay.call.sides.link: where each stream of a media line forwards RTP and RTCP, for every
combination of rtcp-mux on the two sides (docs/spec/sdp.md §4.1, measured on rtpengine 10.5)."""

from __future__ import annotations

import socket

import pytest

from relay.call.model import MediaSide
from relay.call.sides import link
from relay.media.stream import Stream

_SOCKS: list[socket.socket] = []


def _side(mux: bool, rtcp_port: bool = True) -> MediaSide:
    side = MediaSide(1, "audio", "RTP/AVP")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    _SOCKS.append(sock)
    side.rtp = Stream(sock, "127.0.0.1", 30000)
    side.rtcp = Stream(sock, "127.0.0.1", 30001, is_rtcp=True) if rtcp_port else None
    side.rtcp_mux = mux
    return side




def test_neither_muxes() -> None:
    a, b = _side(False), _side(False)
    link(a, b)
    assert a.rtp and b.rtp and a.rtcp and b.rtcp
    assert (a.rtp.sink, a.rtcp.sink, a.rtp.rtcp_sink) == (b.rtp, b.rtcp, None)
    assert (b.rtp.sink, b.rtcp.sink, b.rtp.rtcp_sink) == (a.rtp, a.rtcp, None)


def test_both_mux() -> None:
    a, b = _side(True, rtcp_port=False), _side(True)
    link(a, b)
    assert a.rtp and b.rtp and b.rtcp
    assert (a.rtp.sink, a.rtp.rtcp_sink) == (b.rtp, None)
    assert (b.rtp.sink, b.rtcp.sink, b.rtp.rtcp_sink) == (a.rtp, a.rtp, None)


@pytest.mark.parametrize("fallback", [True, False])
def test_one_muxes(fallback: bool) -> None:
    """A plain phone (a) and a muxing party (b), with or without b's fallback RTCP port."""
    a, b = _side(False), _side(True, rtcp_port=fallback)
    link(a, b)
    assert a.rtp and a.rtcp and b.rtp
    assert (a.rtp.sink, a.rtcp.sink, a.rtp.rtcp_sink) == (b.rtp, b.rtp, None)
    assert (b.rtp.sink, b.rtp.rtcp_sink) == (a.rtp, a.rtcp)
    if fallback:
        assert b.rtcp is not None and b.rtcp.sink is a.rtcp


def test_a_later_answer_turning_mux_off_relinks() -> None:
    a, b = _side(False), _side(True)
    link(a, b)
    b.rtcp_mux = False
    link(a, b)
    assert a.rtcp and b.rtcp and b.rtp
    assert (a.rtcp.sink, b.rtp.rtcp_sink) == (b.rtcp, None)


def teardown_module() -> None:
    for s in _SOCKS:
        s.close()
