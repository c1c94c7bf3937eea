"""relay.transcode.dtx: rtpengine 10.5's DTX buffer as bookkeeping (docs/spec/config.md §2.9):
packets are handed over one per frame tick `delay` after arrival, a missing frame is a FILL,
max-dtx stops the fills on a whole-second boundary, overflow and underflow move the timer,
and the chain makes up the frame (Chain.conceal) on the output's time line."""

from __future__ import annotations

from relay.transcode import packet
from relay.transcode.chain import Chain
from relay.transcode.dtx import FILL, DtxBuffer, DtxSettings
from relay.transcode.options import ChainOptions
from tests.support.chains import PCMA, PCMU, decode, plan, tone_packets
from tests.support.tone import pcm_samples

PCMU_CLOCK = {0: 8000}.get


def _pcmu(seq: int, ts: int, ssrc: int = 0x1234) -> bytes:
    return packet.build(False, 0, seq & 0xFFFF, ts, ssrc, b"\x55" * 160)


def _run(buf: DtxBuffer, arrivals: list[tuple[float, bytes]], until: float) -> list[tuple]:
    """Push each packet at its arrival time, run the ticks; (tick time, seq or 'fill')."""
    out: list[tuple] = []
    pending = list(arrivals)
    while True:
        nxt = buf.next_at()
        if pending and (nxt is None or pending[0][0] <= nxt):
            t, p = pending.pop(0)
            assert buf.push(p, t)
            continue
        if nxt is None or nxt > until:
            return out
        for item in buf.due(nxt):
            out.append((round(nxt, 4), "fill" if item is FILL else
                        packet.parse(item).seq))  # type: ignore[union-attr]  # fmt: skip


def test_packets_leave_delay_later_and_a_pause_is_filled() -> None:
    buf = DtxBuffer(DtxSettings(delay=0.05, shift=0), PCMU_CLOCK)
    sent = [(100.0 + 0.02 * i, _pcmu(i, 160 * i)) for i in range(5)]
    sent += [(100.2 + 0.02 * i, _pcmu(5 + i, 160 * (10 + i))) for i in range(3)]  # 5 frames
    out = _run(buf, sent, 100.45)
    assert [what for _, what in out[:13]] == [0, 1, 2, 3, 4] + ["fill"] * 5 + [5, 6, 7]
    assert [t for t, _ in out[:3]] == [100.05, 100.07, 100.09]
    assert buf.fills == len([x for x in out if x[1] == "fill"])


def test_after_the_last_packet_fills_go_on_until_max_dtx_whole_seconds() -> None:
    buf = DtxBuffer(DtxSettings(delay=0.05, max_dtx=2, shift=0), PCMU_CLOCK)
    out = _run(buf, [(100.5, _pcmu(0, 0))], 110)
    # last push in second 100: fills while int(now) - 100 < 2, i.e. up to 101.99...
    assert out[0] == (100.55, 0) and {w for _, w in out[1:]} == {"fill"}
    assert 101.9 < out[-1][0] < 102.0 and buf.next_at() is None
    assert _run(buf, [(105.0, _pcmu(1, 160))], 105.06) == [(105.05, 1)]  # wakes up again


def test_no_limit_with_max_dtx_zero() -> None:
    buf = DtxBuffer(DtxSettings(delay=0.05, max_dtx=0, shift=0), PCMU_CLOCK)
    out = _run(buf, [(100.0, _pcmu(0, 0))], 140)
    assert len(out) > 1900 and buf.next_at() is not None


def test_overflow_speeds_the_timer_up_by_the_shift() -> None:
    s = DtxSettings(delay=0.05, max_packets=3, max_lag=0.04, shift=0.005)
    buf = DtxBuffer(s, PCMU_CLOCK)
    burst = [(100.0 + 0.001 * i, _pcmu(i, 160 * i)) for i in range(8)]  # all at once
    out = _run(buf, burst, 100.3)
    ticks = [t for t, _ in out]
    assert [w for _, w in out[:8]] == list(range(8)) and buf.shifts > 0
    # 7 packets held over 40 ms: the timer ticks 5 ms early while they overflow
    assert round(ticks[2] - ticks[1], 4) == 0.015 and round(ticks[8] - ticks[7], 4) == 0.02


def test_overflow_without_shift_drops_packets() -> None:
    s = DtxSettings(delay=0.05, max_packets=3, max_lag=0.04, shift=0)
    buf = DtxBuffer(s, PCMU_CLOCK)
    out = _run(buf, [(100.0 + 0.001 * i, _pcmu(i, 160 * i)) for i in range(8)], 100.3)
    assert buf.discarded > 0 and len([w for _, w in out if w != "fill"]) == 8 - buf.discarded


def test_a_new_ssrc_starts_again() -> None:
    buf = DtxBuffer(DtxSettings(delay=0.05, shift=0), PCMU_CLOCK)
    out = _run(buf, [(100.0, _pcmu(0, 0)), (100.02, _pcmu(9, 777777, ssrc=9))], 100.2)
    assert out[0] == (100.05, 0) or out[0] == (100.07, 9)
    assert (100.07, 9) in out and "fill" in {w for _, w in out}


def test_the_chain_makes_up_a_silent_frame_on_its_time_line() -> None:
    chain = Chain(plan(PCMU, PCMA), 0x50, seq=0, ts=0)
    got = [h for p in tone_packets(PCMU, 1000, 0.06) for h in map(packet.parse, chain.feed(p, 0))]
    fill = [packet.parse(p) for p in chain.conceal(0.1)]
    assert [h.ts for h in got] == [0, 160, 320]  # type: ignore[union-attr]
    assert len(fill) == 1 and fill[0] is not None and fill[0].ts == 480
    assert fill[0].payload == b"\xd5" * 160 and not fill[0].marker
    assert Chain(plan(PCMU, PCMA), 0x51).conceal(0.0) == []  # nothing before audio


def test_with_dtx_cn_params_the_made_up_frame_is_comfort_noise() -> None:
    chain = Chain(plan(PCMU, PCMA), 0x50, seq=0, ts=0, options=ChainOptions(dtx_noise=bytes([40])))
    for p in tone_packets(PCMU, 1000, 0.06):
        chain.feed(p, 0)
    fills = [packet.parse(p) for _ in range(5) for p in chain.conceal(0.1)]
    assert [h.ts for h in fills if h is not None] == [480, 640, 800, 960, 1120]
    noise = pcm_samples(decode(PCMA, [packet.build(False, 8, h.seq, h.ts, h.ssrc, h.payload)
                                      for h in fills if h is not None]))  # fmt: skip
    rms = (sum(x * x for x in noise) / len(noise)) ** 0.5
    assert len(set(noise)) > 20 and 50 < rms < 1000  # noise around -40 dBov, not silence
    print(f"dtx-cn-params=40: fill RMS {rms:.0f}")
