"""Interop with an independent transcoder (issue 19, Tests): PCMU party A → relay 1 → an
Opus-only leg → rtpengine 10.5 → PCMU party B, and back. Relay 1 is rtpvault, or rtpengine
itself for the reference figure (rtpengine×2): a tone comes out at its pitch both ways, and
rtpvault's signal-to-noise ratio is within 3 dB of the reference's (measured here: reference
34.1 / 34.5 dB at B / A, rtpvault 38.3 / 34.5 dB; printed with -s). rtpengine decoding
rtpvault's Opus (and rtpvault decoding rtpengine's) is the check that each leg's RTP is right.
No timing asserted.
"""

from __future__ import annotations

import itertools
import math
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemons import Daemon, start
from tests.support.rtp_party import Party, media_port, ng_sdp, party_sdp
from tests.support.tone import dominant_hz, ulaw_samples, ulaw_tone

pytestmark = pytest.mark.integration

PACKETS = 150
SKIP = 25
"""Packets left out of the analysis at the start (codec delays, the first talkspurt)."""
A_HZ, B_HZ = 440, 660
_ids = itertools.count()
SNR: dict[str, tuple[float, float]] = {}
"""Relay 1 → (SNR at B, SNR at A) in dB."""


@pytest.fixture(scope="module")
def far(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start("rtpengine", Path(tmp_path_factory.mktemp("far")), interface="lo/127.0.0.1",
              ports=40, extra=["--delete-delay=0"])  # fmt: skip
    try:
        yield d
    finally:
        d.stop()


def _snr(samples: list[int], hz: float) -> float:
    """dB of a least-squares sine at `hz` over what is left (the tone's own SNR)."""
    n = len(samples)
    w = 2 * math.pi * hz / 8000
    a = 2 / n * sum(x * math.cos(w * i) for i, x in enumerate(samples))
    b = 2 / n * sum(x * math.sin(w * i) for i, x in enumerate(samples))
    fit = [a * math.cos(w * i) + b * math.sin(w * i) for i in range(n)]
    signal = sum(f * f for f in fit)
    noise = sum((x - f) ** 2 for x, f in zip(samples, fit, strict=True))
    return 10 * math.log10(signal / max(noise, 1e-9))


def _rtp(seq: int, ssrc: int, payload: bytes) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, 160 * seq, ssrc) + payload


def _run(near: Daemon, far: Daemon) -> tuple[list[int], list[int]]:
    call = f"interop-{next(_ids)}"
    a, b = Party(timeout=2), Party(timeout=2)
    try:
        leg = ng_sdp(near, {"command": "offer", "call-id": call, "from-tag": "A",
                            "sdp": party_sdp(a.port), "codec": {"mask": ["all"],
                                                                "transcode": ["opus"]}})
        assert " RTP/AVP 96\r\n" in leg and "opus/48000" in leg
        to_b = ng_sdp(far, {"command": "offer", "call-id": call, "from-tag": "A", "sdp": leg,
                            "codec": {"transcode": ["PCMU"]}})  # fmt: skip
        b.peer = ("127.0.0.1", media_port(to_b))
        back = ng_sdp(far, {"command": "answer", "call-id": call, "from-tag": "A",
                            "to-tag": "B", "sdp": party_sdp(b.port)})  # fmt: skip
        assert "opus/48000" in back
        to_a = ng_sdp(near, {"command": "answer", "call-id": call, "from-tag": "A",
                             "to-tag": "B", "sdp": back})  # fmt: skip
        a.peer = ("127.0.0.1", media_port(to_a))
        for s in (a.rtp, b.rtp):
            s.setblocking(False)
        at_a: list[bytes] = []
        at_b: list[bytes] = []
        for n in range(PACKETS):
            a.send_rtp(_rtp(n, 0xA, ulaw_tone(A_HZ, 160 * n)))
            b.send_rtp(_rtp(n, 0xB, ulaw_tone(B_HZ, 160 * n)))
            time.sleep(0.02)
            for sock, got in ((a.rtp, at_a), (b.rtp, at_b)):
                try:
                    while True:
                        got.append(sock.recv(4096))
                except BlockingIOError:
                    pass
        for sock, got in ((a.rtp, at_a), (b.rtp, at_b)):
            sock.settimeout(0.5)
            try:
                while True:
                    got.append(sock.recv(4096))
            except TimeoutError:
                pass
    finally:
        a.close()
        b.close()
        for d in (near, far):
            d.client().call({"command": "delete", "call-id": call})
    assert len(at_b) >= PACKETS - 10 and len(at_a) >= PACKETS - 10
    assert {p[1] & 0x7F for p in at_b + at_a} == {0}
    return ([s for p in at_b[SKIP:] for s in ulaw_samples(p[12:])],
            [s for p in at_a[SKIP:] for s in ulaw_samples(p[12:])])  # fmt: skip


@pytest.mark.parametrize("near_kind", ["rtpengine", "rtpvault"])  # reference first
def test_pcmu_through_an_opus_leg_and_rtpengine(far: Daemon, near_kind: str,
                                               tmp_path: Path) -> None:  # fmt: skip
    near = start(near_kind, tmp_path, interface="lo/127.0.0.1", ports=40, num_threads=2,
                 extra=["--delete-delay=0"])  # fmt: skip
    try:
        at_b, at_a = _run(near, far)
    finally:
        near.stop()
    assert abs(dominant_hz(at_b) - A_HZ) <= 20 and abs(dominant_hz(at_a) - B_HZ) <= 20
    SNR[near_kind] = (_snr(at_b, A_HZ), _snr(at_a, B_HZ))
    print(f"\n{near_kind} + rtpengine, Opus leg: SNR at B {SNR[near_kind][0]:.1f} dB, "
          f"at A {SNR[near_kind][1]:.1f} dB")
    if near_kind == "rtpvault" and "rtpengine" in SNR:
        ref = SNR["rtpengine"]
        assert SNR["rtpvault"][0] >= ref[0] - 3 and SNR["rtpvault"][1] >= ref[1] - 3
