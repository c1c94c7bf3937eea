"""HEPv3 codec and RTCP JSON: golden bytes from rtpengine 10.5 (docs/spec/hep.md §2.3), round trips,
and malformed input rejected with a message naming the defect."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hep.codec import HepError, HepPacket, decode, encode
from hep.qos import qos_report
from hep.rtcp import rtcp_json
from rtp.demux import is_rtcp

GOLDEN = bytes.fromhex(
    (Path(__file__).resolve().parents[2] / "fixtures" / "hep" / "rtpengine_sr_sdes.hex")
    .read_text().replace("\n", " ")
)  # fmt: skip

SR_SDES_JSON = (
    '{ "sender_information":{"ntp_timestamp_sec":4004573410,"ntp_timestamp_usec":724307968,'
    '"octets":1600,"rtp_timestamp":0, "packets":10},"ssrc":286331153,"type":200,"report_count":1,'
    '"report_blocks":[{"source_ssrc":572662306,"highest_seq_no":1010,"fraction_lost":5,'
    '"ia_jitter":42,"packets_lost":3,"lsr":305419896,"dlsr":16}],"sdes_report_count":1,'
    '"sdes_information": [ {"sdes_chunk_ssrc":286331153,"type":1,"text":"alice@example"}] }'
)
RR_JSON = (
    '{ "ssrc":572662306,"type":201,"report_count":1,"report_blocks":[{"source_ssrc":286331153,'
    '"highest_seq_no":2000,"fraction_lost":2,"ia_jitter":7,"packets_lost":1,"lsr":0,"dlsr":0}] }'
)


def sr_sdes() -> bytes:
    sr = struct.pack("!BBH", 0x81, 200, 12) + struct.pack(
        "!IIIIII", 0x11111111, 4004573410, 724307968, 0, 10, 1600
    ) + struct.pack("!IIIIII", 0x22222222, (5 << 24) | 3, 1010, 42, 305419896, 16)  # fmt: skip
    item = bytes([1, 13]) + b"alice@example"
    chunk = struct.pack("!I", 0x11111111) + item + b"\0"
    chunk += b"\0" * (-len(chunk) % 4)
    sdes = struct.pack("!BBH", 0x81, 202, len(chunk) // 4) + chunk
    return sr + sdes


def rr() -> bytes:
    return struct.pack("!BBHI", 0x81, 201, 7, 0x22222222) + struct.pack(
        "!IIIIII", 0x11111111, (2 << 24) | 1, 2000, 7, 0, 0)  # fmt: skip


def test_golden_packet_decodes_and_reencodes_byte_for_byte() -> None:
    p = decode(GOLDEN)
    assert (p.src_ip, p.src_port, p.dst_ip, p.dst_port) == ("127.0.0.1", 45401, "127.0.0.1", 45021)
    assert (p.ts_sec, p.ts_usec, p.proto_type, p.capture_id) == (1795584610, 168724, 5, 2001)
    assert p.correlation_id == b"hepspec-call-5605@127.0.0.1"
    assert encode(p) == GOLDEN


def test_rtcp_sr_sdes_json_is_rtpengines_text() -> None:
    assert rtcp_json(sr_sdes()) == SR_SDES_JSON
    assert decode(GOLDEN).payload.decode() == SR_SDES_JSON  # the payload of the captured packet


def test_rtcp_rr_json_is_rtpengines_text() -> None:
    assert rtcp_json(rr()) == RR_JSON


def test_whole_packet_from_parts_equals_rtpengines() -> None:
    p = HepPacket(src_ip="127.0.0.1", dst_ip="127.0.0.1", src_port=45401, dst_port=45021,
                  ts_sec=1795584610, ts_usec=168724, proto_type=5, capture_id=2001,
                  payload=rtcp_json(sr_sdes()).encode(),  # type: ignore[union-attr]
                  correlation_id=b"hepspec-call-5605@127.0.0.1")  # fmt: skip
    assert encode(p) == GOLDEN


def test_timestamp_is_network_byte_order() -> None:
    data = encode(decode(GOLDEN))
    i = data.index(struct.pack("!HHH", 0, 9, 10))
    assert struct.unpack("!I", data[i + 6 : i + 10])[0] == 1795584610  # 2026, not 2106


def test_ipv6_packet() -> None:
    p = HepPacket(src_ip="2001:db8::1", dst_ip="2001:db8::2", src_port=1, dst_port=2, ts_sec=3,
                  ts_usec=4, proto_type=34, capture_id=7, payload=b"{}",
                  correlation_id=b"c")  # fmt: skip
    data = encode(p)
    assert struct.pack("!HHH", 0, 5, 22) in data and decode(data).src_ip == "2001:db8::1"


def test_nothing_exportable_gives_none() -> None:
    bye = struct.pack("!BBHI", 0x81, 203, 1, 1)
    assert rtcp_json(bye) is None
    assert rtcp_json(b"\x00" * 12) is None


def test_mux_demultiplexing() -> None:
    assert is_rtcp(rr()) and is_rtcp(sr_sdes())
    assert not is_rtcp(struct.pack("!BBHII", 0x80, 0, 1, 160, 5) + b"\0" * 160)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"HEP", "shorter than the 6-byte"),
        (b"EEP1\x00\x06", "bad magic"),
        (GOLDEN[:100], "header says 560 bytes"),
        (b"HEP3\x00\x0c" + struct.pack("!HHH", 0, 1, 3), "bad length"),
        (b"HEP3\x00\x0d" + struct.pack("!HHH", 0, 1, 7) + b"\x02", "missing chunk"),
        (b"HEP3\x00\x0e" + struct.pack("!HHH", 0, 1, 8) + b"\x02\x02", "must carry 1 bytes"),
    ],
)
def test_malformed_input_is_rejected_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(HepError, match=message):
        decode(data)


@given(st.binary(max_size=300))
def test_decoder_never_fails_other_than_heperror(data: bytes) -> None:
    try:
        decode(data)
    except HepError:
        pass


@given(st.binary(max_size=300))
def test_rtcp_json_never_raises(data: bytes) -> None:
    rtcp_json(data)


addresses = st.one_of(
    st.tuples(st.ip_addresses(v=4), st.ip_addresses(v=4)),
    st.tuples(st.ip_addresses(v=6), st.ip_addresses(v=6)),
)


@given(addresses, st.integers(0, 65535), st.integers(0, 65535), st.integers(0, 2**32 - 1),
       st.integers(0, 999999), st.integers(0, 255), st.integers(0, 2**32 - 1),
       st.binary(max_size=2000), st.one_of(st.none(), st.binary(max_size=200)))  # fmt: skip
def test_round_trip(addrs, sport, dport, sec, usec, proto, cid, payload, corr) -> None:  # type: ignore[no-untyped-def]
    p = HepPacket(src_ip=str(addrs[0]), dst_ip=str(addrs[1]), src_port=sport, dst_port=dport,
                  ts_sec=sec, ts_usec=usec, proto_type=proto, capture_id=cid, payload=payload,
                  correlation_id=corr)  # fmt: skip
    assert decode(encode(p)) == p


def test_oversized_payload_is_refused() -> None:
    p = HepPacket(src_ip="127.0.0.1", dst_ip="127.0.0.1", src_port=1, dst_port=2, ts_sec=1,
                  ts_usec=0, proto_type=5, capture_id=1, payload=b"x" * 70000)  # fmt: skip
    with pytest.raises(HepError, match="exceeds the HEP maximum"):
        encode(p)


def test_qos_report_keys() -> None:
    import json

    snap = {"ssrc": 5, "packets": 98, "lost": 2, "loss_pct": 2.0, "jitter_ms": 1.5,
            "max_jitter_ms": 3.0, "mos": 4.2, "payload_types": [0], "bytes": 100}  # fmt: skip
    doc = json.loads(qos_report("cid", snap, ("192.0.2.1", 4000), ("198.51.100.1", 30000),
                                "HANGUP", 1.5))  # fmt: skip
    assert (doc["CORRELATION_ID"], doc["TYPE"], doc["TOTAL_PK"], doc["EXPECTED_PK"]) == \
        ("cid", "HANGUP", 98, 100)  # fmt: skip
    got = (doc["MOS"], doc["JITTER"], doc["SRC_PORT"], doc["DST_IP"])
    assert got == (4.2, 1.5, 4000, "198.51.100.1")


@given(st.integers(0, len(GOLDEN) - 1), st.integers(0, 255), st.integers(0, len(GOLDEN)))
def test_damaged_packet_decodes_or_raises_heperror(pos: int, value: int, cut: int) -> None:
    """Any byte of a real packet changed, then the packet cut short: never another exception."""
    data = bytearray(GOLDEN)
    data[pos] = value
    try:
        p = decode(bytes(data[:cut]))
    except HepError:
        return
    assert cut == len(GOLDEN) and p.proto_type in range(256)  # only a whole packet decodes


def test_unknown_chunks_are_kept_not_rejected() -> None:
    vendor_chunk = struct.pack("!HHH", 2, 0x99, 9) + b"abc"  # Kamailio vendor id
    generic_chunk = struct.pack("!HHH", 0, 0x13, 11) + b"node1"  # capture agent name
    body = GOLDEN[6:] + vendor_chunk + generic_chunk
    p = decode(b"HEP3" + struct.pack("!H", 6 + len(body)) + body)
    assert p.extra == {(2, 0x99): b"abc"} and p.agent_name == b"node1"
    assert p.correlation_id == b"hepspec-call-5605@127.0.0.1"
