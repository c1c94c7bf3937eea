"""A call recorded by the real rtpvault daemon (ng + RTP on loopback), indexed and archived to
moto_server by the daemon, is found, shown, verified, fetched and exported by the CLI."""

from __future__ import annotations

import hashlib
import io
import json
import math
import struct
import time
import wave
from array import array
from pathlib import Path

import pytest

from recorder.g711 import encode_ulaw
from tests.integration.recording.media import Call
from tests.support.s3 import MotoServer

from . import archiving_daemon

pytestmark = pytest.mark.integration


def tone(freq: float, i: int, amplitude: int) -> bytes:
    return bytes(encode_ulaw(int(amplitude * math.sin(2 * math.pi * freq * (i * 160 + n) / 8000)))
                 for n in range(160))  # fmt: skip


def send_tones(call: Call, packets: int) -> None:
    for i in range(packets):
        for leg, port, ssrc, freq, amp in ((call.caller, call.caller.relay_port, 0xAAAA0001, 440,
                                            8000),
                                           (call.callee, call.callee.relay_port, 0xBBBB0002, 1000,
                                            4000)):  # fmt: skip
            head = struct.pack("!BBHII", 0x80, 0, i, 160 * i, ssrc)
            leg.rtp.sendto(head + tone(freq, i, amp), ("127.0.0.1", port))
        time.sleep(0.02)


def test_recorded_call_found_verified_exported(s3: MotoServer, tmp_path: Path) -> None:
    relay, run = archiving_daemon.start(s3, tmp_path)

    try:
        call = Call(relay, "searchable-call@192.0.2.1")
        call.offer(**{"record-call": "yes", "metadata": "from:alice|to:bob|case:77"})
        call.answer()
        send_tones(call, 50)
        call.delete()
        call.close()

        archiving_daemon.wait_archived(relay, run, "searchable-call@*")
    finally:
        relay.stop()

    found = json.loads(run("search", "--caller", "al*", "--meta", "case=77", "--json").stdout)
    assert [(x["call_id"], x["callee"], x["status"]) for x in found] == [
        ("searchable-call@192.0.2.1", "bob", "complete")
    ]
    rid = found[0]["id"]
    shown = json.loads(run("show", "searchable-call@192.0.2.1", "--json").stdout)
    assert {s["ssrc"] for s in shown["streams"] if s["kind"] == "rtp"} == {0xAAAA0001, 0xBBBB0002}
    assert [d["direction"] for d in shown["sdp"]] == ["offer", "answer"]

    r = run("verify")
    assert r.exit_code == 0, r.output
    assert "verified 1 recording, 2 copies: 0 problems; audit chain: ok" in r.stdout

    out = tmp_path / "fetched"
    r = run("fetch", rid[:8], "-o", str(out))
    assert r.exit_code == 0, r.output
    (fetched,) = out.iterdir()
    assert hashlib.sha256(fetched.read_bytes()).hexdigest() == found[0]["sha256"]

    wav_path = tmp_path / "call.wav"
    r = run("export", rid, "--wav", "-o", str(wav_path))
    assert r.exit_code == 0, r.output
    with wave.open(io.BytesIO(wav_path.read_bytes())) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
        assert w.getnframes() == pytest.approx(8000, abs=400)  # 50 × 20 ms, both legs together
        frames = array("h", w.readframes(w.getnframes()))
    left, right = frames[0::2], frames[1::2]

    def rms(x: array[int]) -> float:
        return math.sqrt(sum(v * v for v in x) / len(x))

    # the offerer (caller, 440 Hz at 8000) is left, the callee (1000 Hz at 4000) right
    assert rms(left[:7000]) == pytest.approx(8000 / math.sqrt(2), rel=0.1)
    assert rms(right[400:7400]) == pytest.approx(4000 / math.sqrt(2), rel=0.1)

    actions = [a["action"] for a in json.loads(run("audit", "--json").stdout)]
    assert {"search", "show", "verify", "fetch", "export"} <= set(actions)
