"""RTCP from a party on a transcoded leg, rewritten for the other leg (rtp.translate), against
the bytes rtpengine 10.5 wrote in the same situation (docs/spec/transcoding.md §2)."""

from __future__ import annotations

from rtp.reports import ReceiveStats, SendStats
from rtp.translate import Translation, translate

A_IN, A_OUT = 0x11111111, 0x3F2376F8  # A's SSRC; what A's media leaves towards B with
B_IN, B_OUT = 0x22222222, 0x0855AC9D  # B's SSRC; what B's media leaves towards A with

A_SR = bytes.fromhex(
    "81c8000c11111111e000000080000000000030390000003200001f40"
    "0855ac9d010000020001000700000009abcdef010000004d"
    "81ca0003111111110103616263000000"
)
B_GOT = bytes.fromhex(  # what rtpengine 10.5 sent to B
    "81c8000c3f2376f8e00000008000000000028fa00000003200002198"
    "22222222000000000000080100000009abcdef010000004d"
    "81ca0003111111110103616263000000"
)


def _received(
    ssrc: int, first: int, count: int, skip: frozenset[int] = frozenset()
) -> ReceiveStats:
    st = ReceiveStats(ssrc, first)
    for n in range(count):
        if n not in skip:
            st.update(first + n, 160 * (first + n), n * 0.02)
    return st


def _t(b_received: ReceiveStats) -> Translation:
    return Translation({A_IN: A_OUT}, {A_OUT: SendStats(50, 50 * 172, 167840)},
                       {B_IN: B_OUT}, {B_IN: b_received})  # fmt: skip


def test_a_sender_report_becomes_what_rtpengine_sent() -> None:
    assert translate(A_SR, _t(_received(B_IN, 2000, 50))) == B_GOT


def test_report_blocks_carry_the_loss_rtpvault_measured() -> None:
    out = translate(A_SR, _t(_received(B_IN, 2000, 50, frozenset({10, 11}))))
    block = out[28:52]
    assert block[:4] == B_IN.to_bytes(4, "big")
    assert block[4] == 2 * 256 // 50  # fraction: lost / (received + lost)
    assert int.from_bytes(block[5:8], "big") == 2
    assert int.from_bytes(block[8:12], "big") == 2049


def test_a_receiver_report_maps_its_ssrc_and_blocks() -> None:
    rr = bytes.fromhex("81c90007222222223f2376f8020000030001000a0000000b0000000000000000")
    t = Translation({B_IN: B_OUT}, {}, {A_IN: A_OUT}, {A_IN: _received(A_IN, 1000, 50)})
    out = translate(rr, t)
    assert out == bytes.fromhex(
        "81c900070855ac9d11111111000000000000041900000" "00b0000000000000000"
    )


def test_unknown_ssrcs_and_other_packets_are_left_alone() -> None:
    t = Translation({}, {}, {}, {})
    assert translate(A_SR, t) is A_SR
    bye = bytes.fromhex("81cb000111111111")
    assert translate(bye, _t(_received(B_IN, 2000, 5))) is bye


def test_truncated_packets_do_not_raise() -> None:
    t = _t(_received(B_IN, 2000, 5))
    for n in range(len(A_SR)):
        translate(A_SR[:n], t)
    assert translate(b"\x81\xc8\xff\xff" + A_SR[4:], t) is not None
