"""Golden bytes of the two HEP types rtpvault adds to rtpengine's type 5: the QoS report (34)
and the ng trace (61). The expected packets are spelled out chunk by chunk from docs/spec/hep.md
§1.1-§1.2 and §2.4 (rtpengine's chunk order), independently of hep.codec."""

from __future__ import annotations

import json
import socket
import struct

from hep.codec import PROTO_NG_TRACE, PROTO_QOS_REPORT, HepPacket, decode, encode
from hep.qos import qos_report


def chunk(ctype: int, payload: bytes) -> bytes:
    return struct.pack("!HHH", 0, ctype, 6 + len(payload)) + payload


def expected(family: int, src: bytes, dst: bytes, sport: int, dport: int, sec: int, usec: int,
             proto: int, cid: int, corr: bytes, payload: bytes) -> bytes:  # fmt: skip
    v6 = family == socket.AF_INET6
    body = b"".join([
        chunk(0x01, bytes([family])), chunk(0x02, bytes([17])),
        chunk(0x07, struct.pack("!H", sport)), chunk(0x08, struct.pack("!H", dport)),
        chunk(0x09, struct.pack("!I", sec)), chunk(0x0A, struct.pack("!I", usec)),
        chunk(0x0B, bytes([proto])), chunk(0x0C, struct.pack("!I", cid)),
        chunk(0x05 if v6 else 0x03, src), chunk(0x06 if v6 else 0x04, dst),
        chunk(0x11, corr), chunk(0x0F, payload),
    ])  # fmt: skip
    return b"HEP3" + struct.pack("!H", 6 + len(body)) + body


QOS_SNAPSHOT = {"ssrc": 0xAAAA0001, "packets": 98, "bytes": 16856, "lost": 2, "loss_pct": 2.0,
                "out_of_order": 1, "duplicates": 0, "jitter_ms": 1.25, "max_jitter_ms": 3.5,
                "mos": 4.09, "payload_types": [8], "first": 1795584600.0,
                "last": 1795584610.0, "sampled": 98}  # fmt: skip
QOS_JSON = (
    b'{"CORRELATION_ID":"c1@example","RTP_SIP_CALL_ID":"c1@example","REPORT_TS":1795584610.5,'
    b'"TYPE":"HANGUP","SSRC":2863267841,"SRC_IP":"192.0.2.10","SRC_PORT":40000,'
    b'"DST_IP":"198.51.100.1","DST_PORT":30000,"CODEC_PT":8,"TOTAL_PK":98,"EXPECTED_PK":100,'
    b'"PACKET_LOSS":2,"LOSS_PCT":2.0,"OUT_ORDER":1,"DUPLICATES":0,"JITTER":1.25,'
    b'"MAX_JITTER":3.5,"MOS":4.09,"TL_BYTE":16856,"FIRST_TS":1795584600.0,'
    b'"LAST_TS":1795584610.0,"SAMPLED_PK":98,"PARTY":"ftag","REPORT_NAME":"rtpvault"}'
)


def test_qos_report_type_34_golden() -> None:
    payload = qos_report("c1@example", QOS_SNAPSHOT, ("192.0.2.10", 40000),
                         ("198.51.100.1", 30000), "HANGUP", 1795584610.5, "ftag")  # fmt: skip
    assert payload == QOS_JSON
    json.loads(payload)  # and it is JSON
    p = HepPacket(src_ip="192.0.2.10", dst_ip="198.51.100.1", src_port=40000, dst_port=30000,
                  ts_sec=1795584610, ts_usec=500000, proto_type=PROTO_QOS_REPORT, capture_id=2001,
                  payload=payload, correlation_id=b"c1@example")  # fmt: skip
    want = expected(socket.AF_INET, bytes([192, 0, 2, 10]), bytes([198, 51, 100, 1]), 40000,
                    30000, 1795584610, 500000, 34, 2001, b"c1@example", QOS_JSON)  # fmt: skip
    assert encode(p) == want
    assert want[:6].hex() == "48455033" + f"{len(want):04x}"
    assert decode(want) == p


NG_REQUEST = b"ng-request d7:call-id10:c1@example7:command5:offer3:sdp7:v=0\r\n\re"


def test_ng_trace_type_61_golden_ipv6() -> None:
    src, dst = "2001:db8::5", "2001:db8::1"
    p = HepPacket(src_ip=src, dst_ip=dst, src_port=5060, dst_port=2223, ts_sec=1795584610,
                  ts_usec=7, proto_type=PROTO_NG_TRACE, capture_id=0xFFFFFFFF,
                  payload=NG_REQUEST, correlation_id=b"c1@example")  # fmt: skip
    want = expected(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, src),
                    socket.inet_pton(socket.AF_INET6, dst), 5060, 2223, 1795584610, 7, 61,
                    0xFFFFFFFF, b"c1@example", NG_REQUEST)  # fmt: skip
    assert encode(p) == want
    # family 10, IPv6 address chunks of 22 bytes, protocol type 0x3d
    assert bytes.fromhex("000000010007" "0a") in want
    assert bytes.fromhex("00000005" "0016") + socket.inet_pton(socket.AF_INET6, src) in want
    assert bytes.fromhex("0000000b0007" "3d") in want


def test_negative_homer_id_is_sent_as_twos_complement() -> None:
    # rtpengine accepts a negative --homer-id and writes it as uint32 (docs/spec/hep.md §2.2)
    p = HepPacket(src_ip="127.0.0.1", dst_ip="127.0.0.1", src_port=1, dst_port=2, ts_sec=1,
                  ts_usec=0, proto_type=5, capture_id=-1, payload=b"{}",
                  correlation_id=b"c")  # fmt: skip
    assert bytes.fromhex("0000000c000a" "ffffffff") in encode(p)
