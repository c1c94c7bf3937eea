"""Bad input on both legs of a transcoded call (issue 19 item 3; ARCHITECTURE "bad input gives a
counted drop, never an exception out of the loop"): a PCMU-only A calls through rtpvault (two
workers) with `codec: {mask: [all], transcode: [X]}`, B answers X (PCMA, or Opus through PyAV).

Between two runs of good tones both ways, each party sends the relay what a broken or hostile
peer might: datagrams too short for RTP, headers whose CSRC count, extension or padding run past
the end, random bytes, payload types nobody negotiated, empty and one-byte payloads, a 60000-byte
payload, garbage the Opus decoder rejects, timestamp jumps, a new SSRC, and RTCP garbage
(truncated, lying lengths and counts, wrong version) on the RTCP port and muxed on the RTP port.

Then: the call goes on (tones at their pitch both ways, with the right payload types, under the
new SSRCs), `query` answers, no packet took the reader's catch-all (which logs "unexpected
error"), and the drops are counted: `rtpvault_transcode_packets_dropped_total` by cause.
"""

from __future__ import annotations

import os
import struct
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recorder.g711 import ALAW_TO_LINEAR
from tests.integration.media.test_transcoding import (
    Opus,
    _alaw_tone,
    _call_id,
    _connect,
    _drain,
    _metrics,
)
from tests.support.daemons import Daemon, start
from tests.support.rtp_party import Party, media_port, ng_sdp, party_sdp
from tests.support.tone import dominant_hz, ulaw_samples, ulaw_tone
from tests.support.tools import free_port

pytestmark = pytest.mark.integration

A_HZ, B_HZ = 440, 660
RTPMAP = {"PCMA": (8, "PCMA/8000", 160), "opus": (96, "opus/48000/2", 960)}


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    http = free_port()
    d = start("rtpvault", Path(tmp_path_factory.mktemp("tc-bad")), interface="lo/127.0.0.1",
              ports=40, num_threads=2,
              extra=["--delete-delay=0", f"--listen-http=127.0.0.1:{http}"])  # fmt: skip
    d.http_port = http  # type: ignore[attr-defined]
    try:
        yield d
    finally:
        d.stop()


def _rtp(seq: int, ssrc: int, pt: int, ts: int, payload: bytes, first: int = 0x80) -> bytes:
    return struct.pack("!BBHII", first, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def bad_rtp(ssrc: int, pt: int, seq: int, ts: int) -> list[bytes]:
    """What a broken peer sends on the RTP port (sequence and timestamp near `seq`, `ts`)."""
    good = _rtp(seq, ssrc, pt, ts, b"\xd5" * 160)
    return [
        b"",
        b"\x80",
        good[:11],
        b"\x8f" + good[1:12],  # 15 CSRCs announced, none there
        b"\x90" + good[1:12] + b"\xbe\xde\xff\xff",  # extension of 65535 words
        b"\xa0" + good[1:12] + b"\x01\x02\xff",  # 255 bytes of padding in a 3-byte payload
        b"\xa0" + good[1:12],  # padding bit, no payload at all
        os.urandom(200),
        b"\x00" + good[1:],  # RTP version 0
        _rtp(seq, ssrc, 96 if pt != 96 else 97, ts, os.urandom(160)),  # not negotiated
        _rtp(seq, ssrc, 127, ts, os.urandom(20)),
        _rtp(seq, ssrc, 13, ts, b"\x40"),  # CN, not negotiated
        _rtp(seq, ssrc, 101, ts, b"\x01"),  # telephone-event, not negotiated, truncated
        _rtp(seq, ssrc, pt, ts, b""),
        _rtp(seq, ssrc, pt, ts, b"\x00"),
        _rtp(seq, ssrc, pt, ts, os.urandom(7)),
        _rtp(seq, ssrc, pt, ts, os.urandom(60000)),  # one huge packet
        _rtp(seq, ssrc, pt, ts, os.urandom(1500)),
        _rtp(seq - 500, ssrc, pt, ts - 80000, b"\xd5" * 160),  # old
        _rtp(seq, ssrc, pt, ts + 0x80000000, b"\xd5" * 160),  # timestamp half a wrap away
        _rtp(seq, ssrc ^ 0xFFFF, pt, ts, os.urandom(160)),  # a stray SSRC
    ]


def bad_rtcp(ssrc: int) -> list[bytes]:
    """RTCP garbage: each starts like RTCP (second byte 192-223), so a muxed port sees RTCP."""
    sr = struct.pack("!BBHI", 0x80, 200, 6, ssrc) + bytes(20)
    return [
        b"\x80\xc8",
        b"\x80\xc8\x00\x01",
        sr[:8],
        struct.pack("!BBHI", 0x80, 200, 100, ssrc) + bytes(20),  # length past the end
        struct.pack("!BBHI", 0x9F, 201, 1, ssrc),  # RR announcing 31 blocks, none there
        struct.pack("!BBHI", 0x9F, 200, 6, ssrc) + bytes(20),  # SR announcing 31 blocks
        struct.pack("!BBHI", 0x81, 202, 2, ssrc) + b"\x01\xff\x00\x00",  # SDES item too long
        struct.pack("!BBH", 0x9F, 203, 0),  # BYE of 31 SSRCs, none there
        struct.pack("!BBHI", 0x80, 204, 1, ssrc),  # APP without a name
        struct.pack("!BBHI", 0x81, 205, 2, ssrc) + b"\x00\x00",  # RTPFB, truncated FCI
        sr + os.urandom(37),  # trailing garbage in the compound
        struct.pack("!BBHI", 0x40, 200, 6, ssrc) + bytes(20),  # version 1
        b"\x80\xc9" + os.urandom(300),
        b"\xa0\xc8\x00\x06" + struct.pack("!I", ssrc) + bytes(19) + b"\xff",  # padding 255
    ]


@pytest.mark.parametrize("codec", ["PCMA", "opus"])
def test_bad_input_on_both_legs_is_dropped_and_counted(relay: Daemon, codec: str) -> None:
    pt_b, _, b_step = RTPMAP[codec]
    call_id = _call_id(0)
    before = _metrics(relay, "cause")
    a, b = Party(timeout=2), Party(timeout=2)
    opus = Opus() if codec == "opus" else None
    try:
        _connect(relay, call_id, a, b, codec, {"codec": {"mask": ["all"], "transcode": [codec]}})

        def b_payload(n: int) -> bytes:
            if opus is not None:
                return opus.tone(B_HZ, n)
            return bytes(_alaw_tone(B_HZ, 160 * n))

        def talk(first: int, count: int, a_ssrc: int, b_ssrc: int) -> None:
            for n in range(first, first + count):
                a.send_rtp(_rtp(1000 + n, a_ssrc, 0, 160 * n, ulaw_tone(A_HZ, 160 * n)))
                b.send_rtp(_rtp(3000 + n, b_ssrc, pt_b, b_step * n, b_payload(n)))
                time.sleep(0.02)

        talk(0, 20, 0xA1, 0xB1)
        _drain(a), _drain(b)
        bad_a, bad_b = bad_rtp(0xA1, 0, 1020, 160 * 20), bad_rtp(0xB1, pt_b, 3020, b_step * 20)
        for n, (ga, gb) in enumerate(zip(bad_a, bad_b, strict=True)):
            a.send_rtp(ga)
            b.send_rtp(gb)
            if n % 4 == 0:
                time.sleep(0.01)
        garbage = bad_rtcp(0xA1) + bad_rtcp(0xB1)
        for g in garbage:
            a.send_rtcp(g)
            b.send_rtcp(g)
            a.send_rtp(g)  # RTCP muxed on the RTP port
            b.send_rtp(g)
        if opus is not None:  # bytes the Opus decoder cannot make sense of
            for n in range(5):
                b.send_rtp(
                    _rtp(3021 + n, 0xB1, pt_b, b_step * (21 + n), b"\xff" * 3 + os.urandom(40))
                )
        _drain(a), _drain(b)

        # new SSRCs, and the tones again: the call goes on
        talk(40, 40, 0xA2, 0xB2)
        to_b, to_a = _drain(b), _drain(a)
        query = relay.client().call({"command": "query", "call-id": call_id})
        assert query["result"] == "ok", query
    finally:
        a.close()
        b.close()
        relay.client().call({"command": "delete", "call-id": call_id})

    assert Counter(p[1] & 0x7F for p in to_b) == {pt_b: len(to_b)}, Counter(
        p[1] & 0x7F for p in to_b
    )
    assert Counter(p[1] & 0x7F for p in to_a) == {0: len(to_a)}
    assert len(to_b) >= 35 and len(to_a) >= 35, (len(to_b), len(to_a))
    if opus is not None:
        pcm = [s for p in to_b for s in opus.samples(p[12:])]
        assert dominant_hz(pcm[48000 // 10 :], rate=48000) == A_HZ
    else:
        assert dominant_hz([ALAW_TO_LINEAR[x] for p in to_b[5:] for x in p[12:]]) == A_HZ
    assert dominant_hz([s for p in to_a[5:] for s in ulaw_samples(p[12:])]) == B_HZ

    log = relay.log()
    assert "unexpected error" not in log and "Traceback" not in log, log[-5000:]
    after = _metrics(relay, "cause")
    dropped = {cause: after[("rtpvault_transcode_packets_dropped_total", cause)]
               - before.get(("rtpvault_transcode_packets_dropped_total", cause), 0)
               for cause in ("chain_error", "decode_error", "malformed", "late")}  # fmt: skip
    assert dropped["chain_error"] == 0, dropped
    assert dropped["malformed"] > 0, dropped
    if opus is not None:
        assert dropped["decode_error"] > 0, dropped


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_a_huge_datagram_is_read_as_rtpengine_reads_it(relay: Daemon, codec: str) -> None:
    """docs/spec/transcode-media.md §1: at most 8192 bytes of a datagram are read. Plain (B
    answers PCMU): B gets the first 8192 bytes of a 60000-byte packet. Transcoded (B answers
    PCMA): its 8180 bytes of PCMU make 51 packets of 20 ms (and a padded partial one), not
    the 375 the whole packet would (what rtpengine sends: 51)."""
    pt = {"PCMU": 0, "PCMA": 8}[codec]
    call_id = _call_id(1)
    a, b = Party(timeout=2), Party(timeout=2)
    try:
        body: dict[str, Any] = {"command": "offer", "call-id": call_id, "from-tag": "A",
                "sdp": party_sdp(a.port)}  # fmt: skip
        if codec != "PCMU":
            body["codec"] = {"mask": ["all"], "transcode": [codec]}
        b.peer = ("127.0.0.1", media_port(ng_sdp(relay, body)))
        bsdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                f"m=audio {b.port} RTP/AVP {pt}\r\na=rtpmap:{pt} {codec}/8000\r\n")  # fmt: skip
        answer = ng_sdp(relay, {"command": "answer", "call-id": call_id, "from-tag": "A",
                                "to-tag": "B", "sdp": bsdp})  # fmt: skip
        a.peer = ("127.0.0.1", media_port(answer))
        a.send_rtp(_rtp(1, 0xA1, 0, 0, ulaw_tone(A_HZ, 0)))
        a.send_rtp(_rtp(2, 0xA1, 0, 160, b"\xff" * 59988))
        got = _drain(b)
    finally:
        a.close()
        b.close()
        relay.client().call({"command": "delete", "call-id": call_id})
    if codec == "PCMU":
        assert [len(p) for p in got] == [172, 8192]
    else:
        assert {p[1] & 0x7F for p in got} == {8}
        assert 1 + 51 <= len(got) <= 1 + 52, len(got)
