"""relay.transcode.chain's RTP: passthrough and renumbering, the output time line under loss,
reordering, talkspurts and a new input SSRC, and bad input counted, never raised."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.transcode import packet
from relay.transcode.chain import Chain
from relay.transcode.plan import DirectionPlan
from tests.support.chains import G722, OPUS, PCMA, PCMU, plan, run, tone_packets


def heads(out: list[bytes]) -> list[packet.Rtp]:
    got = [packet.parse(p) for p in out]
    assert all(h is not None for h in got)
    return [h for h in got if h is not None]


def test_a_renumber_only_plan_rewrites_the_payload_type_and_nothing_else() -> None:
    p = DirectionPlan(inputs={0: PCMU, 101: PCMU}, outputs={0: PCMU, 100: PCMU},
                      passthrough=frozenset({0}), renumber={101: 100})  # fmt: skip
    chain = Chain(p, 5)
    a = packet.build(True, 0, 7, 1000, 0x42, b"\x01" * 160)
    b = packet.build(False, 101, 8, 1160, 0x42, b"\x02" * 160)
    assert chain.feed(a, 0.0) == [a]
    assert chain.feed(b, 0.02) == [b[:1] + bytes([100]) + b[2:]]
    assert chain.unknown_pt == 0 and chain.packets_out == 2


def test_while_transcoding_a_passthrough_type_gets_the_chains_ssrc_and_sequence() -> None:
    p = plan(PCMU, OPUS, inputs={8: PCMA}, outputs={8: PCMA}, passthrough=frozenset({8}))
    chain = Chain(p, 0x99, seq=10)
    out = heads(run(chain, tone_packets(PCMU, 1000, 0.1)))
    pa = packet.build(False, 8, 500, 123456, 0x1234, b"\xd5" * 160)
    (fwd,) = heads(chain.feed(pa, 1.0))
    assert (fwd.pt, fwd.ssrc, fwd.seq, fwd.ts, fwd.payload) == (
        8, 0x99, (out[-1].seq + 1) & 0xFFFF, 123456, b"\xd5" * 160)


def test_loss_is_filled_and_the_output_keeps_its_cadence() -> None:
    pkts = tone_packets(PCMU, 1000, 1.0)
    lost = [p for i, p in enumerate(pkts) if i not in (10, 11, 30)]
    chain = Chain(plan(PCMU, PCMA), 1, seq=0, ts=0)
    out = heads(run(chain, lost))
    assert [h.seq for h in out] == list(range(1, len(out) + 1))
    assert [h.ts for h in out] == [160 * i for i in range(len(out))]  # the gaps are in there
    assert len(out) == 50 and chain.filled == 3 * 160
    assert [h.marker for h in out].count(True) == 1


def test_reordered_and_duplicated_input_never_bunches_or_rewinds_the_output() -> None:
    pkts = tone_packets(PCMU, 1000, 0.4)
    order = pkts[:5] + [pkts[6], pkts[5], pkts[5]] + pkts[7:]
    chain = Chain(plan(PCMU, G722), 1, seq=0, ts=0)
    out = heads(run(chain, order))
    assert [h.seq for h in out] == list(range(1, len(out) + 1))
    ts = [h.ts for h in out]
    assert ts == sorted(set(ts)) and all(b - a == 160 for a, b in zip(ts, ts[1:], strict=False))
    assert chain.late == 2


def _renumbered(pkts: list[bytes], seq: int, ts: int) -> list[bytes]:
    """The same audio with sequence numbers from `seq` and timestamps from `ts`."""
    return [packet.build(False, h.pt, seq + i, ts + 160 * i, h.ssrc, h.payload)
            for i, h in enumerate(heads(pkts))]  # fmt: skip


def test_a_replayed_stream_is_dropped_while_its_numbers_are_in_rtpengines_window() -> None:
    """docs/spec/transcode-media.md §3: by sequence number, as rtpengine's sequencer. sipp
    plays the same pcap again after a re-INVITE: 50 or 80 packets back are duplicates (the
    timestamps, a second or more back, do not matter); 150 back is a restart and goes on."""
    for count, dropped in ((50, 50), (80, 80), (150, 0)):
        pkts = tone_packets(PCMU, 1000, count / 50)
        chain = Chain(plan(PCMU, PCMA), 1, seq=0, ts=0)
        first = run(chain, pkts)
        again = run(chain, pkts, start=count / 50 + 1)
        assert len(first) == count and len(again) == count - dropped, count
        assert chain.late == dropped


def test_numbers_going_back_with_time_going_on_are_duplicates() -> None:
    pkts = tone_packets(PCMU, 1000, 1.0)
    chain = Chain(plan(PCMU, PCMA), 1, seq=0, ts=0)
    assert len(run(chain, pkts)) == 50
    assert run(chain, _renumbered(pkts, 0, 1000 + 8000), start=1.0) == []  # seq 0-49 again
    assert chain.late == 50
    # a restart of the numbering (100 or more away) goes on, and so does the next SSRC
    assert len(run(chain, _renumbered(pkts, 5000, 1000 + 16000), start=2.0)) == 50
    assert len(run(chain, tone_packets(PCMU, 1000, 1.0, ssrc=0x99), start=3.0)) >= 49


def test_a_gap_filled_by_forwarded_packets_is_not_filled_with_silence() -> None:
    """DTMF events of a type the plan does not know are forwarded; the audio after them goes
    on without 200 ms of silence on top of the events (as rtpengine sends it)."""
    pkts = tone_packets(PCMU, 1000, 1.0)
    chain = Chain(plan(PCMU, PCMA), 1, seq=0, ts=0)
    before = heads(run(chain, pkts[:25]))
    events = [packet.build(i == 0, 101, 25 + i, 1000 + 160 * 25, 0x1234, b"\x01\x0a\x00\xa0")
              for i in range(10)]  # fmt: skip
    forwarded = heads(run(chain, events, start=0.5))
    after = heads(run(chain, pkts[35:], start=0.7))
    assert [h.pt for h in forwarded] == [101] * 10 and chain.unknown_pt == 10
    assert len(before) + len(after) == 40 and chain.filled == 0
    assert after[0].marker and after[0].ts - before[-1].ts == 160 * 11


def test_a_talkspurt_after_silence_moves_the_timestamp_on_with_a_marker() -> None:
    first = tone_packets(PCMU, 1000, 0.2)
    later = [packet.build(i == 0, 0, 10 + 50 + i, 1000 + 8000 * 3 + 160 * i, 0x1234,
                          packet.parse(p).payload)  # type: ignore[union-attr]
             for i, p in enumerate(tone_packets(PCMU, 1000, 0.2))]  # fmt: skip
    chain = Chain(plan(PCMU, OPUS), 1, seq=0, ts=0)
    out = heads(run(chain, first) + run(chain, later, start=3.2))
    ts = [h.ts for h in out]
    jumps = [(a, b) for a, b in zip(ts, ts[1:], strict=False) if b - a != 960]
    gap = 8000 * 3 - 160 * 10  # from the end of the first burst to the second, 8 kHz ticks
    assert len(jumps) == 1 and abs((jumps[0][1] - jumps[0][0]) - (960 + gap * 6)) <= 200
    assert [h.marker for h in out].count(True) == 2
    assert out[[h.ts for h in out].index(jumps[0][1])].marker


def test_a_new_input_ssrc_continues_the_same_output_stream() -> None:
    chain = Chain(plan(PCMU, PCMA), 0x77, seq=0, ts=0)
    a = run(chain, tone_packets(PCMU, 1000, 0.2, ssrc=1))
    b = run(chain, tone_packets(PCMU, 1000, 0.2, ssrc=2), start=0.2)
    out = heads(a + b)
    assert {h.ssrc for h in out} == {0x77}
    assert [h.seq for h in out] == list(range(1, len(out) + 1))
    ts = [h.ts for h in out]
    assert ts == sorted(set(ts))
    assert [h.marker for h in out].count(True) == 2


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0, 8, 9, 13, 96, 101, 127]), st.binary(max_size=200),
                          st.integers(0, 0xFFFFFFFF), st.booleans()), max_size=20),
       st.lists(st.binary(max_size=40), max_size=5))  # fmt: skip
def test_garbage_payloads_are_counted_not_raised(
    pkts: list[tuple[int, bytes, int, bool]], junk: list[bytes]
) -> None:
    te = PCMU.__class__("telephone-event", 8000)
    inputs = {8: PCMA, 9: G722, 96: OPUS, 13: PCMU.__class__("CN", 8000), 101: te}
    plans = [
        plan(PCMU, OPUS, inputs=inputs),
        plan(PCMU, G722, ptime=60, inputs=inputs, outputs={101: te, 13: inputs[13]},
             dtmf_out_pt=101, cn_out_pt=13, inband_to_dtmf=True),
        DirectionPlan(inputs={0: PCMU, 101: te}, outputs={0: PCMU, 100: te},
                      passthrough=frozenset({0}), renumber={101: 100}),
    ]  # fmt: skip
    for p in plans:
        chain = Chain(p, 3)
        for i, (pt, payload, ts, marker) in enumerate(pkts):
            for out in chain.feed(packet.build(marker, pt, i, ts, 0x55, payload), i * 0.02):
                assert packet.parse(out) is not None
        for j in junk:
            chain.feed(j, 1.0)
        assert chain.packets_in == len(pkts) + len(junk)
        assert chain.malformed <= len(junk)


CN = PCMU.__class__("CN", 8000)


def test_comfort_noise_is_forwarded_as_the_receivers_cn_on_our_time_line() -> None:
    p = plan(PCMU, PCMA, inputs={13: CN}, outputs={13: CN}, cn_out_pt=13)
    chain = Chain(p, 0x66, seq=0, ts=0)
    out = heads(run(chain, tone_packets(PCMU, 1000, 0.2)))
    cn = heads(chain.feed(packet.build(False, 13, 10, 1000 + 1600, 0x1234, b"\x40"), 0.2))
    assert [(h.pt, h.ssrc, h.ts, h.payload) for h in cn] == [(13, 0x66, 1600, b"\x40")]
    assert cn[0].seq == out[-1].seq + 1


def test_comfort_noise_without_cn_on_the_output_is_a_pause() -> None:
    p = plan(PCMU, PCMA, inputs={13: CN})
    chain = Chain(p, 0x66, seq=0, ts=0)
    first = heads(run(chain, tone_packets(PCMU, 1000, 0.2)))
    assert chain.feed(packet.build(False, 13, 10, 1000 + 1600, 0x1234, b"\x40"), 0.2) == []
    later = [packet.build(i == 0, 0, 20 + i, 1000 + 8000 + 160 * i, 0x1234, b"\xff" * 160)
             for i in range(5)]  # fmt: skip
    after = heads(run(chain, later, start=1.0))
    assert after[0].marker and after[0].ts == 8000  # one second after the first packet
    assert after[0].seq == first[-1].seq + 1


def test_by_default_the_output_starts_at_the_inputs_sequence_and_timestamp() -> None:
    # as rtpengine 10.5 on the wire: input PCMU seq 0, ts 1000 → Opus seq 0, ts 1000, +960
    chain = Chain(plan(PCMU, OPUS), 0x66)
    out = heads(run(chain, tone_packets(PCMU, 1000, 0.2)))
    assert [(h.seq, h.ts) for h in out[:3]] == [(0, 1000), (1, 1960), (2, 2920)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-3000, 40000), st.booleans(), st.floats(0, 2)),
                min_size=1, max_size=40),
       st.sampled_from([(PCMA, None), (G722, 60), (OPUS, 20)]))  # fmt: skip
def test_any_input_timing_gives_a_monotonic_gapless_sequence(
    steps: list[tuple[int, bool, float]], out: tuple[object, int | None]
) -> None:
    dst, ptime = out
    chain = Chain(plan(PCMU, dst, ptime=ptime), 1, seq=0xFFF0, ts=0xFFFFF000)  # type: ignore[arg-type]
    ts, now, got = 0, 0.0, []
    for i, (delta, marker, wait) in enumerate(steps):
        ts = (ts + delta) & 0xFFFFFFFF
        now += wait
        got += heads(chain.feed(packet.build(marker, 0, i, ts, 9, b"\x55" * 160), now))
    seqs = [h.seq for h in got]
    assert seqs == [(0xFFF1 + i) & 0xFFFF for i in range(len(got))]
    stamps = [h.ts for h in got]
    steps_out = [(b - a) & 0xFFFFFFFF for a, b in zip(stamps, stamps[1:], strict=False)]
    assert all(0 < d < 0x80000000 for d in steps_out)  # forwards, never back or repeated
