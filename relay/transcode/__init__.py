"""Transcoding (issue 19): codec negotiation results and the per-direction media chain.

`relay.transcode.plan` is the contract between codec negotiation (relay.sdp / relay.call: what
rtpengine 10.5 would negotiate for the codec flags) and the media side (this package's chain,
run by the userspace plane): one `DirectionPlan` per direction of a media section that needs
more than plain forwarding. See docs/design/transcoding.md.

Modules:

* `plan` / `support`: the contract with negotiation (what to do per payload type; what FFmpeg
  can decode and encode here);
* `codecs`: the codec table (rtp.codecs: FFmpeg names, sample rate versus RTP clock) and
  Opus encoder options from fmtp;
* `audio`: the PyAV user: `Decoder`, `Encoder`, `Resampler` over bytes;
* `g711`: PCMU/PCMA through tables asked of FFmpeg once (no PyAV frame per packet), which
  `audio`'s Decoder and Encoder use;
* `chain`: `Chain(plan, ssrc)`, the per-direction media work, `feed(rtp, now) -> list[bytes]`
  (never raises), plain-int counters and what an SR needs (docs/design/transcoding.md);
* `dtmf`: RFC 4733 payloads, DTMF tones; `detect`: in-band DTMF → events (Goertzel);
* `packet`: the RTP header operations the chain needs;
* `options`: the daemon's keys the chain reads (`dtmf-no-suppress`, `silence-detect`,
  `cn-payload`, `dtx-cn-params`); `dtx`: rtpengine's DTX buffer (`dtx-delay` and companions),
  bookkeeping the plane's timer drives.

Making RTP from PCM (play media, play DTMF): build an `audio.Encoder` for the receiver's codec,

    codec = codecs.lookup("opus", 48000)            # None if FFmpeg cannot do it
    enc = audio.Encoder(codec, ptime=20, fmtp="useinbandfec=1")
    payload = enc.encode(pcm)   # exactly enc.frame mono s16le samples at codec.sample_rate
    packet.build(marker, pt, seq, ts, ssrc, payload); ts += enc.ticks

(`enc.ticks` is the RTP timestamp step, G.722: half the samples). `audio.Resampler(rate)`
turns a file's decoded frames or other PCM into mono s16 at the codec's rate, and
`dtmf.tone_pcm(code, volume, offset, count, rate)` makes a DTMF tone at rtpengine's level.
To send inside a transcoded direction, use the chain's own SSRC/sequence (`chain.ssrc`,
`chain.seq`) so the receiver sees one stream.
"""
