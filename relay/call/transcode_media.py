"""Transcoding from the call model to the media plane (issue 19; docs/design/transcoding.md):
after every offer and answer, each side of a media line whose party's packets have a codec plan
(`MediaSide.codec_plan`, set by negotiation) gets a running chain (relay.media.transcoder) on its
RTP and RTCP streams, the same one as long as the plan does not change; a changed plan gets a
new chain, a side whose plan went (or whose ports went) loses it. The two directions of a line
are linked (RTCP translation reads the other direction's SSRCs). The plane's next `update`
picks the reader; calls without a plan keep the plain one.

Chains made and dropped are logged (debug) under this module's logger, in the `codec` subsystem
(`log-level-codec`), where rtpengine logs its transcode contexts (docs/spec/config.md §2.9).
"""

from __future__ import annotations

import importlib
import logging
import random
from collections.abc import Callable

from relay.call.model import MediaSide
from relay.media.transcoder import Chain, Ledger, Transcoder, labels
from relay.transcode.dtx import DtxBuffer, DtxSettings
from relay.transcode.options import ChainOptions
from relay.transcode.plan import DirectionPlan

logger = logging.getLogger(__name__)

MakeChain = Callable[[DirectionPlan, "Chain | None", int], Chain]
"""Builds the chain for a plan; the second argument is the chain it replaces (None: first),
the third the output SSRC for a first chain (drawn from the call's RNG: relay.call.rng)."""
_rng = random.SystemRandom()


def default_chain(plan: DirectionPlan, previous: Chain | None, ssrc: int | None = None,
                  options: ChainOptions | None = None) -> Chain:  # fmt: skip
    """relay.transcode's chain for `plan`, with a random output SSRC as rtpengine picks one;
    replacing `previous` (a re-offer changed the plan), its SSRC and sequence numbers going on
    from its last, so the receiver sees one stream. Imported when the first call transcodes:
    a daemon whose calls never do never loads PyAV."""
    module = importlib.import_module("relay.transcode.chain")
    old_ssrc, seq = getattr(previous, "ssrc", None), getattr(previous, "seq", None)
    if isinstance(old_ssrc, int) and isinstance(seq, int):
        # seq: before the first
        chain: Chain = module.Chain(plan, old_ssrc, seq=seq, options=options)
    else:
        chain = module.Chain(plan, _rng.getrandbits(32) if ssrc is None else ssrc,
                             options=options)  # fmt: skip
    return chain


def chain_maker(options: ChainOptions) -> MakeChain:
    """`default_chain` with the daemon's transcoding keys (relay.transcode.options)."""
    return lambda plan, previous, ssrc: default_chain(plan, previous, ssrc, options)


def _audio_clock(plan: DirectionPlan) -> Callable[[int], int | None]:
    """Input payload type → its RTP clock if it is audio (not telephone-event or CN)."""
    clocks = {pt: c.clock for pt, c in plan.inputs.items()
              if c.name.lower() not in ("telephone-event", "cn")}  # fmt: skip
    return clocks.get


def wire_line(a: MediaSide, b: MediaSide, make_chain: MakeChain, ledger: Ledger,
              dtx: DtxSettings | None = None, rng: random.Random = _rng) -> None:  # fmt: skip
    """Attach, keep, replace or remove the chains of the two sides of one media line; with
    `dtx` (`dtx-delay` > 0) each new chain gets a DTX buffer (relay.transcode.dtx)."""
    for side in (a, b):
        plan = side.codec_plan
        t = side.transcoder
        if plan is None or side.rtp is None or not side.port:
            drop(side)
            continue
        if t is None or t.plan != plan:
            try:
                # drawn whether used or not: the call's RNG moves the same way on a replay
                ssrc = rng.getrandbits(32)
                chain = make_chain(plan, None if t is None else t.chain, ssrc)
            except Exception:  # a codec the negotiation let through but FFmpeg lacks
                logger.exception("media %d: no transcoder for %r; forwarding unchanged",
                                 side.index, plan)  # fmt: skip
                drop(side)
                continue
            made = ", ".join(sorted(set(labels(plan).values()))) or "passthrough"
            logger.debug("media %d: transcode context for %s", side.index, made)
            buffer = None if dtx is None or dtx.delay <= 0 else \
                DtxBuffer(dtx, _audio_clock(plan))  # fmt: skip
            old, t = t, Transcoder(chain, plan, ledger, buffer)
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
