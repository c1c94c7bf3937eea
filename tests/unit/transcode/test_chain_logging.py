"""The transcoding modules log under the loggers of rtpengine's subsystems (docs/spec/config.md
§2.9): `log-level-transcoding` the chain's work, `log-level-dtx` its gap filling,
`log-level-ffmpeg` FFmpeg's own messages, `log-level-codec` the chains made for a call."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import av.logging
import pytest

from relay.transcode import packet
from relay.transcode.chain import Chain
from rtpvault.logsetup import LogLevels
from tests.support.chains import OPUS, PCMU, plan, run, tone_packets

CORRUPT = packet.build(True, 96, 1, 1000, 0x99, b"\xff\xff\xff")
"""An Opus packet libopus rejects ("corrupted stream")."""


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    # PyAV holds back a line equal to the one before (it says "repeated" later): each test
    # here makes the same FFmpeg error, so let repeats through while they run
    skip = av.logging.get_skip_repeated()
    av.logging.set_skip_repeated(False)
    yield
    av.logging.set_skip_repeated(skip)
    LogLevels(6)


def _records(caplog: pytest.LogCaptureFixture, overrides: dict[str, int]) -> list[str]:
    LogLevels(6, overrides)
    caplog.handler.setLevel(logging.DEBUG)
    caplog.clear()
    chain = Chain(plan(OPUS, PCMU), 0x50, seq=0, ts=0)
    pcmu = Chain(plan(PCMU, OPUS), 0x51, seq=0, ts=0)
    lossy = tone_packets(PCMU, 1000, 0.2)
    run(chain, [CORRUPT])
    run(pcmu, lossy[:3] + lossy[5:])  # two packets lost: 40 ms filled
    return [f"{r.levelname} {r.name} {r.getMessage()}" for r in caplog.records]


def test_transcoding_dtx_and_ffmpeg_levels(caplog: pytest.LogCaptureFixture) -> None:
    lines = _records(caplog, {"transcoding": 7, "dtx": 7, "ffmpeg": 3})
    assert any(x.startswith("DEBUG relay.transcode payload type 96: opus:") for x in lines)
    assert "DEBUG relay.transcode.dtx input gap of 40 ms filled with silence" in lines
    assert any(x.startswith("ERROR libav.libopus ") and "corrupted stream" in x for x in lines)


def test_default_level_6_shows_ffmpeg_errors_only(caplog: pytest.LogCaptureFixture) -> None:
    lines = _records(caplog, {})
    assert [x for x in lines if "relay.transcode" in x] == []
    assert any(x.startswith("ERROR libav.libopus ") for x in lines)


def test_ffmpeg_off_and_dtx_off(caplog: pytest.LogCaptureFixture) -> None:
    lines = _records(caplog, {"transcoding": 7, "dtx": 6, "ffmpeg": -1})
    assert [x for x in lines if x.startswith(("DEBUG relay.transcode.dtx", "ERROR libav"))] == []
    assert any(x.startswith("DEBUG relay.transcode payload") for x in lines)
