"""What rtpengine 10.5 does with each received payload type, from both sides' codec lists
(pure; docs/spec/sdp.md §1.11a): passthrough or transcoding to which payload type of the other
side, with which telephone-event/CN output — daemon/codec.c `codec_handlers_update` re-expressed
— and the offerer's list after an answer (`codec_store_answer`), which is read off those
handlers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from relay.sdp.codec_store import PT, Store


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


def handlers(
    receiver: Store, sink: Store, second_pass: bool = False, ptime_override: bool = False,
    force: bool = False,
) -> tuple[list[Handler], bool]:
    """Per received payload type, passthrough or transcoding (rtpengine's
    codec_handlers_update); also whether anything is transcoded. Unknown codecs of the
    receiver are dropped from its list when something is transcoded. `force`: the sink's
    party asked for `inject-DTMF`, every audio codec goes through the transcoder."""
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
        if sink_pt is None:  # nothing to send it as: passed on with the sender's own DTMF/CN
            out.append(Handler(pt, None, recv_dtmf.number if recv_dtmf else None,
                               recv_cn.number if recv_cn else None))
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
            if force:
                out.append(tc)
                continue
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
