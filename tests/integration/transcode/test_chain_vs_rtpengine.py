"""relay.transcode.chain against rtpengine 10.5 on the same input (docs/spec/transcode-media.md
§3-§4): rtpengine relays a call on loopback with codec flags that make it transcode, the
parties send tones and telephone-events; the chain gets the same packets with the plan those
flags mean. Both outputs must agree in what a receiver hears or sees: the tone's pitch (SNR
printed for both), telephone-events (code, volume, marker, three end packets) detected from
an in-band tone, and an event turned into a tone a detector finds, at rtpengine's level.
No timing is asserted.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.transcode import packet
from relay.transcode.chain import Chain
from relay.transcode.detect import DtmfDetector
from relay.transcode.dtmf import Event, build_event, parse_event, tone_pcm
from relay.transcode.plan import DirectionPlan
from tests.support.chains import OPUS, PCMU, TE8, decode, plan, run, tone_packets
from tests.support.daemons import Daemon, start
from tests.support.rtp_party import Party, media_port, ng_sdp
from tests.support.tone import dominant_hz, pcm_samples, snr_db

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rtpengine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start("rtpengine", Path(tmp_path_factory.mktemp("tc-rtpengine")),
              interface="lo/127.0.0.1", ports=40)  # fmt: skip
    try:
        yield d
    finally:
        d.stop()


def _sdp(port: int, pts: str, maps: str) -> str:
    return ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP {pts}\r\n{maps}a=sendrecv\r\n")  # fmt: skip


def _drain(p: Party, into: list[bytes]) -> None:
    try:
        while True:
            into.append(p.rtp.recv(4096))
    except BlockingIOError:
        pass


def _call(d: Daemon, offer: tuple[str, str], flags: dict[str, object], answer: tuple[str, str],
          from_a: list[bytes], from_b: list[bytes]) -> tuple[list[bytes], list[bytes]]:  # fmt: skip
    """One call through rtpengine; (what A received, what B received)."""
    a, b = Party(timeout=0.5), Party(timeout=0.5)
    cid = f"tc-{time.monotonic_ns()}"
    out = ng_sdp(d, {"command": "offer", "call-id": cid, "from-tag": "a",
                     "sdp": _sdp(a.port, *offer), **flags})  # fmt: skip
    b.peer = ("127.0.0.1", media_port(out))
    back = ng_sdp(d, {"command": "answer", "call-id": cid, "from-tag": "a", "to-tag": "b",
                      "sdp": _sdp(b.port, *answer)})  # fmt: skip
    a.peer = ("127.0.0.1", media_port(back))
    got_a: list[bytes] = []
    got_b: list[bytes] = []
    for s in (a.rtp, b.rtp):
        s.setblocking(False)
    for i in range(max(len(from_a), len(from_b))):
        if i < len(from_a):
            a.send_rtp(from_a[i])
        if i < len(from_b):
            b.send_rtp(from_b[i])
        time.sleep(0.02)
        _drain(a, got_a)
        _drain(b, got_b)
    time.sleep(0.3)
    _drain(a, got_a)
    _drain(b, got_b)
    d.client().call({"command": "delete", "call-id": cid, "from-tag": "a"})
    a.close()
    b.close()
    return got_a, got_b


def _silence_from(ssrc: int, pt: int, n: int) -> list[bytes]:
    """Keep-alive packets so the relay learns the party's address."""
    return [packet.build(False, pt, i, i * 160, ssrc, b"\xff" * 160) for i in range(n)]


def _pcmu(pcm: bytes, ssrc: int, ts0: int) -> list[bytes]:
    from relay.transcode.audio import Encoder
    from relay.transcode.codecs import lookup

    enc = Encoder(lookup("PCMU", 8000))  # type: ignore[arg-type]
    frames = [pcm[320 * i : 320 * i + 320] for i in range(len(pcm) // 320)]
    return [packet.build(i == 0, 0, i, ts0 + 160 * i, ssrc, enc.encode(f))
            for i, f in enumerate(frames)]  # fmt: skip


def test_pcmu_to_opus_keeps_the_tone_like_rtpengine(rtpengine: Daemon) -> None:
    sent = tone_packets(PCMU, 1000, 2.0)
    _, got = _call(rtpengine, ("0", "a=rtpmap:0 PCMU/8000\r\n"), {"codec": {"transcode": ["opus"]}},
                   ("96", "a=rtpmap:96 opus/48000/2\r\n"), sent, _silence_from(7, 96, 100))
    theirs = [p for p in got if (h := packet.parse(p)) is not None and h.pt == 96]
    ours = run(Chain(plan(PCMU, OPUS), 0x99), sent)
    figures = {}
    for who, pkts in (("rtpengine", theirs), ("rtpvault", ours)):
        # from 0.75 s: rtpengine's libopus starts in SILK/hybrid mode (15-16 dB) and moves
        # to CELT (40 dB) after about half a second
        samples = pcm_samples(decode(OPUS, pkts))[6000:14000]
        assert dominant_hz(samples[:1600]) == 1000, who
        figures[who] = snr_db(samples, 1000)
    print(f"PCMU→opus 1 kHz SNR dB: {figures}")
    assert figures["rtpvault"] > figures["rtpengine"] - 6  # measured: 40.6 and 38-39 dB


def test_an_in_band_tone_becomes_telephone_events_as_rtpengine_sends_them(
    rtpengine: Daemon,
) -> None:
    pcm = bytes(3200) + tone_pcm(4, 10, 0, 2400, 8000) + bytes(8000)
    from_a = _pcmu(pcm, 0xA, 7000)
    _, theirs = _call(rtpengine, ("0", "a=rtpmap:0 PCMU/8000\r\n"),
                      {"codec": {"transcode": ["telephone-event"]}},
                      ("0 96", "a=rtpmap:0 PCMU/8000\r\na=rtpmap:96 telephone-event/8000\r\n"),
                      from_a, _silence_from(0xB, 0, 40))  # fmt: skip
    p = DirectionPlan(inputs={0: PCMU}, outputs={0: PCMU, 96: TE8}, encode_pt=0, dtmf_out_pt=96,
                      inband_to_dtmf=True)  # fmt: skip
    ours = run(Chain(p, 0x99), from_a)
    for who, pkts in (("rtpengine", theirs), ("rtpvault", ours)):
        heads = [h for h in map(packet.parse, pkts) if h is not None]
        te = [h for h in heads if h.pt == 96]
        evs = [parse_event(h.payload) for h in te]
        assert {(e.code, e.volume) for e in evs} == {(4, 10)}, who
        assert [e.end for e in evs][-3:] == [True] * 3 and not any(e.end for e in evs[:-3]), who
        assert [h.marker for h in te] == [True] + [False] * (len(te) - 1), who
        assert len({h.ts for h in te}) == 1, who
        assert 2000 <= evs[-1].duration <= 2800, who  # the tone is 2400 samples long
        seqs = [h.seq for h in heads]
        assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False)), who


def test_telephone_events_become_a_tone_at_rtpengines_level(rtpengine: Daemon) -> None:
    from_b = _pcmu(bytes(3200), 0xB, 5000)
    from_b += [packet.build(i == 0, 96, 10 + i, 5000 + 1600, 0xB,
                            build_event(Event(9, i >= 10, 10, 160 * min(i + 1, 10))))
               for i in range(13)]  # fmt: skip
    from_b += [packet.build(False, 0, 23 + i, 5000 + 3200 + 160 * i, 0xB, b"\xff" * 160)
               for i in range(20)]  # fmt: skip
    theirs, _ = _call(rtpengine, ("0", "a=rtpmap:0 PCMU/8000\r\n"),
                      {"codec": {"transcode": ["telephone-event"]}},
                      ("0 96", "a=rtpmap:0 PCMU/8000\r\na=rtpmap:96 telephone-event/8000\r\n"),
                      _silence_from(0xA, 0, 45), from_b)  # fmt: skip
    p = DirectionPlan(inputs={0: PCMU, 96: TE8}, outputs={0: PCMU}, encode_pt=0)
    ours = run(Chain(p, 0x99), from_b)
    peaks = {}
    for who, pkts in (("rtpengine", theirs), ("rtpvault", ours)):
        assert {packet.parse(x).pt for x in pkts} == {0}, who  # type: ignore[union-attr]
        pcm = decode(PCMU, pkts)
        assert list(DtmfDetector().feed(pcm)) == [("start", 9), ("end", 9)], who
        samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
        peaks[who] = max(abs(v) for v in samples[1600 + 400 : 1600 + 1200])
    print(f"event → tone peak: {peaks}")
    assert abs(peaks["rtpvault"] - peaks["rtpengine"]) < 0.1 * peaks["rtpengine"]


def test_the_output_stream_where_rtpengine_and_rtpvault_differ(rtpengine: Daemon) -> None:
    """docs/spec/transcode-media.md §2-§3: the same input with loss and a swap, both relays."""
    pk = tone_packets(PCMU, 1000, 1.0)
    pk = [p for i, p in enumerate(pk) if i not in (10, 11, 30)]
    pk = pk[:20] + [pk[21], pk[20]] + pk[22:]  # input seq 22 before 21
    _, got = _call(rtpengine, ("0", "a=rtpmap:0 PCMU/8000\r\n"), {"codec": {"transcode": ["opus"]}},
                   ("96", "a=rtpmap:96 opus/48000/2\r\na=fmtp:96 stereo=0\r\n"), pk,
                   _silence_from(7, 96, 50))  # fmt: skip
    theirs = [h for h in map(packet.parse, got) if h is not None and h.pt == 96]
    # rtpengine: input's first seq and ts, no marker, stereo despite stereo=0, sequence numbers
    # follow the input's (a gap where input was lost), timestamps contiguous (+960) regardless
    assert (theirs[0].seq, theirs[0].ts, theirs[0].marker) == (0, 1000, False)
    assert all(h.payload[0] & 0x04 for h in theirs)
    seq_steps = {(b.seq - a.seq) & 0xFFFF for a, b in zip(theirs, theirs[1:], strict=False)}
    assert seq_steps == {1, 2, 3}  # 8 → 11 after two lost, a step of 2 after one
    assert {(b.ts - a.ts) & 0xFFFFFFFF for a, b in zip(theirs, theirs[1:], strict=False)} == {960}
    # rtpvault: same start, marker set, mono, consecutive sequence, the loss kept in the time
    ours = [h for h in map(packet.parse, run(Chain(plan(PCMU, OPUS), 1), pk)) if h is not None]
    assert (ours[0].seq, ours[0].ts, ours[0].marker) == (0, 1000, True)
    assert not any(h.payload[0] & 0x04 for h in ours)
    assert [h.seq for h in ours] == list(range(len(ours)))
    assert {(b.ts - a.ts) & 0xFFFFFFFF for a, b in zip(ours, ours[1:], strict=False)} == {960}
    assert len(ours) == 49  # 50 frames of time (3 lost filled, the swapped late one too) less
    # the frame libopus' delay still holds


def test_g722_runs_on_an_8000_clock_in_both(rtpengine: Daemon) -> None:
    from tests.support.chains import G722

    sent = tone_packets(PCMU, 1000, 0.6)
    _, got = _call(rtpengine, ("0", "a=rtpmap:0 PCMU/8000\r\n"), {"codec": {"transcode": ["G722"]}},
                   ("9", "a=rtpmap:9 G722/8000\r\n"), sent, _silence_from(7, 9, 30))  # fmt: skip
    theirs = [h for h in map(packet.parse, got) if h is not None and h.pt == 9]
    ours = [h for h in map(packet.parse, run(Chain(plan(PCMU, G722), 1), sent)) if h is not None]
    for who, heads in (("rtpengine", theirs), ("rtpvault", ours)):
        assert {(b.ts - a.ts) & 0xFFFFFFFF for a, b in zip(heads, heads[1:], strict=False)} == {160}
        assert {len(h.payload) for h in heads} == {160}, who  # 320 samples at 16 kHz, 4 bits
        rebuilt = [packet.build(False, 9, i, 0, 1, h.payload) for i, h in enumerate(heads)]
        pcm = decode(G722, rebuilt)
        assert dominant_hz(pcm_samples(pcm)[1600:3200]) == 1000, who


def test_telephone_events_renumbered_to_48_khz_in_both(rtpengine: Daemon) -> None:
    from tests.support.chains import TE48

    sent = tone_packets(PCMU, 1000, 0.2)
    sent += [packet.build(i == 0, 101, 10 + i, 2600, 0x1234,
                          build_event(Event(7, i >= 5, 10, 160 * min(i + 1, 5))))
             for i in range(8)]  # fmt: skip
    sent += [packet.build(False, 0, 18 + i, 3400 + 160 * i, 0x1234, b"\xff" * 160)
             for i in range(10)]  # fmt: skip
    offer = ("0 101", "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n")
    _, got = _call(rtpengine, offer,
                   {"codec": {"transcode": ["opus"], "mask": ["PCMU"]}},
                   ("96 97", "a=rtpmap:96 opus/48000/2\r\na=rtpmap:97 telephone-event/48000\r\n"),
                   sent, _silence_from(7, 96, 30))  # fmt: skip
    p = plan(PCMU, OPUS, inputs={101: TE8}, outputs={97: TE48}, dtmf_out_pt=97)
    ours = run(Chain(p, 1), sent)
    for who, pkts in (("rtpengine", got), ("rtpvault", ours)):
        heads = [h for h in map(packet.parse, pkts) if h is not None]
        te = [h for h in heads if h.pt == 97]
        evs = [parse_event(h.payload) for h in te]
        assert [e.duration for e in evs] == [960, 1920, 2880, 3840, 4800] + [4800] * 3, who
        assert [e.end for e in evs] == [False] * 5 + [True] * 3, who
        assert [h.marker for h in te] == [True] + [False] * 7, who
        assert len({h.ts for h in te}) == 1, who
        audio = [h for h in heads if h.pt == 96]
        before = [h.ts for h in audio if h.seq < te[0].seq]
        after = [h.ts for h in audio if h.seq > te[-1].seq]
        # the event sits where the audio stood, the audio after it past its duration
        assert before[-1] < te[0].ts <= before[-1] + 960 + 100, who
        assert after[0] >= te[0].ts + 4800, who
