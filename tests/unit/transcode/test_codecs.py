"""relay.transcode.codecs and audio.Encoder: the codec table's clocks, Opus options from the
receiver's fmtp (and what they do to the packets libopus makes), ptime rounding."""

from __future__ import annotations

import pytest

from relay.transcode.audio import AudioError, Encoder, frame_samples
from relay.transcode.codecs import lookup, opus_channels, opus_options, opus_ptime, parse_fmtp
from tests.support.tone import pcm_tone


def test_g722_codes_16_khz_on_an_8000_clock() -> None:
    g722 = lookup("G722", 8000)
    assert g722 is not None and (g722.sample_rate, g722.clock) == (16000, 8000)
    enc = Encoder(g722, 20)
    assert (enc.frame, enc.ticks) == (320, 160)
    assert len(enc.encode(bytes(640))) == 160


def test_lookup_wants_the_codecs_own_clock() -> None:
    assert lookup("opus", 48000) is not None and lookup("OPUS", 48000) is not None
    assert lookup("opus", 8000) is None and lookup("G722", 16000) is None
    assert lookup("AMR-WB", 16000) is None


def test_no_encoder_for_g729_and_gsm() -> None:
    for name in ("G729", "GSM"):
        codec = lookup(name, 8000)
        assert codec is not None and codec.encoder is None
        with pytest.raises(AudioError, match="no"):
            Encoder(codec)


def test_g723_packets_are_whole_30_ms_frames() -> None:
    g723 = lookup("G723", 8000)
    assert g723 is not None
    assert frame_samples(g723, 20) == 240 and frame_samples(g723, 60) == 480
    enc = Encoder(g723, 60)
    assert len(enc.encode(pcm_tone(1000, 0, 480, 8000))) == 48  # two 24-byte 6.3 kbit/s frames


def test_fmtp_parsing_skips_junk() -> None:
    assert parse_fmtp("minptime=10; useinbandfec=1;;junk;Stereo=1") == {
        "minptime": "10", "useinbandfec": "1", "stereo": "1"}  # fmt: skip


@pytest.mark.parametrize(("ptime", "frame"), [(3, 5), (5, 5), (10, 10), (15, 10), (20, 20),
                                             (30, 20), (40, 40), (50, 40), (60, 60), (120, 60)])
def test_opus_ptime_is_rounded_as_rtpengine_rounds_it(ptime: int, frame: int) -> None:
    assert opus_ptime(ptime) == frame


def test_opus_options_from_fmtp() -> None:
    assert opus_options("", 20) == (24000, {"frame_duration": "20"})
    assert opus_options("stereo=1", 20)[0] == 32000
    bitrate, opts = opus_options("maxaveragebitrate=12000;useinbandfec=1;usedtx=1;cbr=1;"
                                 "maxplaybackrate=16000", 60)  # fmt: skip
    assert bitrate == 12000
    assert opts == {"frame_duration": "60", "fec": "1", "packet_loss": "10", "dtx": "1",
                    "vbr": "off", "cutoff": "8000"}  # fmt: skip
    assert opus_options("maxaveragebitrate=999999", 20)[0] == 24000  # a cap, never a raise
    assert opus_options("maxplaybackrate=48000", 20)[1] == {"frame_duration": "20"}


def _toc_stereo(payload: bytes) -> bool:
    return bool(payload[0] & 0x04)  # RFC 6716 §3.1: the s bit


def test_opus_is_mono_unless_the_receiver_asks_for_stereo() -> None:
    opus = lookup("opus", 48000)
    assert opus is not None
    pcm = pcm_tone(1000, 0, 960, 48000)
    assert opus_channels("") == 1 and not _toc_stereo(Encoder(opus).encode(pcm))
    assert not _toc_stereo(Encoder(opus, 20, "stereo=0").encode(pcm))
    assert _toc_stereo(Encoder(opus, 20, "stereo=1").encode(pcm))


def test_maxaveragebitrate_makes_smaller_packets() -> None:
    opus = lookup("opus", 48000)
    assert opus is not None

    def size(fmtp: str) -> int:
        enc = Encoder(opus, 20, fmtp)
        return sum(len(enc.encode(pcm_tone(440, i * 960, 960, 48000))) for i in range(50))

    assert size("maxaveragebitrate=8000") < 0.6 * size("")


def test_the_negotiations_table_matches_what_ffmpeg_here_has() -> None:
    import av

    from relay.transcode import support

    for key in support.DECODE:
        name, _, clock = key.partition("/")
        codec = lookup(name, int(clock))
        assert codec is not None, key
        av.Codec(codec.decoder, "r")  # raises if this FFmpeg lacks it
    for key in support.ENCODE:
        name, _, clock = key.partition("/")
        codec = lookup(name, int(clock))
        assert codec is not None and codec.encoder is not None, key
        av.Codec(codec.encoder, "w")
    assert not support.can_decode("speex", 16000)  # no Speex header on RTP (spec §6)
