"""ICE agents and DTLS sessions the call model gives the streams facing each party
(relay.call.ice_media, relay.call.dtls_media; docs/spec/sdp.md §1.9a, §1.12b): when they
appear, which role, what re-offers keep, what a plain re-offer takes away. Real sockets, no
plane (the media side is tested in tests/integration/test_webrtc_media.py)."""

from __future__ import annotations

import datetime
import random
import re
from typing import Any

import pytest

from relay.call import Registry
from relay.call.model import MediaSide
from relay.call.secure import SecureContext
from relay.config.interfaces import Interface
from relay.dtls.cert import generate_certificate
from relay.dtls.session import Role
from relay.ng.commands import Commands

SOURCE = ("127.0.0.1", 5060)
CERT = generate_certificate(datetime.datetime(2026, 12, 6, tzinfo=datetime.UTC), 9, "t")
FP = CERT.fingerprint().render()
SECURE = {"ICE": "force", "SDES": ["off"], "transport-protocol": "UDP/TLS/RTP/SAVP"}
PLAIN = {"ICE": "remove", "DTLS": "off", "SDES": ["off"], "transport-protocol": "RTP/AVP"}


LOOPBACK = Interface("default", "127.0.0.1", "127.0.0.1", "IP4")


def _sdp(port: int, protocol: str = "RTP/AVP", extra: str = "", version: int = 1,
         session: str = "") -> str:  # fmt: skip
    return (f"v=0\r\no=- 1 {version} IN IP4 127.0.0.1\r\ns=-\r\n{session}"
            f"c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} {protocol} 0\r\n"
            f"a=rtpmap:0 PCMU/8000\r\n{extra}a=sendrecv\r\n")  # fmt: skip


def _ice(ufrag: str, port: int) -> str:
    return (f"a=setup:active\r\na=fingerprint:{FP}\r\na=ice-ufrag:{ufrag}\r\n"
            f"a=ice-pwd:{ufrag}password0123456789\r\n"
            f"a=candidate:1 1 UDP 2130706431 127.0.0.1 {port} typ host\r\n")


@pytest.fixture
def commands() -> Commands:
    ctx = SecureContext(fingerprint=lambda h: FP, interfaces=[("f1", "127.0.0.1")],
                        rng=random.Random(3), certificate=CERT)  # fmt: skip
    return Commands(Registry([LOOPBACK], 41000, 41999, secure=ctx))


def _do(commands: Commands, **body: Any) -> str:
    reply = commands.dispatch({"call-id": "c1", **body}, SOURCE)
    assert reply["result"] == "ok", reply
    return str(reply["sdp"])


def _side(commands: Commands, tag: str) -> MediaSide:
    call = commands.registry.calls["c1"]
    party = call.parties.get(tag) or call.untagged[0]
    return party.medias[0]


def test_offer_to_a_party_gives_its_streams_an_agent_then_its_answer_the_remote(
    commands: Commands,
) -> None:
    out = _do(commands, command="offer", **{"from-tag": "a"}, sdp=_sdp(5000), **SECURE)
    side = _side(commands, "")
    agent = side.secure.ice_agent
    assert agent is not None and agent.controlling  # it received the offer
    ufrag = re.search(r"a=ice-ufrag:(\S+)", out)
    assert ufrag is not None and agent.ufrag == ufrag[1]
    assert sorted(agent.sockets) == [side.port, side.port + 1]  # no rtcp-mux: 2 components
    assert agent.remote_ufrag is None
    streams = side.streams()
    assert all(s.transport is not None and s.transport.ice is not None for s in streams)
    session = streams[0].transport.dtls  # type: ignore[union-attr]
    assert session is not None and session.role is Role.SERVER  # actpass, no answer yet
    assert session.remote_fingerprint is None
    _do(commands, command="answer", **{"from-tag": "a", "to-tag": "b"},
        sdp=_sdp(6000, "UDP/TLS/RTP/SAVP", _ice("peer1", 6000)), **PLAIN)  # fmt: skip
    side = _side(commands, "b")
    assert side.secure.ice_agent is agent and agent.remote_ufrag == "peer1"
    assert streams[0].transport.dtls is session  # type: ignore[union-attr]
    assert session.remote_fingerprint == CERT.fingerprint()  # the answer's, checked later
    # re-offer, then the peer's ICE restart in its answer: the same agent and DTLS session
    _do(commands, command="offer", **{"from-tag": "a", "to-tag": "b"},
        sdp=_sdp(5000, version=2), **SECURE)  # fmt: skip
    _do(commands, command="answer", **{"from-tag": "a", "to-tag": "b"},
        sdp=_sdp(6000, "UDP/TLS/RTP/SAVP", _ice("peer2", 6000), version=2), **PLAIN)  # fmt: skip
    assert side.secure.ice_agent is agent and agent.remote_ufrag == "peer2"
    assert side.rtp is streams[0] and streams[0].transport.dtls is session  # type: ignore[union-attr]
    # a plain re-offer towards the party: no ICE, no DTLS, plain streams
    _do(commands, command="offer", **{"from-tag": "a", "to-tag": "b"},
        sdp=_sdp(5000, version=3), **PLAIN)  # fmt: skip
    assert side.secure.ice_agent is None
    assert all(s.transport is None for s in side.streams())


def test_towards_a_lite_offerer_we_control_and_ice_remove_gives_no_agent(
    commands: Commands,
) -> None:
    lite = "a=ice-lite\r\n"
    _do(commands, command="offer", **{"from-tag": "a"},
        sdp=_sdp(5000, "UDP/TLS/RTP/SAVP", _ice("lite1", 5000).replace("active", "actpass"),
                 session=lite), **PLAIN)  # fmt: skip
    assert _side(commands, "").secure.ice_agent is None  # ICE=remove towards b
    _do(commands, command="answer", **{"from-tag": "a", "to-tag": "b"}, sdp=_sdp(6000),
        **{"ICE": "force", "DTLS": "passive", "SDES": ["off"]})  # fmt: skip
    side = _side(commands, "a")
    agent = side.secure.ice_agent
    assert agent is not None and agent.remote_lite and agent.controlling
    session = side.rtp.transport.dtls  # type: ignore[union-attr]
    assert session is not None and session.role is Role.SERVER  # we answered passive
    assert _side(commands, "b").secure.ice_agent is None
    streams = side.streams()
    commands.registry.terminate("c1")
    assert all(s.transport is None and s.sock.fileno() == -1 for s in streams)  # detached
