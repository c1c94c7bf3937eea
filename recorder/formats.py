"""The recording formats (`recording-format`: raw, eth, pcapng) as values, chosen once from
config: what writes the file header and the records, the file suffix, the sidecar's `format` and
`link`, and whether the file can carry notes (SDP, pause, metadata; pcapng only).

Pure: each writer returns bytes (recorder.pcap, recorder.pcapng); the spool writes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from recorder import pcap, pcapng

__all__ = ["FORMATS", "RecordingFormat", "recording_format"]

Address = tuple[str, int]
Builder = Callable[[float, Address, bytes], bytes]


@dataclass(frozen=True, slots=True)
class RecordingFormat:
    name: str
    """The `recording-format` value: raw | eth | pcapng."""
    container: str
    """pcap | pcapng: the sidecar's `format` and the file suffix."""
    link: str
    """eth | raw: the frames' link layer (pcapng always eth); the sidecar's `link`."""
    header: Callable[[str], bytes]
    """fn(comment) → the file's first bytes (pcap has no room for the comment)."""
    builder: Callable[[Address], Builder]
    """fn(receiving address) → fn(when, source, payload) → one record (the per-packet path)."""
    notes: bool
    """Whether `note` and `sdp` write anything (pcapng's exported-PDU and comment packets)."""

    @property
    def suffix(self) -> str:
        return self.container

    def note(self, when: float, text: str) -> bytes | None:
        """A text note record (pause, resume, metadata), or None where the format has none."""
        return pcapng.note_packet(when, text) if self.notes else None

    def sdp(self, when: float, sdp: str, comment: str) -> bytes | None:
        """An SDP record, or None where the format has none (pcap: it goes to the metadata)."""
        return pcapng.sdp_packet(when, sdp, comment) if self.notes else None


def _pcapng_builder(dst: Address) -> Builder:
    media = pcapng.media_packet

    def build(now: float, source: Address, packet: bytes) -> bytes:
        return media(now, source, dst, packet)

    return build


def _pcap(link: str) -> RecordingFormat:
    return RecordingFormat(
        name=link,
        container="pcap",
        link=link,
        header=lambda comment: pcap.global_header(link),
        builder=lambda dst: pcap.record_builder(link, dst),
        notes=False,
    )


FORMATS: dict[str, RecordingFormat] = {
    "raw": _pcap(pcap.LINK_RAW),
    "eth": _pcap(pcap.LINK_ETH),
    "pcapng": RecordingFormat(
        name="pcapng",
        container="pcapng",
        link=pcap.LINK_ETH,
        header=pcapng.file_header,
        builder=_pcapng_builder,
        notes=True,
    ),
}


def recording_format(name: str) -> RecordingFormat:
    """The format for a `recording-format` value; ValueError names an unknown one."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown recording format {name!r}") from None
