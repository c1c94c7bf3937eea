"""The userspace plane's side of one transcoded direction (issue 19; docs/design/transcoding.md).

The call model gives each media side whose party's packets need more than forwarding (a
`relay.transcode.plan.DirectionPlan` on `MediaSide.codec_plan`) one `Transcoder`, set as
`transcoder` on the side's RTP and RTCP streams; the plane then reads both with the secure
reader (relay.media.secure.reader), which, after SRTP, the recording tap, latching and the
stream's counters:

* hands each RTP packet to `Transcoder.feed`, which runs the codec chain (relay.transcode) and
  returns what leaves through the sink instead of the packet (the sink's transport protects
  it, as a forwarded packet). The chain runs in the worker that owns the call, on its loop;
  anything it raises is counted (`errors`) and the packet dropped, never out of the reader;
* passes the party's RTCP through `Transcoder.rtcp`, which rewrites it for the other leg the
  way rtpengine 10.5 does (docs/spec/transcoding.md §2): its SSRCs and counts described the
  leg the party sees, the output leg has the chain's SSRC, sequence and counts.

With `dtx-delay` (a `relay.transcode.dtx.DtxBuffer` as `dtx`) `feed` holds the packet instead
and the plane's timer calls `tick` at `dtx.next_at()`: the held packets go into the chain when
due, and a frame the sender did not send is made up by the chain (`conceal`), as rtpengine's
DTX buffer does (docs/spec/config.md §2.9).

Per-process figures by chain (`Ledger`, rtpengine's `transcoders` statistics and metrics,
docs/spec/metrics.md §1.3): transcoders now, packets and payload bytes into the chain, PCM
samples decoded; the daemon sums them over its workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from relay.transcode.dtx import FILL, DtxBuffer
from relay.transcode.inject import DtmfInjector
from relay.transcode.plan import DirectionPlan
from rtp.reports import ReceiveStats, SendStats, count_sent, read_header
from rtp.translate import Translation, translate

__all__ = [
    "DROP_CAUSES", "Chain", "ChainFigures", "Ledger", "Transcoder", "chain_label", "labels",
    "payload_size",
]  # fmt: skip

MAX_SSRCS = 4
"""Input SSRCs (and output ones) followed per direction, as rtpengine tracks a few per stream:
a party spraying SSRCs cannot grow the state without bound."""
DROP_CAUSES = ("chain_error", "decode_error", "encode_error", "malformed", "late")
"""Why a packet (or frame) into a chain produced nothing (rtpvault_transcode_packets_dropped_
total): `chain_error` is an exception out of the chain (caught here), the others the chain's
own counters (relay.transcode.chain: `decode_errors`, `encode_errors`, `malformed`, `late`).
Payload types the plan does not know are forwarded by the chain (its `unknown_pt`), not
dropped."""
_CHAIN_COUNTERS = (("decode_error", "decode_errors"), ("encode_error", "encode_errors"),
                   ("malformed", "malformed"), ("late", "late"))  # fmt: skip
NOT_AUDIO = frozenset({"telephone-event", "CN"})
"""Codecs without a decoder chain of their own in rtpengine's statistics."""


class Chain(Protocol):
    """relay.transcode's codec chain for one DirectionPlan (the contract of
    docs/design/transcoding.md): RTP in, RTP for the other leg out; never blocks."""

    def feed(self, rtp: bytes, now: float) -> list[bytes]: ...

    def conceal(self, now: float) -> list[bytes]: ...


@dataclass(slots=True)
class ChainFigures:
    """rtpengine's codec_stats entry of one chain label, in one process."""

    active: int = 0
    packets: int = 0
    bytes: int = 0
    samples: int = 0


@dataclass(slots=True)
class Ledger:
    """Every chain label this process has run, with its figures (they stay after the calls),
    and the drops of its chains by cause (ended ones in `retired`, running ones in `live`)."""

    chains: dict[str, ChainFigures] = field(default_factory=dict)
    live: set[Transcoder] = field(default_factory=set)
    retired: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_CAUSES, 0))

    def drops(self) -> dict[str, int]:
        """Packets into chains that produced nothing, by cause (DROP_CAUSES order)."""
        out = dict(self.retired)
        for t in self.live:
            for cause, n in t.drops():
                out[cause] += n
        return out

    def figures(self, label: str) -> ChainFigures:
        f = self.chains.get(label)
        if f is None:
            f = self.chains[label] = ChainFigures()
        return f

    def snapshot(self) -> dict[str, tuple[int, int, int, int]]:
        """label → (active, packets, bytes, samples): picklable, summed over workers."""
        return {k: (f.active, f.packets, f.bytes, f.samples) for k, f in self.chains.items()}


def chain_label(source: str, dest: str) -> str:
    """rtpengine's chain name: `PCMU/8000 -> opus/48000/2` (codec keys, relay.transcode.plan)."""
    return f"{source} -> {dest}"


def labels(plan: DirectionPlan) -> dict[int, str]:
    """Input payload type → chain label, for the types the plan transcodes (not forwarded,
    not renumbered, not telephone-event or CN), as rtpengine makes one handler per type."""
    if plan.encode_pt is None or plan.encode_pt not in plan.outputs:
        return {}
    dest = plan.outputs[plan.encode_pt].key
    return {
        pt: chain_label(codec.key, dest)
        for pt, codec in plan.inputs.items()
        if pt not in plan.passthrough and pt not in plan.renumber and codec.name not in NOT_AUDIO
    }


def payload_size(packet: bytes) -> int:
    """RTP payload length (what rtpengine counts as bytes into a chain): the packet minus the
    fixed header, CSRCs, extension and padding; 0 for anything shorter than it claims."""
    if len(packet) < 12:
        return 0
    size = len(packet) - 12 - 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10:
        at = 12 + 4 * (packet[0] & 0x0F)
        if len(packet) < at + 4:
            return 0
        size -= 4 + 4 * int.from_bytes(packet[at + 2 : at + 4], "big")
    if packet[0] & 0x20:
        size -= packet[-1]
    return max(size, 0)


def _samples(chain: Chain) -> int:
    """The chain's count of PCM samples decoded so far (0 when it keeps none)."""
    n = getattr(chain, "samples_decoded", 0)
    return n if isinstance(n, int) else 0


class Transcoder:
    """One direction's chain as the plane runs it, with what RTCP translation needs."""

    __slots__ = (
        "chain", "plan", "by_pt", "errors", "other", "out_of", "sent", "received",
        "translated", "_samples", "closed", "ledger", "injector", "dtx", "timer", "_in_ssrc",
    )  # fmt: skip

    def __init__(self, chain: Chain, plan: DirectionPlan, ledger: Ledger,
                 dtx: DtxBuffer | None = None) -> None:  # fmt: skip
        self.chain = chain
        self.plan = plan
        self.by_pt = {pt: ledger.figures(label) for pt, label in labels(plan).items()}
        """Input payload type → its chain's figures (rtpengine's per-handler stats entry)."""
        for fig in self.by_pt.values():
            fig.active += 1
        self.errors = 0
        """Packets the chain raised on (dropped, counted; the call goes on)."""
        self.other: Transcoder | None = None
        """The opposite direction's transcoder (its input stats answer our party's reports)."""
        self.out_of: dict[int, int] = {}
        """Input SSRC → the SSRC its transcoded packets leave with."""
        self.sent: dict[int, SendStats] = {}
        """Output SSRC → what left towards the other party."""
        self.received: dict[int, ReceiveStats] = {}
        """Input SSRC → what arrived from this party."""
        self.translated = 0
        """RTCP packets from the party rewritten for the other leg."""
        self._samples = _samples(chain)
        self.closed = False
        self.ledger = ledger
        ledger.live.add(self)
        self.injector: DtmfInjector | None = None
        """`play DTMF` events put into this direction's output (relay.transcode.inject)."""
        self.dtx = dtx
        """The DTX buffer (`dtx-delay` > 0), else None: packets go through at once."""
        self.timer: object | None = None
        """The plane's pending timer for `tick` (cancelled by `close`)."""
        self._in_ssrc: int | None = None

    def feed(self, data: bytes, now: float) -> list[bytes]:
        """One RTP packet from the party; what leaves towards the other party instead."""
        fig = self.by_pt.get(data[1] & 0x7F) if len(data) >= 12 else None
        if fig is not None:
            fig.packets += 1
            fig.bytes += payload_size(data)
        head = read_header(data)
        if head is not None:
            seq, ts, ssrc = head
            st = self.received.get(ssrc)
            if st is None and len(self.received) < MAX_SSRCS:
                st = self.received[ssrc] = ReceiveStats(ssrc, seq)
            if st is not None:
                st.update(seq, ts, now)
            self._in_ssrc = ssrc
        if self.dtx is not None and self.dtx.push(data, now):
            return self.tick(now)
        try:
            out = self.chain.feed(data, now)
        except Exception:  # a codec or chain bug drops this packet only
            self.errors += 1
            return []
        return self._emit(out, fig)

    def tick(self, now: float) -> list[bytes]:
        """With a DTX buffer: what is due by `now` through the chain, and what leaves."""
        out: list[bytes] = []
        if self.dtx is None:
            return out
        for item in self.dtx.due(now):
            try:
                got = self.chain.conceal(now) if item is FILL else self.chain.feed(item, now)
            except Exception:  # a codec or chain bug drops this packet only
                self.errors += 1
                continue
            fig = None if item is None or len(item) < 12 else self.by_pt.get(item[1] & 0x7F)
            out += self._emit(got, fig)
            self.dtx.set_frame(getattr(self.chain, "frame_ticks", 0),
                               getattr(self.chain, "input_clock", 0))  # fmt: skip
        return out

    def _emit(self, out: list[bytes], fig: ChainFigures | None) -> list[bytes]:
        n = _samples(self.chain)
        if fig is not None:
            fig.samples += n - self._samples
        self._samples = n
        if self.injector is not None:
            out = [q for p in out for q in self.injector.process(p)]
        for p in out:
            out_ssrc = count_sent(self.sent, p, MAX_SSRCS)
            if out_ssrc is None:
                continue
            ssrc = self._in_ssrc
            if ssrc is not None and ssrc not in self.out_of and len(self.out_of) < MAX_SSRCS:
                self.out_of[ssrc] = out_ssrc
        return out

    def rtcp(self, data: bytes) -> bytes:
        """The party's (plaintext) RTCP as the other leg must see it."""
        other = self.other
        t = Translation(self.out_of, self.sent,
                        {} if other is None else other.out_of,
                        {} if other is None else other.received)  # fmt: skip
        out = translate(data, t)
        if out is not data:
            self.translated += 1
        return out

    def close(self) -> None:
        """The direction stops transcoding (re-offer, call end): its chains count one less."""
        if not self.closed:
            self.closed = True
            cancel = getattr(self.timer, "cancel", None)
            if cancel is not None:
                cancel()
            self.timer = None
            for fig in self.by_pt.values():
                fig.active -= 1
            self.ledger.live.discard(self)
            for cause, n in self.drops():
                self.ledger.retired[cause] += n

    def drops(self) -> list[tuple[str, int]]:
        """(cause, count) of this direction's dropped packets (DROP_CAUSES order)."""
        chain = self.chain
        counted = [(cause, getattr(chain, name, 0)) for cause, name in _CHAIN_COUNTERS]
        return [("chain_error", self.errors)] + [
            (cause, n if isinstance(n, int) else 0) for cause, n in counted
        ]
