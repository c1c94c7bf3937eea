"""recorder.sdpinfo: the sidecar's summary of an SDP body."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from recorder.sdpinfo import summarise


def test_summary() -> None:
    sdp = (
        "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        "m=video 4002 RTP/AVP 96\r\nc=IN IP4 192.0.2.11\r\na=rtpmap:96 H264/90000\r\n"
    )
    assert summarise(sdp) == {
        "user": "alice",
        "media": [
            {"type": "audio", "address": "192.0.2.10", "port": 4000, "codecs": [
                {"pt": 0, "name": "PCMU", "rate": 8000}, {"pt": 8, "name": "PCMA", "rate": 8000},
                {"pt": 101, "name": "telephone-event", "rate": 8000}]},
            {"type": "video", "address": "192.0.2.11", "port": 4002, "codecs": [
                {"pt": 96, "name": "H264", "rate": 90000}]},
        ],
    }  # fmt: skip
    assert summarise("o=- 1 1 IN IP4 x\r\n")["user"] is None


@given(st.text(max_size=400))
def test_any_text_summarises(text: str) -> None:
    out = summarise(text)
    assert set(out) == {"user", "media"}
    for m in out["media"]:
        assert isinstance(m["port"], int) and all(isinstance(c["pt"], int) for c in m["codecs"])
