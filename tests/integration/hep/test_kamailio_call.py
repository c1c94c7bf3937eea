"""Issue 9 end to end: a Kamailio + sipp call through rtpvault, exported to Homer.

rtpvault's HEP goes to the independent HepReceiver, which forwards every datagram unchanged to
Kamailio's `sipcapture` (the real Homer 5 capture server, SQLite storage). The test sends one
RTCP receiver report from the caller's address while the call runs (sipp sends no RTCP) and
reads what each server stored: Kamailio's `rtcp_capture` row for it (rtpengine's JSON, type 5),
and in the receiver both directions' QoS reports (type 34) and the ng traces (type 61), all with
the SIP Call-ID as correlation id, the capture id, real addresses and a current timestamp.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.kamailio.rig import SipRig
from tests.integration.kamailio.sipcall import CallSpec
from tests.support.hep_receiver import HepReceiver, KamailioCapture

pytestmark = pytest.mark.integration

CALLER = "127.0.0.2"  # sipp's side of the call (tests/integration/kamailio/sipcall.py)
RR = struct.pack("!BBHI", 0x81, 201, 7, 0x5EED0001) + struct.pack(
    "!IIIIII", 0x5EED0002, (1 << 24) | 2, 70000, 9, 0, 0)  # fmt: skip
RR_JSON = (
    b'{ "ssrc":1592590337,"type":201,"report_count":1,"report_blocks":[{"source_ssrc":1592590338,'
    b'"highest_seq_no":70000,"fraction_lost":1,"ia_jitter":9,"packets_lost":2,"lsr":0,"dlsr":0}] }'
)


def rtcp_target(reply: bytes) -> tuple[str, int]:
    """rtpvault's RTCP address in the SDP of an ng reply (a=rtcp, else the RTP port + 1)."""
    addr = re.search(rb"c=IN IP4 (\S+)", reply)
    port = re.search(rb"m=audio (\d+)", reply)
    rtcp = re.search(rb"a=rtcp:(\d+)", reply)
    assert addr and port, reply
    return addr.group(1).decode(), int(rtcp.group(1)) if rtcp else int(port.group(1)) + 1


def send_rtcp_when_answered(rx: HepReceiver, sock: socket.socket, sent: list[tuple[str, int]],
                            stop: threading.Event) -> None:  # fmt: skip
    """Once the answer's ng reply is traced, send one RR to the caller-facing RTCP port."""
    while not stop.is_set():
        for r in list(rx.records):
            if r.proto_type == 61 and r.payload.startswith(b"ng-reply") and b"m=audio" in r.payload:
                request = [q for q in rx.records if q.proto_type == 61 and b"6:answer" in q.payload]
                if request:  # the answer's reply: its SDP goes to the caller
                    replies = [q for q in rx.records if q.proto_type == 61 and
                               q.payload.startswith(b"ng-reply") and
                               q.ts >= request[0].ts]  # fmt: skip
                    if replies:
                        target = rtcp_target(replies[0].payload)
                        sock.sendto(RR, target)
                        sent.append(target)
                        return
        time.sleep(0.01)


def test_kamailio_call_is_exported_to_homer(sip_rig: Callable[..., SipRig],
                                            tmp_path: Path) -> None:  # fmt: skip
    capture = KamailioCapture(tmp_path / "homer")
    capture.start()
    rx = HepReceiver(forward_to=("127.0.0.1", capture.port))
    rx.start()
    rtcp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtcp_sock.bind((CALLER, 0))
    endpoint = rtcp_sock.getsockname()
    sent: list[tuple[str, int]] = []
    stop = threading.Event()
    try:
        rig = sip_rig("rtpvault", relay_options={"extra": [
            f"--homer=127.0.0.1:{rx.port}", "--homer-id=2999", "--delete-delay=0"]})  # fmt: skip
        sender = threading.Thread(target=send_rtcp_when_answered,
                                  args=(rx, rtcp_sock, sent, stop), daemon=True)  # fmt: skip
        sender.start()
        result = rig.call(CallSpec(media=True, media_packets=20, media_tail_ms=1500))
        stop.set()
        sender.join(5)
        assert result.ok, result.describe() + rig.logs()
        call_id = result.call_ids[0]
        assert sent, "the answer's ng trace never arrived"
        assert rx.wait(lambda rs: sum(r.proto_type == 34 and b'"HANGUP"' in r.payload
                                      for r in rs) >= 2), rig.logs()  # fmt: skip
        rows = capture.wait_rows(1)
    finally:
        stop.set()
        rx.stop()
        capture.stop()
        rtcp_sock.close()
    now = time.time()
    # Kamailio sipcapture (Homer 5) stored the RTCP as rtpengine 10.5 would have sent it
    assert len(rows) == 1, capture.logs()
    row = rows[0]
    assert row["correlation_id"] == call_id
    assert (row["source_ip"], row["source_port"]) == endpoint
    assert (row["destination_ip"], row["destination_port"]) == sent[0]
    assert (row["proto"], row["family"], row["type"], row["node"]) == (1, 2, 3, "homer01:2999")
    assert abs(row["micro_ts"] / 1e6 - now) < 60  # network byte order: not 2106
    assert row["msg"] == RR_JSON
    # everything the receiver got: one call, one capture id, current timestamps
    assert rx.errors == []
    assert {r.correlation_id for r in rx.records} == {call_id}
    assert {r.capture_id for r in rx.records} == {2999}
    assert all(abs(r.ts - now) < 60 for r in rx.records)
    hangups = [json.loads(r.payload) for r in rx.records
               if r.proto_type == 34 and b'"HANGUP"' in r.payload]  # fmt: skip
    assert sorted(h["TOTAL_PK"] for h in hangups) == [20, 20]  # sipp's packets, both ways
    assert all(h["CODEC_PT"] == 8 and h["PACKET_LOSS"] == 0 for h in hangups)  # g711a.pcap
    assert all(h["MOS"] > 4.0 for h in hangups)
    qos = [r for r in rx.records if r.proto_type == 34]
    assert {r.src[0] for r in qos} == {CALLER}  # sipp's side of both legs
    assert {r.dst[0] for r in qos} == {"127.0.0.1"}  # rtpvault's media address
    rtcp = [r for r in rx.records if r.proto_type == 5]
    assert [(r.src, r.dst, r.payload) for r in rtcp] == [
        (endpoint, sent[0], RR_JSON)]  # fmt: skip
    traces = [r.payload.split(b" ", 1)[0] for r in rx.records if r.proto_type == 61]
    assert traces.count(b"ng-request") >= 3 and traces.count(b"ng-reply") >= 3
    offer = next(r for r in rx.records if r.proto_type == 61 and b"5:offer" in r.payload)
    assert b"m=audio" in offer.payload and offer.src[0] == "127.0.0.1"  # Kamailio → ng socket
