"""rtp.reports: reception statistics and the compound report rtpengine 10.5 generates
(docs/spec/ng-protocol.md §8); golden bytes captured from rtpengine 10.5.3.5 with
`generate-RTCP`."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rtp.reports import ReceiveStats, SendStats, middle32, ntp, read_header, report
from rtp.rtcp import ReportBlock, SenderReport, SourceDescription, parse_compound

# Sent by rtpengine towards party A: SR for B's SSRC bbbb0002 (331 packets of 172 bytes
# forwarded to A), one block about A's SSRC aaaa0001 (LSR from A's last SR, DLSR 0.61 s), SDES
# with CNAME = rtpengine's 12-character instance id.
CAPTURED = bytes.fromhex(
    "81c8000cbbbb0002eec044cf6ebfdb4c0000cee00000014b0000de64"
    "aaaa0001000000000000014b0000000a44ce000000009c16"
    "81ca0005bbbb0002010c3762613934613132643630360000"
)


def test_report_rebuilds_rtpengines_bytes() -> None:
    block = ReportBlock(0xAAAA0001, 0, 0, 0x14B, 10, 0x44CE0000, 0x9C16)
    sent = SendStats(packets=331, octets=331 * 172, timestamp=331 * 160)
    got = report(0xBBBB0002, sent, (0xEEC044CF, 0x6EBFDB4C), [block], b"7ba94a12d606")
    assert got == CAPTURED


def test_report_parses_as_sr_then_sdes() -> None:
    sr, sdes = parse_compound(CAPTURED)
    assert isinstance(sr, SenderReport) and isinstance(sdes, SourceDescription)
    assert (sr.packets, sr.octets, len(sr.blocks)) == (331, 331 * 172, 1)
    assert sdes.chunks[0].items[0].text == b"7ba94a12d606"


def test_at_most_30_blocks() -> None:
    blocks = [ReportBlock(i, 0, 0, 0, 0, 0, 0) for i in range(40)]
    (sr, _) = parse_compound(report(1, SendStats(), (0, 0), blocks, b"x" * 12))
    assert isinstance(sr, SenderReport) and len(sr.blocks) == 30


def test_ntp_and_middle_bits() -> None:
    assert ntp(0.0) == (2208988800, 0)
    msw, lsw = ntp(1.5)
    assert msw == 2208988801 and abs(lsw - (1 << 31)) < 5000
    assert middle32(0xEEC044CE, 0x4CBAA582) == 0x44CE4CBA


def _feed(stats: ReceiveStats, seqs: list[int], step: float = 0.02) -> None:
    for i, seq in enumerate(seqs):
        stats.update(seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, i * step)


def test_losses_and_highest_sequence() -> None:
    s = ReceiveStats(0xA, 1)
    _feed(s, [n for n in range(1, 253) if n % 10])  # every 10th lost: 25 of 252
    b = s.block(10.0)
    assert (b.highest_seq, b.packets_lost, b.fraction_lost) == (252, 25, 25 * 256 // 252)


def test_wrap_counts_a_cycle() -> None:
    s = ReceiveStats(0xA, 65530)
    _feed(s, list(range(65530, 65546)))
    assert s.block(1.0).highest_seq == 65536 + 9 and s.lost == 0


def test_jitter_is_zero_for_a_paced_source_and_grows_with_variation() -> None:
    paced = ReceiveStats(0xA, 0)
    _feed(paced, list(range(50)))
    assert paced.block(1.0).jitter == 0
    shaky = ReceiveStats(0xA, 0)
    for i in range(50):
        shaky.update(i, i * 160, i * 0.02 + (0.005 if i % 2 else 0))
    assert shaky.block(1.0).jitter > 10


def test_lsr_and_dlsr() -> None:
    s = ReceiveStats(0xA, 0)
    _feed(s, [0, 1])
    assert (s.block(5.0).lsr, s.block(5.0).dlsr) == (0, 0)
    s.sender_report(0xEEC044CE, 0x4CBAA582, 2.0)
    b = s.block(2.5)
    assert (b.lsr, b.dlsr) == (0x44CE4CBA, 32768)


def test_read_header() -> None:
    assert read_header(bytes.fromhex("8000000100000a0000000bbb") + b"x") == (1, 0xA00, 0xBBB)
    assert read_header(b"\x40" + bytes(11)) is None and read_header(b"\x80") is None


@given(st.lists(st.integers(0, 0xFFFF), max_size=200), st.integers(0, 0xFFFF))
def test_any_sequence_gives_a_packable_block(seqs: list[int], first: int) -> None:
    s = ReceiveStats(7, first)
    _feed(s, [first, *seqs])
    b = s.block(100.0)
    assert 0 <= b.fraction_lost <= 255 and 0 <= b.packets_lost <= 0x7FFFFF
    (sr, _) = parse_compound(report(7, SendStats(), (0, 0), [b], b"c"))
    assert isinstance(sr, SenderReport) and sr.blocks == (b,)
