"""Codec negotiation where transcoding can happen, as rtpengine 10.5 runs it per m= line
(docs/spec/sdp.md §1.11a): both sides' codec lists (relay.sdp.codec_store) through an offer
or an answer, the payload types and codec lines to print, each side's "transcoding" flag and
the per-direction `DirectionPlan` the media side runs.

relay.call.plan calls this only when `needs_stores` says so; plain calls never get here.
"""

from __future__ import annotations

import copy

from relay.call.model import MediaSide, Party
from relay.call.offered import OfferedMedia, OfferedSession
from relay.call.options import NO_OPTIONS, CallOptions
from relay.sdp import codec_store as cs
from relay.sdp.codecs import answer_transcodes
from relay.transcode.plan import Codec, DirectionPlan
from relay.transcode.support import can_encode

TRANSCODE_KINDS = ("transcode", "offer", "accept", "consume")
"""Codec flag kinds that only the codec-store negotiation carries out."""

CodecLines = tuple[tuple[int, str, str, tuple[str, ...]], ...]


class CannotEncode(ValueError):
    """The plan would need an encoder rtpvault lacks (G729, GSM, speex: relay.transcode.support)."""


def offer_needs_stores(options: CallOptions, s_side: MediaSide, r_side: MediaSide) -> bool:
    """An offer goes through the codec stores: transcoding flags, or the line transcodes."""
    return (
        any(options.codec.get(k) for k in TRANSCODE_KINDS)
        or options.has("always-transcode")
        or bool(options.ptime and options.ptime > 0)
        or bool(options.rev_ptime and options.rev_ptime > 0)
        or s_side.codec_store is not None or r_side.codec_store is not None
    )


def answer_needs_stores(s_side: MediaSide, r_side: MediaSide, media: OfferedMedia) -> bool:
    """An answer rtpengine transcodes (relay.sdp.codecs.answer_transcodes), on a line that
    carries media, or a line whose offer already went through the codec stores."""
    if r_side.codec_store is not None and s_side.codec_store is not None:
        return True
    return (
        not media.rejected and r_side.sent_formats is not None
        and answer_transcodes(
            media.formats, r_side.sent_formats, r_side.kept_formats, media.codec_names,
            r_side.offered_names,
        )
    )


def answer_refusal(
    offerer: Party, answerer: Party | None, offered: OfferedSession, options: CallOptions
) -> str | None:
    """Why rtpvault cannot carry out this answer (a plan would need an encoder it lacks), or
    None; decided on copies before anything changes, so a refused answer leaves the call as
    it was."""
    for index, media in enumerate(offered.media):
        if index >= len(offerer.medias):
            break
        r_side = _trial(offerer.medias[index])
        if answerer is not None and index < len(answerer.medias):
            s_side = _trial(answerer.medias[index])
        else:
            s_side = MediaSide(index, media.type, media.protocol)
        if not answer_needs_stores(s_side, r_side, media):
            continue
        try:
            answer(s_side, r_side, media, options, r_side.sdp if r_side.sdp_was_offer else None)
        except CannotEncode as exc:
            return str(exc)
    return None


def _trial(side: MediaSide) -> MediaSide:
    """A copy of `side` whose codec state a trial negotiation may change."""
    trial = copy.copy(side)
    for name in ("codec_store",):
        store = getattr(side, name)
        setattr(trial, name, store.copy() if store is not None else None)
    return trial


def sdp_store(media: OfferedMedia) -> cs.Store:
    return cs.from_sdp(
        media.formats, media.codec_names, media.codec_fmtp, media.codec_rtcp_fb, media.type
    )


def _accepts(options: CallOptions) -> list[str]:
    out = list(options.codec.get("accept", ()))
    if options.has("always-transcode"):
        out.append("all")
    return out


def offer(
    s_side: MediaSide, r_side: MediaSide, media: OfferedMedia, options: CallOptions,
) -> tuple[tuple[str, ...], CodecLines]:
    """rtpengine's offer path: the offerer's (s_side) and the answerer's (r_side) lists from
    the offer and its flags; returns what to print to the answerer."""
    a, b = offer_stores(s_side, r_side, media, options)
    override = s_side.ptime_override or r_side.ptime_override
    hb, r_side.transcoding = cs.handlers(b, a, ptime_override=override)
    s_side.codec_store, r_side.codec_store = a, b
    # provisional until the answer (which may pick another codec): never refused here
    r_side.codec_plan = _same(r_side.codec_plan, direction_plan(b, a, hb, strict=False))
    # what an answer may use later (relay.sdp.codecs keeps these for plain answers)
    s_side.sent_formats = tuple(str(p.number) for p in b.pts)
    s_side.kept_formats = tuple(str(p.number) for p in a.pts)
    return _printed(b)


def offer_stores(
    s_side: MediaSide, r_side: MediaSide, media: OfferedMedia, options: CallOptions,
) -> tuple[cs.Store, cs.Store]:
    """Both sides' lists after an offer (`media`) with `options` (rtpengine's
    codecs_offer_answer, offer half); the sides' stores are read, not changed."""
    sdp = sdp_store(media)
    codec = options.codec
    strip, keep = codec.get("strip", ()), codec.get("except", ())
    fill = cs.populate_reuse if options.has("reuse-codecs") else cs.populate
    a = fill(s_side.codec_store or cs.Store(), sdp)
    a.ptime = s_side.ptime or 0
    cs.strip(a, strip, keep)
    cs.offer(a, codec.get("offer", ()), sdp)
    if not a.strip_full:
        cs.offer(a, codec.get("transcode", ()), sdp)
    a = cs.check_empty(a, sdp)
    cs.accept(a, _accepts(options), None)
    cs.accept(a, codec.get("consume", ()), sdp)
    cs.track(a, codec.get("mask", ()))
    b = fill(r_side.codec_store or cs.Store(), sdp)
    b.ptime = r_side.ptime or 0
    cs.strip(b, strip, keep)
    cs.strip(b, codec.get("consume", ()), keep)
    cs.strip(b, codec.get("mask", ()), keep)
    cs.offer(b, codec.get("offer", ()), sdp)
    cs.transcode(b, codec.get("transcode", ()), sdp)
    b = cs.check_empty(b, sdp)
    cs.tracker_update(b)
    override = s_side.ptime_override or r_side.ptime_override
    _fix(a, s_side)
    _fix(b, r_side)
    cs.handlers(b, a, ptime_override=override)
    cs.tracker_update(b)
    _fix(b, r_side)
    return a, b


def answer(
    s_side: MediaSide, r_side: MediaSide, media: OfferedMedia, options: CallOptions,
    offered: OfferedMedia | None,
) -> tuple[tuple[str, ...], CodecLines]:
    """rtpengine's answer path: s_side answered (its party is the answerer), r_side offered;
    `offered`: the offer's SDP (stores are built from it when the offer went the plain way).
    Returns what to print to the offerer."""
    sdp = sdp_store(media)
    a = r_side.codec_store
    b = s_side.codec_store
    if a is None or b is None:
        # the offer went the plain way: its lists as rtpengine would have made them
        orig = offered or OfferedMedia(media.type, 0, media.protocol, (), None)
        a, b = offer_stores(r_side, s_side, orig, r_side.offer_options or NO_OPTIONS)
    codec = options.codec
    fill = cs.populate_reuse if options.has("reuse-codecs") else cs.populate
    b = fill(b, sdp, answer_only=not media.rejected)
    b.ptime = s_side.ptime or 0
    cs.strip(b, codec.get("strip", ()), codec.get("except", ()))
    cs.offer(b, codec.get("offer", ()), sdp)
    b = cs.check_empty(b, sdp)
    override = s_side.ptime_override or r_side.ptime_override
    _fix(a, r_side)
    _fix(b, s_side)
    hb, _ = cs.handlers(b, a, second_pass=True, ptime_override=override)
    a = cs.answer(a, b, hb, options.has("single-codec"))
    a.ptime = r_side.ptime or 0
    _fix(a, r_side)
    cs.handlers(a, b, ptime_override=override)
    cs.tracker_update(a)
    cs.tracker_update(b)
    _fix(a, r_side)
    _fix(b, s_side)
    ha, r_side.transcoding = cs.handlers(a, b, ptime_override=override)
    hb, s_side.transcoding = cs.handlers(b, a, second_pass=True, ptime_override=override)
    r_side.codec_store, s_side.codec_store = a, b
    r_side.codec_plan = _same(r_side.codec_plan, direction_plan(a, b, ha))
    s_side.codec_plan = _same(s_side.codec_plan, direction_plan(b, a, hb))
    return _printed(a)


def _same(old: DirectionPlan | None, new: DirectionPlan | None) -> DirectionPlan | None:
    """The old plan object when nothing changed (the media side keeps its chain)."""
    return old if old is not None and old == new else new


def _fix(store: cs.Store, side: MediaSide) -> None:
    cs.fix_ptimes(store, side.ptime or 0)


def _printed(store: cs.Store) -> tuple[tuple[str, ...], CodecLines]:
    formats = tuple(str(p.number) for p in store.pts)
    lines = tuple((p.number, p.with_params, p.fmtp, p.rtcp_fb) for p in store.pts)
    return formats, lines


def _codec(pt: cs.PT) -> Codec:
    return Codec(pt.name, pt.clock, pt.channels, pt.fmtp)


def direction_plan(
    receiver: cs.Store, sink: cs.Store, handlers: list[cs.Handler], strict: bool = True,
) -> DirectionPlan | None:
    """The media side's plan for packets received on `receiver`'s side towards `sink`'s
    party; None when every payload type passes unchanged (plain forwarding). A plan that
    would encode a codec rtpvault has no encoder for raises CannotEncode (`strict`) or is
    None (an offer's provisional plan: forwarded unchanged until the answer decides)."""
    transcoded = [h for h in handlers if h.dest is not None]
    if not transcoded:
        return None
    audio = [h for h in transcoded if not h.source.supplemental]
    main = audio[0] if audio else transcoded[0]
    assert main.dest is not None
    encode = main.dest
    if not can_encode(encode.name, encode.clock):
        if not strict:
            return None
        raise CannotEncode(
            f"transcoding to {encode.with_params} is not supported by rtpvault "
            "(no encoder for it)"
        )
    renumber: dict[int, int] = {}
    for h in transcoded:
        d = h.dest
        assert d is not None
        if h.source.supplemental and d.supplemental:
            renumber[h.source.number] = d.number
        elif d.number != encode.number and cs.PT(d.number, h.source.name, h.source.clock,
                                                h.source.channels).same_nf(d):
            renumber[h.source.number] = d.number  # same codec under another number
    dtmf_in = any(h.source.supplemental and h.source.name.lower() == "telephone-event"
                  for h in handlers)
    return DirectionPlan(
        inputs={p.number: _codec(p) for p in receiver.pts},
        outputs={p.number: _codec(p) for p in sink.pts},
        passthrough=frozenset(h.source.number for h in handlers if h.dest is None),
        renumber=renumber,
        encode_pt=encode.number,
        dtmf_out_pt=main.dtmf_pt if (dtmf_in or main.dtmf_detect) else main.dtmf_pt,
        cn_out_pt=main.cn_pt,
        ptime=encode.ptime or None,
        inband_to_dtmf=main.dtmf_detect,
    )
