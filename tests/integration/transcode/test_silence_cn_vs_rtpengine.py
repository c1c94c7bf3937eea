"""`silence-detect` and `cn-payload` (docs/spec/config.md §2.9) against rtpengine 10.5: a PCMU
party's tone then digital silence, transcoded to PCMA for a receiver that accepts CN (added by
`codec-transcode-CN`). rtpengine sends the silent frames as CN with the configured payload;
relay.transcode.chain, given the same packets and options, sends the same payload types and
CN payloads. No timing is asserted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.transcode import packet
from relay.transcode.chain import Chain
from relay.transcode.options import ChainOptions
from tests.integration.transcode.test_chain_vs_rtpengine import _call, _silence_from
from tests.support.chains import PCMA, PCMU, plan, run, tone_packets
from tests.support.daemons import Daemon, start

pytestmark = pytest.mark.integration

CN_PAYLOAD = bytes([40, 100])


KEYS = ["--silence-detect=1", "--cn-payload=40", "--cn-payload=100"]


def _daemon(kind: str, tmp: pytest.TempPathFactory, extra: list[str]) -> Iterator[Daemon]:
    d = start(kind, Path(tmp.mktemp(f"cn-{kind}")), interface="lo/127.0.0.1", ports=40,
              extra=extra)  # fmt: skip
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="module")
def rtpengine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    yield from _daemon("rtpengine", tmp_path_factory, KEYS)


@pytest.fixture(scope="module")
def rtpvault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    yield from _daemon("rtpvault", tmp_path_factory, KEYS)


@pytest.fixture(scope="module")
def rtpvault_plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    yield from _daemon("rtpvault", tmp_path_factory, [])


def _sent() -> list[bytes]:
    tone = tone_packets(PCMU, 1000, 0.4)  # 20 packets, ts 1000 ..
    quiet = [packet.build(False, 0, 20 + i, 1000 + 160 * (20 + i), 0x1234, b"\xff" * 160)
             for i in range(20)]  # fmt: skip
    return tone + quiet


def _through(d: Daemon) -> list[packet.Rtp]:
    """What B receives of A's tone and silence, PCMU transcoded to PCMA with CN."""
    _, got = _call(d, ("0", "a=rtpmap:0 PCMU/8000\r\n"), {"codec": {"transcode": ["PCMA", "CN"]}},
                   ("8 13", "a=rtpmap:8 PCMA/8000\r\na=rtpmap:13 CN/8000\r\n"),
                   _sent(), _silence_from(7, 8, 40))  # fmt: skip
    return [h for h in map(packet.parse, got) if h is not None]


def test_silent_frames_become_cn_as_rtpengine_sends_them(rtpengine: Daemon) -> None:
    sent = _sent()
    theirs = _through(rtpengine)
    chain = Chain(plan(PCMU, PCMA, cn_out_pt=13), 0x99,
                  options=ChainOptions(silence=0.01, cn_payload=CN_PAYLOAD))  # fmt: skip
    ours = [h for h in map(packet.parse, run(chain, sent)) if h is not None]
    print("rtpengine:", [h.pt for h in theirs], {h.payload for h in theirs if h.pt == 13})
    assert [h.pt for h in theirs] == [8] * 20 + [13] * 20
    assert {h.payload for h in theirs if h.pt == 13} == {CN_PAYLOAD}
    assert [h.pt for h in ours] == [h.pt for h in theirs]
    assert {h.payload for h in ours if h.pt == 13} == {CN_PAYLOAD}
    assert [h.ts - theirs[0].ts for h in theirs] == [h.ts - ours[0].ts for h in ours]


def test_rtpvault_sends_the_same_cn_packets_as_rtpengine(rtpengine: Daemon,
                                                         rtpvault: Daemon) -> None:  # fmt: skip
    theirs, ours = _through(rtpengine), _through(rtpvault)
    assert [(h.pt, h.payload if h.pt == 13 else b"") for h in ours] == \
        [(h.pt, h.payload if h.pt == 13 else b"") for h in theirs]  # fmt: skip
    assert [h.ts - ours[0].ts for h in ours] == [h.ts - theirs[0].ts for h in theirs]


def test_without_silence_detect_rtpvault_sends_pcma_throughout(rtpvault_plain: Daemon) -> None:
    assert {h.pt for h in _through(rtpvault_plain)} == {8}
