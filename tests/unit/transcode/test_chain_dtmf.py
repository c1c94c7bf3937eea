"""telephone-event through relay.transcode.chain: renumbered onto the output time line with
durations at the output clock, synthesised into the audio when the receiver has no
telephone-event, and detected in the audio when the plan asks (relay.transcode.detect)."""

from __future__ import annotations

import pytest

from relay.transcode import packet
from relay.transcode.chain import Chain
from relay.transcode.detect import DtmfDetector
from relay.transcode.dtmf import Event, build_event, parse_event, tone_pcm
from tests.support.chains import OPUS, PCMA, PCMU, TE8, TE48, decode, plan, run, tone_packets
from tests.support.tone import pcm_samples, power


def events(code: int, ts: int, seq: int, count: int = 5, ssrc: int = 0x1234) -> list[bytes]:
    """An RFC 4733 event of `count` × 20 ms at 8 kHz, then its end packet three times."""
    out = [packet.build(i == 0, 101, seq + i, ts, ssrc,
                        build_event(Event(code, False, 10, 160 * (i + 1))))
           for i in range(count)]  # fmt: skip
    end = build_event(Event(code, True, 10, 160 * count))
    return out + [packet.build(False, 101, seq + count + i, ts, ssrc, end) for i in range(3)]


def test_an_event_is_renumbered_with_timestamp_and_duration_at_48_khz() -> None:
    p = plan(PCMU, OPUS, inputs={101: TE8}, outputs={110: TE48}, dtmf_out_pt=110)
    chain = Chain(p, 0x50, seq=0, ts=0)
    audio = tone_packets(PCMU, 1000, 0.2)  # ts 1000 .. 2440, next 2600
    after = [packet.build(False, 0, 18 + i, 2600 + 800 + 160 * i, 0x1234, b"\xff" * 160)
             for i in range(10)]  # fmt: skip
    out = [packet.parse(x) for x in run(chain, audio + events(7, 2600, 10) + after)]
    te = [h for h in out if h is not None and h.pt == 110]
    assert len(te) == 8
    audio_out = [h for h in out if h is not None and h.pt == 96 and h.seq < te[0].seq]
    # the audio before the event is finished (its last frame padded), the event starts after it
    assert audio_out[-1].seq < te[0].seq and {h.ts for h in te} == {audio_out[-1].ts + 960}
    evs = [parse_event(h.payload) for h in te]
    assert [e.duration for e in evs] == [960, 1920, 2880, 3840, 4800, 4800, 4800, 4800]
    assert [e.end for e in evs] == [False] * 5 + [True] * 3
    assert {e.code for e in evs} == {7} and {e.volume for e in evs} == {10}
    assert [h.marker for h in te] == [True] + [False] * 7
    seqs = [h.seq for h in out if h is not None]
    assert seqs == list(range(1, len(seqs) + 1)) and chain.dtmf_events == 1
    # the audio after the event continues after its 4800 ticks, as rtpengine sends it
    resumed = [h for h in out if h is not None and h.pt == 96 and h.seq > te[-1].seq]
    assert resumed and resumed[0].ts == te[0].ts + 4800
    assert [b.ts - a.ts for a, b in zip(resumed, resumed[1:], strict=False)] == [960] * (
        len(resumed) - 1)


def test_a_passthrough_event_still_moves_onto_the_output_time_line() -> None:
    p = plan(PCMU, PCMA, inputs={101: TE8}, outputs={101: TE8}, passthrough=frozenset({101}))
    chain = Chain(p, 0x50, seq=0, ts=90000)
    out = [packet.parse(x) for x in run(chain, tone_packets(PCMU, 1000, 0.2) + events(1, 2600, 10))]
    te = [h for h in out if h is not None and h.pt == 101]
    assert {h.ts for h in te} == {90000 + 1600} and {h.ssrc for h in te} == {0x50}


@pytest.mark.parametrize("dst", [PCMA, OPUS])
def test_without_telephone_event_on_the_output_the_event_becomes_its_tone(dst: object) -> None:
    p = plan(PCMU, dst, inputs={101: TE8})  # type: ignore[arg-type]
    chain = Chain(p, 0x50, seq=0, ts=0)
    sent = tone_packets(PCMU, 1000, 0.2) + events(5, 2600, 10, count=10) + [
        packet.build(False, 0, 30 + i, 2600 + 1600 + 160 * i, 0x1234, b"\xff" * 160)
        for i in range(10)]  # fmt: skip
    out = run(chain, sent)
    assert {packet.parse(x).pt for x in out} == {chain.plan.encode_pt}  # type: ignore[union-attr]
    back = Chain(plan(dst, PCMU), 1)  # type: ignore[arg-type]
    pcm = decode(PCMU, run(back, out))
    digits = list(DtmfDetector().feed(pcm))
    assert digits == [("start", 5), ("end", 5)]
    tone = pcm_samples(pcm)[1600 + 400 : 1600 + 1200]
    rest = 100 * power(tone, 1000)
    assert power(tone, 770) > rest and power(tone, 1336) > rest


def test_detected_tones_become_telephone_events() -> None:
    p = plan(PCMU, PCMA, inputs={}, outputs={101: TE8}, dtmf_out_pt=101, inband_to_dtmf=True)
    chain = Chain(p, 0x50, seq=0, ts=0)
    pcm = bytes(3200) + tone_pcm(11, 10, 0, 2400, 8000) + bytes(3200)
    from relay.transcode.audio import Encoder
    from relay.transcode.codecs import lookup
    enc = Encoder(lookup("PCMU", 8000))  # type: ignore[arg-type]
    sent = [packet.build(i == 0, 0, i, 160 * i, 9, enc.encode(pcm[320 * i : 320 * (i + 1)]))
            for i in range(len(pcm) // 320)]  # fmt: skip
    out = [packet.parse(x) for x in run(chain, sent)]
    heads = [h for h in out if h is not None]
    te = [h for h in heads if h.pt == 101]
    evs = [parse_event(h.payload) for h in te]
    assert {e.code for e in evs} == {11} and [e.end for e in evs][-3:] == [True] * 3
    assert len({h.ts for h in te}) == 1 and te[0].marker
    assert 2000 <= evs[-1].duration <= 2600  # 300 ms of tone, less the detection delay
    ts = [h.ts for h in heads if h.pt == 8]
    assert all(b > a for a, b in zip(ts, ts[1:], strict=False)) and chain.dtmf_events == 1
    assert [h.seq for h in heads] == list(range(1, len(heads) + 1))


def test_an_event_whose_end_packets_are_lost_ends_when_audio_comes_from_past_it() -> None:
    chain = Chain(plan(PCMU, PCMA, inputs={101: TE8}), 0x50, seq=0, ts=0)
    sent = tone_packets(PCMU, 1000, 0.2) + events(5, 2600, 10, count=5)[:5]  # no end packets
    later = [packet.build(False, 0, 20 + i, 2600 + 800 + 160 * i, 0x1234, b"\x55" * 160)
             for i in range(10)]  # fmt: skip
    out = [h for h in map(packet.parse, run(chain, sent + later)) if h is not None]
    assert len(out) == 10 + 5 + 10  # the tone's 5 frames, then every audio packet
    assert [h.ts for h in out] == [160 * i for i in range(25)]
