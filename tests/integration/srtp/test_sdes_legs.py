"""SRTP on both legs of a real rtpvault daemon, each leg under its own keys (issue 17):
SDES ↔ SDES, and OSRTP (RFC 8643: RTP/AVP lines with a=crypto) with `OSRTP-accept` /
`OSRTP-offer` as rtpengine 10.5 reads them (docs/spec/sdp.md §1.12c, §1.12d).

The parties are their own SRTP stacks (relay.srtp), keyed only from the SDP: each sends under
its own line and decrypts with the line rtpvault gave it. A packet under the other leg's key
must not cross; the packet after it must, so no test waits for silence.
"""

from __future__ import annotations

import base64
import itertools
import os
from dataclasses import dataclass

import pytest

from relay.srtp import SessionParams, SrtpContext, open_context, suite
from relay.srtp.sdes import Crypto, mki_bytes, parse, render
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
S80 = suite("AES_CM_128_HMAC_SHA1_80")
SSRC_A, SSRC_B = 0x0A0A0A0A, 0x0B0B0B0B


def _lines(sdp: str) -> list[Crypto]:
    return [parse(v[len("a=crypto:") :]) for v in sdp.split("\r\n") if v.startswith("a=crypto:")]


def _ctx(line: Crypto, outbound: bool) -> SrtpContext:
    params = SessionParams(unencrypted_srtcp=line.has_param("UNENCRYPTED_SRTCP"))
    return open_context(line.suite, line.key_salt, outbound=outbound, params=params,
                        mki=mki_bytes(line.mki))


@dataclass
class Side:
    """A party and its SRTP (None: plain): `tx` under its own line, `rx` under ours."""

    party: Party
    tx: SrtpContext | None = None
    rx: SrtpContext | None = None

    def rtp_out(self, p: bytes) -> bytes:
        return self.tx.protect_rtp(p) if self.tx else p

    def rtcp_out(self, p: bytes) -> bytes:
        return self.tx.protect_rtcp(p) if self.tx else p

    def rtp_in(self) -> bytes:
        got = self.party.recv_rtp()
        return self.rx.unprotect_rtp(got) if self.rx else got

    def rtcp_in(self) -> bytes:
        got = self.party.recv_rtcp()
        return self.rx.unprotect_rtcp(got) if self.rx else got


def exchange(a: Side, b: Side, first: int, count: int) -> None:
    """Distinct payloads both ways, RTP and RTCP; every one arrives intact."""
    for seq in range(first, first + count):
        for src, dst, ssrc in ((a, b, SSRC_A), (b, a, SSRC_B)):
            p = rtp_packet(seq, ssrc, fresh_payload())
            src.party.send_rtp(src.rtp_out(p))
            assert dst.rtp_in() == p, f"RTP {seq} from {ssrc:#x}"
            r = rtcp_sr(ssrc, fresh_payload(20))
            src.party.send_rtcp(src.rtcp_out(r))
            assert dst.rtcp_in() == r, f"RTCP {seq} from {ssrc:#x}"


def only_own_key_crosses(src: Side, wrong: SrtpContext, dst: Side, seq: int, ssrc: int) -> None:
    """`src` sends one packet under `wrong` (a key of the other leg), then one under its own:
    the first thing `dst` receives is the second."""
    src.party.send_rtp(wrong.protect_rtp(rtp_packet(seq, ssrc, fresh_payload())))
    good = rtp_packet(seq + 1, ssrc, fresh_payload())
    src.party.send_rtp(src.rtp_out(good))
    assert dst.rtp_in() == good


def _line(tag: int, key: bytes, extra: str = "") -> str:
    return f"a=crypto:{tag} {S80.name} inline:{base64.b64encode(key).decode()}{extra}\r\n"


def _delete(d: Daemon, call: str) -> None:
    c = d.client()
    try:
        c.call({"command": "delete", "call-id": call, "from-tag": "a"})
    finally:
        c.close()


def test_sdes_to_sdes_each_leg_its_keys(rtpvault: Daemon) -> None:
    """A's line has a lifetime of 2^4 packets and an MKI; both are handled as rtpengine does:
    the lifetime is dropped and never enforced (20 packets), the MKI passed on to B's leg."""
    pa, pb = Party(), Party()
    k_a, k_b = os.urandom(30), os.urandom(30)
    call = f"legs-{next(_ids)}"
    base = {"call-id": call, "from-tag": "a"}
    try:
        offer = ng_sdp(rtpvault, {**base, "command": "offer", "DTLS": "off",
                                  "sdp": party_sdp(pa.port, "RTP/SAVP", _line(1, k_a, "|2^4|1:4"))})
        to_b = _lines(offer)[0]
        assert (to_b.tag, to_b.key_salt, to_b.lifetime, to_b.mki) == (1, k_a, None, (1, 4))
        pb.peer = ("127.0.0.1", media_port(offer))
        answer = ng_sdp(rtpvault, {**base, "command": "answer", "to-tag": "b",
                                   "sdp": party_sdp(pb.port, "RTP/SAVP", _line(1, k_b))})
        (to_a,) = _lines(answer)
        assert (to_a.tag, to_a.key_salt, to_a.mki) == (1, k_b, None)
        pa.peer = ("127.0.0.1", media_port(answer))
        a_line = parse(render(Crypto(1, S80, k_a, mki=(1, 4))))
        a = Side(pa, _ctx(a_line, outbound=True), _ctx(to_a, outbound=False))
        b = Side(pb, _ctx(Crypto(1, S80, k_b), outbound=True), _ctx(to_b, outbound=False))
        exchange(a, b, 1, 20)
        # A under B's key, B under A's (each a key of the other leg): dropped
        only_own_key_crosses(a, _ctx(Crypto(1, S80, k_b), True), b, 100, SSRC_A)
        only_own_key_crosses(b, _ctx(a_line, True), a, 100, SSRC_B)
    finally:
        _delete(rtpvault, call)
        pa.close()
        pb.close()


@pytest.mark.parametrize("protocol", ["RTP/AVP", "RTP/SAVP"], ids=["osrtp-answer", "savp-answer"])
@pytest.mark.parametrize("flags", [[], ["OSRTP-accept"]], ids=["no-flag", "OSRTP-accept"])
def test_osrtp_offer_sdes_answer(rtpvault: Daemon, flags: list[str], protocol: str) -> None:
    """An OSRTP offerer and an answerer with a=crypto: A's answer is RTP/AVP with B's line,
    and both legs run SRTP (before §1.12c was matched, A's leg stayed plain)."""
    pa, pb = Party(), Party()
    k_a, k_b = os.urandom(30), os.urandom(30)
    call = f"legs-{next(_ids)}"
    base = {"call-id": call, "from-tag": "a"}
    try:
        offer = ng_sdp(rtpvault, {**base, "command": "offer", "DTLS": "off", "flags": flags,
                                  "sdp": party_sdp(pa.port, "RTP/AVP", _line(1, k_a))})
        assert " RTP/AVP " in offer
        to_b = _lines(offer)[0]
        assert to_b.key_salt == k_a
        pb.peer = ("127.0.0.1", media_port(offer))
        answer = ng_sdp(rtpvault, {**base, "command": "answer", "to-tag": "b",
                                   "sdp": party_sdp(pb.port, protocol, _line(1, k_b))})
        assert " RTP/AVP " in answer
        (to_a,) = _lines(answer)
        assert to_a.key_salt == k_b
        pa.peer = ("127.0.0.1", media_port(answer))
        a_line, b_line = Crypto(1, S80, k_a), Crypto(1, S80, k_b)
        a = Side(pa, _ctx(a_line, True), _ctx(to_a, False))
        b = Side(pb, _ctx(b_line, True), _ctx(to_b, False))
        exchange(a, b, 1, 4)
        only_own_key_crosses(a, _ctx(b_line, True), b, 100, SSRC_A)
    finally:
        _delete(rtpvault, call)
        pa.close()
        pb.close()


def test_osrtp_accept_on_plain_answer(rtpvault: Daemon) -> None:
    """`OSRTP-accept` on a plain answer: A gets the offered suite and tag with our own new key,
    so A's leg is SRTP under keys that are A's and ours only; B's leg is plain."""
    pa, pb = Party(), Party()
    k_a = os.urandom(30)
    call = f"legs-{next(_ids)}"
    base = {"call-id": call, "from-tag": "a"}
    try:
        offer = ng_sdp(rtpvault, {**base, "command": "offer", "DTLS": "off",
                                  "sdp": party_sdp(pa.port, "RTP/AVP", _line(1, k_a))})
        pb.peer = ("127.0.0.1", media_port(offer))
        answer = ng_sdp(rtpvault, {**base, "command": "answer", "to-tag": "b",
                                   "OSRTP": ["accept"], "sdp": party_sdp(pb.port)})
        (to_a,) = _lines(answer)
        assert (to_a.tag, to_a.suite) == (1, S80) and to_a.key_salt not in (k_a, *(
            c.key_salt for c in _lines(offer)))
        pa.peer = ("127.0.0.1", media_port(answer))
        a = Side(pa, _ctx(Crypto(1, S80, k_a), True), _ctx(to_a, False))
        exchange(a, Side(pb), 1, 4)
    finally:
        _delete(rtpvault, call)
        pa.close()
        pb.close()


def test_osrtp_offer_flag_towards_an_sdes_answerer(rtpvault: Daemon) -> None:
    """`OSRTP-offer` on a plain offer; B answers RTP/AVP with a=crypto (OSRTP): B's leg is SRTP
    (its key in, ours of the chosen tag out), A stays plain."""
    pa, pb = Party(), Party()
    k_b = os.urandom(30)
    call = f"legs-{next(_ids)}"
    base = {"call-id": call, "from-tag": "a"}
    try:
        offer = ng_sdp(rtpvault, {**base, "command": "offer", "DTLS": "off",
                                  "OSRTP": ["offer"], "sdp": party_sdp(pa.port)})
        assert " RTP/AVP " in offer
        ours = next(c for c in _lines(offer) if c.suite is S80)
        pb.peer = ("127.0.0.1", media_port(offer))
        answer = ng_sdp(rtpvault, {**base, "command": "answer", "to-tag": "b",
                                   "sdp": party_sdp(pb.port, "RTP/AVP", _line(ours.tag, k_b))})
        assert "a=crypto" not in answer
        pa.peer = ("127.0.0.1", media_port(answer))
        b_line = Crypto(ours.tag, S80, k_b)
        b = Side(pb, _ctx(b_line, True), _ctx(ours, False))
        exchange(Side(pa), b, 1, 4)
        only_own_key_crosses(b, _ctx(ours, True), Side(pa), 100, SSRC_B)
    finally:
        _delete(rtpvault, call)
        pa.close()
        pb.close()


def test_answer_with_a_suite_the_offerer_did_not_offer(rtpvault: Daemon) -> None:
    """A offers AES_CM_128_HMAC_SHA1_80 only; B picks AEAD_AES_256_GCM from our own suites: A
    gets its tag and suite with a new key of ours (§1.12c), so the legs run different suites
    under four different keys, and rtpvault decrypts and encrypts between them."""
    gcm = suite("AEAD_AES_256_GCM")
    pa, pb = Party(), Party()
    k_a, k_b = os.urandom(30), os.urandom(gcm.inline_len)
    call = f"legs-{next(_ids)}"
    base = {"call-id": call, "from-tag": "a"}
    try:
        offer = ng_sdp(rtpvault, {**base, "command": "offer", "DTLS": "off",
                                  "sdp": party_sdp(pa.port, "RTP/SAVP", _line(1, k_a))})
        to_b = next(c for c in _lines(offer) if c.suite is gcm)
        pb.peer = ("127.0.0.1", media_port(offer))
        b_line = Crypto(to_b.tag, gcm, k_b)
        b_sdp = party_sdp(pb.port, "RTP/SAVP", f"a=crypto:{render(b_line)}\r\n")
        answer = ng_sdp(rtpvault, {**base, "command": "answer", "to-tag": "b", "sdp": b_sdp})
        (to_a,) = _lines(answer)
        assert (to_a.tag, to_a.suite) == (1, S80)
        assert len({k_a, k_b, to_a.key_salt, to_b.key_salt}) == 4
        pa.peer = ("127.0.0.1", media_port(answer))
        a = Side(pa, _ctx(Crypto(1, S80, k_a), True), _ctx(to_a, False))
        b = Side(pb, _ctx(b_line, True), _ctx(to_b, False))
        exchange(a, b, 1, 4)
        only_own_key_crosses(a, _ctx(to_a, True), b, 100, SSRC_A)
        only_own_key_crosses(b, _ctx(to_b, True), a, 100, SSRC_B)
    finally:
        _delete(rtpvault, call)
        pa.close()
        pb.close()


def test_answer_naming_our_suite_under_another_tag(rtpvault: Daemon) -> None:
    """A offers two lines; B answers A's second suite under tag 5, which we gave another suite.
    A gets tag 2 with B's key (§1.12c); B's packets cross, and nothing is sent to B in the
    clear (rtpengine 10.5 sends B nothing either; before, rtpvault sent it plain RTP)."""
    s32 = suite("AES_CM_128_HMAC_SHA1_32")
    pa, pb = Party(), Party()
    k_a1, k_a2, k_b = os.urandom(30), os.urandom(30), os.urandom(30)
    call = f"legs-{next(_ids)}"
    base = {"call-id": call, "from-tag": "a"}
    two = _line(1, k_a1) + f"a=crypto:2 {s32.name} inline:{base64.b64encode(k_a2).decode()}\r\n"
    try:
        offer = ng_sdp(rtpvault, {**base, "command": "offer", "DTLS": "off",
                                  "sdp": party_sdp(pa.port, "RTP/SAVP", two)})
        pb.peer = ("127.0.0.1", media_port(offer))
        b_line = Crypto(5, s32, k_b)
        b_sdp = party_sdp(pb.port, "RTP/SAVP", f"a=crypto:{render(b_line)}\r\n")
        answer = ng_sdp(rtpvault, {**base, "command": "answer", "to-tag": "b", "sdp": b_sdp})
        (to_a,) = _lines(answer)
        assert (to_a.tag, to_a.suite, to_a.key_salt) == (2, s32, k_b)
        pa.peer = ("127.0.0.1", media_port(answer))
        a = Side(pa, _ctx(Crypto(2, s32, k_a2), True), _ctx(to_a, False))
        b = Side(pb, _ctx(b_line, True))
        a.party.send_rtp(a.rtp_out(rtp_packet(1, SSRC_A, fresh_payload())))
        for seq in range(1, 4):
            p = rtp_packet(seq, SSRC_B, fresh_payload())
            b.party.send_rtp(b.rtp_out(p))
            assert a.rtp_in() == p
        b.party.rtp.setblocking(False)
        with pytest.raises(BlockingIOError):  # A's packet went out before B's three came back
            b.party.recv_rtp()
    finally:
        _delete(rtpvault, call)
        pa.close()
        pb.close()
