"""One recording's in-memory side: the record buffer the loop appends to, per-stream statistics,
pause state and the sidecar document. No I/O here (recorder.spool does it in a worker thread).

The buffer is a list of whole records: the loop appends (one atomic `list.append` per packet),
the worker takes a prefix with `take()` (`del chunks[:n]` is atomic too), so no lock is needed
and a flush always ends on a record boundary.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from typing import Any, cast

from recorder.formats import RecordingFormat
from recorder.names import RecordingPaths
from recorder.rtpstats import RtpStats
from recorder.sidecar import VERSION, Sidecar, SidecarStream
from rtp.demux import is_rtcp as packet_is_rtcp

__all__ = ["Recording", "RtcpCounter", "Address"]

Address = tuple[str, int]

STATUS_RECORDING = "recording"
STATUS_COMPLETE = "complete"
STATUS_INTERRUPTED = "interrupted"
STATUS_FAILED = "failed"

_SSRC = struct.Struct("!I")


class RtcpCounter:
    """Counters of one RTCP source (sender SSRC of the first packet of each compound)."""

    __slots__ = ("ssrc", "packets", "bytes", "first", "last")

    def __init__(self, ssrc: int | None) -> None:
        self.ssrc = ssrc
        self.packets = 0
        self.bytes = 0
        self.first: float | None = None
        self.last: float | None = None

    def update(self, packet: bytes, arrival: float) -> None:
        self.packets += 1
        self.bytes += len(packet)
        if self.first is None:
            self.first = arrival
        self.last = arrival

    def snapshot(self) -> dict[str, Any]:
        return {
            "ssrc": self.ssrc, "packets": self.packets, "bytes": self.bytes, "lost": 0,
            "out_of_order": 0, "duplicates": 0, "jitter_ms": 0.0, "max_jitter_ms": 0.0,
            "loss_pct": 0.0, "mos": None, "first": self.first, "last": self.last,
            "payload_types": [],
        }  # fmt: skip


def _hostport(addr: Address) -> str:
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"


class Recording:
    """A recording of one call from start to finish (one rtpengine file pair), or one part of
    it (`series`, `part`: docs/recording-sidecar.md)."""

    def __init__(
        self,
        call_id: str,
        paths: RecordingPaths,
        fmt: RecordingFormat,
        started: float,
        doc: Sidecar,
        *,
        series: str | None = None,
        part: int = 1,
    ) -> None:
        self.call_id = call_id
        self.paths = paths
        self.fmt = fmt
        self.started = started
        self.call_created = started
        self.chunks: list[bytes] = []
        self.meta: list[bytes] = []
        """Bytes for the rtpengine metadata file, appended by the loop, written by the worker."""
        self.packets = 0
        self.writing = True
        """False while paused, after a write error and after finish: the taps drop packets."""
        self.paused = False
        self.failed = False
        self.finished = False
        # keyed by (stream, kind, source, SSRC); the stream object names its party (`tag`),
        # which may only be known after the answer
        self.stats: dict[tuple[Any, str, Address, int | None], RtpStats | RtcpCounter] = {}
        self.dsts: dict[tuple[Any, str, Address, int | None], Address] = {}
        self.clock_rates: dict[int, int] = {}
        self.party_started: dict[str, float] = {}
        self.ended: float | None = None
        """When the call ended (the `delete`), once known; the file may be finalised later."""
        self.doc = doc
        doc.setdefault("version", VERSION)
        doc.setdefault("id", str(uuid.uuid4()))
        # one recording of a call may be in several parts (a daemon restored the call from Redis
        # and went on recording into a new file): `series` is the first part's id, on every part
        doc["series"] = series or doc["id"]
        doc["part"] = part
        doc.update({
            "call_id": call_id,
            "format": fmt.container,
            "link": fmt.link,
            "path": paths.pcap,
            "metadata_path": paths.meta_final,
            "sidecar_path": paths.sidecar,
            "started": started,
            "ended": None,
            "status": STATUS_RECORDING,
            "reason": None,
            "size": None,
            "sha256": None,
        })
        doc.setdefault("pauses", [])
        doc.setdefault("streams", [])

    # -- file contents (bytes only) ----------------------------------------------------------
    def file_header(self, comment: str) -> bytes:
        return self.fmt.header(comment)

    def note(self, now: float, text: str) -> None:
        """Append a text note record where the format carries notes (pcapng)."""
        record = self.fmt.note(now, text)
        if record is not None:
            self.chunks.append(record)

    def make_tap(self, is_rtcp: bool, dst: Address) -> Callable[[Any, bytes, Address, float], None]:
        """The function the relay calls per packet received on one stream (ingress only)."""
        chunks = self.chunks
        stats = self.stats
        dsts = self.dsts
        rates = self.clock_rates
        kind = "rtcp" if is_rtcp else "rtp"
        build = self.fmt.builder(dst)
        # source, SSRC bytes and counter of the last RTP packet: the common case is one more
        # packet of the same stream, which then costs no key building or dict lookup
        last_source: Address | None = None
        last_ssrc = b""
        last_counter: Any = None

        def tap(stream: Any, packet: bytes, source: Address, now: float) -> None:
            nonlocal last_source, last_ssrc, last_counter
            if not self.writing:
                return
            chunks.append(build(now, source, packet))
            self.packets += 1
            ssrc_bytes = packet[8:12]
            rtcp = packet_is_rtcp(packet)
            if ssrc_bytes == last_ssrc and source == last_source and not rtcp:
                last_counter.update(packet, now)
                return
            if len(packet) < 8:
                return
            ssrc = (
                _SSRC.unpack_from(packet, 4 if rtcp else 8)[0]
                if len(packet) >= 12 or rtcp
                else None
            )
            key = (stream, "rtcp" if rtcp else kind, source, ssrc)
            counter = stats.get(key)
            if counter is None:
                counter = RtcpCounter(ssrc) if rtcp or kind == "rtcp" else RtpStats(rates)
                stats[key] = counter
                dsts[key] = dst
            if not rtcp and kind == "rtp" and len(ssrc_bytes) == 4:
                last_source, last_ssrc, last_counter = source, ssrc_bytes, counter
            counter.update(packet, now)

        return tap

    def take(self) -> bytes:
        """The records appended since the last take (worker thread)."""
        chunks = self.chunks
        n = len(chunks)
        if not n:
            return b""
        data = b"".join(chunks[:n])
        del chunks[:n]
        return data

    def take_meta(self) -> bytes:
        meta = self.meta
        n = len(meta)
        data = b"".join(meta[:n])
        del meta[:n]
        return data

    # -- state --------------------------------------------------------------------------------
    def pause(self, now: float) -> bool:
        if self.paused or self.finished:
            return False
        self.paused = True
        self.writing = False
        self.doc["pauses"].append({"start": now, "end": None})
        self.note(now, "rtpvault: recording paused")
        return True

    def resume(self, now: float) -> bool:
        if not self.paused or self.finished:
            return False
        self.paused = False
        self.writing = not self.failed
        if self.doc["pauses"] and self.doc["pauses"][-1]["end"] is None:
            self.doc["pauses"][-1]["end"] = now
        self.note(now, "rtpvault: recording resumed")
        return True

    def stream_docs(self, codec_of: Callable[[str, int], str | None]) -> list[SidecarStream]:
        """The sidecar's `streams`: one per (party, kind, source, SSRC)."""
        out: list[SidecarStream] = []
        for key, counter in list(self.stats.items()):
            stream, kind, src, _ = key
            tag = getattr(stream, "tag", "")
            snap = counter.snapshot()
            dst = self.dsts[key]
            pts = snap["payload_types"]
            codec = next((c for c in (codec_of(tag, pt) for pt in pts) if c), None)
            doc: SidecarStream = {"ssrc": snap["ssrc"], "kind": kind, "party": tag,
                                  "src": _hostport(src), "dst": _hostport(dst),
                                  "codec": codec}  # fmt: skip
            # the counters' snapshot holds the entry's other keys (RtpStats.snapshot)
            doc.update(cast(SidecarStream, {k: v for k, v in snap.items() if k != "ssrc"}))
            out.append(doc)
        return out
