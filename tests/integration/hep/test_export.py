"""HEP export of a running rtpvault, received by an independent HEP capture server."""

from __future__ import annotations

import json
import struct
import subprocess
import time
from pathlib import Path

from tests.integration.ops.test_ops import one, scrape
from tests.integration.recording.conftest import sidecars, wait_until
from tests.integration.recording.media import Call
from tests.support import daemons
from tests.support.hep_receiver import HepReceiver
from tests.support.tools import free_port, require


def rr(ssrc: int, about: int) -> bytes:
    return struct.pack("!BBHI", 0x81, 201, 7, ssrc) + struct.pack(
        "!IIIIII", about, 0, 1000, 7, 0, 0)  # fmt: skip


def test_rtcp_qos_and_ng_trace_reach_the_receiver(receiver: HepReceiver, tmp_path: Path) -> None:
    d = daemons.start("rtpvault", tmp_path, extra=[
        f"--homer=127.0.0.1:{receiver.port}", "--homer-id=2042", "--homer-qos-interval=1",
        f"--homer-ng=udp:127.0.0.1:{receiver.port}", "--delete-delay=0"])  # fmt: skip
    try:
        call = Call(d, "hep-call@192.0.2.7")
        call.offer()
        call.answer()
        caller_rtcp_port = call.caller.rtcp.getsockname()[1]
        call.media(20, rtcp=True)
        relay_rtcp = ("127.0.0.1", call.caller.relay_port + 1)
        call.caller.rtcp.sendto(rr(0xAAAA0001, 0xBBBB0002), relay_rtcp)
        call.received(call.callee, 20)
        assert receiver.wait(lambda rs: any(r.proto_type == 34 for r in rs))  # periodic QoS
        call.delete()
        call.close()
        assert receiver.wait(lambda rs: sum(r.proto_type == 34 and b'"HANGUP"' in r.payload
                                            for r in rs) >= 2)  # fmt: skip
        assert receiver.wait(lambda rs: sum(r.proto_type == 5 for r in rs) >= 3)
        assert receiver.wait(lambda rs: sum(r.proto_type == 61 for r in rs) >= 6)
    finally:
        d.stop()
    now = time.time()
    records = receiver.records
    assert receiver.errors == []
    assert {r.correlation_id for r in records} == {"hep-call@192.0.2.7"}
    assert {r.capture_id for r in records} == {2042}
    assert all(abs(r.ts - now) < 60 for r in records)
    rtcp = [r for r in records if r.proto_type == 5]
    # src = the endpoint's RTCP socket, dst = rtpvault's RTCP port facing it (as rtpengine)
    caller_rtcp = [r for r in rtcp if r.src[1] == caller_rtcp_port]
    assert caller_rtcp and caller_rtcp[0].dst == ("127.0.0.1", call.caller.relay_port + 1)
    assert any(r.payload.startswith(b'{ "ssrc":2863267841,"type":201') for r in rtcp)
    hangup = [json.loads(r.payload) for r in records
              if r.proto_type == 34 and b'"HANGUP"' in r.payload]  # fmt: skip
    by_ssrc = {h["SSRC"]: h for h in hangup}
    assert by_ssrc[0xAAAA0001]["TOTAL_PK"] == 20 and by_ssrc[0xAAAA0001]["PACKET_LOSS"] == 0
    assert by_ssrc[0xAAAA0001]["MOS"] > 4.0 and by_ssrc[0xAAAA0001]["CODEC_PT"] == 0
    ng = [r.payload.split(b" ", 1)[0] for r in records if r.proto_type == 61]
    assert ng.count(b"ng-request") == 3 and ng.count(b"ng-reply") == 3
    offer = next(r for r in records if r.proto_type == 61 and b"5:offer" in r.payload)
    assert b"m=audio" in offer.payload  # the SDP in


def test_receiver_down_keeps_relaying_and_recording_counts_drops_and_tcp_reconnects(
    tmp_path: Path,
) -> None:
    rx = HepReceiver()  # not started yet: nothing listens on its port
    http = free_port()
    spool = tmp_path / "spool"
    d = daemons.start("rtpvault", tmp_path / "run", extra=[
        f"--homer=127.0.0.1:{rx.port}", "--homer-protocol=tcp", f"--listen-http=127.0.0.1:{http}",
        f"--recording-dir={spool}", "--recording-format=eth", "--delete-delay=0"])  # fmt: skip
    try:
        call = Call(d, "hep-down")
        call.offer(**{"record-call": "yes"})
        call.answer()
        for _ in range(3):
            call.caller.rtcp.sendto(rr(1, 2), ("127.0.0.1", call.caller.relay_port + 1))
        call.media(10)
        # media flows both ways with the receiver down
        assert call.received(call.callee, 10) == 10 and call.received(call.caller, 10) == 10

        def dropped() -> float:
            return one(scrape(http), "rtpvault_hep_dropped_total")

        deadline = time.monotonic() + 10  # a bound on a stuck daemon, not a measurement
        while dropped() < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert dropped() >= 3
        rx.start()
        deadline = time.monotonic() + 15
        while not rx.records and time.monotonic() < deadline:
            call.caller.rtcp.sendto(rr(1, 2), ("127.0.0.1", call.caller.relay_port + 1))
            time.sleep(0.3)
        assert rx.records and rx.records[0].transport == "tcp"  # reconnected
        assert rx.records[0].correlation_id == "hep-down" and rx.records[0].proto_type == 5
        call.media(5, start=10)  # still relaying after the reconnect
        assert call.received(call.callee, 5) == 5
        call.delete()
        call.close()
        assert wait_until(lambda: len(sidecars(spool)) == 1
                          and sidecars(spool)[0]["status"] == "complete")  # fmt: skip
    finally:
        d.stop()
        rx.stop()
    # the recording has every RTP packet of both directions, HEP outage or not
    pcaps = list((spool / "pcaps").glob("*.pcap"))
    assert len(pcaps) == 1
    tshark = [require("tshark"), "-r", str(pcaps[0]), "-Y", "rtp", "-T", "fields", "-e", "rtp.ssrc"]
    for port in (call.caller.relay_port, call.callee.relay_port):
        tshark += ["-d", f"udp.port=={port},rtp"]
    rtp = subprocess.run(tshark, capture_output=True, text=True, check=True).stdout.split()
    assert rtp.count("0xaaaa0001") == 15 and rtp.count("0xbbbb0002") == 15


def test_hangup_report_covers_the_whole_stream(receiver: HepReceiver, tmp_path: Path) -> None:
    """QoS is analysed in 2 s windows, but FIRST_TS/LAST_TS of the hang-up report are the
    stream's first and last packet, here 3 s apart (media starting late, ending late)."""
    homer = f"--homer=127.0.0.1:{receiver.port}"
    d = daemons.start("rtpvault", tmp_path, extra=[homer, "--homer-qos-interval=60"])
    try:
        call = Call(d, "hep-span@192.0.2.7")
        call.offer()
        call.answer()
        time.sleep(2.5)  # longer than a window: the media starts after the first would close
        first_sent = time.time()
        call.media(3)
        call.relayed(3)
        first_done = time.time()
        time.sleep(3.0)
        last_sent = time.time()
        call.media(3, start=3)
        call.relayed(3)
        call.delete()
        call.close()
        assert receiver.wait(lambda rs: sum(r.proto_type == 34 and b'"HANGUP"' in r.payload
                                            for r in rs) >= 2)  # fmt: skip
    finally:
        d.stop()
    hangup = {h["SSRC"]: h for h in (json.loads(r.payload) for r in receiver.records
                                     if r.proto_type == 34)}  # fmt: skip
    for ssrc in (0xAAAA0001, 0xBBBB0002):
        report = hangup[ssrc]
        assert report["TYPE"] == "HANGUP" and report["TOTAL_PK"] == 6
        assert first_sent <= report["FIRST_TS"] <= first_done
        assert report["LAST_TS"] >= last_sent
        assert report["SAMPLED_PK"] >= 3  # the first window saw the media that started late
