"""One direction's media chain: plaintext RTP from the sender in, RTP for the receiver out,
as a `DirectionPlan` (relay.transcode.plan) says. Sans-IO: `feed(packet, now)` returns the
packets to send; the caller (the userspace plane) owns sockets, SRTP and the clock.

Per input payload type (docs/spec/transcode-media.md §1):

* passthrough: forwarded as is; while the chain transcodes, with the chain's SSRC and
  sequence numbers (the timestamp kept), as rtpengine 10.5's `handler_func_passthrough_ssrc`;
* renumber: the same, with the payload type rewritten;
* an audio codec FFmpeg decodes: decoded (one decoder per payload type, made on first use),
  resampled to the encoder's rate, buffered and encoded into `encode_pt` packets of the plan's
  ptime, with the chain's own SSRC, sequence numbers and timestamps at the output clock;
* telephone-event: renumbered to `dtmf_out_pt` with its timestamp on the output time line and
  its duration scaled to the output clock, or, with no `dtmf_out_pt`, synthesised into the
  encoded audio as the tone (relay.transcode.dtmf), as rtpengine 10.5 does;
  audio the sender sends during an event is dropped (the event owns its time), unless
  `dtmf-no-suppress` (ChainOptions.dtmf_no_suppress): then the audio is transcoded on its own
  time line and the event placed on it, both sent (docs/spec/config.md §2.9);
* CN: forwarded as `cn_out_pt` when the receiver has one, else a pause (silence);
* with `silence-detect` (ChainOptions.silence) and a `cn_out_pt`: an encoded frame whose
  samples all stay within the threshold goes out as CN with the `cn-payload` bytes instead, in
  the frame's place (same sequence number and timestamp), as rtpengine 10.5;
* anything else: forwarded like passthrough and counted in `unknown_pt`.

Time line: the output timestamp follows the input's. A contiguous input packet continues the
output; a short gap (loss, up to FILL_MS) is filled with silence so the output keeps its
cadence (FFmpeg gives us no Opus FEC or PLC, see relay.transcode.audio); a longer gap, a
marked packet after a gap (talkspurt) or a new input SSRC pads the partial frame with silence,
moves the output timestamp on by the gap and sets the marker on the next packet. A packet from
before what was already encoded (late, reordered or duplicated) is dropped and counted in
`late`. Nothing is ever sent faster than input arrives, and nothing waits for a timer. With
`dtx-delay` the plane feeds the chain from rtpengine's DTX buffer instead (relay.transcode.dtx)
and has it make up the frames a sender did not send (`conceal`).

marked packet after a gap (talkspurt), a gap during which packets were forwarded unchanged
(telephone-event the receiver lacks, a passthrough codec) or a new input SSRC pads the partial
frame with silence, moves the output timestamp on by the gap and sets the marker on the next
packet. A packet from before what was already encoded (late, reordered or duplicated: by
sequence number as rtpengine, SEQ_DUPE_WINDOW, or by timestamp) is dropped and counted in
`late`. Nothing is ever sent faster than input arrives, and nothing waits for a timer.

Bad input never raises: a non-RTP packet counts in `malformed`, a payload FFmpeg rejects in
`decode_errors` (the frame is dropped, the call goes on).

Logging (debug lines, as rtpengine's per-subsystem ones, docs/spec/config.md §2.9): the media
work under `relay.transcode` (`log-level-transcoding`), the filling of input gaps, what stands
for rtpengine's DTX handling here, under `relay.transcode.dtx` (`log-level-dtx`).
"""

from __future__ import annotations

import logging
from fractions import Fraction

from relay.transcode import packet
from relay.transcode.audio import AudioError, ComfortNoise, Decoder, Encoder, Resampler
from relay.transcode.codecs import AudioCodec, lookup
from relay.transcode.detect import DtmfDetector
from relay.transcode.dtmf import DtmfSynth, Event, EventError, build_event, parse_event
from relay.transcode.options import ChainOptions
from relay.transcode.plan import Codec, DirectionPlan

__all__ = [
    "DETECTED_VOLUME", "END_REPEATS", "EVENT_GRACE_MS", "FILL_MS", "MAX_JUMP_S",
    "SEQ_DUPE_WINDOW", "Chain", "ChainError",
]  # fmt: skip

logger = logging.getLogger("relay.transcode")
dtx_logger = logging.getLogger("relay.transcode.dtx")

FILL_MS = 200
"""Input gaps up to this long are filled with silence (lost packets); longer ones (DTX,
on hold) move the output timestamp on instead."""
MAX_JUMP_S = 30
"""An input timestamp jump beyond this (or backwards by more than a second) is a reset of the
sender's clock: the output moves on by the arrival-time difference instead."""
SEQ_DUPE_WINDOW = 100
"""An audio packet up to this many sequence numbers behind the next one expected is a duplicate
and dropped (`late`); a jump of this many or more either way is a restart of the sender's
numbering and goes on, as rtpengine 10.5's sequencer (docs/spec/transcode-media.md §3)."""


END_REPEATS = 3
"""An event's end packet is sent this many times (RFC 4733 §2.5.1.4), as rtpengine does."""
EVENT_GRACE_MS = 100
"""Audio this far past what a telephone-event has lasted (its end packets lost) ends it."""
DETECTED_VOLUME = 10
"""Volume (dBm0 below full scale) of telephone-events made from detected tones."""


class ChainError(ValueError):
    """A plan the chain cannot run (its encode_pt is not a codec FFmpeg encodes)."""


def _signed(delta: int) -> int:
    return (delta + 0x80000000) % 0x100000000 - 0x80000000


def _is(codec: Codec, name: str) -> bool:
    return codec.name.lower() == name


_AUDIO, _EVENT, _CN, _FORWARD = "audio", "event", "cn", "forward"


def _kinds(plan: DirectionPlan) -> dict[int, str]:
    """Input payload type → what `Chain.feed` does with it, decided once per plan (not per
    packet): telephone-event first, then forwarded (passthrough, renumber), CN, else audio."""
    out = {}
    for pt, codec in plan.inputs.items():
        if _is(codec, "telephone-event"):
            out[pt] = _EVENT
        elif pt in plan.passthrough or pt in plan.renumber:
            out[pt] = _FORWARD
        elif _is(codec, "cn"):
            out[pt] = _CN
        else:
            out[pt] = _AUDIO
    return out


class Chain:
    """The media work for one `DirectionPlan`, sending as `ssrc`. `seq` is the sequence number
    before the first one sent and `ts` the first timestamp; None (the default): follow the
    first input packet's, as rtpengine 10.5 does (docs/spec/transcode-media.md §3). `options`:
    the daemon's `dtmf-no-suppress`, `silence-detect` and `cn-payload`."""

    def __init__(self, plan: DirectionPlan, ssrc: int, seq: int | None = None,
                 ts: int | None = None, options: ChainOptions | None = None) -> None:  # fmt: skip
        self.plan = plan
        self.options = options or ChainOptions()
        self.cn_frames = 0
        """Frames sent as CN because they were silent (silence-detect)."""
        self.ssrc = ssrc
        self.seq = (seq or 0) & 0xFFFF
        self._follow = (seq is None, ts is None)
        # counters (plain ints, read by stats and RTCP)
        self.packets_in = 0
        self.bytes_in = 0
        self.packets_out = 0
        self.octets_out = 0
        """Octets of whole RTP packets sent, as rtpengine counts them for an SR."""
        self.decode_errors = 0
        self.samples_decoded = 0
        self.frames_encoded = 0
        self.encode_errors = 0
        self.malformed = 0
        self.late = 0
        self.unknown_pt = 0
        self.filled = 0
        """Samples of silence put in for lost input."""
        self.dtmf_events = 0
        self.last_ts = (ts or 0) & 0xFFFFFFFF
        """RTP timestamp of the last packet out (an SR's RTP time with `last_ts_at`)."""
        self.last_ts_at = 0.0
        self.out_codec: AudioCodec | None = None
        self.encoder: Encoder | None = None
        self.out_clock = 8000
        if plan.encode_pt is not None:
            out = plan.outputs.get(plan.encode_pt)
            codec = lookup(out.name, out.clock) if out is not None else None
            if codec is None or codec.encoder is None or out is None:
                raise ChainError(f"cannot encode payload type {plan.encode_pt} ({out})")
            self.out_codec = codec
            try:
                self.encoder = Encoder(codec, plan.ptime or 20, out.fmtp)
            except AudioError as exc:
                raise ChainError(str(exc)) from None
            self.out_clock = out.clock
        self._kinds = _kinds(plan)
        self._decoders: dict[int, Decoder] = {}
        self._synths: dict[int, tuple[DtmfSynth, Resampler]] = {}
        self._in_ssrc: int | None = None
        self._next_seq: int | None = None  # audio sequence number expected next
        # output time line: `_tick` is the output timestamp of `_buf[0]` (not wrapped)
        self._buf = bytearray()
        self._tick = ts or 0
        self._exp: int | None = None  # input timestamp expected next
        self._exp_clock = 0
        self._last_now = 0.0
        self._marker = True
        self._padded = 0  # samples of silence the last flush added after the real audio
        self._bridged = False  # packets forwarded unchanged since the last audio placed
        self._ev_in: tuple[int, int] | None = None  # (input event ts, output event ts)
        self._detector: DtmfDetector | None = None
        self._det_rate: Resampler | None = None
        self._det: list[int] = []  # detected digit under way: [code, start tick or -1, ended]
        self._noise: ComfortNoise | None = None  # dtx-cn-params, made on the first fill
        self.frame_ticks = 0
        """Input ticks the last decoded packet held (a DTX fill's length)."""
        self._quiet = -1  # silence-detect: largest sample magnitude that is silence; -1 off
        if self.options.silence > 0 and plan.cn_out_pt is not None:
            # rtpengine's threshold: the fraction of UINT32_MAX, shifted down to 16 bits
            self._quiet = int(self.options.silence * 0xFFFFFFFF) >> 16
        if plan.inband_to_dtmf and plan.dtmf_out_pt is not None and self.out_codec is not None:
            self._detector = DtmfDetector()
            self._det_rate = Resampler(8000)

    # -- what the plane's RTCP needs ----------------------------------------------------------

    @property
    def input_clock(self) -> int:
        """RTP clock of the input audio last placed (0 before any)."""
        return self._exp_clock

    def rtp_timestamp(self, now: float) -> int:
        """The output RTP timestamp that corresponds to wall-clock `now` (an SR's RTP time)."""
        return (self.last_ts + round((now - self.last_ts_at) * self.out_clock)) & 0xFFFFFFFF

    # -- per packet ---------------------------------------------------------------------------

    def feed(self, data: bytes, now: float) -> list[bytes]:
        """One plaintext RTP packet from the sender → the packets for the receiver."""
        self.packets_in += 1
        self.bytes_in += len(data)
        rtp = packet.parse(data)
        if rtp is None:
            self.malformed += 1
            return []
        if self._follow != (False, False):
            self._start_from(rtp)
        plan = self.plan
        if plan.encode_pt is None:  # plan.transcodes, without a property call per packet
            new = plan.renumber.get(rtp.pt)
            if new is None and rtp.pt not in plan.passthrough:
                self.unknown_pt += 1
            return self._sent([data if new is None else packet.rewrite(data, pt=new)], now)
        out = self._new_source(rtp.ssrc) if rtp.ssrc != self._in_ssrc else []
        codec = plan.inputs.get(rtp.pt)
        kind = self._kinds.get(rtp.pt, _FORWARD)
        if (kind is _AUDIO or kind is _CN) and codec is not None \
                and not self._in_sequence(rtp.seq):
            self.late += 1  # a duplicate, 1-99 behind (rtpengine's SEQ_DUPE_WINDOW)
        elif kind is _AUDIO and codec is not None:
            out += self._audio(rtp, codec, now)
        elif kind is _EVENT and codec is not None:
            out += self._event(rtp, codec, now)
        elif kind is _CN and codec is not None:
            out += self._comfort_noise(rtp, codec)
        else:
            if codec is None:
                self.unknown_pt += 1
            self._bridged = True
            new = plan.renumber.get(rtp.pt)
            self.seq = (self.seq + 1) & 0xFFFF
            out.append(packet.rewrite(data, pt=new, seq=self.seq, ssrc=self.ssrc))
        return self._sent(out, now)

    def conceal(self, now: float) -> list[bytes]:
        """One input frame of silence (or `dtx-cn-params` comfort noise) where the next input
        packet was due: the DTX buffer's fill (relay.transcode.dtx, `dtx-delay`). Nothing
        before the first decoded audio."""
        if self._exp is None or self.out_codec is None or not self.frame_ticks:
            return []
        ticks, clock = self.frame_ticks, self._exp_clock
        samples = ticks * self.out_codec.sample_rate // clock
        self.filled += samples
        pcm = bytes(2 * samples)
        if self.options.dtx_noise:
            try:
                if self._noise is None:
                    self._noise = ComfortNoise(self.options.dtx_noise, self.out_codec.sample_rate)
                pcm = self._noise.pcm(samples)
            except AudioError:
                self.decode_errors += 1  # silence then
        dtx_logger.debug("DTX: %d ms generated", ticks * 1000 // clock)
        return self._sent(self._place(self._exp, ticks, clock, False, pcm, now), now)

    def _in_sequence(self, seq: int) -> bool:
        """Whether audio (or CN) with sequence number `seq` goes on, not a duplicate: rtpengine's
        window (SEQ_DUPE_WINDOW), which decides by sequence number alone. A replayed stream
        (a sipp pcap played again after a re-INVITE, same SSRC) is dropped while its numbers
        stay in the window, as in rtpengine. telephone-event packets are not held to it: their
        end packets repeat, and rtpengine forwards duplicate events."""
        expected = self._next_seq
        if expected is not None and (seq - expected) & 0xFFFF > 0xFFFF - SEQ_DUPE_WINDOW:
            return False
        self._next_seq = (seq + 1) & 0xFFFF
        return True

    def _start_from(self, rtp: packet.Rtp) -> None:
        follow_seq, follow_ts = self._follow
        if follow_seq:
            self.seq = (rtp.seq - 1) & 0xFFFF
        if follow_ts:
            self._tick = self.last_ts = rtp.ts
        self._follow = (False, False)

    def _sent(self, out: list[bytes], now: float) -> list[bytes]:
        if out:
            self.packets_out += len(out)
            self.octets_out += sum(map(len, out))
            self.last_ts = int.from_bytes(out[-1][4:8], "big")
            self.last_ts_at = now
        return out

    def _new_source(self, ssrc: int) -> list[bytes]:
        """A new input SSRC: fresh decoders, a new talkspurt on the same output stream."""
        logger.debug("new input SSRC %08x", ssrc)
        out = self._flush() if self._in_ssrc is not None else []
        self._in_ssrc = ssrc
        self._next_seq = None
        self._decoders.clear()
        self._synths.clear()
        self._exp = None
        self._marker = True
        return out

    # -- audio ------------------------------------------------------------------------------

    def _decoder(self, pt: int, codec: Codec) -> Decoder | None:
        dec = self._decoders.get(pt)
        if dec is None:
            av_codec = lookup(codec.name, codec.clock)
            if av_codec is None or self.out_codec is None:
                return None
            try:
                dec = self._decoders[pt] = Decoder(av_codec, self.out_codec.sample_rate)
            except AudioError:
                return None
        return dec

    def _audio(self, rtp: packet.Rtp, codec: Codec, now: float) -> list[bytes]:
        if self._synths:
            grace = codec.clock * EVENT_GRACE_MS // 1000
            if any(synth.covers(rtp.ts, grace) for synth, _ in self._synths.values()):
                return []  # the event's tone stands for the audio meanwhile
        dec = self._decoder(rtp.pt, codec)
        if dec is None:
            self.decode_errors += 1
            logger.debug("no decoder for payload type %d (%s); packet dropped", rtp.pt,
                         codec.name)  # fmt: skip
            return []
        try:
            pcm, native = dec.decode(rtp.payload)
        except AudioError as exc:
            self.decode_errors += 1
            logger.debug("payload type %d: %s; frame dropped", rtp.pt, exc)
            return []
        self.samples_decoded += native
        ticks = native * codec.clock // dec.codec.sample_rate
        self.frame_ticks = ticks
        return self._place(rtp.ts, ticks, codec.clock, rtp.marker, pcm, now)

    def _place(self, ts: int, ticks: int, clock: int, marker: bool, pcm: bytes,
               now: float) -> list[bytes]:  # fmt: skip
        """Put decoded audio (at the encoder's rate) starting at input timestamp `ts` on the
        output time line and encode every whole frame."""
        out: list[bytes] = []
        assert self.out_codec is not None
        rate = self.out_codec.sample_rate
        if self._exp is None or clock != self._exp_clock:
            if self._exp is not None:
                out += self._flush()
            self._marker = True
        else:
            delta = _signed(ts - self._exp)
            tolerance = clock // 1000
            if delta < -tolerance and delta > -clock:
                self.late += 1
                return out
            if delta > tolerance:
                gap = delta * rate // clock
                # a gap the sender filled with packets we forwarded (events of a type the
                # receiver did not negotiate, a passthrough codec) is not loss: no silence
                # on top of them, the output moves on as after a pause
                if delta <= clock * FILL_MS // 1000 and not marker and not self._bridged:
                    gap = max(0, gap - self._padded)
                    self._buf += bytes(2 * gap)
                    self.filled += gap
                    dtx_logger.debug("input gap of %d ms filled with silence",
                                     delta * 1000 // clock)  # fmt: skip
                else:
                    if delta > clock * MAX_JUMP_S:
                        gap = round((now - self._last_now) * rate)
                    out += self._jump(gap)
            elif delta < -tolerance:  # a timestamp reset: follow the arrival time
                out += self._jump(round((now - self._last_now) * rate))
            elif marker:
                self._marker = True
        self._exp, self._exp_clock, self._last_now = (ts + ticks) & 0xFFFFFFFF, clock, now
        self._bridged = False
        self._buf += pcm
        self._padded = 0
        if self._detector is not None and self._det_rate is not None:
            self._detect(self._det_rate.pcm(pcm, rate))
        return out + self._encode()

    def _jump(self, gap: int) -> list[bytes]:
        """A pause of `gap` samples: finish the partial frame, move the time line on."""
        assert self.out_codec is not None
        out = self._flush()
        self._tick += max(0, int((gap - self._padded) * self.out_codec.ticks_per_sample))
        self._padded = 0
        self._marker = True
        return out

    def _flush(self) -> list[bytes]:
        """Encode what is buffered, padded with silence to a whole frame."""
        if not self._buf or self.encoder is None:
            self._buf.clear()
            return []
        frame = self.encoder.frame
        rest = len(self._buf) // 2 % frame
        self._padded = frame - rest if rest else 0
        self._buf += bytes(2 * self._padded)
        return self._encode()

    def _encode(self) -> list[bytes]:
        enc = self.encoder
        assert enc is not None and self.plan.encode_pt is not None
        out = []
        frame = 2 * enc.frame
        while len(self._buf) >= frame:
            pcm = bytes(self._buf[:frame])
            del self._buf[:frame]
            if self._det:  # a detected digit: its event packets stand for the audio
                out += self._detected_event()
                continue
            try:
                payload = enc.encode(pcm)
            except AudioError:
                self.encode_errors += 1
                self._tick += enc.ticks  # the frame is lost; the time line goes on
                continue
            self.frames_encoded += 1
            self.seq = (self.seq + 1) & 0xFFFF
            pt = self.plan.encode_pt
            if self._quiet >= 0 and self._silent(pcm) and self.plan.cn_out_pt is not None:
                pt, payload = self.plan.cn_out_pt, self.options.cn_payload
                self.cn_frames += 1
            out.append(packet.build(self._marker, pt, self.seq, self._tick, self.ssrc,
                                    payload))  # fmt: skip
            self._marker = False
            self._tick += enc.ticks
        return out

    def _silent(self, pcm: bytes) -> bool:
        """Every sample of the frame within ±threshold (rtpengine compares the low side with
        the decoded frame's second sample only, docs/spec/config.md §2.9; we compare each)."""
        samples = memoryview(pcm).cast("h")
        return max(samples) <= self._quiet and min(samples) >= -self._quiet

    def _out_tick(self, ts: int, clock: int) -> int:
        """Output timestamp (not wrapped) of input timestamp `ts` on the current time line."""
        assert self.out_codec is not None
        end = self._tick + int(len(self._buf) // 2 * self.out_codec.ticks_per_sample)
        if self._exp is None:
            return end
        return end + _signed(ts - self._exp) * self.out_clock // clock

    # -- in-band DTMF → telephone-event ----------------------------------------------------

    def _detect(self, pcm: bytes) -> None:
        assert self._detector is not None
        for what, code in self._detector.feed(pcm):
            if what == "start" and not self._det:
                self._det = [code, -1, 0]
                self.dtmf_events += 1
            elif what == "end" and self._det and self._det[0] == code:
                self._det[2] = 1

    def _detected_event(self) -> list[bytes]:
        """The telephone-event packet(s) that replace the audio frame at `_tick` while a
        detected digit lasts: one per frame, then the end packet three times."""
        pt = self.plan.dtmf_out_pt
        assert pt is not None and self.encoder is not None
        code, start, ended = self._det
        marker = start < 0
        if marker:
            start = self._det[1] = self._tick
        te = self.plan.outputs.get(pt)
        scale = Fraction(te.clock if te is not None else self.out_clock, self.out_clock)
        duration = min(0xFFFF, int((self._tick + self.encoder.ticks - start) * scale))
        ev = build_event(Event(code, bool(ended), DETECTED_VOLUME, duration))
        out = []
        for _ in range(END_REPEATS if ended else 1):
            self.seq = (self.seq + 1) & 0xFFFF
            out.append(packet.build(marker, pt, self.seq, start, self.ssrc, ev))
        self._tick += self.encoder.ticks
        if ended:
            self._det = []
        return out

    # -- telephone-event and CN -------------------------------------------------------------

    def _event(self, rtp: packet.Rtp, codec: Codec, now: float) -> list[bytes]:
        plan = self.plan
        out_pt = plan.renumber.get(rtp.pt, rtp.pt if rtp.pt in plan.passthrough
                                   else plan.dtmf_out_pt)  # fmt: skip
        if out_pt is None:
            return self._inband(rtp, codec, now)
        try:
            ev = parse_event(rtp.payload)
        except EventError:
            self.decode_errors += 1
            return []
        out_codec = plan.outputs.get(out_pt)
        out_clock = out_codec.clock if out_codec is not None else codec.clock
        out: list[bytes] = []
        if self._ev_in is None or self._ev_in[0] != rtp.ts:
            if self._ev_in is not None and _signed(rtp.ts - self._ev_in[0]) < 0:
                self.late += 1  # a packet of an event already over
                return []
            self.dtmf_events += 1
            if self.options.dtmf_no_suppress:  # the audio goes on beside the event
                self._ev_in = (rtp.ts, self._out_tick(rtp.ts, codec.clock))
            else:
                out = self._flush()  # the audio before the event ends at a frame's end
                self._ev_in = (rtp.ts, self._event_start(rtp.ts, codec.clock))
        if not self.options.dtmf_no_suppress:
            self._occupy(rtp.ts, ev.duration, codec.clock)
        scaled = Event(ev.code, ev.end, ev.volume,
                       min(0xFFFF, ev.duration * out_clock // codec.clock))  # fmt: skip
        self.seq = (self.seq + 1) & 0xFFFF
        return out + [packet.build(rtp.marker, out_pt, self.seq, self._ev_in[1], self.ssrc,
                                   build_event(scaled))]  # fmt: skip

    def _event_start(self, ts: int, clock: int) -> int:
        """Output timestamp of an event starting at input `ts`, just after a flush: where the
        audio stopped (not counting the flush's padding), never before the next frame."""
        assert self.out_codec is not None
        if self._exp is None:
            return self._tick
        pad = int(self._padded * self.out_codec.ticks_per_sample)
        delta = _signed(ts - self._exp) * self.out_clock // clock
        return max(self._tick, self._tick - pad + delta)

    def _occupy(self, ts: int, duration: int, clock: int) -> None:
        """The event (input `ts`, `duration` ticks so far) owns its time on both lines: audio
        from before its end is late, audio after it continues after it, as rtpengine 10.5
        sends it (docs/spec/transcode-media.md §4.1)."""
        assert self._ev_in is not None
        end_in = (ts + duration) & 0xFFFFFFFF
        if self._exp is not None and self._exp_clock == clock \
                and _signed(end_in - self._exp) <= 0:
            return
        self._exp, self._exp_clock, self._padded = end_in, clock, 0
        self._tick = self._ev_in[1] + duration * self.out_clock // clock

    def _inband(self, rtp: packet.Rtp, codec: Codec, now: float) -> list[bytes]:
        """No telephone-event on the output: the event becomes its tone in the audio."""
        assert self.out_codec is not None
        got = self._synths.get(rtp.pt)
        if got is None:
            got = self._synths[rtp.pt] = (DtmfSynth(codec.clock),
                                          Resampler(self.out_codec.sample_rate))  # fmt: skip
        synth, resampler = got
        try:
            tone = synth.feed(rtp.ts, rtp.payload)
        except EventError:
            self.decode_errors += 1
            return []
        if tone is None:
            return []
        ts, pcm = tone
        if ts == rtp.ts:
            self.dtmf_events += 1
        ticks = len(pcm) // 2
        return self._place(ts, ticks, codec.clock, False, resampler.pcm(pcm, codec.clock), now)

    def _comfort_noise(self, rtp: packet.Rtp, codec: Codec) -> list[bytes]:
        """RFC 3389 CN: forwarded as the receiver's CN on our time line, else a pause."""
        pt = self.plan.cn_out_pt
        if pt is None:
            return []
        out = self._flush()
        ts = self._out_tick(rtp.ts, codec.clock)
        self.seq = (self.seq + 1) & 0xFFFF
        return out + [packet.build(False, pt, self.seq, ts, self.ssrc, rtp.payload)]
