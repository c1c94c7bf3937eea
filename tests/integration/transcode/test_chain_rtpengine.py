"""rtpvault and the real rtpengine 10.5 chained like two SBCs over a transcoded leg (issue 19).

    A (PCMU) ── rtpvault  ══ Opus or G.722 ══ rtpengine ── B (PCMU)    rtpvault encodes A's audio
    A (PCMU) ── rtpengine ══ Opus or G.722 ══ rtpvault  ── B (PCMU)    rtpengine encodes it

Each relay is told what Kamailio's `rtpengine_offer("codec-mask-all codec-transcode-…")` tells
rtpengine: hide what the offerer has and offer the other codec instead, so the middle leg
carries only Opus (or G.722) and each relay transcodes in both directions; each relay answers
its offerer with the codec that offerer offered.
A sends a 1 kHz tone and B a 440 Hz tone at once, each for a few seconds, paced as a phone.
Each end must hear the other's tone at its pitch, with an SNR within `MARGIN` dB of what the
same call gives through two rtpengines (rtpengine×2, measured in the same run: here 34-36 dB
for Opus, 39-50 dB for G.722; the coding noise of two transcodings plus µ-law's own).
"""

from __future__ import annotations

import itertools

import pytest

from tests.support.daemons import Daemon
from tests.support.rtp_party import Party, media_port, ng_sdp, party_sdp
from tests.support.tone_call import Heard, Speaker, heard, speak

pytestmark = pytest.mark.integration

_ids = itertools.count()
SECONDS = 3.0
A_HZ, B_HZ = 1000.0, 440.0
MARGIN = 3.0
"""dB below rtpengine×2's SNR that rtpvault's chain may be (run-to-run spread of the reference
here is about 1 dB)."""
MIDDLE = {"opus": "opus/48000/2", "G722": "G722/8000"}


def chain(first: Daemon, second: Daemon, a: Party, b: Party, call: str, codec: str) -> str:
    """Offer/answer A → `first` → `second` → B with the middle leg transcoded to `codec`;
    returns the middle leg's answer SDP. Sets A's and B's relay addresses."""
    mid_offer = ng_sdp(first, {"command": "offer", "call-id": call, "from-tag": "a",
                               "codec": {"mask": ["all"], "transcode": [codec]},
                               "sdp": party_sdp(a.port)})  # fmt: skip
    assert _codecs(mid_offer) == [MIDDLE[codec]], mid_offer
    b_offer = ng_sdp(second, {"command": "offer", "call-id": call, "from-tag": "a",
                              "codec": {"mask": ["all"], "transcode": ["PCMU"]},
                              "sdp": mid_offer})  # fmt: skip
    assert _codecs(b_offer) == ["PCMU/8000"], b_offer
    b.peer = ("127.0.0.1", media_port(b_offer))
    mid_answer = ng_sdp(second, {"command": "answer", "call-id": call, "from-tag": "a",
                                 "to-tag": "b", "sdp": party_sdp(b.port)})  # fmt: skip
    assert _codecs(mid_answer) == [MIDDLE[codec]], mid_answer
    a_answer = ng_sdp(first, {"command": "answer", "call-id": call, "from-tag": "a",
                              "to-tag": "b", "sdp": mid_answer})  # fmt: skip
    assert _codecs(a_answer) == ["PCMU/8000"], a_answer
    a.peer = ("127.0.0.1", media_port(a_answer))
    return mid_answer


def _codecs(sdp: str) -> list[str]:
    return [line.split(" ", 1)[1] for line in sdp.splitlines() if line.startswith("a=rtpmap:")]


def talk(first: Daemon, second: Daemon, codec: str) -> tuple[Heard, Heard]:
    """One call through the chain; what B heard of A's tone and what A heard of B's."""
    a, b = Party(), Party()
    call = f"transcode-chain-{next(_ids)}"
    try:
        chain(first, second, a, b, call, codec)
        sa, sb = Speaker(a, A_HZ, 0x0A0A0A0A), Speaker(b, B_HZ, 0x0B0B0B0B)
        speak([sa, sb], SECONDS)
        return heard(sb.received, A_HZ), heard(sa.received, B_HZ)
    finally:
        for d in (first, second):
            c = d.client()
            c.call({"command": "delete", "call-id": call, "from-tag": "a"})
            c.close()
        a.close()
        b.close()


_reference: dict[str, tuple[Heard, Heard]] = {}


def reference(relays: dict[str, Daemon], codec: str) -> tuple[Heard, Heard]:
    """rtpengine×2's result for `codec`, measured once per module (same run, same load)."""
    if codec not in _reference:
        _reference[codec] = talk(relays["rtpengine"], relays["rtpengine2"], codec)
    return _reference[codec]


@pytest.mark.parametrize("codec", ["opus", "G722"])
def test_rtpengine_twice_is_the_reference(relays: dict[str, Daemon], codec: str) -> None:
    """The harness itself: through two rtpengines both tones arrive at pitch, clean."""
    to_b, to_a = reference(relays, codec)
    assert (to_b.hz, to_a.hz) == (A_HZ, B_HZ)
    assert min(to_b.snr_db, to_a.snr_db) > 25, (to_b, to_a)
    assert min(to_b.seconds, to_a.seconds) > SECONDS - 0.5, (to_b, to_a)


@pytest.mark.parametrize("codec", ["opus", "G722"])
@pytest.mark.parametrize("order", ["rtpvault-first", "rtpengine-first"])
def test_tone_through_rtpvault_and_rtpengine(
    relays: dict[str, Daemon], codec: str, order: str
) -> None:
    ref_b, ref_a = reference(relays, codec)
    vault, engine = relays["rtpvault"], relays["rtpengine"]
    first, second = (vault, engine) if order == "rtpvault-first" else (engine, vault)
    to_b, to_a = talk(first, second, codec)
    assert (to_b.hz, to_a.hz) == (A_HZ, B_HZ), (to_b, to_a)
    assert to_b.snr_db > ref_b.snr_db - MARGIN, (to_b, ref_b)
    assert to_a.snr_db > ref_a.snr_db - MARGIN, (to_a, ref_a)
    assert min(to_b.seconds, to_a.seconds) > SECONDS - 0.5, (to_b, to_a)
