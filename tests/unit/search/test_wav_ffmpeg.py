"""recorder.wav with codecs FFmpeg decodes: a call recorded as Opus on one leg and G.722 on the
other (RTP made by FFmpeg's encoders) exports to a WAV where each party's tone has its pitch,
at the right time, whatever the RTP clock (Opus 48000, G.722 8000 for 16 kHz audio)."""

from __future__ import annotations

import io

import dpkt
import pytest

from recorder.wav import RATE, export_wav
from relay.transcode import packet
from tests.support.chains import G722, OPUS, PT, tone_packets
from tests.support.tone import dominant_hz, snr_db

from .synth import _ip_frame
from .test_wav import A, B, decode

SIDECAR = {
    "parties": [
        {"tag": "a", "media": [{"codecs": [{"pt": 96, "name": "opus", "rate": 48000}]}]},
        {"tag": "b", "media": [{"codecs": [{"pt": 9, "name": "G722", "rate": 8000}]}]},
    ],
    "streams": [{"ssrc": 0xA, "kind": "rtp", "party": "a"},
                {"ssrc": 0xB, "kind": "rtp", "party": "b"}],
}


def recording(lost: set[int] = frozenset()) -> bytes:  # type: ignore[assignment]
    a = [(0.0 + i * 0.02, A, p) for i, p in enumerate(tone_packets(OPUS, 440, 2.0, ssrc=0xA))
         if i not in lost]
    b = [(0.5 + i * 0.02, B, p) for i, p in enumerate(tone_packets(G722, 1000, 1.5, ssrc=0xB))]
    f = io.BytesIO()
    w = dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_EN10MB)
    for when, (src, dst), rtp in sorted(a + b, key=lambda x: x[0]):
        w.writepkt(_ip_frame(src, dst, rtp), ts=1764028800.0 + when)
    return f.getvalue()


def test_opus_and_g722_legs_keep_their_pitch_and_timing() -> None:
    channels, rate, _, (left, right) = decode(export_wav(recording(), SIDECAR))
    assert (channels, rate) == (2, RATE)
    assert len(left) == len(right) == 2 * RATE
    assert dominant_hz(left[4000:5600]) == 440
    assert snr_db(left[4000:12000], 440) > 25
    assert max(abs(v) for v in right[: int(0.49 * RATE)]) == 0  # B joined at 0.5 s
    assert dominant_hz(right[8000:9600]) == 1000
    assert snr_db(right[6000:14000], 1000) > 30


def test_a_lost_opus_packet_is_a_gap_at_its_place() -> None:
    _, _, _, (left, _) = decode(export_wav(recording(lost={50}), SIDECAR))
    gap = left[50 * 160 + 40 : 51 * 160 - 40]
    assert max(abs(v) for v in gap) == 0
    assert dominant_hz(left[52 * 160 : 62 * 160]) == 440


@pytest.mark.parametrize("junk", [b"\xff\xff\xff", bytes(3), b"\x0b" + bytes(200)])
def test_a_corrupt_payload_is_silence_not_an_error(junk: bytes) -> None:
    good = tone_packets(OPUS, 440, 0.2, ssrc=0xA)
    bad = packet.build(False, PT["opus"], 10, 1000 + 10 * 960, 0xA, junk)
    f = io.BytesIO()
    w = dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_EN10MB)
    for i, rtp in enumerate([*good, bad]):
        w.writepkt(_ip_frame(*A, rtp), ts=100.0 + i * 0.02)
    _, _, _, (left, _) = decode(export_wav(f.getvalue(), SIDECAR))
    assert dominant_hz(left[400:1600]) == 440


def test_a_g723_leg_without_a_sidecar() -> None:
    from tests.support.chains import G723

    f = io.BytesIO()
    w = dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_EN10MB)
    for i, rtp in enumerate(tone_packets(G723, 440, 1.2, ptime=30)):
        w.writepkt(_ip_frame(*A, rtp), ts=100.0 + i * 0.03)
    _, _, _, (left, _) = decode(export_wav(f.getvalue()))
    assert len(left) == 40 * 240
    assert dominant_hz(left[2400:4000]) == 440
