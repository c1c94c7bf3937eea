"""relay.transcode.chain with FFmpeg doing the codec work: a tone sent through one chain (A→B)
and back through another (B→PCMU) comes out at its pitch, with the SNR measured (the
figures are in docs/spec/transcode-media.md §3; the bounds here are well below them)."""

from __future__ import annotations

import pytest

from relay.transcode import packet
from relay.transcode.chain import Chain
from relay.transcode.plan import Codec
from tests.support.chains import G722, OPUS, PCMA, PCMU, decode, plan, run, tone_packets
from tests.support.tone import dominant_hz, pcm_samples, snr_db

PAIRS = [
    (PCMU, OPUS, 30.0), (PCMU, G722, 30.0), (PCMU, PCMA, 30.0), (PCMA, PCMU, 30.0),
    (OPUS, G722, 28.0), (G722, OPUS, 28.0), (OPUS, PCMA, 28.0), (G722, PCMU, 30.0),
    (PCMU, Codec("G723", 8000), 25.0),  # G.723.1 6.3 kbit/s, 30 ms frames: 30-31 dB measured
]  # fmt: skip


def round_trip(src: Codec, dst: Codec, hz: float) -> list[int]:
    there = Chain(plan(src, dst), 0xAAAA0001, seq=100, ts=5000)
    mid = run(there, tone_packets(src, hz, 1.6))
    assert there.decode_errors == 0 and len(mid) >= (50 if dst.name == "G723" else 70)  # 30 ms
    assert {packet.parse(p).pt for p in mid} == {there.plan.encode_pt}  # type: ignore[union-attr]
    back = Chain(plan(dst, PCMU), 0xBBBB0002)
    return pcm_samples(decode(PCMU, run(back, mid)))


@pytest.mark.parametrize("hz", [1000, 440])
@pytest.mark.parametrize(("src", "dst", "min_snr"), PAIRS,
                         ids=[f"{a.name}-{b.name}" for a, b, _ in PAIRS])  # fmt: skip
def test_a_tone_keeps_its_pitch_and_snr_through_two_transcodings(
    src: Codec, dst: Codec, min_snr: float, hz: int
) -> None:
    samples = round_trip(src, dst, hz)[2000:10000]  # past the codecs' start-up
    assert dominant_hz(samples[:1600]) == hz
    assert snr_db(samples, hz) > min_snr


def test_the_output_is_the_chains_own_stream() -> None:
    chain = Chain(plan(PCMU, OPUS), 0x01020304, seq=65534, ts=0xFFFFF000)
    out = [packet.parse(p) for p in run(chain, tone_packets(PCMU, 1000, 0.2))]
    assert all(p is not None for p in out)
    heads = [p for p in out if p is not None]
    assert {p.ssrc for p in heads} == {0x01020304}
    assert [p.seq for p in heads] == [(65535 + i) & 0xFFFF for i in range(len(heads))]
    assert [p.ts for p in heads] == [(0xFFFFF000 + 960 * i) & 0xFFFFFFFF for i in range(len(heads))]
    assert [p.marker for p in heads] == [True] + [False] * (len(heads) - 1)
    assert chain.packets_out == len(heads)
    assert chain.octets_out == sum(12 + len(p.payload) for p in heads)
    assert chain.samples_decoded == 160 * 10


@pytest.mark.parametrize(("dst", "ptime", "size", "ticks"), [
    (PCMA, 30, 240, 240), (PCMA, 60, 480, 480), (G722, 30, 240, 240), (G722, 60, 480, 480),
    (OPUS, 60, None, 2880), (OPUS, 40, None, 1920), (OPUS, 10, None, 480),
])  # fmt: skip
def test_ptime_repacketises(dst: Codec, ptime: int, size: int | None, ticks: int) -> None:
    chain = Chain(plan(PCMU, dst, ptime=ptime), 7, seq=0, ts=0)
    out = [packet.parse(p) for p in run(chain, tone_packets(PCMU, 1000, 0.6))]
    heads = [p for p in out if p is not None]
    assert 600 // ptime - 1 <= len(heads) <= 600 // ptime
    assert [p.ts for p in heads] == [ticks * i for i in range(len(heads))]
    if size is not None:
        assert {len(p.payload) for p in heads} == {size}


def test_g722_output_clock_advances_8000_per_second() -> None:
    chain = Chain(plan(PCMU, G722), 9, seq=0, ts=0)
    heads = [packet.parse(p) for p in run(chain, tone_packets(PCMU, 1000, 1.0))]
    assert [h.ts for h in heads if h] == [160 * i for i in range(len(heads))]
    assert {len(h.payload) for h in heads if h} == {160}  # 320 samples at 16 kHz, 4 bits each


def test_a_60_ms_opus_input_becomes_three_20_ms_packets_at_its_pitch() -> None:
    chain = Chain(plan(OPUS, PCMU), 5, seq=0, ts=0)
    out = [packet.parse(p) for p in run(chain, tone_packets(OPUS, 440, 1.2, ptime=60))]
    heads = [h for h in out if h is not None]
    assert len(heads) == 60 - 1  # less what swresample still holds
    assert [h.ts for h in heads] == [160 * i for i in range(len(heads))]
    rebuilt = [packet.build(False, 0, i, 0, 1, h.payload) for i, h in enumerate(heads)]
    pcm = pcm_samples(decode(PCMU, rebuilt))
    assert dominant_hz(pcm[1600:3200]) == 440 and snr_db(pcm[1600:8000], 440) > 25
