"""rewrite(): edge cases beyond the captures of docs/spec/sdp.md §6.

Expected texts marked "verified" were produced by the real rtpengine 10.5.3.5 (trust-address,
--interface=lo/127.0.0.1!203.0.113.1) with only the ports changed to the plan's.
"""

from __future__ import annotations

import pytest

from relay.sdp import MediaPlan, SdpError, SessionPlan, parse, rewrite

ADV = "203.0.113.1"
HEAD = "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=Talk\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
HEAD_OUT = HEAD.replace("c=IN IP4 192.0.2.10", f"c=IN IP4 {ADV}")


def media(port: int = 40000, **kw: object) -> MediaPlan:
    defaults: dict[str, object] = {"address": ADV, "rtcp_port": port + 1 if port else None}
    defaults.update(kw)
    return MediaPlan(port=port, **defaults)  # type: ignore[arg-type]


def run(text: str, *plans: MediaPlan, **kw: object) -> str:
    kw.setdefault("address", ADV)
    return rewrite(parse(text), SessionPlan(media=plans, **kw))  # type: ignore[arg-type]


def test_dynamic_pt_without_rtpmap_prints_slash_zero() -> None:  # verified
    out = run(HEAD + "m=audio 49170 RTP/AVP 0 96\r\na=fmtp:96 foo\r\n", media())
    assert out == HEAD_OUT + (
        "m=audio 40000 RTP/AVP 0 96\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:96 /0\r\n"
        "a=fmtp:96 foo\r\na=sendrecv\r\na=rtcp:40001\r\n"
    )


def test_rtpmap_reprinted_from_parsed_form() -> None:  # verified
    out = run(
        HEAD + "m=audio 49170 RTP/AVP 96 97 98\r\na=rtpmap:96 opus/48000/2\r\n"
        "a=rtpmap:97 PCMU/08000/1\r\na=rtpmap:98 x/8000/2/3\r\n",
        media(),
    )
    assert out == HEAD_OUT + (
        "m=audio 40000 RTP/AVP 96 97 98\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:97 PCMU/8000\r\n"
        "a=rtpmap:98 x/8000\r\na=sendrecv\r\na=rtcp:40001\r\n"
    )


def test_mid_and_end_of_candidates_survive_rejection() -> None:  # verified
    out = run(
        HEAD + "m=audio 49170 RTP/AVP 0\r\na=mid:a1\r\n"
        "m=video 0 RTP/AVP 96\r\na=mid:v1\r\na=end-of-candidates\r\n",
        media(),
        media(0, end_of_candidates=True),
    )
    assert out == HEAD_OUT + (
        "m=audio 40000 RTP/AVP 0\r\na=mid:a1\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
        "a=rtcp:40001\r\nm=video 0 RTP/AVP 96\r\na=mid:v1\r\na=end-of-candidates\r\n"
    )


def test_session_attributes_and_unparsable_media_attributes() -> None:  # verified, minus ICE
    out = run(
        HEAD + "a=rtcp:5000\r\na=rtcp\r\na=ice-ufrag:abc\r\nm=audio 49170 RTP/AVP 0\r\n"
        "a=rtcp-fb:* nack\r\na=rtcp-fb:0 nack\r\na=rtcp-fb:x nack\r\na=sendrecv:x\r\n"
        "a=rtpmap:0 PCMU/8000x\r\n",
        media(),
    )
    assert out == HEAD_OUT + (
        "a=rtcp:5000\r\nm=audio 40000 RTP/AVP 0\r\na=rtcp-fb:* nack\r\na=rtcp-fb:x nack\r\n"
        "a=rtpmap:0 PCMU/8000x\r\na=rtpmap:0 PCMU/8000\r\na=rtcp-fb:0 nack\r\n"
        "a=sendrecv\r\na=rtcp:40001\r\n"
    )


def test_empty_line_ends_the_sdp() -> None:  # verified
    out = run(HEAD + "m=audio 49170 RTP/AVP 0\r\n\r\na=foo\r\n", media())
    assert (
        out
        == HEAD_OUT
        + "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\na=rtcp:40001\r\n"
    )


def test_t38_udptl_has_no_codec_or_rtcp_lines() -> None:  # verified
    out = run(
        HEAD + "m=image 49170 udptl t38\r\na=T38FaxVersion:0\r\na=sendrecv\r\n",
        media(rtcp_port=40001),
    )
    assert out == HEAD_OUT + "m=image 40000 udptl t38\r\na=T38FaxVersion:0\r\na=sendrecv\r\n"


def test_double_space_format_list() -> None:  # verified
    out = run(HEAD + "m=audio 49170 RTP/AVP 0  8 \r\n", media())
    assert out == HEAD_OUT + (
        "m=audio 40000 RTP/AVP 0 8 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\na=sendrecv\r\na=rtcp:40001\r\n"
    )


def test_zero_media_connection_only_on_that_media() -> None:  # verified
    text = (
        "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=Talk\r\nt=0 0\r\n"
        "m=audio 49170 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\n"
        "m=audio 49180 RTP/AVP 0\r\nc=IN IP4 192.0.2.10\r\n"
    )
    out = run(text, media(direction="sendonly", keep_zero_address=True), media(40010))
    assert out == (
        "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=Talk\r\nt=0 0\r\n"
        "m=audio 40000 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:0 PCMU/8000\r\na=sendonly\r\n"
        "a=rtcp:40001\r\nm=audio 40010 RTP/AVP 0\r\nc=IN IP4 203.0.113.1\r\n"
        "a=rtpmap:0 PCMU/8000\r\na=sendrecv\r\na=rtcp:40011\r\n"
    )


def test_zero_ptime_is_not_a_ptime() -> None:  # verified
    out = run(HEAD + "m=audio 49170 RTP/AVP 0\r\na=ptime:0\r\na=ptime:20\r\n", media())
    assert out == HEAD_OUT + (
        "m=audio 40000 RTP/AVP 0\r\na=ptime:0\r\na=ptime:20\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=sendrecv\r\na=rtcp:40001\r\n"
    )


def test_formats_select_and_reorder_codecs() -> None:
    text = (
        HEAD + "m=audio 49170 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-16\r\na=rtcp-fb:0 nack\r\n"
    )
    out = run(text, media(formats=("101", "0")))
    assert out == HEAD_OUT + (
        "m=audio 40000 RTP/AVP 101 0\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
        "a=rtpmap:0 PCMU/8000\r\na=rtcp-fb:0 nack\r\na=sendrecv\r\na=rtcp:40001\r\n"
    )


def test_mux_without_rtcp_attribute_and_ipv6_full_form() -> None:
    out = run(HEAD + "m=audio 49170 RTP/AVP 0\r\n", media(rtcp_port=None, rtcp_mux=True))
    assert out.endswith("a=sendrecv\r\na=rtcp-mux\r\n")
    out = run(
        HEAD + "m=audio 49170 RTP/AVP 0\r\n",
        media(address="2001:db8::1", family="IP6", full_rtcp_attribute=True),
        address="2001:db8::1",
        family="IP6",
    )
    assert "c=IN IP6 2001:db8::1\r\n" in out
    assert out.endswith("a=rtcp:40001 IN IP6 2001:db8::1\r\n")


def test_strip_extmap_and_crypto_and_bundle() -> None:
    text = (
        HEAD + "a=group:BUNDLE 0\r\na=fingerprint:sha-256 AA\r\na=extmap:1 urn:x\r\n"
        "m=audio 49170 RTP/SAVP 0\r\na=extmap:1 urn:x\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 "
        "inline:x\r\na=X-keep\r\n"
    )
    out = run(text, media(protocol="RTP/AVP", strip_extmap=True))
    assert out == HEAD_OUT + (
        "m=audio 40000 RTP/AVP 0\r\na=X-keep\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
        "a=rtcp:40001\r\n"
    )


def test_last_line_without_lf_gets_the_block_glued_on() -> None:  # verified
    # rtpengine appends after the section's text as is; the generated block is CR LF.
    out = run(HEAD + "m=audio 49170 RTP/AVP 0\r\na=X-last", media())
    assert out == HEAD_OUT + (
        "m=audio 40000 RTP/AVP 0\r\na=X-lasta=rtpmap:0 PCMU/8000\r\na=sendrecv\r\na=rtcp:40001\r\n"
    )


def test_media_count_mismatch() -> None:
    with pytest.raises(SdpError, match="1 media plans for 2 m= sections"):
        run(HEAD + "m=audio 1 RTP/AVP 0\r\nm=audio 3 RTP/AVP 0\r\n", media())


def test_generated_mid_only_where_the_input_has_none() -> None:  # verified (generate-mid)
    text = HEAD + "m=audio 49170 RTP/AVP 0\r\na=mid:audio\r\nm=video 0 RTP/AVP 96\r\n"
    out = run(text, media(mid="1"), media(port=0, mid="2"))
    assert out == HEAD_OUT + (
        "m=audio 40000 RTP/AVP 0\r\na=mid:audio\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
        "a=rtcp:40001\r\nm=video 0 RTP/AVP 96\r\na=mid:2\r\n"
    )


def test_empty_format_list_keeps_codec_lines_in_place() -> None:  # verified (strip to DTMF)
    text = HEAD + "m=audio 49170 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    out = run(text, media(formats=()))
    assert out == HEAD_OUT + (
        "m=audio 40000 RTP/AVP \r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
        "a=rtcp:40001\r\n"
    )


def test_remembered_mid_replaces_the_inputs_own() -> None:  # verified (mid_remembered_from_offer)
    text = HEAD + "m=audio 49170 RTP/AVP 0\r\na=mid:b1\r\n"
    out = run(text, media(mid="a1", input_mid=False))
    assert "a=mid:b1" not in out and "m=audio 40000 RTP/AVP 0\r\na=mid:a1\r\n" in out
    assert "a=mid" not in run(text, media(input_mid=False))
