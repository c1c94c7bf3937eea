"""rtpvault and the real rtpengine 10.5 chained like two SBCs over an SDES leg (issue 17).

    A (plain) ── rtpengine ══ SDES/SRTP ══ rtpvault ── B (plain)     rtpengine encrypts
    A (plain) ── rtpvault  ══ SDES/SRTP ══ rtpengine ── B (plain)    rtpvault encrypts

The offer goes A → first relay (`transport-protocol=RTP/SAVP`: it writes a=crypto lines) →
second relay (`transport-protocol=RTP/AVP`: it answers one line with its own key and offers
plain to B); B's plain answer goes back the same way. The SRTP offer carries `DTLS=off`: offered
a=crypto lines and an actpass fingerprint together, rtpengine 10.5 answers DTLS only
(docs/spec/sdp.md §1.12d), so SBCs meant to talk SDES to each other are set up that way. Only
the two relays hold keys, so a payload reaches the far plain end intact only if one relay's
SRTP/SRTCP is the other's.
The suite is the first one the SRTP offer lists (AEAD_AES_256_GCM, docs/spec/sdp.md §1.12), or
AES_CM_128_HMAC_SHA1_80 when the offering relay is told `SDES-no-<suite>` for the 11 others
(§1.12a: 10.5 has no `SDES-only-…`).
"""

from __future__ import annotations

import itertools
import re

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


def chain(
    first: Daemon, second: Daemon, a: Party, b: Party, call: str, sdes: list[str]
) -> tuple[str, str]:
    """Offer/answer through `first` then `second` (A offers, B answers); returns the SRTP
    offer and answer on the middle leg. Sets A's and B's relay addresses."""
    srtp_offer = ng_sdp(first, {"command": "offer", "call-id": call, "from-tag": "a",
                                "transport-protocol": "RTP/SAVP", "DTLS": "off", "flags": sdes,
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


def exchange(a: Party, b: Party) -> None:
    """Distinct payloads both ways, RTP and RTCP, each checked at the far end."""
    for seq in range(1, PACKETS + 1):
        for src, dst, ssrc in ((a, b, SSRC_A), (b, a, SSRC_B)):
            rtp = rtp_packet(seq, ssrc, fresh_payload())
            src.send_rtp(rtp)
            assert dst.recv_rtp() == rtp, f"RTP {seq} from SSRC {ssrc:#x}"
            rtcp = rtcp_sr(ssrc, fresh_payload(20))
            src.send_rtcp(rtcp)
            assert dst.recv_rtcp() == rtcp, f"RTCP {seq} from SSRC {ssrc:#x}"


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
