"""The sidecar's SDP summary comes from the relay's parse (the `CallUpdated` exchange), not from
parsing the text again; it must say what recorder.sdpinfo (used by crash recovery) says."""

from __future__ import annotations

import pytest

from recorder.sdpinfo import summarise
from relay.ng.sdp_view import summarize
from relay.sdp.parse import parse
from rtpvault.recording import sdp_summary

HEAD = "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"


@pytest.mark.parametrize(
    "sdp",
    [
        HEAD + "m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        "m=video 4002 RTP/AVP 96\r\nc=IN IP4 192.0.2.11\r\na=rtpmap:96 H264/90000\r\n",
        HEAD.replace("o=alice", "o=-") + "m=audio 4000 RTP/AVP 18 9 3\r\n",
        HEAD + "m=audio 4000 RTP/AVP 111 96 0\r\na=rtpmap:111 opus/48000/2\r\n",  # 96: no rtpmap
        HEAD + "m=audio 0 RTP/AVP 0\r\nm=audio 4002 RTP/AVPF 8\r\na=sendonly\r\n",
        "v=0\r\no=bob 2 2 IN IP6 2001:db8::2\r\ns=x\r\nt=0 0\r\n"
        "m=audio 5000 RTP/AVP 8\r\nc=IN IP6 2001:db8::2\r\n",
    ],
    ids=["two-lines", "anonymous-static", "dynamic", "rejected", "ipv6-media-c"],
)
def test_summary_from_the_relays_parse_matches_the_recorders(sdp: str) -> None:
    assert sdp_summary(summarize(parse(sdp))) == summarise(sdp)
