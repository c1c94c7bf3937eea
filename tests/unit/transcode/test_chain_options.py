"""The chain's daemon-wide keys (docs/spec/config.md §2.9): `dtmf-no-suppress` keeps the audio a
sender sends during a DTMF event; `silence-detect` with `cn-payload` sends silent frames as CN
when the receiver accepts it."""

from __future__ import annotations

import pytest

from relay.config import ConfigError, parse_args, settings_from_text
from relay.config.interfaces import Resolver
from relay.config.settings import Settings
from relay.transcode import packet
from relay.transcode.chain import Chain
from relay.transcode.dtx import DtxSettings
from relay.transcode.options import ChainOptions
from tests.support.chains import PCMA, PCMU, TE8, plan, run, tone_packets
from tests.unit.transcode.test_chain_dtmf import events

CN = 13


def _during_event(options: ChainOptions | None) -> list[packet.Rtp]:
    """200 ms of tone, then an event of 100 ms at ts 2600 with audio sent alongside it."""
    chain = Chain(plan(PCMU, PCMA, inputs={101: TE8}, outputs={101: TE8}, dtmf_out_pt=101),
                  0x50, seq=0, ts=0, options=options)  # fmt: skip
    tone = tone_packets(PCMU, 1000, 0.2)  # ts 1000 .. 2440
    ev = events(4, 2600, 10)
    beside = [packet.build(False, 0, 30 + i, 2600 + 160 * i, 0x1234, b"\x55" * 160)
              for i in range(5)]  # fmt: skip
    mixed = [p for pair in zip(ev, beside, strict=False) for p in pair] + ev[5:]
    return [h for h in map(packet.parse, run(chain, tone + mixed)) if h is not None]


def test_audio_during_an_event_is_suppressed_by_default() -> None:
    out = _during_event(None)
    assert [h.pt for h in out] == [8] * 10 + [101] * 8


def test_dtmf_no_suppress_sends_the_audio_beside_the_event() -> None:
    out = _during_event(ChainOptions(dtmf_no_suppress=True))
    assert [h.pt for h in out].count(8) == 10 + 5 and [h.pt for h in out].count(101) == 8
    audio = [h for h in out if h.pt == 8]
    assert [h.ts for h in audio] == [160 * i for i in range(15)]  # one unbroken time line
    assert {h.ts for h in out if h.pt == 101} == {160 * 10}  # the event where its input was
    assert len({h.payload for h in audio[10:]}) == 1  # the constant audio sent beside it


def _silence(options: ChainOptions, cn_out_pt: int | None = CN) -> list[packet.Rtp]:
    chain = Chain(plan(PCMU, PCMA, cn_out_pt=cn_out_pt), 0x50, seq=0, ts=0, options=options)
    tone = tone_packets(PCMU, 1000, 0.1, amplitude=3000)  # ts 1000 .. 1640
    quiet = [packet.build(False, 0, 5 + i, 1800 + 160 * i, 0x1234, b"\xff" * 160)
             for i in range(5)]  # fmt: skip  (PCMU 0xff decodes to 0)
    return [h for h in map(packet.parse, run(chain, tone + quiet)) if h is not None]


def test_silent_frames_go_out_as_cn_with_the_cn_payload() -> None:
    out = _silence(ChainOptions(silence=0.001, cn_payload=bytes([40, 100, 200])))
    assert [h.pt for h in out] == [8] * 5 + [CN] * 5
    assert {h.payload for h in out[5:]} == {bytes([40, 100, 200])}
    assert [h.seq for h in out] == list(range(1, 11)) and out[5].ts == 800


@pytest.mark.parametrize("options, cn", [(ChainOptions(), CN),
                                         (ChainOptions(silence=0.001), None)])  # fmt: skip
def test_no_cn_without_silence_detect_or_without_cn_on_the_output(options: ChainOptions,
                                                                  cn: int | None) -> None:
    assert {h.pt for h in _silence(options, cn)} == {8}


def test_a_high_threshold_takes_the_tone_for_silence() -> None:
    # rtpengine's threshold is a fraction of the full range: 10 % is 6553, above 3000
    assert {h.pt for h in _silence(ChainOptions(silence=0.10))} == {CN}


def _all(text: str) -> Settings:
    base = "[rtpengine]\ninterface = 127.0.0.1\nlisten-ng = 2223\n"
    return settings_from_text(base + text, parse_args([]), resolver=Resolver({}))[0]


def _settings(text: str) -> ChainOptions:
    return _all(text).transcoding


def test_settings_parse_the_keys() -> None:
    assert _settings("dtmf-no-suppress = true\nsilence-detect = 0.5\ncn-payload = 40;100\n") \
        == ChainOptions(True, 0.005, bytes([40, 100]))  # fmt: skip
    assert _settings("") == ChainOptions(False, 0.0, b"\x20")
    with pytest.raises(ConfigError, match="Invalid CN payload"):
        _settings("cn-payload = 128\n")
    assert _settings("dtx-cn-params = 40;7\n").dtx_noise == bytes([40, 7])
    with pytest.raises(ConfigError, match="dtx-cn-params"):
        _settings("dtx-cn-params = 40;255\n")


def test_settings_of_the_dtx_buffer() -> None:
    assert _all("").dtx == DtxSettings(0.0, 30.0, 10, 0.1, 0.005)
    assert _all("dtx-delay = 50\nmax-dtx = 0\ndtx-buffer = 4\ndtx-lag = 60\ndtx-shift = 0\n"
                ).dtx == DtxSettings(0.05, 0.0, 4, 0.06, 0.0)  # fmt: skip
