"""`dtx-delay` (docs/spec/config.md §2.9) through rtpengine 10.5 and rtpvault: a PCMU party
sends 10 tone packets, pauses a second (its timestamps then go on 8000 ticks later, as after
DTX), and sends 10 more; the call transcodes to PCMA. With `--dtx-delay=50` both relays send
PCMA silence through the pause at the input's pace, timestamps contiguous, and the tone
resumes where its timestamps say; without it rtpvault sends nothing during the pause. Counts
of packets sent after the input stops depend on when the call is deleted and are not
compared; no timing is asserted."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.transcode import packet
from tests.integration.transcode.test_chain_vs_rtpengine import _drain, _sdp
from tests.support.chains import PCMU, tone_packets
from tests.support.daemons import Daemon, start
from tests.support.rtp_party import Party, media_port, ng_sdp

pytestmark = pytest.mark.integration

SILENCE = b"\xd5" * 160  # PCMA zero


def _call(d: Daemon) -> list[packet.Rtp]:
    """What B receives; B sends PCMA all along so that the relay knows its address."""
    a, b = Party(timeout=0.5), Party(timeout=0.5)
    cid = f"dtx-{time.monotonic_ns()}"
    out = ng_sdp(d, {"command": "offer", "call-id": cid, "from-tag": "a",
                     "sdp": _sdp(a.port, "0", "a=rtpmap:0 PCMU/8000\r\n"),
                     "codec": {"transcode": ["PCMA"]}})  # fmt: skip
    b.peer = ("127.0.0.1", media_port(out))
    back = ng_sdp(d, {"command": "answer", "call-id": cid, "from-tag": "a", "to-tag": "b",
                      "sdp": _sdp(b.port, "8", "a=rtpmap:8 PCMA/8000\r\n")})  # fmt: skip
    a.peer = ("127.0.0.1", media_port(back))
    for s in (a.rtp, b.rtp):
        s.setblocking(False)
    tone = tone_packets(PCMU, 1000, 0.4)
    got: list[bytes] = []
    seq = itertools.count()
    for i in range(70):
        n = next(seq)
        b.send_rtp(packet.build(False, 8, n, n * 160, 7, SILENCE))
        if i < 10 or i >= 60:
            h = packet.parse(tone[i if i < 10 else i - 50])
            assert h is not None
            gap = 0 if i < 10 else 8000
            a.send_rtp(packet.build(False, 0, h.seq, h.ts + gap, h.ssrc, h.payload))
        time.sleep(0.02)
        _drain(b, got)
    time.sleep(0.2)
    _drain(b, got)
    d.client().call({"command": "delete", "call-id": cid, "from-tag": "a"})
    a.close()
    b.close()
    return [h for h in map(packet.parse, got) if h is not None]


def _runs(hs: list[packet.Rtp]) -> list[tuple[str, int, int]]:
    """(tone or silence, packets, first timestamp relative to the first packet)."""
    out = []
    for quiet, g in itertools.groupby(hs, key=lambda h: h.payload == SILENCE):
        run = list(g)
        out.append(("silence" if quiet else "tone", len(run), run[0].ts - hs[0].ts))
    return out


@pytest.fixture(scope="module")
def relays(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Daemon]]:
    started: dict[str, Daemon] = {}
    try:
        for name, kind, extra in (("rtpengine", "rtpengine", ["--dtx-delay=50"]),
                                  ("rtpvault", "rtpvault", ["--dtx-delay=50"]),
                                  ("plain", "rtpvault", [])):  # fmt: skip
            started[name] = start(kind, Path(tmp_path_factory.mktemp(f"dtx-{name}")),
                                  interface="lo/127.0.0.1", ports=40, extra=extra)  # fmt: skip
        yield started
    finally:
        for d in started.values():
            d.stop()


def test_a_pause_is_filled_with_silence_as_rtpengine_does(relays: dict[str, Daemon]) -> None:
    theirs, ours = _call(relays["rtpengine"]), _call(relays["rtpvault"])
    print("rtpengine:", _runs(theirs), "rtpvault:", _runs(ours))
    for hs in (theirs, ours):
        assert _runs(hs)[:3] == [("tone", 10, 0), ("silence", 50, 1600), ("tone", 10, 9600)]
        assert [b.ts - a.ts for a, b in itertools.pairwise(hs)] == [160] * (len(hs) - 1)
        assert len({h.ssrc for h in hs}) == 1
    assert _runs(ours)[3:4] and _runs(ours)[3][0] == _runs(theirs)[3][0] == "silence"


def test_without_dtx_delay_nothing_is_sent_during_the_pause(relays: dict[str, Daemon]) -> None:
    hs = _call(relays["plain"])
    assert [kind for kind, _, _ in _runs(hs)] == ["tone"] and len(hs) == 20


@pytest.fixture(scope="module")
def noisy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Daemon]]:
    started: dict[str, Daemon] = {}
    try:
        for kind in ("rtpengine", "rtpvault"):
            started[kind] = start(kind, Path(tmp_path_factory.mktemp(f"dtx-cn-{kind}")),
                                  interface="lo/127.0.0.1", ports=40,
                                  extra=["--dtx-delay=50", "--dtx-cn-params=40"])  # fmt: skip
        yield started
    finally:
        for d in started.values():
            d.stop()


def test_dtx_cn_params_fill_the_pause_with_rtpengines_comfort_noise(
        noisy: dict[str, Daemon]) -> None:  # fmt: skip
    theirs, ours = _call(noisy["rtpengine"]), _call(noisy["rtpvault"])
    # FFmpeg's RFC 3389 decoder in both, fed the same parameters: the same noise, byte for byte
    fill_theirs, fill_ours = (
        [h.payload for h in hs if 1600 <= h.ts - hs[0].ts < 9600] for hs in (theirs, ours))
    assert len(fill_ours) == len(fill_theirs) == 50
    assert fill_ours == fill_theirs and len(set(fill_ours)) > 1 and SILENCE not in fill_ours
