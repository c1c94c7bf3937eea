"""RTCP between a party that does not mux (RTP on P, RTCP on P+1) and one that muxes (RTP and
RTCP on one port), through rtpengine 10.5 and rtpvault alike (docs/spec/sdp.md §4.1).

Each probe sends one RTCP sender report from one socket of one party and checks which socket
of the other party receives it, from which relay port; a probe that rtpengine drops is dropped
by both. With SDES on the muxed leg, the muxed party is a pylibsrtp stack keyed only from the
SDP: its SRTCP arrives at the plain party's RTCP port decrypted, and the plain party's RTCP
arrives at its RTP port as SRTCP under the key rtpvault gave it.
"""

from __future__ import annotations

import base64
import itertools
import os
from collections.abc import Iterator

import pylibsrtp
import pytest

from tests.support.daemons import Daemon, per_module
from tests.support.rtp_party import (
    Party,
    fresh_payload,
    media_port,
    ng_sdp,
    party_sdp,
    rtcp_sr,
    rtp_packet,
)

pytestmark = pytest.mark.integration

_ids = itertools.count()
MUX = "a=rtcp-mux\r\n"
SSRC_A, SSRC_B = 0x0A0A0A0A, 0x0B0B0B0B


@pytest.fixture(scope="module", params=["rtpengine", "rtpvault"])
def relay(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Daemon]:  # fmt: skip
    yield from per_module(request, tmp_path_factory, "mux", interface="lo/127.0.0.1",
                          ports=40)  # fmt: skip


def _got(p: Party, wait: float = 0.4) -> list[tuple[str, int, bytes]]:
    """(which socket, relay source port, datagram) of everything `p` received."""
    out = []
    for name, sock in (("rtp", p.rtp), ("rtcp", p.rtcp)):
        sock.settimeout(wait)
        try:
            while True:
                data, src = sock.recvfrom(4096)
                out.append((name, src[1], data))
                sock.settimeout(0.05)
        except TimeoutError:
            pass
    return out


def _call(d: Daemon, a_extra: str, a_flags: dict[str, object], b_extra: str,
          ) -> tuple[Party, Party, str, str]:  # fmt: skip
    a, b = Party(), Party()
    base = {"call-id": f"mux-{next(_ids)}", "from-tag": "a"}
    offer = ng_sdp(d, {**base, "command": "offer", "sdp": party_sdp(a.port, extra=a_extra),
                       **a_flags})  # fmt: skip
    answer = ng_sdp(d, {**base, "command": "answer", "to-tag": "b",
                        "sdp": party_sdp(b.port, extra=b_extra)})  # fmt: skip
    a.peer, b.peer = ("127.0.0.1", media_port(answer)), ("127.0.0.1", media_port(offer))
    for seq in range(3):  # both latch on RTP first
        a.send_rtp(rtp_packet(seq, SSRC_A, fresh_payload()))
        b.send_rtp(rtp_packet(seq, SSRC_B, fresh_payload()))
    assert [g[0] for g in _got(a)] == ["rtp"] * 3 and [g[0] for g in _got(b)] == ["rtp"] * 3
    return a, b, offer, answer


@pytest.mark.parametrize("mux", ["offer", "require"])
def test_phone_rtcp_port_to_muxing_party_and_back(relay: Daemon, mux: str) -> None:
    """A (plain phone, no mux) offers; `rtcp-mux` offer/require towards B, who muxes."""
    a, b, _, _ = _call(relay, "", {"rtcp-mux": [mux]}, MUX)
    a_port, b_port = a.peer[1], b.peer[1]
    sr = rtcp_sr(SSRC_A, fresh_payload(20))
    a.send_rtcp(sr)  # A's RTCP port → relay P+1 → B's one port, from the relay's B port
    assert _got(b) == [("rtp", b_port, sr)]
    sr = rtcp_sr(SSRC_B, fresh_payload(20))
    b.send_rtp(sr)  # B's muxed RTCP → A's RTCP port, from the relay's A RTCP port
    assert _got(a) == [("rtcp", a_port + 1, sr)]
    b.send_rtcp(sr)  # B's RTCP port: the offer's fallback RTCP port exists only without require
    assert _got(a) == ([("rtcp", a_port + 1, sr)] if mux == "offer" else [])
    sr = rtcp_sr(SSRC_A, fresh_payload(20))
    a.send_rtp(sr)  # RTCP on a non-muxing side's RTP port is forwarded as RTP
    assert _got(b) == [("rtp", b_port, sr)]


def test_muxing_offerer_demuxed_towards_phone(relay: Daemon) -> None:
    """A (WebRTC-like, muxes) offers with `rtcp-mux` demux; B (phone) does not mux."""
    a, b, _, _ = _call(relay, MUX, {"rtcp-mux": ["demux"]}, "")
    a_port, b_port = a.peer[1], b.peer[1]
    sr = rtcp_sr(SSRC_A, fresh_payload(20))
    a.send_rtp(sr)  # A's muxed RTCP → B's RTCP port, from the relay's B RTCP port
    assert _got(b) == [("rtcp", b_port + 1, sr)]
    sr = rtcp_sr(SSRC_B, fresh_payload(20))
    b.send_rtcp(sr)  # B's RTCP port → A's one port, from the relay's A port
    assert _got(a) == [("rtp", a_port, sr)]
    a.send_rtcp(rtcp_sr(SSRC_A, fresh_payload(20)))  # A kept mux: no RTCP port towards it
    assert _got(b) == []


def _line(key: bytes, tag: int = 1) -> str:
    return f"a=crypto:{tag} AES_CM_128_HMAC_SHA1_80 inline:{base64.b64encode(key).decode()}\r\n"


def _key_of(sdp: str) -> tuple[int, bytes]:
    """Tag and key of the AES_CM_128_HMAC_SHA1_80 line in `sdp`."""
    line = next(v for v in sdp.split("\r\n") if v.startswith("a=crypto:")
                and " AES_CM_128_HMAC_SHA1_80 " in v)  # fmt: skip
    tag = int(line[len("a=crypto:") :].split()[0])
    return tag, base64.b64decode(line.split("inline:")[1].split("|")[0].split()[0])


def _session(key: bytes, outbound: bool) -> pylibsrtp.Session:
    kind = pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND
    return pylibsrtp.Session(policy=pylibsrtp.Policy(key=key, ssrc_type=kind))


@pytest.mark.parametrize("offerer", ["phone", "sdes"])
def test_srtcp_on_a_muxed_sdes_leg(relay: Daemon, offerer: str) -> None:
    """The muxed party speaks SDES (RTP/SAVP): its SRTCP is decrypted with the leg's context
    and leaves at the phone's RTCP port; the phone's RTCP is protected for the muxed leg."""
    phone, sdes = Party(), Party()
    key = os.urandom(30)
    base = {"call-id": f"mux-sdes-{next(_ids)}", "from-tag": "a"}
    if offerer == "phone":
        offer = ng_sdp(relay, {**base, "command": "offer", "sdp": party_sdp(phone.port),
                               "rtcp-mux": ["require"], "transport-protocol": "RTP/SAVP",
                               "DTLS": "off"})  # fmt: skip
        tag, theirs = _key_of(offer)
        answer = ng_sdp(relay, {**base, "command": "answer", "to-tag": "b", "sdp": party_sdp(
            sdes.port, "RTP/SAVP", MUX + _line(key, tag))})  # fmt: skip
        phone.peer, sdes.peer = ("127.0.0.1", media_port(answer)), ("127.0.0.1", media_port(offer))
    else:
        offer = ng_sdp(relay, {**base, "command": "offer", "sdp": party_sdp(
            sdes.port, "RTP/SAVP", MUX + _line(key)), "rtcp-mux": ["demux"],
            "transport-protocol": "RTP/AVP", "DTLS": "off"})  # fmt: skip
        answer = ng_sdp(relay, {**base, "command": "answer", "to-tag": "b",
                                "sdp": party_sdp(phone.port)})  # fmt: skip
        _, theirs = _key_of(answer)
        phone.peer, sdes.peer = ("127.0.0.1", media_port(offer)), ("127.0.0.1", media_port(answer))
    tx, rx = _session(key, outbound=True), _session(theirs, outbound=False)
    for seq in range(3):
        phone.send_rtp(rtp_packet(seq, SSRC_A, fresh_payload()))
        sdes.send_rtp(tx.protect(rtp_packet(seq, SSRC_B, fresh_payload())))
    assert [g[0] for g in _got(phone)] == ["rtp"] * 3
    assert [rx.unprotect(g[2])[:12] != b"" for g in _got(sdes)] == [True] * 3
    for _ in range(3):
        sr = rtcp_sr(SSRC_B, fresh_payload(20))
        sdes.send_rtp(tx.protect_rtcp(sr))
        assert _got(phone) == [("rtcp", phone.peer[1] + 1, sr)]
        sr = rtcp_sr(SSRC_A, fresh_payload(20))
        phone.send_rtcp(sr)
        ((sock, port, data),) = _got(sdes)
        assert (sock, port) == ("rtp", sdes.peer[1])
        assert data != sr and rx.unprotect_rtcp(data) == sr
