"""A transcoded call recorded by the real daemon holds each leg as its party sent it (issue 19,
item 4, as rtpengine records): the caller's PCMU and the callee's Opus, with their own SSRCs
(not the chains' output), and the WAV export decodes both legs at their pitch."""

from __future__ import annotations

import io
import json
import struct
import time
import wave
from array import array
from pathlib import Path

import pytest

from tests.integration.media.test_transcoding import Opus
from tests.integration.recording.media import Call
from tests.support.s3 import MotoServer
from tests.support.tone import dominant_hz, ulaw_tone

from . import archiving_daemon

pytestmark = pytest.mark.integration

CALLER, CALLEE = 0xAAAA0001, 0xBBBB0002


def test_each_leg_recorded_as_received(s3: MotoServer, tmp_path: Path) -> None:
    relay, run = archiving_daemon.start(s3, tmp_path, interface="lo/127.0.0.1")

    to_caller: list[bytes] = []
    try:
        call = Call(relay, "transcoded-rec@192.0.2.1")
        offer = call.offer(**{"record-call": "yes", "codec": {"mask": ["all"],
                                                              "transcode": ["opus"]}})
        assert "opus/48000" in offer["sdp"]
        callee_sdp = ("v=0\r\no=bob 222 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                      f"t=0 0\r\nm=audio {call.callee.port} RTP/AVP 96\r\n"
                      "a=rtpmap:96 opus/48000/2\r\na=sendrecv\r\n")
        call.answer(sdp=callee_sdp)
        opus = Opus()
        call.caller.rtp.settimeout(0.0)
        for i in range(50):
            call.caller.rtp.sendto(struct.pack("!BBHII", 0x80, 0, i, 160 * i, CALLER)
                                   + ulaw_tone(440, 160 * i), ("127.0.0.1", call.caller.relay_port))
            call.callee.rtp.sendto(struct.pack("!BBHII", 0x80, 96, i, 960 * i, CALLEE)
                                   + opus.tone(1000, i), ("127.0.0.1", call.callee.relay_port))
            time.sleep(0.02)
            try:
                while True:
                    to_caller.append(call.caller.rtp.recv(4096))
            except BlockingIOError:
                pass
        call.delete()
        call.close()

        archiving_daemon.wait_archived(relay, run, "transcoded-rec@*")
    finally:
        relay.stop()

    assert to_caller and {p[1] & 0x7F for p in to_caller} == {0}  # transcoded for the caller
    chain_ssrc = struct.unpack_from("!I", to_caller[0], 8)[0]
    found = json.loads(run("search", "--call-id", "transcoded-rec@*", "--json").stdout)
    shown = json.loads(run("show", "transcoded-rec@192.0.2.1", "--json").stdout)
    ssrcs = {s["ssrc"] for s in shown["streams"] if s["kind"] == "rtp"}
    assert ssrcs == {CALLER, CALLEE} and chain_ssrc not in ssrcs
    wav_path = tmp_path / "call.wav"
    r = run("export", found[0]["id"], "--wav", "-o", str(wav_path))
    assert r.exit_code == 0, r.output
    with wave.open(io.BytesIO(wav_path.read_bytes())) as w:
        rate, channels = w.getframerate(), w.getnchannels()
        frames = array("h", w.readframes(w.getnframes()))
    assert channels == 2
    left, right = list(frames[0::2]), list(frames[1::2])
    assert abs(dominant_hz(left[rate // 10 : rate // 2], rate=rate) - 440) <= 20
    assert abs(dominant_hz(right[rate // 5 : rate // 2 + rate // 5], rate=rate) - 1000) <= 20
