"""relay.transcode.inject: play DTMF into a transcoded direction's output, as measured from
rtpengine 10.5 (docs/spec/ng-protocol.md §9.4): RFC 4733 packets replacing audio (one start
timestamp, marker first, duration + one frame per packet, three end packets with length + one
frame, the next event at end + pause) or the tone in the audio, then silence for the pause."""

from __future__ import annotations

import struct

from recorder.g711 import encode_ulaw
from relay.transcode.dtmf import parse_event
from relay.transcode.inject import DtmfInjector
from tests.support.tone import power, ulaw_samples

SSRC = 0x773690DC


def audio(seq: int, ts: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, ts, SSRC) + b"\x55" * 160


def run(inj: DtmfInjector, first_seq: int, first_ts: int, count: int) -> list[bytes]:
    out: list[bytes] = []
    for n in range(count):
        out += inj.process(audio(first_seq + n, first_ts + 160 * n))
    return out


def header(p: bytes) -> tuple[bool, int, int, int]:
    _, pt_m, seq, ts, _ = struct.unpack_from("!BBHII", p)
    return bool(pt_m & 0x80), pt_m & 0x7F, seq, ts


def test_rfc_events_replace_audio_as_rtpengine() -> None:
    inj = DtmfInjector(0, 8000, 160, dtmf_pt=101)
    run(inj, 30, 4800, 2)  # audio before: the event starts at the next packet (ts 5120)
    inj.schedule(5, 12, 12, 300, 100)
    inj.schedule(11, 63, 15, 100, 100)
    out = run(inj, 32, 5120, 40)
    heads = [header(p) for p in out]
    assert [h[2] for h in heads] == list(range(32, 32 + len(out)))  # contiguous sequence
    five = [(h, parse_event(p[12:])) for h, p in zip(heads, out, strict=True)
            if h[1] == 101 and p[12] == 5]  # fmt: skip
    assert {h[3] for h, _ in five} == {5120} and [h[0] for h, _ in five] == [True] + [False] * 17
    assert [e.duration for _, e in five[:15]] == [160 * n for n in range(1, 16)]
    assert [(e.end, e.duration, e.volume) for _, e in five[15:]] == [(True, 2560, 12)] * 3
    pound = [(h, parse_event(p[12:])) for h, p in zip(heads, out, strict=True)
             if h[1] == 101 and p[12] == 11]  # fmt: skip
    assert {h[3] for h, _ in pound} == {5120 + 2400 + 800}  # end of the first + pause: 8320
    assert [(e.end, e.duration, e.volume) for _, e in pound][-3:] == [(True, 960, 63)] * 3
    assert len(pound) == 5 + 3 and pound[0][0][0]
    after = [h for h in heads if h[1] == 0 and h[3] > 8320]
    assert after and all(not h[0] for h in after)  # audio resumes


def test_inband_tone_then_silence_for_the_pause() -> None:
    encode = lambda pcm: bytes(  # noqa: E731 - a µ-law encoder stand-in for the chain's
        encode_ulaw(v) for v in struct.unpack(f"<{len(pcm) // 2}h", pcm))
    inj = DtmfInjector(0, 8000, 160, encode=encode)
    inj.schedule(5, 63, 12, 300, 100)  # queued before any output: starts at the first packet
    out = run(inj, 1, 1000, 30)
    assert [header(p)[2] for p in out] == list(range(1, 31)) and len(out) == 30
    tone = [ulaw_samples(p[12:]) for p in out[:15]]
    for s in tone:
        assert power(s, 770) > 20 * power(s, 1000) and power(s, 1336) > 20 * power(s, 1000)
    assert all(set(p[12:]) == {0xFF} for p in out[15:20])  # 100 ms pause: µ-law silence
    assert all(p[12:] == b"\x55" * 160 for p in out[20:])  # then the chain's audio again
    rms = (sum(x * x for x in tone[3]) / 160) ** 0.5
    assert 3800 < rms < 4400  # -12 dBm0 per tone, as rtpengine (RMS 4100 measured)


def test_other_payload_types_pass() -> None:
    inj = DtmfInjector(0, 8000, 160, dtmf_pt=101)
    rtcp_like = b"\x80\xc8\x00\x06" + bytes(24)
    assert inj.process(rtcp_like) == [rtcp_like]
    cn = struct.pack("!BBHII", 0x80, 13, 1, 0, SSRC) + b"\x40"
    assert inj.process(cn) == [cn]


def test_an_event_not_a_whole_number_of_frames_ends_one_frame_past_the_next_packet() -> None:
    inj = DtmfInjector(0, 8000, 160, dtmf_pt=101)
    run(inj, 1, 0, 1)
    inj.schedule(1, 63, 15, 250, 100)  # 2000 ticks: 12.5 frames
    out = run(inj, 2, 160, 20)
    ends = [parse_event(p[12:]) for p in out if header(p)[1] == 101 and p[13] & 0x80]
    assert [e.duration for e in ends] == [2240] * 3  # as rtpengine: 13 frames + 1
