"""relay.sdp against the real rtpengine 10.5: same input, same output, ports aside.

Each input goes through a real `offer` (trust-address). The plan is built from our parse of the
input the way the call model would (direction, ptime, zero address, end-of-candidates); only the
ports are read from rtpengine's reply, since allocation is random (docs/spec/sdp.md §3).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.sdp import MediaPlan, SessionPlan, parse, rewrite
from tests.support.daemons import Daemon, start

pytestmark = pytest.mark.integration

ADV = "203.0.113.1"
HEAD = "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=Talk\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
CASES = {
    "plain": HEAD + "m=audio 49170 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n",
    "lf-only": HEAD.replace("\r\n", "\n") + "m=audio 49170 RTP/AVP 0\na=X-y:1\na=ptime:30\n",
    "unknown-attrs": HEAD + "a=tool:x\r\nm=audio 49170 RTP/AVP 0 96\r\ni=x\r\na=X-a\r\n"
    "a=rtpmap:96 opus/48000/2\r\na=X-b\r\na=fmtp:96 useinbandfec=1\r\na=maxptime:40\r\n",
    "dynamic-no-rtpmap": HEAD + "m=audio 49170 RTP/AVP 0 96\r\na=fmtp:96 foo\r\n",
    "rejected-mid": HEAD + "m=audio 49170 RTP/AVP 0\r\na=mid:a1\r\n"
    "m=video 0 RTP/AVP 96\r\na=mid:v1\r\na=end-of-candidates\r\n",
    "video-rtcp-fb": HEAD + "m=video 51372 RTP/AVPF 96 97\r\na=rtpmap:96 H264/90000\r\n"
    "a=rtcp-fb:96 nack\r\na=rtcp-fb:* ccm fir\r\na=rtpmap:97 VP8/90000\r\n"
    "a=rtcp-fb:97 nack pli\r\n",
    "no-final-lf": HEAD + "m=audio 49170 RTP/AVP 0\r\na=X-last",
    "lone-final-lf": HEAD + "m=audio 49170 RTP/AVP 0\r\n\n",
    "empty-line": HEAD + "m=audio 49170 RTP/AVP 0\r\n\r\na=foo\r\n",
    "session-direction": HEAD + "a=recvonly\r\nm=audio 49170 RTP/AVP 0\r\na=sendonly\r\n",
    "t38": HEAD + "m=image 49170 udptl t38\r\na=T38FaxVersion:0\r\na=sendrecv\r\n",
    "rtcp-mux": HEAD + "m=audio 49170 RTP/AVP 0\r\na=rtcp:49170\r\na=rtcp-mux\r\n",
    "port-count": HEAD + "m=audio 49170/2 RTP/AVP 0\r\n",
    "media-c-only": "v=0\r\no=a 1 1 IN IP4 192.0.2.10\r\ns=-\r\nt=0 0\r\n"
    "m=audio 49170 RTP/AVP 8\r\nc=IN IP4 192.0.2.10 extra\r\na=rtcp:49171 IN IP4 192.0.2.10\r\n",
    "odd-tokens": HEAD + "a=sendrecv\r\na=ptime:40\r\nm=audio 49170 RTP/AVP 0 8 \r\n"
    "a=rtcp:abc\r\na=rtcp-fb:96 nack\r\na=fmtp:8 x\r\na=inactive:now\r\n",
}
_ids = itertools.count()


@pytest.fixture(scope="module")
def rtpengine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start("rtpengine", Path(tmp_path_factory.mktemp("sdp-rtpengine")))
    try:
        yield d
    finally:
        d.stop()


def _plan(source: str, reference: str) -> SessionPlan:
    """What the call model would decide for `source`, with rtpengine's ports."""
    desc, ref = parse(source), parse(reference)
    media = []
    for mine, theirs in zip(desc.media, ref.media, strict=True):
        rtcp = [v for v in theirs.attributes("rtcp") if v]
        zero = mine.effective_connection is not None and mine.effective_connection.zero
        media.append(
            MediaPlan(
                port=theirs.port,
                address=ADV,
                rtcp_port=int(rtcp[0]) if rtcp else None,
                rtcp_mux=mine.rtcp_mux,
                ptime=mine.ptime,
                direction=mine.direction or ("sendonly" if zero else "sendrecv"),
                keep_zero_address=zero,
                end_of_candidates=mine.end_of_candidates,
            )
        )
    return SessionPlan(address=ADV, media=tuple(media))


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_output_as_rtpengine(rtpengine: Daemon, case: str) -> None:
    source = CASES[case]
    client = rtpengine.client()
    try:
        reply = client.call(
            {
                "command": "offer",
                "call-id": f"sdp-{next(_ids)}-{case}",
                "from-tag": "a",
                "sdp": source,
                "flags": ["trust-address"],
            }
        )
    finally:
        client.close()
    assert reply["result"] == "ok", reply
    expected = reply["sdp"]
    assert rewrite(parse(source), _plan(source, expected)) == expected
