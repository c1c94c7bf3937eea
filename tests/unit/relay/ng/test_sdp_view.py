"""relay.ng.sdp_view.summarize reads each a= name once per section (issue 18): the summary must
equal the per-name reading of `MediaSection.attributes` / `SessionDescription.attributes`."""

from __future__ import annotations

from relay.ng.sdp_view import summarize
from relay.sdp.parse import parse

SDP = "\r\n".join(
    [
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "t=0 0",
        "a=ice-lite",
        "a=setup:actpass",
        "a=fingerprint:sha-256 AA:BB",
        "a=ice-ufrag:sess",
        "a=ice-pwd:sesspwd",
        "a=ice-options:trickle",
        "m=audio 4000 RTP/SAVP 0 8",
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:a",
        "a=crypto",
        "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:b",
        "a=setup:",
        "a=ice-ufrag:med",
        "a=candidate:1 1 udp 1 192.0.2.1 4000 typ host",
        "a=candidate:2 1 udp 1 192.0.2.1 4002 typ host",
        "m=video 4010 RTP/AVP 96",
        "a=rtpmap:96 VP8/90000",
        "a=ice-lite",
        "a=ice-options:renomination",
        "a=setup:passive",
        "",
    ]
)


def _first(values: tuple[str | None, ...]) -> str | None:
    return next((v for v in values if v is not None), None)


def test_summary_matches_the_per_name_attribute_reading() -> None:
    desc = parse(SDP)
    summary = summarize(desc)
    assert len(summary.media) == 2
    for m, got in zip(desc.media, summary.media, strict=True):
        def first(name: str) -> str | None:
            return _first(m.attributes(name)) or _first(desc.attributes(name))  # noqa: B023

        assert got.crypto_values == tuple(v for v in m.attributes("crypto") if v is not None)
        assert got.candidates == tuple(v for v in m.attributes("candidate") if v is not None)
        assert got.setup == first("setup")
        assert got.fingerprint_value == first("fingerprint")
        assert got.ice_ufrag == first("ice-ufrag")
        assert got.ice_pwd == first("ice-pwd")
        assert got.ice_trickle == any(
            "trickle" in (v or "").split()
            for v in (*m.attributes("ice-options"), *desc.attributes("ice-options"))
        )
        assert got.ice_lite == bool(desc.attributes("ice-lite"))
        assert got.ice_lite_media == bool(m.attributes("ice-lite"))
    audio, video = summary.media
    # spot values, so the comparison above cannot pass on two equally wrong readings
    assert audio.setup == "actpass" and video.setup == "passive"  # empty media value: session's
    assert audio.ice_ufrag == "med" and video.ice_ufrag == "sess"
    assert audio.crypto_values == ("1 AES_CM_128_HMAC_SHA1_80 inline:a",
                                   "2 AES_CM_128_HMAC_SHA1_32 inline:b")
    assert len(audio.candidates) == 2 and video.candidates == ()
    assert audio.ice_trickle and video.ice_trickle
    assert not audio.ice_lite_media and video.ice_lite_media and audio.ice_lite
