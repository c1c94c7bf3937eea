"""rtpvault and the real rtpengine 10.5 chained like two SBCs over an SDES leg (issue 17).

    A (plain) ── rtpengine ══ SDES/SRTP ══ rtpvault ── B (plain)     rtpengine encrypts
    A (plain) ── rtpvault  ══ SDES/SRTP ══ rtpengine ── B (plain)    rtpvault encrypts

The offer goes A → first relay (`transport-protocol=RTP/SAVP`: it writes a=crypto lines) →
second relay (`transport-protocol=RTP/AVP`: it answers one line with its own key and offers
plain to B); B's plain answer goes back the same way. With `DTLS=off` on the SRTP offer the
middle leg runs SDES. Without it the offer carries the a=crypto lines *and* an actpass
fingerprint, and the second relay answers DTLS only (a=setup:active, no a=crypto,
docs/spec/sdp.md §1.12d): the leg then runs DTLS-SRTP, the second relay as client. Only the two
relays hold keys, so a payload reaches the far plain end intact only if one relay's SRTP/SRTCP
is the other's.
The suite is the first one the SRTP offer lists (AEAD_AES_256_GCM, docs/spec/sdp.md §1.12), or
AES_CM_128_HMAC_SHA1_80 when the offering relay is told `SDES-no-<suite>` for the 11 others
(§1.12a: 10.5 has no `SDES-only-…`).
"""

from __future__ import annotations

import itertools
import re
import socket
import time

import pytest

from relay.srtp import SUITES
from tests.support.daemons import Daemon
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
SSRC_A, SSRC_B = 0x0A0A0A0A, 0x0B0B0B0B
PACKETS = 5
FIRST = "AEAD_AES_256_GCM"
ONLY_80 = "AES_CM_128_HMAC_SHA1_80"
NO_BUT_80 = [f"SDES-no-{s.name}" for s in SUITES if s.name != ONLY_80]


def _cryptos(sdp: str) -> list[tuple[int, str]]:
    return [(int(t), s) for t, s in re.findall(r"a=crypto:(\d+) (\S+) inline:", sdp)]


BOUND = 20.0
"""Seconds before a DTLS leg that never carries media fails the test (no timing assertion)."""


def chain(
    first: Daemon, second: Daemon, a: Party, b: Party, call: str, sdes: list[str],
    dtls_off: bool = True,
) -> tuple[str, str]:
    """Offer/answer through `first` then `second` (A offers, B answers); returns the SRTP
    offer and answer on the middle leg. Sets A's and B's relay addresses."""
    dtls: dict[str, str] = {"DTLS": "off"} if dtls_off else {}
    srtp_offer = ng_sdp(first, {"command": "offer", "call-id": call, "from-tag": "a",
                                "transport-protocol": "RTP/SAVP", **dtls, "flags": sdes,
                                "sdp": party_sdp(a.port)})
    plain_offer = ng_sdp(second, {"command": "offer", "call-id": call, "from-tag": "a",
                                  "transport-protocol": "RTP/AVP", "sdp": srtp_offer})
    assert "a=crypto" not in plain_offer and " RTP/AVP " in plain_offer
    b.peer = ("127.0.0.1", media_port(plain_offer))
    srtp_answer = ng_sdp(second, {"command": "answer", "call-id": call, "from-tag": "a",
                                  "to-tag": "b", "sdp": party_sdp(b.port)})
    plain_answer = ng_sdp(first, {"command": "answer", "call-id": call, "from-tag": "a",
                                  "to-tag": "b", "sdp": srtp_answer})
    assert "a=crypto" not in plain_answer and " RTP/AVP " in plain_answer
    a.peer = ("127.0.0.1", media_port(plain_answer))
    return srtp_offer, srtp_answer


def exchange(a: Party, b: Party, first: int = 1) -> None:
    """Distinct payloads both ways, RTP and RTCP, each checked at the far end."""
    for seq in range(first, first + PACKETS):
        for src, dst, ssrc in ((a, b, SSRC_A), (b, a, SSRC_B)):
            rtp = rtp_packet(seq, ssrc, fresh_payload())
            src.send_rtp(rtp)
            assert dst.recv_rtp() == rtp, f"RTP {seq} from SSRC {ssrc:#x}"
            rtcp = rtcp_sr(ssrc, fresh_payload(20))
            src.send_rtcp(rtcp)
            assert dst.recv_rtcp() == rtcp, f"RTCP {seq} from SSRC {ssrc:#x}"


def await_media(a: Party, b: Party) -> int:
    """Send RTP both ways until each end has received one intact (the DTLS handshake comes
    first; what is sent before it is dropped), then drain what is still on the way; returns
    the next sequence number (SRTP replay windows drop older ones)."""
    got = {"a": False, "b": False}
    deadline = time.monotonic() + BOUND
    seq = 0
    for sock in (a.rtp, b.rtp):
        sock.settimeout(0.05)
    try:
        while not all(got.values()) and time.monotonic() < deadline:
            seq += 1
            sent = {"b": rtp_packet(seq, SSRC_A, fresh_payload()),
                    "a": rtp_packet(seq, SSRC_B, fresh_payload())}  # fmt: skip
            a.send_rtp(sent["b"])
            b.send_rtp(sent["a"])
            for name, party in (("a", a), ("b", b)):
                try:
                    while True:
                        if party.recv_rtp() == sent[name]:
                            got[name] = True
                except TimeoutError:
                    pass
        assert all(got.values()), got
    finally:
        for sock in (a.rtp, b.rtp):
            sock.settimeout(a.timeout)
    for sock in (a.rtp, a.rtcp, b.rtp, b.rtcp):
        _drain(sock)
    return seq + 1


def _drain(sock: socket.socket) -> None:
    timeout = sock.gettimeout()
    sock.settimeout(0.2)
    try:
        while True:
            sock.recv(4096)
    except TimeoutError:
        pass
    finally:
        sock.settimeout(timeout)


@pytest.mark.parametrize("sdes", [[], NO_BUT_80], ids=["first-suite", ONLY_80])
@pytest.mark.parametrize("encrypting", ["rtpengine", "rtpvault"])
def test_sdes_leg_between_rtpengine_and_rtpvault(
    relays: dict[str, Daemon], encrypting: str, sdes: list[str]
) -> None:
    first = relays[encrypting]
    second = relays["rtpvault" if encrypting == "rtpengine" else "rtpengine"]
    a, b = Party(), Party()
    call = f"chain-{next(_ids)}"
    try:
        offer, answer = chain(first, second, a, b, call, sdes)
        offered = _cryptos(offer)
        expected = ONLY_80 if sdes else FIRST
        assert offered[0][1] == expected
        assert (sdes == []) == (len(offered) == len(SUITES))
        assert _cryptos(answer) == [offered[0]], answer  # one line, the first tag and suite
        assert " RTP/SAVP " in offer and " RTP/SAVP " in answer
        exchange(a, b)
    finally:
        for d in relays.values():
            c = d.client()
            c.call({"command": "delete", "call-id": call, "from-tag": "a"})
            c.close()
        a.close()
        b.close()


@pytest.mark.parametrize("encrypting", ["rtpengine", "rtpvault"])
def test_srtp_offer_with_dtls_between_rtpengine_and_rtpvault(
    relays: dict[str, Daemon], encrypting: str
) -> None:
    """The SRTP offer without `DTLS=off` (a=crypto lines and an actpass fingerprint): the
    second relay answers DTLS only and the leg runs DTLS-SRTP (docs/spec/sdp.md §1.12d)."""
    first = relays[encrypting]
    second = relays["rtpvault" if encrypting == "rtpengine" else "rtpengine"]
    a, b = Party(), Party()
    call = f"chain-dtls-{next(_ids)}"
    try:
        offer, answer = chain(first, second, a, b, call, [], dtls_off=False)
        assert len(_cryptos(offer)) == len(SUITES) and "a=setup:actpass" in offer
        assert _cryptos(answer) == [] and "a=setup:active" in answer, answer
        assert "a=fingerprint:sha-256 " in answer and " RTP/SAVP " in answer
        exchange(a, b, first=await_media(a, b))
    finally:
        for d in relays.values():
            c = d.client()
            c.call({"command": "delete", "call-id": call, "from-tag": "a"})
            c.close()
        a.close()
        b.close()
