"""rtpengine 10.5's per-side codec lists under transcoding flags (pure; docs/spec/sdp.md §1.11a).

rtpengine keeps, for each side of an m= line, an ordered list of payload types (its "codec
store"): the list printed in the SDP sent to that side's party, and what that party may send.
Offers and answers change the two lists with the codec flags (strip, offer, transcode, accept,
consume, mask), a tracker adds or drops telephone-event/CN per clock rate, and a handler per
received payload type decides whether packets pass unchanged or are transcoded to which
payload type of the other side. This module re-expresses that behaviour (learned from
daemon/codec.c `codecs_offer_answer` and friends, and checked against the real daemon by the
differential scenarios `tcx_*`), for offers and answers that rtpvault transcodes.

Used only where transcoding can come into play (transcoding flags on an offer, an answer with
no codec in common with the offer, a call already transcoding); plain calls keep the cheaper
relay.sdp.codecs path, which gives the same SDP for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

# rtpengine's codec definitions it can both decode and encode (`rtpengine --codecs`: "fully
# supported"): encoding name (lower case) -> (static payload type or -1, default clock,
# default channels, default fmtp, supplemental).
_DEFS: dict[str, tuple[int, int, int, str, bool]] = {
    "pcmu": (0, 8000, 1, "", False),
    "pcma": (8, 8000, 1, "", False),
    "g723": (4, 8000, 1, "", False),
    "g722": (9, 8000, 1, "", False),
    "g729": (18, 8000, 1, "", False),
    "g729a": (18, 8000, 1, "", False),
    "speex": (-1, 16000, 1, "", False),
    "gsm": (3, 8000, 1, "", False),
    "opus": (-1, 48000, 2, "", False),
    "telephone-event": (-1, 8000, 1, "0-15", True),
    "cn": (13, 8000, 1, "", True),
}
_CANONICAL = {
    "pcmu": "PCMU", "pcma": "PCMA", "g723": "G723", "g722": "G722", "g729": "G729",
    "g729a": "G729a", "speex": "speex", "gsm": "GSM", "opus": "opus",
    "telephone-event": "telephone-event", "cn": "CN",
}


@dataclass(slots=True)
class PT:
    """One payload type in a side's list (rtpengine's rtp_payload_type)."""

    number: int
    name: str
    clock: int
    channels: int = 1
    fmtp: str = ""
    rtcp_fb: tuple[str, ...] = ()
    for_transcoding: bool = False
    accepted: bool = False
    ptime: int = 0
    audio: bool = True
    """On an audio m= line (rtpengine's codecs here are all audio: none is known elsewhere)."""

    @property
    def known(self) -> bool:
        """rtpengine has a codec it can decode and encode for it (its codec_def)."""
        return self.audio and self.name.lower() in _DEFS

    @property
    def supplemental(self) -> bool:
        return self.name.lower() in ("telephone-event", "cn")

    @property
    def with_params(self) -> str:
        base = f"{self.name}/{self.clock}"
        return base if self.channels == 1 else f"{base}/{self.channels}"

    @property
    def names(self) -> tuple[str, str, str]:
        """The three names a flag may use (encoding, with params, with full params), lower."""
        n = self.name.lower()
        return n, self.with_params.lower(), f"{n}/{self.clock}/{self.channels}"

    def same_nf(self, other: PT) -> bool:
        """rtp_payload_type_cmp_nf == 0: same number, clock, channels, encoding."""
        return (
            self.number == other.number and self.clock == other.clock
            and self.channels == other.channels and self.name.lower() == other.name.lower()
        )

    def same(self, other: PT) -> bool:
        """rtp_payload_type_cmp == 0: also the same fmtp (for codecs rtpengine knows)."""
        if not self.same_nf(other):
            return False
        if not self.known:
            return True
        return self.fmtp == other.fmtp


@dataclass(slots=True)
class Store:
    """One side's ordered payload types plus rtpengine's codec tracker state."""

    pts: list[PT] = field(default_factory=list)
    touched: set[int] = field(default_factory=set)
    all_touched: bool = False
    strip_full: bool = False
    supp_at: PT | None = None
    """The supplemental entry new codecs are inserted before (rtpengine's supp_link)."""
    ptime: int = 0
    """The side's ptime (copied into payload types as they are added)."""
    audio: bool = True
    """An audio m= line: the only kind rtpengine transcodes (flags add nothing elsewhere)."""

    def get(self, number: int) -> PT | None:
        return next((p for p in self.pts if p.number == number), None)

    def named(self, name: str) -> list[PT]:
        n = name.lower()
        return [p for p in self.pts if n in p.names]

    def delete(self, pt: PT) -> None:
        i = self.pts.index(pt)
        if self.supp_at is pt:
            self.supp_at = self.pts[i + 1] if i + 1 < len(self.pts) else None
        del self.pts[i]

    def add(self, pt: PT, before: PT | None = None) -> PT:
        pt = replace(pt)
        if self.ptime > 0:
            pt.ptime = self.ptime
        if before is not None and before in self.pts:
            self.pts.insert(self.pts.index(before), pt)
        else:
            self.pts.append(pt)
        if self.supp_at is None and pt.known and pt.supplemental:
            self.supp_at = pt
        return pt

    def add_order(self, pt: PT) -> PT:
        """Append, but before the supplemental codecs."""
        return self.add(pt, self.supp_at)

    def touch(self, pt: PT) -> None:
        if pt.known and pt.supplemental:
            self.all_touched = True
        else:
            self.touched.add(pt.clock)

    def is_touched(self, pt: PT) -> bool:
        return self.all_touched or pt.clock in self.touched

    def copy(self) -> Store:
        out = Store(
            [replace(p) for p in self.pts], set(self.touched), self.all_touched,
            self.strip_full, None, self.ptime, self.audio,
        )
        out.supp_at = next((p for p, q in zip(out.pts, self.pts, strict=True)
                            if q is self.supp_at), None)
        return out


def from_sdp(
    formats: Sequence[str], names: Mapping[str, str], fmtp: Mapping[str, str],
    rtcp_fb: Mapping[str, tuple[str, ...]] | None = None, media_type: str = "audio",
) -> Store:
    """A store from an SDP's m= formats (`names`: PT → `name/clock[/channels]`)."""
    store = Store(audio=media_type == "audio")
    for fmt in formats:
        if not (fmt.isascii() and fmt.isdigit()):
            continue
        codec = names.get(fmt, "")
        parts = codec.split("/")
        if not parts[0]:
            continue
        try:
            clock = int(parts[1]) if len(parts) > 1 else 0
            channels = int(parts[2]) if len(parts) > 2 and parts[2] else 1
        except ValueError:
            continue
        pt = PT(int(fmt), parts[0], clock, channels, fmtp.get(fmt, ""),
                (rtcp_fb or {}).get(fmt, ()), audio=store.audio)
        if store.get(pt.number) is None:
            store.add(pt)
    return store


def make_pt(spec: str) -> PT | None:
    """A new payload type from a flag's codec name (`opus`, `PCMA/8000`, `opus/48000/2`), with
    rtpengine's defaults; None for a codec it cannot transcode."""
    parts = spec.split("/")
    d = _DEFS.get(parts[0].lower())
    if d is None:
        return None
    static, clock, channels, fmtp, _supp = d
    try:
        if len(parts) > 1 and parts[1]:
            clock = int(parts[1])
        if len(parts) > 2 and parts[2]:
            channels = int(parts[2])
    except ValueError:
        return None
    if static >= 0 and clock != _DEFS[parts[0].lower()][1]:
        static = -1
    return PT(static, _CANONICAL[parts[0].lower()], clock, channels, fmtp)


def _unused_number(pt: PT, *stores: Store | None) -> int:
    """rtpengine's __unused_pt_number: the codec's static number if free, else 96 upwards."""
    num = pt.number if pt.number >= 0 else 96
    while True:
        match = next(
            (m for s in stores if s is not None for m in [s.get(num)] if m is not None), None
        )
        if match is None:
            return num
        if pt.number >= 0 and pt.same_nf(match):
            return num
        num += 1
        if num < 96:
            num = 96
        elif num >= 128:
            return -1


# --- what the flags do to the lists (daemon/codec.c codec_store_*) -------------------------


def populate(dst: Store, src: Store, answer_only: bool = False) -> Store:
    """dst's list becomes src's, keeping what dst had marked on the same numbers."""
    out = Store(ptime=dst.ptime, audio=src.audio)
    for pt in src.pts:
        orig = dst.get(pt.number)
        if answer_only and orig is None:
            continue
        new = replace(pt)
        if orig is not None:
            new.ptime, new.for_transcoding = orig.ptime, orig.for_transcoding
            new.accepted = orig.accepted
            if new.for_transcoding:
                out.touch(new)
        added = out.add(new)
        if orig is not None:
            added.ptime = orig.ptime if orig.ptime else added.ptime
    return out


def populate_reuse(dst: Store, src: Store, answer_only: bool = False) -> Store:
    """`reuse-codecs`: dst keeps its entries (and order) for numbers src still has, src's new
    ones are appended, the others go (rtpengine's codec_store_populate_reuse)."""
    out = dst.copy()
    out.audio = src.audio
    for pt in src.pts:
        if out.get(pt.number) is None and not answer_only:
            out.add(pt)
    numbers = {p.number for p in src.pts}
    for pt in [p for p in out.pts if p.number not in numbers]:
        out.delete(pt)
    return out


def strip(store: Store, names: Sequence[str], keep: Sequence[str]) -> None:
    keep_l = {k.lower() for k in keep}
    for wanted in names:
        if wanted in ("all", "full"):
            if wanted == "full":
                store.strip_full = True
            for pt in list(store.pts):
                if not keep_l & set(pt.names):
                    store.touch(pt)
                    store.delete(pt)
            continue
        for pt in store.named(wanted):
            store.touch(pt)
            store.delete(pt)


def offer(store: Store, names: Sequence[str], orig: Store) -> None:
    """Re-add codecs of the original SDP that were stripped."""
    for wanted in names:
        if store.named(wanted):
            continue
        for pt in orig.named(wanted):
            if store.get(pt.number) is None:
                store.touch(pt)
                store.add_order(pt)


def transcode(store: Store, names: Sequence[str], orig: Store) -> None:
    """Like `offer`, but a codec the original SDP lacks is added (for transcoding)."""
    for wanted in names:
        if store.named(wanted):
            continue
        originals = orig.named(wanted)
        if not originals or store.strip_full:
            pt = make_pt(wanted) if store.audio else None
            if pt is None:
                continue
            pt.number = _unused_number(pt, store, orig)
            if pt.number < 0:
                continue
            pt.for_transcoding = True
            store.touch(pt)
            store.add_order(pt)
            continue
        for pt in originals:
            if store.get(pt.number) is None:
                store.touch(pt)
                store.add_order(pt)


def accept(store: Store, names: Sequence[str], orig: Store | None) -> None:
    for wanted in names:
        if wanted in ("all", "full"):
            found = list(store.pts)
        else:
            found = store.named(wanted)
            if not found and orig is not None and orig.named(wanted):
                for pt in orig.named(wanted):
                    if store.get(pt.number) is None:
                        store.touch(pt)
                        store.add_order(pt)
                found = store.named(wanted)
        for pt in found:
            pt.for_transcoding = pt.accepted = True
            store.touch(pt)


def track(store: Store, names: Sequence[str]) -> None:
    for wanted in names:
        if wanted in ("all", "full"):
            store.all_touched = True
            continue
        for pt in store.named(wanted):
            store.touch(pt)


def check_empty(dst: Store, src: Store) -> Store:
    return dst if dst.pts else populate(dst, src)


def tracker_update(store: Store) -> None:
    """telephone-event/CN: added for each touched clock rate that lacks them, removed where
    their clock rate has no codec left (rtpengine's codec_tracker_update)."""
    clocks: list[int] = []
    supp: dict[str, dict[int, list[PT]]] = {}
    for pt in store.pts:
        if not pt.known:
            continue
        if pt.supplemental:
            supp.setdefault(pt.name.lower(), {}).setdefault(pt.clock, []).append(pt)
        elif pt.clock not in clocks:
            clocks.append(pt.clock)
    clocks.sort()  # rtpengine sorts the clock rates (by pointer value, i.e. numerically)
    for name, by_clock in supp.items():
        left = dict(by_clock)
        for clock in clocks:
            if clock in left:
                del left[clock]
                continue
            if not store.all_touched and clock not in store.touched:
                continue
            new = make_pt(f"{name}/{clock}") if store.audio else None
            if new is None:
                continue
            new.number = _unused_number(new, store)
            if new.number < 0:
                continue
            new.for_transcoding = True
            store.add_order(new)
        for clock, pts in left.items():
            if not store.all_touched and clock not in store.touched:
                continue
            for pt in pts:
                if pt in store.pts:
                    store.delete(pt)


# --- handlers: what happens to each payload type received on one side ----------------------


@dataclass(frozen=True, slots=True)
class Handler:
    """What rtpengine does with one received payload type."""

    source: PT
    dest: PT | None
    """None: passed through unchanged (same payload type on the other side)."""
    dtmf_pt: int | None = None
    cn_pt: int | None = None
    dtmf_detect: bool = False


def _supp(store: Store, name: str, clock: int) -> PT | None:
    return next(
        (p for p in store.pts if p.known and p.name.lower() == name and p.clock == clock), None
    )


def _pref(sink: Store) -> PT | None:
    first = next((p for p in sink.pts if p.known and not p.supplemental), None)
    accepted = next((p for p in sink.pts if p.known and not p.supplemental and p.accepted), None)
    return accepted or first


def _eff_ptime(pt: PT, side_ptime: int) -> int:
    if side_ptime > 0:
        return side_ptime
    return pt.ptime if pt.ptime > 0 else (30 if pt.name.lower() == "g723" else 20)


def handlers(
    receiver: Store, sink: Store, second_pass: bool = False, ptime_override: bool = False,
) -> tuple[list[Handler], bool]:
    """Per received payload type, passthrough or transcoding (rtpengine's
    codec_handlers_update); also whether anything is transcoded. Unknown codecs of the
    receiver are dropped from its list when something is transcoded."""
    pref = _pref(sink)
    out: list[Handler] = []
    for pt in receiver.pts:
        if not pt.known:
            out.append(Handler(pt, None))
            continue
        recv_dtmf = _supp(receiver, "telephone-event", pt.clock)
        recv_cn = _supp(receiver, "cn", pt.clock)
        sink_pt: PT | None = sink.get(pt.number)
        if sink_pt is not None and not pt.same(sink_pt):
            sink_pt = None
        if sink_pt is None:
            sink_pt = next(
                (s for s in sink.named(pt.name) if s.name.lower() == pt.name.lower()
                 and s.clock == pt.clock and s.channels == pt.channels), None,
            )
        if sink_pt is not None and not pt.supplemental and pref is not None \
                and pref.for_transcoding:
            sink_pt = pref
        if sink_pt is None:
            sink_pt = pref
        if sink_pt is None:
            out.append(Handler(pt, None))
            continue
        sink_dtmf = _supp(sink, "telephone-event", sink_pt.clock)
        sink_cn = _supp(sink, "cn", sink_pt.clock)
        if second_pass:
            if sink_dtmf is not None and recv_dtmf is None and not sink_dtmf.for_transcoding:
                sink_dtmf = None
            if sink_cn is not None and recv_cn is None and not sink_cn.for_transcoding:
                sink_cn = None
        detect = (not pt.supplemental and recv_dtmf is None and sink_dtmf is not None
                  and sink_dtmf.for_transcoding)
        dtmf_n = sink_dtmf.number if sink_dtmf else None
        cn_n = sink_cn.number if sink_cn else None
        tc = Handler(pt, sink_pt, dtmf_n, cn_n, detect)
        if not pt.same_nf(sink_pt):
            out.append(tc)
            continue
        if not pt.supplemental:
            if ptime_override and sink_pt.ptime and pt.ptime and sink_pt.ptime != pt.ptime:
                out.append(tc)
                continue
            if detect or (
                recv_dtmf is not None and recv_dtmf.for_transcoding and sink_dtmf is None
            ) or (recv_cn is None and sink_cn is not None and sink_cn.for_transcoding) or (
                recv_cn is not None and recv_cn.for_transcoding and sink_cn is None
            ):
                out.append(tc)
                continue
        out.append(Handler(pt, None, dtmf_n, cn_n))
    transcoding = any(h.dest is not None for h in out)
    if transcoding:
        for pt in [p for p in receiver.pts if not p.known]:
            receiver.touch(pt)
            receiver.delete(pt)
    return out, transcoding


def fix_ptimes(store: Store, side_ptime: int) -> None:
    """__check_codec_list's ptime fix-up on a side's known codecs."""
    for pt in store.pts:
        if pt.known:
            if pt.ptime <= 0:
                pt.ptime = 30 if pt.name.lower() == "g723" else 20
            if side_ptime > 0:
                pt.ptime = side_ptime


def answer(dst: Store, src: Store, src_handlers: Iterable[Handler], single: bool) -> Store:
    """The offerer's list after an answer (rtpengine's codec_store_answer): from the answerer's
    list, each payload type's passthrough or the payload type it is transcoded to."""
    by_number = {h.source.number: h for h in src_handlers}
    out = Store(ptime=dst.ptime, audio=src.audio)
    supp_later: list[PT] = []
    count = 0
    for pt in src.pts:
        add = not (single and count >= 1)
        h = by_number.get(pt.number)
        is_supp = pt.known and pt.supplemental
        if h is None:  # no handler at all (rtpengine: not RTP)
            if not pt.for_transcoding and add:
                if not is_supp:
                    count += 1
                out.add(pt)
            continue
        if is_supp and (
            pt.for_transcoding or out.is_touched(pt) or src.is_touched(pt) or dst.is_touched(pt)
        ):
            continue  # handled next to their audio codec
        if not add and not is_supp:
            continue
        dest = pt if h.dest is None else h.dest  # a passthrough's destination is itself
        if out.get(dest.number) is None:
            out.add(dest)
            if not is_supp:
                count += 1
        for n in (h.cn_pt, h.dtmf_pt):
            if n is not None:
                orig = dst.get(n)
                if orig is not None:
                    supp_later.append(orig)
    for pt in supp_later:
        if out.get(pt.number) is None:
            out.add(pt)
    return out
