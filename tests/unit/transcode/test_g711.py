"""relay.transcode.g711: the chain's G.711 tables give byte for byte what FFmpeg's pcm_mulaw and
pcm_alaw codecs give (checked against FFmpeg itself through PyAV, every code and every sample
value), and the chain's Decoder/Encoder for G.711 use them."""

from __future__ import annotations

import array

import av
import pytest

from relay.transcode import g711
from relay.transcode.audio import Decoder, Encoder
from relay.transcode.codecs import lookup

FFMPEG = {"pcmu": "pcm_mulaw", "pcma": "pcm_alaw"}


def _ffmpeg_encode(codec: str, pcm: bytes) -> bytes:
    ctx = av.CodecContext.create(codec, "w")
    ctx.sample_rate = 8000
    ctx.layout = "mono"  # type: ignore[attr-defined]
    ctx.format = "s16"  # type: ignore[attr-defined]
    ctx.open()
    frame = av.AudioFrame(format="s16", layout="mono", samples=len(pcm) // 2)
    frame.planes[0].update(pcm)
    frame.sample_rate = 8000
    frame.pts = 0
    return b"".join(bytes(p) for p in ctx.encode(frame) + ctx.encode(None))


def _ffmpeg_decode(codec: str, payload: bytes) -> bytes:
    ctx = av.CodecContext.create(codec, "r")
    ctx.sample_rate = 8000
    ctx.layout = "mono"  # type: ignore[attr-defined]
    return b"".join(bytes(f.planes[0])[: 2 * f.samples] for f in ctx.decode(av.Packet(payload)))


@pytest.mark.parametrize("name", ["pcmu", "pcma"])
def test_every_code_decodes_as_ffmpeg_decodes_it(name: str) -> None:
    codes = bytes(range(256)) + bytes(range(255, -1, -1))
    assert g711.law(name).decode(codes) == _ffmpeg_decode(FFMPEG[name], codes)


@pytest.mark.parametrize("name", ["pcmu", "pcma"])
def test_every_sample_value_encodes_as_ffmpeg_encodes_it(name: str) -> None:
    pcm = array.array("h", range(-32768, 32768)).tobytes()
    assert g711.law(name).encode(pcm) == _ffmpeg_encode(FFMPEG[name], pcm)


@pytest.mark.parametrize("name", ["pcmu", "pcma"])
def test_short_inputs(name: str) -> None:
    law = g711.law(name)
    assert law.encode(b"") == b"" and law.decode(b"") == b""
    one = array.array("h", [-1234]).tobytes()
    assert law.encode(one) == _ffmpeg_encode(FFMPEG[name], one)


@pytest.mark.parametrize("name", ["PCMU", "PCMA"])
def test_the_chain_codecs_use_the_tables_and_match_ffmpeg(name: str) -> None:
    codec = lookup(name, 8000)
    assert codec is not None
    pcm = array.array("h", [(i * 997) % 65536 - 32768 for i in range(160)]).tobytes()
    payload = Encoder(codec, 20).encode(pcm)
    assert payload == _ffmpeg_encode(codec.encoder or "", pcm)
    assert Decoder(codec, 8000).decode(payload) == (_ffmpeg_decode(codec.decoder, payload), 160)
