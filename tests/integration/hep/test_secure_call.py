"""A recorded call with an SDES leg through a real rtpvault daemon with `homer=` configured:
Homer (an independent HEP receiver) gets the RTCP of both parties as rtpengine's JSON (type 5)
decoded from the decrypted packets, and QoS reports (type 34) from the decrypted RTP; the
recording, exported as WAV by the `rtpvault export` CLI, holds both tones.

A is a plain phone (RTP on P, RTCP on P+1); B speaks SDES (RTP/SAVP) with RTCP muxed on its one
port (`rtcp-mux` require towards it), keyed only from the SDP (pylibsrtp).
"""

from __future__ import annotations

import array
import base64
import json
import math
import os
import struct
import time
import wave
from pathlib import Path

import pylibsrtp
import pytest
from click.testing import CliRunner

from recorder.g711 import encode_ulaw
from rtpvault.cli import cli
from tests.integration.test_webrtc_media import dominant
from tests.support import daemons
from tests.support.hep_receiver import HepReceiver
from tests.support.rtp_party import Party, media_port, ng_sdp, party_sdp
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration

CALL_ID = "sdes-homer@192.0.2.9"
SSRC_A, SSRC_B = 0xAAAA0001, 0xBBBB0002
TONE_A, TONE_B = 500, 1000
PACKETS = 60
COUNT_A, COUNT_B = 111_111, 222_222
"""Packet counts in each party's SRs: Homer's JSON must show them (decrypted for B)."""


def _tone(freq: int, i: int) -> bytes:
    return bytes(encode_ulaw(int(8000 * math.sin(2 * math.pi * freq * (i * 160 + n) / 8000)))
                 for n in range(160))  # fmt: skip


def _sr(ssrc: int, count: int, i: int) -> bytes:
    return struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, 0xEEC00000 + i, 0, i * 160, count,
                       i * 172)  # fmt: skip


def _session(key: bytes, outbound: bool) -> pylibsrtp.Session:
    kind = pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND
    return pylibsrtp.Session(policy=pylibsrtp.Policy(key=key, ssrc_type=kind))


def _crypto_line(sdp: str) -> tuple[int, bytes]:
    line = next(v for v in sdp.split("\r\n") if v.startswith("a=crypto:")
                and " AES_CM_128_HMAC_SHA1_80 " in v)  # fmt: skip
    tag = int(line[len("a=crypto:") :].split()[0])
    return tag, base64.b64decode(line.split("inline:")[1].split()[0].split("|")[0])


def _wav_tones(path: Path) -> tuple[int, int]:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
        frames = array.array("h", w.readframes(w.getnframes()))
    left, right = list(frames[0::2]), list(frames[1::2])
    return dominant(left[-1600:]), dominant(right[-1600:])


def test_sdes_call_to_homer_and_wav(receiver: HepReceiver, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    d = daemons.start("rtpvault", tmp_path / "run", interface="lo/127.0.0.1", extra=[
        f"--recording-dir={spool}", "--recording-format=raw", "--delete-delay=0",
        f"--homer=127.0.0.1:{receiver.port}", "--homer-qos-interval=1"])  # fmt: skip
    a, b = Party(), Party()
    b_port = b.port
    key_b = os.urandom(30)
    try:
        base = {"call-id": CALL_ID, "from-tag": "phone"}
        offer = ng_sdp(d, {**base, "command": "offer", "sdp": party_sdp(a.port),
                           "record-call": "yes", "transport-protocol": "RTP/SAVP",
                           "rtcp-mux": ["require"], "DTLS": "off"})  # fmt: skip
        tag, key_to_b = _crypto_line(offer)
        line = f"a=crypto:{tag} AES_CM_128_HMAC_SHA1_80 inline:{base64.b64encode(key_b).decode()}"
        answer = ng_sdp(d, {**base, "command": "answer", "to-tag": "sdes", "sdp": party_sdp(
            b.port, "RTP/SAVP", f"a=rtcp-mux\r\n{line}\r\n")})  # fmt: skip
        a.peer, b.peer = ("127.0.0.1", media_port(answer)), ("127.0.0.1", media_port(offer))
        tx_b, rx_b = _session(key_b, outbound=True), _session(key_to_b, outbound=False)
        got_a_rtcp = got_b_rtcp = 0
        for s in (a.rtp, a.rtcp, b.rtp):
            s.setblocking(False)
        for i in range(PACKETS):
            a.send_rtp(struct.pack("!BBHII", 0x80, 0, i, i * 160, SSRC_A) + _tone(TONE_A, i))
            b.send_rtp(tx_b.protect(struct.pack("!BBHII", 0x80, 0, i, i * 160, SSRC_B)
                                    + _tone(TONE_B, i)))  # fmt: skip
            if i % 10 == 5:
                a.send_rtcp(_sr(SSRC_A, COUNT_A, i))
                b.send_rtp(tx_b.protect_rtcp(_sr(SSRC_B, COUNT_B, i)))
            time.sleep(0.02)
            for sock in (a.rtcp, b.rtp):
                while True:
                    try:
                        data = sock.recv(2048)
                    except BlockingIOError:
                        break
                    if sock is a.rtcp:
                        got_a_rtcp += data[1] == 200 and data[20:24] == struct.pack("!I", COUNT_B)
                    elif 192 <= data[1] <= 223:
                        got_b_rtcp += rx_b.unprotect_rtcp(data)[20:24] == struct.pack(
                            "!I", COUNT_A)  # fmt: skip
        assert got_a_rtcp and got_b_rtcp  # RTCP crossed both ways (docs/spec/sdp.md §4.1)
        assert receiver.wait(lambda rs: any(r.proto_type == 34 for r in rs))  # periodic QoS
        c = d.client()
        c.call({"command": "delete", **base})
        c.close()
        assert receiver.wait(lambda rs: sum(r.proto_type == 34 and b'"HANGUP"' in r.payload
                                            for r in rs) >= 2)  # fmt: skip
        assert wait_for(lambda: list((spool / "sidecars").glob("*.json")), 10)
    finally:
        d.stop()
        a.close()
        b.close()
    assert receiver.errors == []
    records = [r for r in receiver.records if r.correlation_id == CALL_ID]
    rtcp = [json.loads(r.payload) for r in records if r.proto_type == 5]
    # docs/spec/hep.md §2.5: the SR's sender information, from B's decrypted SRTCP too
    by_ssrc = {j["ssrc"]: j for j in rtcp if j.get("type") == 200}
    assert by_ssrc[SSRC_A]["sender_information"]["packets"] == COUNT_A
    assert by_ssrc[SSRC_B]["sender_information"]["packets"] == COUNT_B
    b_rtcp = [r for r in records if r.proto_type == 5 and r.src[1] == b_port]
    assert b_rtcp and b_rtcp[0].dst == ("127.0.0.1", b.peer[1])  # arrived muxed on B's port
    hangup = {h["SSRC"]: h for h in (json.loads(r.payload) for r in records
                                      if r.proto_type == 34 and b'"HANGUP"' in r.payload)}
    for ssrc in (SSRC_A, SSRC_B):  # B's from its decrypted RTP
        assert hangup[ssrc]["TOTAL_PK"] == PACKETS and hangup[ssrc]["CODEC_PT"] == 0
        assert hangup[ssrc]["PACKET_LOSS"] == 0 and hangup[ssrc]["MOS"] > 4.0

    conf = tmp_path / "rtpengine.conf"
    conf.write_text(f"[rtpengine]\ninterface = lo/127.0.0.1\nrecording-dir = {spool}\n")
    wav = tmp_path / "call.wav"

    def exported() -> bool:
        r = CliRunner().invoke(cli, ["export", "--config-file", str(conf), CALL_ID, "--wav",
                                     "-o", str(wav)])  # fmt: skip
        return r.exit_code == 0

    assert wait_for(exported, 20)
    assert _wav_tones(wav) == (TONE_A, TONE_B)  # left the offerer, right the answerer
