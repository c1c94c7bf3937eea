"""Codec flags as operators write them in Kamailio 5.6's route (`rtpengine_offer("...")`), the
same call through rtpengine 10.5 and through rtpvault (two workers): a PCMU-only caller (with
telephone-event) plays a 440 Hz tone, a PCMA-only callee echoes it (issue 19;
docs/spec/transcoding.md §1).

For each flag string both relays must give each party the same SDP text (relay ports named,
tests/integration/kamailio/test_flows.normalised) and the same media: the payload types and
packet counts tshark sees reaching each sipp, and the tone's pitch in what reaches the caller.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from recorder.g711 import ALAW_TO_LINEAR, ULAW_TO_LINEAR
from tests.support.tone import dominant_hz

from .capture import read_udp
from .rig import SipRig
from .sipcall import GUIDE_FLAGS, CallSpec
from .test_flows import normalised, port_names, sdps_received
from .test_transcoding import PACKETS, pcmu_packet, pcmu_tone_pcap, rtp_pcap

pytestmark = pytest.mark.integration

FLAGS = [
    "codec-mask-all codec-transcode-PCMA",
    "codec-strip-PCMU codec-transcode-PCMA",
    "codec-transcode-PCMA",
    "codec-mask-PCMU codec-transcode-PCMA",
    "codec-strip-all codec-transcode-PCMA",
    "codec-mask-all codec-transcode-PCMA codec-transcode-G722",
    "codec-except-telephone-event codec-strip-all codec-transcode-PCMA",
    "codec-mask-all codec-transcode-PCMA ptime=40",
    "codec-mask-all codec-transcode-PCMA single-codec",
    "codec-mask-all codec-transcode-PCMA always-transcode",
    # rtpengine's own flag spellings, which Kamailio passes on in `flags`
    "transcode-PCMA",
    "mask-PCMU transcode-PCMA",
    "strip-all transcode-PCMA",
]


def _pitch(payloads: list[bytes], pt: int) -> float | None:
    table = {0: ULAW_TO_LINEAR, 8: ALAW_TO_LINEAR}.get(pt)
    samples = [table[b] for p in payloads[5:] for b in p] if table else []
    return dominant_hz(samples[:4000]) if len(samples) >= 1600 else None


def _observe(rig: SipRig, tmp_path: Path, callee: str = "pcmu-to-pcma") -> dict[str, object]:
    tone = pcmu_tone_pcap(tmp_path / f"pcmu-{rig.relay.name}-{rig.runs}.pcap")
    spec = CallSpec(callee=callee, media=True, media_packets=PACKETS, pcap=tone)
    result, _ = rig.call_with_capture(spec)
    assert result.ok, result.describe() + rig.logs()
    offer, answer = result.offer_seen_by_callee(), result.answer_seen_by_caller()
    names = port_names(rig, result, offer.audio.port, answer.audio.port)
    packets = list(read_udp(result.workdir / "media.capture.pcap"))
    seen: dict[str, object] = {}
    call_id = result.call_ids[0]
    for who, messages in (("callee", result.uas_messages), ("caller", result.uac_messages)):
        for key, sdp in sdps_received(messages, call_id).items():
            seen[f"{who} got {key}"] = normalised(sdp, names)
    for who, where in (("callee", result.uas_media), ("caller", result.uac_media)):
        rtp = [p.payload for p in packets if p.dst == where and len(p.payload) >= 12]
        pts = Counter(p[1] & 0x7F for p in rtp)
        seen[f"to {who}"] = dict(pts)
        seen[f"ssrc to {who} is the caller's"] = any(
            struct.unpack_from("!I", p, 8)[0] == 0x5EED0001 for p in rtp
        )
        main = pts.most_common(1)[0][0] if pts else -1
        seen[f"pitch at {who}"] = _pitch([p[12:] for p in rtp if p[1] & 0x7F == main], main)
    return seen


@pytest.mark.parametrize("flags", FLAGS)
def test_codec_flags_from_kamailio_as_rtpengine(
    sip_rig: Callable[..., SipRig], tmp_path: Path, flags: str
) -> None:
    seen = {}
    for kind in ("rtpengine", "rtpvault/2"):
        rig = sip_rig(kind, offer_flags=f"{GUIDE_FLAGS} {flags}",
                      relay_options={"extra": ["--delete-delay=0"]})  # fmt: skip
        seen[kind] = _observe(rig, tmp_path)
        assert "Traceback" not in rig.relay.log(), rig.logs()
    assert seen["rtpvault/2"] == seen["rtpengine"]


def test_hold_and_resume_of_a_transcoded_call_as_rtpengine(
    sip_rig: Callable[..., SipRig], tmp_path: Path
) -> None:
    """The PCMU caller of a PCMU→PCMA call puts it on hold (a=sendonly, then c=0.0.0.0) and
    takes it off with re-INVITEs, each re-offered with the same flags (examples/kamailio.cfg);
    the callee answers PCMA. Media is played on hold and after it."""
    seen = {}
    for kind in ("rtpengine", "rtpvault/2"):
        rig = sip_rig(kind, offer_flags=f"{GUIDE_FLAGS} {FLAGS[0]}",
                      relay_options={"extra": ["--delete-delay=0"]})  # fmt: skip
        seen[kind] = _observe(rig, tmp_path, "pcmu-hold")
        assert "Traceback" not in rig.relay.log(), rig.logs()
    assert seen["rtpvault/2"] == seen["rtpengine"]


def _caller_with_dtmf(path: Path) -> Path:
    """25 PCMU packets, DTMF `1` as RFC 4733 events (PT 101, 200 ms, the end packet three
    times with one sequence number, as sipp's dtmf_2833 pcaps), then 25 PCMU packets."""
    packets = [pcmu_packet(n, marker=n == 0) for n in range(25)]
    start = 160 * 25
    for i in range(10):
        end = i >= 7
        duration = 160 * min(i + 1, 8)
        event = struct.pack("!BBH", 1, (0x80 if end else 0) | 10, duration)
        seq = 100 + 25 + min(i, 7)
        packets.append(struct.pack("!BBHII", 0x80, 101 | (0x80 if i == 0 else 0), seq, start,
                                   0x5EED0001) + event)  # fmt: skip
    packets += [pcmu_packet(n, seq0=100 + 8 - 10) for n in range(35, 60)]
    return rtp_pcap(path, packets)


def test_dtmf_events_to_a_callee_without_telephone_event_as_rtpengine(
    sip_rig: Callable[..., SipRig], tmp_path: Path
) -> None:
    """PCMU+te caller, PCMA-only callee, `codec-mask-all codec-transcode-PCMA`, 200 ms of
    RFC 4733 events between the audio: both relays forward the events as they are (the callee
    was not offered telephone-event, yet rtpengine 10.5 sends them) and transcode the audio,
    without silence for the events' time (docs/spec/transcode-media.md §3): the same packets
    reach each party."""
    seen = {}
    for kind in ("rtpengine", "rtpvault/2"):
        rig = sip_rig(kind, offer_flags=f"{GUIDE_FLAGS} {FLAGS[0]}",
                      relay_options={"extra": ["--delete-delay=0"]})  # fmt: skip
        pcap = _caller_with_dtmf(tmp_path / f"dtmf-{kind.replace('/', '-')}.pcap")
        spec = CallSpec(callee="pcmu-to-pcma", media=True, media_packets=None, pcap=pcap)
        result, _ = rig.call_with_capture(spec)
        assert result.ok, result.describe() + rig.logs()
        packets = list(read_udp(result.workdir / "media.capture.pcap"))
        got = {}
        for who, where in (("callee", result.uas_media), ("caller", result.uac_media)):
            rtp = [p.payload for p in packets if p.dst == where]
            events = [p[12:16] for p in rtp if p[1] & 0x7F == 101]
            got[who] = (Counter(p[1] & 0x7F for p in rtp), events)
        seen[kind] = got
        assert "Traceback" not in rig.relay.log(), rig.logs()
    assert seen["rtpvault/2"] == seen["rtpengine"]
    assert seen["rtpengine"]["callee"][0] == {8: 50, 101: 10}, seen
