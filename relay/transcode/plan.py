"""What one direction of a media section does with each payload type (pure data).

Negotiation (relay.call, from the SDPs and the codec flags, as rtpengine 10.5 decides) sets
`MediaSide.codec_plan` on the side whose party *sends* the packets; None there means plain
forwarding, byte for byte, as before transcoding existed. The media side (relay.transcode's
chain, run by the userspace plane's secure reader) turns a plan into decoders/encoders.

How relay.call.transcoding fills it (docs/spec/sdp.md §1.11a, measured on rtpengine 10.5):
an input payload type is either in `passthrough`, in `renumber`, or decoded and encoded to
`encode_pt` (telephone-event inputs not passed through become events at `dtmf_out_pt`, or
tones when that is None). A payload type not in `inputs` at all is forwarded unchanged
(measured: rtpengine has no handler for it, e.g. telephone-event the answer dropped).
`encode_pt` is the *receiving* party's number for the codec (opus as the answerer's 111, not
the 96 rtpengine offered). An offer sets a provisional plan on the answerer's side (B → A,
before the answer); the answer sets both final ones. An unchanged plan keeps its object
across later SDPs; a changed one is a new object (compare by identity).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Codec:
    """One payload type's codec as an SDP states it."""

    name: str
    """Encoding name as in a=rtpmap (`PCMU`, `opus`, `G722`, `telephone-event`, `CN`)."""
    clock: int
    """RTP clock rate from a=rtpmap (G722: 8000, though it samples at 16 kHz)."""
    channels: int = 1
    fmtp: str = ""
    """The a=fmtp value for this payload type, as written in the SDP ("" when none)."""

    @property
    def key(self) -> str:
        """`name/clock[/channels]` as rtpengine prints a codec (`opus/48000/2`)."""
        base = f"{self.name}/{self.clock}"
        return base if self.channels == 1 else f"{base}/{self.channels}"


@dataclass(frozen=True, slots=True)
class DirectionPlan:
    """Packets from one party towards the other, by RTP payload type."""

    inputs: dict[int, Codec]
    """Payload types the sending party may send (what we advertised to it), with codecs."""
    outputs: dict[int, Codec]
    """Payload types the receiving party accepts (its SDP), in its order of preference."""
    passthrough: frozenset[int] = frozenset()
    """Input payload types forwarded unchanged (same codec, same number, on both sides)."""
    renumber: dict[int, int] = field(default_factory=dict)
    """Input PT → output PT for the same codec under another number (forwarded, PT rewritten;
    rtpengine re-encodes these, which only changes SSRC/timing, not the codec), and
    telephone-event/CN input PT → the output PT rtpengine maps them to."""
    encode_pt: int | None = None
    """Output payload type transcoded audio is sent as; None: nothing is transcoded."""
    dtmf_out_pt: int | None = None
    """telephone-event PT at the output's clock; None with a telephone-event input: events
    become in-band tones in `encode_pt`'s audio (where rtpengine 10.5 does that)."""
    cn_out_pt: int | None = None
    """CN payload type on the output, if the receiver accepts CN at the encoder's clock."""
    ptime: int | None = None
    """Output packetisation in ms: the receiving side's ptime (ptime= / ptime-reverse=, else
    the last a=ptime of either SDP, else 20; G.723 30). Measured: ptime=30 turns 20-ms PCMU
    into 240-byte packets. None: the encoder's default."""
    inband_to_dtmf: bool = False
    """Detect DTMF tones in the decoded input and send them as telephone-event (dtmf_out_pt)."""

    @property
    def transcodes(self) -> bool:
        return self.encode_pt is not None
