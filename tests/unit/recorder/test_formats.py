"""recorder.formats: each `recording-format` value names its writer, suffix and link once."""

from __future__ import annotations

import pytest

from recorder import metafile, pcap, pcapng
from recorder.formats import FORMATS, recording_format

DST = ("192.0.2.1", 30000)
SRC = ("192.0.2.2", 4000)


@pytest.mark.parametrize(
    ("name", "suffix", "link"), [("raw", "pcap", "raw"), ("eth", "pcap", "eth"),
                                 ("pcapng", "pcapng", "eth")],
)  # fmt: skip
def test_suffix_and_link(name: str, suffix: str, link: str) -> None:
    fmt = recording_format(name)
    assert (fmt.name, fmt.suffix, fmt.container, fmt.link) == (name, suffix, suffix, link)


@pytest.mark.parametrize("name", ["raw", "eth"])
def test_pcap_writes_rtpengines_records_and_no_notes(name: str) -> None:
    fmt = FORMATS[name]
    assert fmt.header("ignored") == pcap.global_header(name)
    assert fmt.builder(DST)(1.5, SRC, b"x" * 12) == pcap.record(name, 1.5, SRC, DST, b"x" * 12)
    assert fmt.note(1.5, "paused") is None
    assert fmt.sdp(1.5, "v=0\r\n", "offer") is None


def test_pcapng_writes_blocks_and_notes() -> None:
    fmt = FORMATS["pcapng"]
    assert fmt.header("c") == pcapng.file_header("c")
    assert fmt.builder(DST)(1.5, SRC, b"x" * 12) == pcapng.media_packet(1.5, SRC, DST, b"x" * 12)
    assert fmt.note(1.5, "paused") == pcapng.note_packet(1.5, "paused")
    assert fmt.sdp(1.5, "v=0\r\n", "offer") == pcapng.sdp_packet(1.5, "v=0\r\n", "offer")


def test_unknown_format_is_named() -> None:
    with pytest.raises(ValueError, match="unknown recording format 'wav'"):
        recording_format("wav")


def test_sdp_records_carry_no_key_or_ice_password() -> None:
    """The pcapng SDP packet and the metadata file's SDP block redact whatever they are given
    (rtp.redact, docs/recording.md "Secrets in recorded SDP")."""
    key, pwd = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR", "x9cml/YzichV2+XlhiMu8g"
    sdp = f"v=0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^31\r\na=ice-pwd:{pwd}\r\n"
    clean = f"v=0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{'REDACTED' * 5}|2^31\r\n" \
            "a=ice-pwd:REDACTED\r\n"  # fmt: skip
    for data in (pcapng.sdp_packet(1.0, sdp, "offer from tag ft"),
                 metafile.sdp_block("caller", 1.0, "offer", 0, sdp)):  # fmt: skip
        assert key.encode() not in data and pwd.encode() not in data
        assert clean.encode() in data
