"""`dtmf-no-suppress` (docs/spec/config.md §2.9) through rtpengine 10.5 and rtpvault: a PCMU
party sends a tone, then a telephone-event with audio packets beside it (one sequence-number
line, as a phone sends them), then audio again; the call transcodes to PCMA and passes
telephone-event. By default both relays drop the audio during the event; with the key both
send it, interleaved with the event packets in the same order and with the same payloads.
Timestamps differ on purpose (rtpengine moves each event packet and the audio after it on by
the event's time; rtpvault keeps the event at its start and the audio on its own line)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.transcode import packet
from tests.integration.transcode.test_chain_vs_rtpengine import _call, _silence_from
from tests.support.chains import PCMU, tone_packets
from tests.support.daemons import Daemon, start
from tests.unit.transcode.test_chain_dtmf import events

pytestmark = pytest.mark.integration

KINDS = ("rtpengine", "rtpvault")


@pytest.fixture(scope="module", params=[[], ["--dtmf-no-suppress"]], ids=["default", "no-suppress"])
def daemons(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Daemon]]:  # fmt: skip
    started: dict[str, Daemon] = {}
    try:
        for kind in KINDS:
            workdir = Path(tmp_path_factory.mktemp(f"nosup-{kind}"))
            started[kind] = start(kind, workdir, interface="lo/127.0.0.1", ports=40,
                                  extra=request.param)  # fmt: skip
        yield started
    finally:
        for d in started.values():
            d.stop()


def _sent() -> list[bytes]:
    tone = tone_packets(PCMU, 1000, 0.2)  # ts 1000 .. 2440
    ev = events(4, 2600, 10)  # 5 packets of 160 ticks each, then 3 end packets
    beside = [packet.build(False, 0, 0, 2600 + 160 * i, 0x1234, b"\x55" * 160) for i in range(5)]
    mixed = [p for pair in zip(ev, beside, strict=False) for p in pair] + ev[5:]
    after = [packet.build(False, 0, 0, 3400 + 160 * i, 0x1234, b"\x66" * 160) for i in range(5)]
    return [packet.rewrite(p, seq=i) for i, p in enumerate(tone + mixed + after)]


def _through(d: Daemon) -> list[tuple[int, bytes]]:
    _, got = _call(d, ("0 101", "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"),
                   {"codec": {"transcode": ["PCMA"]}},
                   ("8 101", "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"),
                   _sent(), _silence_from(7, 8, 40))  # fmt: skip
    return [(h.pt, h.payload) for h in map(packet.parse, got) if h is not None]


def test_audio_beside_an_event_as_rtpengine(daemons: dict[str, Daemon],
                                            request: pytest.FixtureRequest) -> None:  # fmt: skip
    theirs, ours = (_through(daemons[k]) for k in KINDS)
    beside = {p for pt, p in theirs if pt == 8 and p[:1] == bytes([0x73])}  # from PCMU 0x55
    if "no-suppress" in request.node.callspec.id:
        assert [pt for pt, _ in theirs] == [8] * 10 + [101, 8] * 5 + [101] * 3 + [8] * 5
        assert len(beside) == 1
    else:
        assert [pt for pt, _ in theirs] == [8] * 10 + [101] * 8 + [8] * 5
        assert beside == set()
    assert [pt for pt, _ in ours] == [pt for pt, _ in theirs]
    assert [p for pt, p in ours if pt == 101] == [p for pt, p in theirs if pt == 101]
    assert [p for pt, p in ours[10:] if pt == 8] == [p for pt, p in theirs[10:] if pt == 8]
