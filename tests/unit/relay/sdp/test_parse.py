"""parse(): rtpengine 10.5's reading of SDP text (docs/spec/sdp.md §1.2; daemon/sdp.c sdp_parse)."""

from __future__ import annotations

import pytest

from relay.sdp import Connection, Origin, Rtpmap, SdpError, parse, render

HEAD = "v=0\r\no=alice 1 2 IN IP4 192.0.2.10\r\ns=Talk\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"


def test_session_views() -> None:
    desc = parse(HEAD + "a=sendonly\r\na=rtpengine:abc\r\nm=audio 49170 RTP/AVP 0\r\n")
    assert desc.origin == Origin("alice", "1", "2", "IN", "IP4", "192.0.2.10")
    assert desc.session_name == "Talk"
    assert desc.connection == Connection("IP4", "192.0.2.10")
    assert desc.direction == "sendonly"
    assert desc.rtpengine_ids == ("abc",)
    assert not desc.ice
    assert desc.media[0].direction == "sendonly"


def test_media_views() -> None:
    desc = parse(
        HEAD
        + "m=video 51372/2 RTP/AVPF 96 0\r\n"
        + "c=IN IP6 2001:db8::1\r\n"
        + "a=rtpmap:96 H264/90000\r\n"
        + "a=fmtp:96 profile-level-id=42e01f\r\n"
        + "a=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\na=rtcp-fb:* ccm fir\r\n"
        + "a=ptime:30\r\na=ptime:20\r\n"
        + "a=rtcp:51373 IN IP4 192.0.2.11\r\na=rtcp-mux\r\n"
        + "a=mid:v1\r\na=end-of-candidates\r\na=setup:actpass\r\n"
    )
    m = desc.media[0]
    assert (m.media_type, m.port, m.port_count, m.protocol) == ("video", 51372, 2, "RTP/AVPF")
    assert m.formats == ("96", "0") and m.payload_types == (96, 0)
    assert m.connection == Connection("IP6", "2001:db8::1") == m.effective_connection
    assert m.rtpmap == {96: Rtpmap(96, "H264", 90000)}
    assert m.fmtp == {96: "profile-level-id=42e01f"}
    assert m.rtcp_fb == {96: ("nack", "nack pli")}
    assert (m.codec(96), m.codec(0), m.codec(97)) == ("H264/90000", "PCMU/8000", None)
    assert m.ptime == 30  # the first a=ptime, as rtpengine reads it
    assert m.rtcp_port == 51373 and m.rtcp_connection == Connection("IP4", "192.0.2.11")
    assert m.rtcp_mux and m.mid == "v1" and m.end_of_candidates and m.setup
    assert m.direction is None and not m.ice and not m.crypto and not m.fingerprint
    assert m.attributes("rtcp-fb") == ("96 nack", "96 nack pli", "* ccm fir")


def test_direction_precedence_is_rtpengines() -> None:
    # recvonly anywhere (media or session) beats a media-level sendonly (verified on 10.5).
    desc = parse(HEAD + "a=recvonly\r\nm=audio 1 RTP/AVP 0\r\na=sendonly\r\n")
    assert desc.media[0].direction == "recvonly"
    desc = parse(HEAD + "m=audio 1 RTP/AVP 0\r\na=inactive\r\na=sendrecv\r\n")
    assert desc.media[0].direction == "inactive"


def test_ice_at_session_level_counts_for_media() -> None:
    desc = parse(HEAD + "a=ice-ufrag:abc\r\nm=audio 1 RTP/AVP 0\r\n")
    assert desc.ice and desc.media[0].ice


@pytest.mark.parametrize(
    "attrs",
    [
        "a=ice-lite\r\n",
        "a=ice-options:trickle\r\n",
        "a=candidate:1 1 UDP 1 192.0.2.10 1 typ host\r\n",
    ],
)
def test_ice_needs_a_ufrag(attrs: str) -> None:
    # measured (differential ice_attributes_without_ufrag): rtpengine 10.5 only strips these
    desc = parse(HEAD + attrs + "m=audio 1 RTP/AVP 0\r\n" + attrs)
    assert not desc.ice and not desc.media[0].ice


def test_zero_connection() -> None:
    desc = parse(HEAD.replace("192.0.2.10\r\nt", "0.0.0.0\r\nt") + "m=audio 1 RTP/AVP 0\r\n")
    conn = desc.media[0].effective_connection
    assert conn is not None and conn.zero


@pytest.mark.parametrize(
    ("text", "tail", "dropped"),
    [
        (HEAD + "m=audio 1 RTP/AVP 0\r\n\r\na=x\r\n", "", "\r\na=x\r\n"),
        # rtpengine stops with one character left, so a lone final LF is copied, not dropped.
        (HEAD + "m=audio 1 RTP/AVP 0\n\n", "\n", ""),
        (HEAD + "m=audio 1 RTP/AVP 0\n\r\n", "", "\r\n"),
        (HEAD + "m=audio 1 RTP/AVP 0\r\nx", "x", ""),
        (HEAD + "m=audio 1 RTP/AVP 0", "", ""),
    ],
)
def test_line_ends_and_remainders(text: str, tail: str, dropped: str) -> None:
    desc = parse(text)
    assert (desc.tail, desc.dropped) == (tail, dropped)
    assert render(desc) == text


def test_terminators_kept_per_line() -> None:
    desc = parse("v=0\no=a 1 1 IN IP4 1.2.3.4\r\ns=-\nc=IN IP4 1.2.3.4\nt=0 0\nm=audio 1 RTP/AVP 0")
    eols = [line.eol for line in desc.session_lines] + [desc.media[0].lines[0].eol]
    assert eols == ["\n", "\r\n", "\n", "\n", "\n", ""]


def test_double_space_in_format_list_reads_like_strtoul() -> None:
    # rtpengine 10.5 printed "m=audio P RTP/AVP 0 8 8" for this input (verified).
    assert parse(HEAD + "m=audio 1 RTP/AVP 0  8 \r\n").media[0].payload_types == (0, 8, 8)


def test_non_rtp_formats_are_free_text() -> None:
    m = parse(HEAD + "m=image 49170 udptl t38\r\n").media[0]
    assert m.formats == ("t38",) and m.payload_types == () and not m.is_rtp


def test_broken_attributes_are_not_registered() -> None:
    m = parse(
        HEAD + "m=audio 1 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000x\r\na=fmtp:x y\r\na=rtcp:0\r\n"
    ).media[0]
    assert m.rtpmap == {} and m.fmtp == {} and m.rtcp_port is None


def test_rtpmap_is_reprinted_from_its_parsed_form() -> None:
    m = parse(
        HEAD
        + "m=audio 1 RTP/AVP 96 97 98\r\n"
        + "a=rtpmap:96 opus/48000/2\r\na=rtpmap:97 PCMU/08000/1\r\na=rtpmap:98 x/8000/2/3\r\n"
    ).media[0]
    assert [m.codec(pt) for pt in (96, 97, 98)] == ["opus/48000/2", "PCMU/8000", "x/8000"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty body"),
        ("o=a 1 1 IN IP4 1.2.3.4\r\n", "doesn't start with a session definition"),
        ("v=1\r\n", "Error in v= line"),
        ("v=0\r\nvx\r\n", "Missing '=' sign"),
        ("v=0\r\nx=1\r\n", "Unknown SDP line type found"),
        ("v=0\r\nv=0\r\n", "more than one session"),
        ("v=0\r\no=a 1 1 IN IP4\r\n", "Error parsing o= line"),
        ("v=0\r\no=a 1 1 IN IP4 1.2.3.4\r\no=a 1 1 IN IP4 1.2.3.4\r\n", "Error parsing o= line"),
        (HEAD + "m=audio 1 RTP/AVP 0\r\ns=x\r\n", "s= line found within media section"),
        (HEAD + "m=audio 1 RTP/AVP 0\r\no=a 1 1 IN IP4 1.2.3.4\r\n", "o= line found within"),
        ("v=0\r\nc=IN IP4 1.2.3\r\n", "Error parsing c= line"),
        ("v=0\r\nc=IN IP6 1.2.3.4\r\n", "Error parsing c= line"),
        ("v=0\r\nc=XX IP4 1.2.3.4\r\n", "Error parsing c= line"),
        ("v=0\r\nc=IN IP4 224.2.1.1/127\r\n", "Error parsing c= line"),
        (HEAD + "c=IN IP4 1.2.3.4\r\n", "Error parsing c= line"),
        (HEAD + "m=audio 70000 RTP/AVP 0\r\n", "Error parsing m= line"),
        (HEAD + "m=audio x RTP/AVP 0\r\n", "Error parsing m= line"),
        (HEAD + "m=audio 1/11 RTP/AVP 0\r\n", "Error parsing m= line"),
        (HEAD + "m=audio 1\r\n", "Error parsing m= line"),
        (HEAD + "m=audio 1 RTP/AVP 128\r\n", "Error parsing m= line"),
        (HEAD + "m=audio 1 RTP/AVP PCMU\r\n", "Error parsing m= line"),
    ],
)
def test_errors_name_the_line(text: str, reason: str) -> None:
    with pytest.raises(SdpError, match=reason) as info:
        parse(text)
    assert isinstance(info.value, ValueError)


def test_error_message_names_line_number_and_text() -> None:
    with pytest.raises(SdpError) as info:
        parse(HEAD + "m=audio 1 RTP/AVP 0\r\nq=1\r\n")
    assert str(info.value) == ("Error parsing SDP at line 7 ('q=1'): Unknown SDP line type found")
