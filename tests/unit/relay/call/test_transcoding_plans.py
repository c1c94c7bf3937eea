"""Codec plans from SDPs and flags (relay.call.transcoding through relay.call.plan), checked
against what rtpengine 10.5 put on the wire (docs/spec/sdp.md §1.11a, media measured there)."""

from __future__ import annotations

from typing import Any

import pytest

from relay.call import plan, transcoding
from relay.call.model import MediaSide, Party
from relay.ng.flags import NgFlags, call_options, parse_flags
from relay.ng.sdp_view import summarize
from relay.sdp.parse import parse
from relay.transcode.plan import Codec, DirectionPlan

CRLF = "\r\n"
PCMU_TE = ("0 101", "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000",
           "a=fmtp:101 0-16")
OPUS_TE = ("111 110", "a=rtpmap:111 opus/48000/2", "a=fmtp:111 minptime=10;useinbandfec=1",
           "a=rtpmap:110 telephone-event/48000")


def sdp(fmts: str, *attrs: str) -> str:
    return CRLF.join(["v=0", "o=x 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1",
                      "t=0 0", f"m=audio 16000 RTP/AVP {fmts}", *attrs, "a=sendrecv"]) + CRLF


def exchange(
    sides: tuple[MediaSide, MediaSide], text: str, body: dict[str, Any], offer: bool,
    sender: int,
) -> tuple[str, ...] | None:
    """One SDP from party `sender` (0: A, 1: B) through the line; the formats printed."""
    media = summarize(parse(text)).media[0]
    s_side, r_side = sides[sender], sides[1 - sender]
    if offer:
        s_side.sdp, s_side.sdp_was_offer = media, True
    out = plan.media_plan(s_side, r_side, media, call_options(parse_flags(body)), offer, None,
                          "203.0.113.1")
    return out.formats


def call(
    offer: tuple[str, ...], offer_flags: dict[str, Any], answer: tuple[str, ...],
    answer_flags: dict[str, Any] | None = None,
) -> tuple[MediaSide, MediaSide, tuple[str, ...] | None, tuple[str, ...] | None]:
    a, b = MediaSide(0, "audio", "RTP/AVP"), MediaSide(0, "audio", "RTP/AVP")
    to_b = exchange((a, b), sdp(*offer), offer_flags, True, 0)
    to_a = exchange((a, b), sdp(*answer), answer_flags or {}, False, 1)
    return a, b, to_b, to_a


def test_plain_call_has_no_plan() -> None:
    a, b, _, _ = call(PCMU_TE, {}, PCMU_TE)
    assert a.codec_plan is None and b.codec_plan is None
    assert a.codec_store is None and b.codec_store is None
    assert not a.transcoding and not b.transcoding


def test_strip_and_mask_without_transcoding_stay_plain() -> None:
    offer = ("0 8 101", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000",
             "a=rtpmap:101 telephone-event/8000")
    a, b, to_b, _ = call(offer, {"codec": {"mask": ["PCMA"]}}, PCMU_TE)
    assert to_b == ("0", "101")
    assert a.codec_plan is None and b.codec_plan is None


def test_mask_all_transcode_opus_sip_to_webrtc() -> None:
    """Measured: A's PCMU leaves as opus under the answerer's PT 111 (ts step 960); B's opus
    leaves as PCMU 0; both sides "transcoding"."""
    a, b, to_b, to_a = call(PCMU_TE, {"codec": {"mask": ["all"], "transcode": ["opus"]}},
                            OPUS_TE)
    assert to_b == ("96",) and to_a == ("0", "101")
    assert a.transcoding and b.transcoding
    pa, pb = a.codec_plan, b.codec_plan
    assert isinstance(pa, DirectionPlan) and isinstance(pb, DirectionPlan)
    assert pa.encode_pt == 111 and pa.outputs[111] == Codec(
        "opus", 48000, 2, "minptime=10;useinbandfec=1")
    assert pa.inputs[0] == Codec("PCMU", 8000) and pa.passthrough == frozenset()
    assert pa.dtmf_out_pt == 110  # telephone-event/8000 → /48000
    assert pb.encode_pt == 0 and pb.outputs[0] == Codec("PCMU", 8000)
    assert pb.dtmf_out_pt == 101
    assert pa.ptime == 20 and pb.ptime == 20


def test_transcode_pcma_answered_pcma() -> None:
    """transcode-PCMA, answer PCMA: PCMU 0 → PCMA 8 one way, back the other."""
    a, b, to_b, to_a = call(PCMU_TE, {"flags": ["transcode-PCMA"]},
                            ("8", "a=rtpmap:8 PCMA/8000"))
    assert to_b == ("0", "8", "101") and to_a == ("0",)
    assert a.codec_plan is not None and a.codec_plan.encode_pt == 8
    assert b.codec_plan is not None and b.codec_plan.encode_pt == 0
    assert a.codec_plan.dtmf_out_pt is None  # no telephone-event towards B: tones in-band


def test_answer_not_offered_transcodes_to_offerers_first_codec() -> None:
    """No flags, answer PCMA to a PCMU offer (measured: PT 8 towards B, PT 0 towards A)."""
    a, b, _, to_a = call(PCMU_TE, {}, ("8", "a=rtpmap:8 PCMA/8000"))
    assert to_a == ("0",)
    assert a.codec_plan is not None and a.codec_plan.encode_pt == 8
    assert b.codec_plan is not None and b.codec_plan.encode_pt == 0
    assert a.transcoding and b.transcoding


def test_offered_pt_naming_another_codec() -> None:
    offer = ("0 8 101", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000",
             "a=rtpmap:101 telephone-event/8000")
    a, b, _, to_a = call(offer, {}, ("8 0", "a=rtpmap:8 G722/8000", "a=rtpmap:0 PCMU/8000"))
    assert to_a == ("0",)
    assert b.transcoding and not a.transcoding  # measured: only the answerer's side
    assert a.codec_plan is None
    assert b.codec_plan is not None and b.codec_plan.encode_pt == 0
    assert b.codec_plan.passthrough == frozenset({0})


def test_ptime_on_offer_repacketises_towards_the_answerer() -> None:
    """ptime=30: A's 20 ms PCMU leaves as 30 ms PCMU (measured: 240-byte packets)."""
    a, b, _, _ = call(PCMU_TE, {"ptime": 30}, PCMU_TE)
    assert a.codec_plan is not None and a.codec_plan.encode_pt == 0
    assert a.codec_plan.ptime == 30
    assert b.codec_plan is not None and b.codec_plan.ptime == 20


def test_ptime_reverse_repacketises_towards_the_offerer() -> None:
    a, b, _, _ = call(PCMU_TE, {"ptime-reverse": 30}, PCMU_TE)
    assert b.codec_plan is not None and b.codec_plan.ptime == 30
    assert a.codec_plan is not None and a.codec_plan.ptime == 20


def test_always_transcode_with_matching_codecs_forwards() -> None:
    """Measured: same SSRC and marker both ways, no media flag "transcoding"."""
    a, b, _, _ = call(PCMU_TE, {"flags": ["always-transcode"]}, PCMU_TE)
    assert a.codec_plan is None and b.codec_plan is None
    assert not a.transcoding and not b.transcoding


def test_transcode_to_g729_is_refused_by_name() -> None:
    with pytest.raises(transcoding.CannotEncode, match="G729/8000"):
        call(PCMU_TE, {}, ("18", "a=rtpmap:18 G729/8000"))


def test_answer_refusal_is_decided_on_copies() -> None:
    a, b = MediaSide(0, "audio", "RTP/AVP"), MediaSide(0, "audio", "RTP/AVP")
    exchange((a, b), sdp(*PCMU_TE), {"flags": ["transcode-G729"]}, True, 0)
    before = (a.codec_store, b.codec_store, a.codec_plan, b.codec_plan)
    offerer, answerer = Party("ft", 0.0, medias=[a]), Party("tt", 0.0, medias=[b])
    answered = summarize(parse(sdp("18", "a=rtpmap:18 G729/8000")))
    reason = transcoding.answer_refusal(offerer, answerer, answered, call_options(NgFlags()))
    assert reason is not None and "G729/8000" in reason
    assert (a.codec_store, b.codec_store, a.codec_plan, b.codec_plan) == before
    assert b.codec_store is not None and [p.number for p in b.codec_store.pts] == [0, 18, 101]
    fine = summarize(parse(sdp(*PCMU_TE)))
    assert transcoding.answer_refusal(offerer, answerer, fine, call_options(NgFlags())) is None


def test_offer_with_an_unencodable_first_codec_is_not_refused() -> None:
    """The offer's plan is provisional: B → A would encode G729 (A's first codec) until the
    answer; rtpvault forwards meanwhile rather than refusing the offer."""
    offer = ("18 0", "a=rtpmap:18 G729/8000", "a=rtpmap:0 PCMU/8000")
    a, b = MediaSide(0, "audio", "RTP/AVP"), MediaSide(0, "audio", "RTP/AVP")
    assert exchange((a, b), sdp(*offer), {"flags": ["transcode-opus"]}, True, 0) == (
        "18", "0", "96")
    assert b.codec_plan is None
    assert exchange((a, b), sdp("0", "a=rtpmap:0 PCMU/8000"), {}, False, 1) == ("0",)


def test_reoffer_keeps_the_stores() -> None:
    a, b = MediaSide(0, "audio", "RTP/AVP"), MediaSide(0, "audio", "RTP/AVP")
    flags = {"codec": {"mask": ["all"], "transcode": ["opus"]}}
    for _ in range(2):
        assert exchange((a, b), sdp(*PCMU_TE), flags, True, 0) == ("96",)
        assert exchange((a, b), sdp(*OPUS_TE), {}, False, 1) == ("0", "101")
    assert a.codec_plan is not None and a.codec_plan.encode_pt == 111


def test_unchanged_plan_keeps_its_object() -> None:
    a, b = MediaSide(0, "audio", "RTP/AVP"), MediaSide(0, "audio", "RTP/AVP")
    flags = {"codec": {"mask": ["all"], "transcode": ["opus"]}}
    exchange((a, b), sdp(*PCMU_TE), flags, True, 0)
    exchange((a, b), sdp(*OPUS_TE), {}, False, 1)
    first = a.codec_plan
    exchange((a, b), sdp(*PCMU_TE), flags, True, 0)
    exchange((a, b), sdp(*OPUS_TE), {}, False, 1)
    assert first is not None and a.codec_plan is first
    exchange((a, b), sdp(*PCMU_TE), {"ptime": 30, **flags}, True, 0)
    exchange((a, b), sdp(*OPUS_TE), {}, False, 1)
    assert a.codec_plan is not first and a.codec_plan is not None
    assert a.codec_plan.ptime == 30
