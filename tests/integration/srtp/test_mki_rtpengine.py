"""MKI through rtpvault and the real rtpengine 10.5 (docs/spec/sdp.md §1.12d).

An SDES party B offers `a=crypto:1 <suite> inline:<key>|1:4`; its packets carry the MKI
`00000001` (relay.srtp, RFC 3711 §3.1 / RFC 7714 §8.1 layout). The first relay passes the line on
(same key, same MKI; `DTLS=off`), the second turns it into plain for A:

    B (SDES, MKI) ══ rtpvault ══ rtpengine ── A (plain)    rtpvault writes the MKI rtpengine needs
    B (SDES, MKI) ══ rtpengine ══ rtpvault ── A (plain)    rtpvault cuts the MKI rtpengine sends

rtpengine drops SRTP without the MKI bytes its line announced (measured), so a payload crosses
only if rtpvault reads and writes the field where rtpengine does. With `SDES-unencrypted_srtcp`
on rtpengine's offer its line differs from B's, so it decrypts and encrypts itself (writing
its own MKI) instead of forwarding B's bytes. Answers never carry an MKI: each relay answers
with its own key. Before MKI support rtpvault left such a leg without media.
"""

from __future__ import annotations

import itertools
import os

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
SSRC_A, SSRC_B = 0x0A0A0A0A, 0x0B0B0B0B
PACKETS = 4


def _lines(sdp: str) -> list[Crypto]:
    return [parse(v[len("a=crypto:") :]) for v in sdp.split("\r\n") if v.startswith("a=crypto:")]


def _context(line: Crypto, outbound: bool) -> SrtpContext:
    params = SessionParams(unencrypted_srtcp=line.has_param("UNENCRYPTED_SRTCP"))
    return open_context(line.suite, line.key_salt, outbound=outbound, params=params,
                        mki=mki_bytes(line.mki))


CASES = [
    pytest.param("AES_CM_128_HMAC_SHA1_80", [], id="AES_CM_128_HMAC_SHA1_80-as-offered"),
    pytest.param("AES_CM_128_HMAC_SHA1_80", ["SDES-unencrypted_srtcp"],
                 id="AES_CM_128_HMAC_SHA1_80-re-keyed"),
    # AEAD with UNENCRYPTED_SRTCP: rtpengine 10.5 sends RTCP + index with no GCM tag (§1.12d)
    pytest.param("AEAD_AES_128_GCM", [], id="AEAD_AES_128_GCM-as-offered"),
]


@pytest.mark.parametrize(("suite_name", "sdes"), CASES)
@pytest.mark.parametrize("first_name", ["rtpvault", "rtpengine"])
def test_mki_line_from_an_sdes_party(
    relays: dict[str, Daemon], first_name: str, suite_name: str, sdes: list[str]
) -> None:
    first = relays[first_name]
    second = relays["rtpengine" if first_name == "rtpvault" else "rtpvault"]
    s = suite(suite_name)
    b_line = Crypto(1, s, os.urandom(s.inline_len), mki=(1, 4))
    a, b = Party(), Party()
    call = f"mki-{next(_ids)}"
    try:
        offer1 = ng_sdp(first, {
            "command": "offer", "call-id": call, "from-tag": "b", "DTLS": "off", "flags": sdes,
            "sdp": party_sdp(b.port, "RTP/SAVP", f"a=crypto:{render(b_line)}\r\n"),
        })
        passed_on = _lines(offer1)[0]
        assert (passed_on.key_salt, passed_on.mki) == (b_line.key_salt, (1, 4))
        offer2 = ng_sdp(second, {"command": "offer", "call-id": call, "from-tag": "b",
                                 "transport-protocol": "RTP/AVP", "sdp": offer1})
        assert "a=crypto" not in offer2
        a.peer = ("127.0.0.1", media_port(offer2))
        answer2 = ng_sdp(second, {"command": "answer", "call-id": call, "from-tag": "b",
                                  "to-tag": "a", "sdp": party_sdp(a.port)})
        assert [c.mki for c in _lines(answer2)] == [None]
        answer1 = ng_sdp(first, {"command": "answer", "call-id": call, "from-tag": "b",
                                 "to-tag": "a", "sdp": answer2})
        b.peer = ("127.0.0.1", media_port(answer1))
        (to_b,) = _lines(answer1)
        assert to_b.mki is None and to_b.suite is s
        b_tx, b_rx = _context(b_line, outbound=True), _context(to_b, outbound=False)

        for seq in range(1, PACKETS + 1):
            plain = rtp_packet(seq, SSRC_B, fresh_payload())
            b.send_rtp(b_tx.protect_rtp(plain))
            assert a.recv_rtp() == plain, f"B→A RTP {seq}"
            plain = rtp_packet(seq, SSRC_A, fresh_payload())
            a.send_rtp(plain)
            assert b_rx.unprotect_rtp(b.recv_rtp()) == plain, f"A→B RTP {seq}"
            report = rtcp_sr(SSRC_B, fresh_payload(20))
            b.send_rtcp(b_tx.protect_rtcp(report))
            assert a.recv_rtcp() == report, f"B→A RTCP {seq}"
            report = rtcp_sr(SSRC_A, fresh_payload(20))
            a.send_rtcp(report)
            assert b_rx.unprotect_rtcp(b.recv_rtcp()) == report, f"A→B RTCP {seq}"
    finally:
        for d in relays.values():
            c = d.client()
            c.call({"command": "delete", "call-id": call, "from-tag": "b"})
            c.close()
        a.close()
        b.close()
