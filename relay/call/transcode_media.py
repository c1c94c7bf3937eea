"""Transcoding from the call model to the media plane (issue 19; docs/design/transcoding.md):
after every offer and answer, each side of a media line whose party's packets have a codec plan
(`MediaSide.codec_plan`, set by negotiation) gets a running chain (relay.media.transcoder) on its
RTP and RTCP streams, the same one as long as the plan does not change; a changed plan gets a
new chain, a side whose plan went (or whose ports went) loses it. The two directions of a line
are linked (RTCP translation reads the other direction's SSRCs). The plane's next `update`
picks the reader; calls without a plan keep the plain one.
"""

from __future__ import annotations

import importlib
import logging
import random
from collections.abc import Callable

from relay.call.model import MediaSide
from relay.media.transcoder import Chain, Ledger, Transcoder
from relay.transcode.plan import DirectionPlan

logger = logging.getLogger("relay.calls")

MakeChain = Callable[[DirectionPlan, "Chain | None"], Chain]
"""Builds the chain for a plan; the second argument is the chain it replaces (None: first)."""
_rng = random.SystemRandom()


def default_chain(plan: DirectionPlan, previous: Chain | None) -> Chain:
    """relay.transcode's chain for `plan`, with a random output SSRC as rtpengine picks one;
    replacing `previous` (a re-offer changed the plan), its SSRC and sequence numbers going on
    from its last, so the receiver sees one stream. Imported when the first call transcodes:
    a daemon whose calls never do never loads PyAV."""
    module = importlib.import_module("relay.transcode.chain")
    ssrc, seq = getattr(previous, "ssrc", None), getattr(previous, "seq", None)
    if isinstance(ssrc, int) and isinstance(seq, int):
        chain: Chain = module.Chain(plan, ssrc, seq=seq)  # `seq`: the one before the first
    else:
        chain = module.Chain(plan, _rng.getrandbits(32))
    return chain


def wire_line(a: MediaSide, b: MediaSide, make_chain: MakeChain, ledger: Ledger) -> None:
    """Attach, keep, replace or remove the chains of the two sides of one media line."""
    for side in (a, b):
        plan = side.codec_plan
        t = side.transcoder
        if plan is None or side.rtp is None or not side.port:
            drop(side)
            continue
        if t is None or t.plan != plan:
            try:
                chain = make_chain(plan, None if t is None else t.chain)
            except Exception:  # a codec the negotiation let through but FFmpeg lacks
                logger.exception("media %d: no transcoder for %r; forwarding unchanged",
                                 side.index, plan)  # fmt: skip
                drop(side)
                continue
            old, t = t, Transcoder(chain, plan, ledger)
            if old is not None:  # the same output stream goes on (SSRCs, RTCP counts)
                old.close()
                t.out_of, t.sent, t.received = old.out_of, old.sent, old.received
            side.transcoder = t
        for s in side.streams():
            s.transcoder = t
    ta, tb = a.transcoder, b.transcoder
    if ta is not None:
        ta.other = tb
    if tb is not None:
        tb.other = ta


def drop(side: MediaSide) -> None:
    """No chain on `side` any more (its plan went, its ports went, the call ended)."""
    if side.transcoder is not None:
        side.transcoder.close()
        side.transcoder = None
    for s in side.streams():
        s.transcoder = None
