"""recorder.names (escaping, containment) and recorder.metafile (rtpengine's text)."""

from __future__ import annotations

import os
import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recorder import metafile
from recorder.names import RecordingPaths, escape_call_id, new_prefix


@pytest.mark.parametrize(
    ("call_id", "escaped"),
    [
        ("rec-1@host/ x%y;z", "rec-1%40host%2F%20x%25y%3Bz"),
        ("ex-1@pbx.example", "ex-1%40pbx.example"),
        ("ümlaut~._-ok", "%C3%BCmlaut~._-ok"),
        ("a+b=c&d:e,f[g]h!i*j'k(l)m$n", "a%2Bb%3Dc%26d%3Ae%2Cf%5Bg%5Dh%21i%2Aj%27k%28l%29m%24n"),
        ("..", ".."),
        ("../../etc/passwd", "..%2F..%2Fetc%2Fpasswd"),
    ],
)
def test_escaping_matches_glib(call_id: str, escaped: str) -> None:
    assert escape_call_id(call_id) == escaped


def test_prefix_shape() -> None:
    assert re.fullmatch(r"x%40y-[0-9a-f]{16}", new_prefix("x@y"))
    assert new_prefix("a", "0123456789abcdef") == "a-0123456789abcdef"


def test_long_call_id_is_cut_to_a_creatable_name() -> None:
    prefix = new_prefix("é" * 300)
    name = os.path.basename(RecordingPaths("/r", prefix).meta_final)
    assert len(name.encode()) <= 255
    assert re.search(r"~[0-9a-f]{16}-[0-9a-f]{16}$", prefix)


@given(st.text(min_size=1, max_size=300))
def test_no_call_id_escapes_the_directory(call_id: str) -> None:
    root = "/spool/rec"
    paths = RecordingPaths(root, new_prefix(call_id))
    for p in (paths.pcap, paths.meta_tmp, paths.meta_final, paths.sidecar):
        assert os.path.dirname(os.path.normpath(p)) in {
            f"{root}/pcaps",
            f"{root}/tmp",
            f"{root}/metadata",
            f"{root}/sidecars",
        }
        assert len(os.path.basename(p).encode()) <= 255
    assert re.fullmatch(r"[A-Za-z0-9._~%-]+", paths.prefix)


SDP_OFFER = (
    "v=0\r\no=- 111 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 44000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\na=rtcp:44001\r\n"
)
SDP_ANSWER = SDP_OFFER.replace("111", "222").replace("44000", "44016").replace("44001", "44017")


def test_metadata_file_matches_rtpengine_example(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        pcap_path = "<recording-dir>/pcaps/ex-1%40pbx.example-e30372e3cfc75231.pcap"
        text = (
            metafile.header(pcap_path)
            + metafile.sdp_block("caller", 1795583687.479629, "offer", 0, SDP_OFFER)
            + metafile.sdp_block("callee", 1795583687.479636, "answer", 0, SDP_ANSWER)
            + metafile.trailer(
                1795583689.085297, 1795583687.4, 1795583689.1, "tenant:acme|agent:42"
            )
        )
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    expected = (
        f"{pcap_path}\n\n"
        "\nLabel: caller\nTimestamp started ms: 1795583687479.629\nSDP mode: offer\n"
        "SDP before RTP packet: 1\n\n"
        + SDP_OFFER
        + "\nLabel: callee\nTimestamp started ms: 1795583687479.636\nSDP mode: answer\n"
        "SDP before RTP packet: 1\n\n"
        + SDP_ANSWER
        + "\nTimestamp terminated ms(first monologue): 1795583689085.297\n\n"
        "call start time: 2026-11-25T05:14:47\ncall end time: 2026-11-25T05:14:49\n"
        "\n\ntenant:acme|agent:42\n"
    )
    assert text.decode() == expected
