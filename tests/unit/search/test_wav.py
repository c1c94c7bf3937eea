"""recorder.wav: pcap/pcapng → stereo WAV, decoded back and measured."""

from __future__ import annotations

import array
import io
import math
import wave

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.wav import RATE, WavExportError, export_wav, read_rtp

from .synth import Leg, pcap_bytes, pcapng_bytes, sidecar_for

A = (("192.0.2.10", 4000), ("127.0.0.1", 30000))
B = (("198.51.100.5", 5000), ("127.0.0.1", 30002))


def decode(wav: bytes) -> tuple[int, int, int, list[array.array[int]]]:
    with wave.open(io.BytesIO(wav)) as w:
        channels, rate, width, n = (
            w.getnchannels(),
            w.getframerate(),
            w.getsampwidth(),
            w.getnframes(),
        )
        frames = array.array("h", w.readframes(n))
    return channels, rate, width, [frames[c::channels] for c in range(channels)]


def rms(samples: array.array[int], start: float, end: float) -> float:
    part = samples[int(start * RATE) : int(end * RATE)]
    return math.sqrt(sum(s * s for s in part) / max(len(part), 1))


def two_legs(pt: int = 0) -> list[Leg]:
    # A talks 2 s from 0 with packets 25..34 lost (0.5–0.7 s); B joins at 0.5 s for 2 s
    return [
        Leg(*A, ssrc=0x1111, freq=440, start=0.0, seconds=2.0, pt=pt, drop=set(range(25, 35))),
        Leg(*B, ssrc=0x2222, freq=1000, start=0.5, seconds=2.0, pt=pt, amplitude=4000),
    ]


@pytest.mark.parametrize("pt", [0, 8])
@pytest.mark.parametrize("writer", [pcap_bytes, pcapng_bytes])
def test_stereo_time_aligned_with_gaps(pt: int, writer: object) -> None:
    legs = two_legs(pt)
    data = writer(legs)  # type: ignore[operator]
    channels, rate, width, (left, right) = decode(export_wav(data, sidecar_for(legs)))
    assert (channels, rate, width) == (2, 8000, 2)
    assert len(left) == len(right) == int(2.5 * RATE)  # B ends at 2.5 s
    # left: A's tone (amplitude 8000 → rms ≈ 5657) except the lost 200 ms
    assert rms(left, 0.0, 0.5) == pytest.approx(8000 / math.sqrt(2), rel=0.05)
    assert rms(left, 0.5, 0.7) == 0
    assert rms(left, 0.7, 2.0) == pytest.approx(8000 / math.sqrt(2), rel=0.05)
    assert rms(left, 2.0, 2.5) == 0
    # right: silence until B joins at 0.5 s, then B's quieter tone
    assert rms(right, 0.0, 0.5) == 0
    assert rms(right, 0.5, 2.5) == pytest.approx(4000 / math.sqrt(2), rel=0.05)


def test_tone_frequency_survives() -> None:
    legs = two_legs()
    _, _, _, (left, right) = decode(export_wav(pcap_bytes(legs), sidecar_for(legs)))

    def crossings(s: array.array[int]) -> int:
        return sum(1 for a, b in zip(s, s[1:], strict=False) if a < 0 <= b)

    assert crossings(left[int(0.7 * RATE) : int(1.7 * RATE)]) == pytest.approx(440, abs=2)
    assert crossings(right[int(1.0 * RATE) : int(2.0 * RATE)]) == pytest.approx(1000, abs=2)


def test_channels_follow_the_sidecar_parties_not_packet_order() -> None:
    legs = two_legs()
    legs[1].start = 0.0  # B's first packet sorts first in the file
    swapped = sidecar_for(legs)
    _, _, _, (left, right) = decode(export_wav(pcap_bytes(legs), swapped))
    assert rms(left, 0.0, 0.4) == pytest.approx(8000 / math.sqrt(2), rel=0.05)  # A is left
    assert rms(right, 0.0, 0.4) == pytest.approx(4000 / math.sqrt(2), rel=0.05)


def test_without_sidecar_first_source_is_left() -> None:
    legs = two_legs()
    _, _, _, (left, right) = decode(export_wav(pcap_bytes(legs)))
    assert rms(left, 0.0, 0.5) > 5000 and rms(right, 0.0, 0.5) == 0


def test_timestamps_place_audio_despite_jitter() -> None:
    # packets captured with ±5 ms jitter still land where their RTP timestamp says: no clicks
    leg = Leg(*A, ssrc=7, freq=440, start=0.0, seconds=1.0)
    f = io.BytesIO()
    w = dpkt.pcap.Writer(f)
    from .synth import _ip_frame

    for i, (when, rtp) in enumerate(leg.packets(100.0)):
        w.writepkt(_ip_frame(leg.src, leg.dst, rtp), ts=when + (0.005 if i % 2 else -0.004) + 0.01)
    _, _, _, (left, _) = decode(export_wav(f.getvalue()))
    assert len(left) == RATE  # 50 × 160 samples, nothing smeared or doubled
    assert rms(left, 0, 1.0) == pytest.approx(8000 / math.sqrt(2), rel=0.02)


def test_unsupported_codec_is_named() -> None:
    legs = [Leg(*A, ssrc=1, freq=440, start=0, seconds=0.1, pt=15)]
    with pytest.raises(WavExportError,
                       match=r"codec G728 \(payload type 15\).*G722, .*OPUS, PCMA, PCMU"):
        export_wav(pcap_bytes(legs))


def test_dynamic_codec_from_sidecar_is_named() -> None:
    legs = [Leg(*A, ssrc=1, freq=440, start=0, seconds=0.1, pt=96)]
    side = {"parties": [{"tag": "a", "media": [{"codecs": [{"pt": 96, "name": "AMR-WB"}]}]}]}
    with pytest.raises(WavExportError, match=r"codec AMR-WB \(payload type 96\)"):
        export_wav(pcap_bytes(legs), side)


def test_comfort_noise_and_rtcp_are_silence() -> None:
    legs = [Leg(*A, ssrc=1, freq=440, start=0, seconds=0.2, pt=0),
            Leg(*A, ssrc=1, freq=440, start=0.2, seconds=0.2, pt=13, ts0=1000 + 1600)]  # fmt: skip
    data = pcap_bytes(legs)
    _, _, _, (left, _) = decode(export_wav(data))
    assert len(left) == int(0.2 * RATE)  # CN adds nothing; the tail is not padded past the audio


@pytest.mark.parametrize("data", [b"", b"garbage!" * 10, pcap_bytes([])])
def test_not_a_recording(data: bytes) -> None:
    with pytest.raises(WavExportError):
        export_wav(data)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_our_error(tail: bytes) -> None:
    head = pcap_bytes([Leg(*A, ssrc=1, freq=440, start=0, seconds=0.04)])
    for data in (tail, head + tail, head[: len(head) // 2] + tail):
        try:
            export_wav(data)
        except WavExportError:
            pass


def test_read_rtp_skips_rtcp_and_non_udp() -> None:
    leg = Leg(*A, ssrc=5, freq=440, start=0, seconds=0.04)
    rtcp = bytes.fromhex("80c8000600000005") + bytes(20)
    from .synth import _ip_frame

    f = io.BytesIO()
    w = dpkt.pcap.Writer(f)
    for when, rtp in leg.packets(0.0):
        w.writepkt(_ip_frame(leg.src, leg.dst, rtp), ts=when + 1)
    w.writepkt(_ip_frame(leg.src, leg.dst, rtcp), ts=2)
    pkts = list(read_rtp(f.getvalue()))
    assert [(p.ssrc, p.seq, p.src) for p in pkts] == [
        (5, 100, "192.0.2.10:4000"),
        (5, 101, "192.0.2.10:4000"),
    ]
