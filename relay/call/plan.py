"""The outgoing SDP plan of one exchange (relay.sdp.plan), from the sides' state and the
request's options: ports, rtcp, direction, codecs, mid, and the o= line's kept values.

No SDP text here: `render` (from the caller) turns a `SessionPlan` into text.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

from relay.call import secure, transcoding
from relay.call.model import MediaSide, Party
from relay.call.offered import OfferedMedia, OfferedSession
from relay.call.options import CallOptions
from relay.call.secure import SecureContext
from relay.cint import strtoull
from relay.sdp.codecs import (
    answer_formats,
    answer_has_common,
    codecs_touched,
    drop_orphans,
    offer_formats,
    single_codec,
)
from relay.sdp.plan import MediaPlan, SessionPlan

Render = Callable[[SessionPlan], str]


def media_plan(
    s_side: MediaSide, r_side: MediaSide, media: OfferedMedia, options: CallOptions,
    offer: bool, source: str | None, fallback_address: str,
) -> MediaPlan:
    """The m= section sent on for `media` (`source`: the SIP source address replacing the
    SDP's, if any; `fallback_address`: the first interface's, for a rejected line)."""
    mid = _mid(s_side, r_side, media, options, offer)
    # A zero address (hold) counts only where the SDP address is used: with
    # SIP-source-address the received-from address replaces it (measured).
    # A trickle-ICE placeholder (port 9, 0.0.0.0, with ICE) is not a hold (measured:
    # sec_webrtc_to_sip keeps a=sendrecv).
    zero = media.zero_address and source is None and not (media.ice and media.port == 9)
    keep_zero = zero and "zero-address" not in options.replace and options.media_address is None
    if media.rejected:
        return _rejected_plan(
            s_side, r_side, media, options, offer, mid, keep_zero, fallback_address
        )
    # rtpengine's print_rtcp: the receiver's MEDIA_FLAG_RTCP_MUX decides a=rtcp-mux; an
    # answer, or an offer under (explicit or implicit) require, puts RTCP on the RTP port.
    mux = r_side.rtcp_mux
    port = r_side.port
    require = offer and r_side.mux_require
    # rtpengine keeps one ptime per side: either party's a=ptime sets both, and an SDP
    # without one leaves them (the answer to a ptime:20 offer says ptime:20 too).
    _ptimes(s_side, r_side, media, options, offer)
    formats, codec_lines = _formats(s_side, r_side, media, options, offer)
    rtcp_port: int | None = port if (mux and (require or not offer)) else port + 1
    if options.has("no-rtcp-attribute"):
        rtcp_port = None
    return MediaPlan(
        port=port,
        address=options.media_address or r_side.advertised,
        family=_family(r_side, options),
        rtcp_port=rtcp_port,
        rtcp_mux=mux,
        full_rtcp_attribute=options.has("full-rtcp-attribute"),
        protocol=r_side.protocol,
        formats=formats,
        codec_lines=codec_lines,
        ptime=r_side.ptime,
        direction=_direction(media, options, zero),
        keep_zero_address=keep_zero,
        end_of_candidates=media.end_of_candidates,
        strip_extmap=options.has("strip-extmap"),
        mid=mid,
        input_mid=False,
    )


def _rejected_plan(
    s_side: MediaSide, r_side: MediaSide, media: OfferedMedia, options: CallOptions,
    offer: bool, mid: str | None, keep_zero: bool, fallback_address: str,
) -> MediaPlan:
    """A rejected m= line (port 0): no ports, but its address, codecs and ptime still count."""
    _ptimes(s_side, r_side, media, options, offer)  # even from a rejected line
    formats, codec_lines = _formats(s_side, r_side, media, options, offer)
    # a rejected first m= line still decides the session c= (0.0.0.0 stays)
    return MediaPlan(
        port=0,
        protocol=r_side.protocol,
        address=options.media_address or r_side.advertised or fallback_address,
        family=_family(r_side, options),
        mid=mid,
        input_mid=False,
        keep_zero_address=keep_zero,
        ptime=media.ptime,  # only strips the input's a=ptime: nothing is generated
        # codec flags still apply to a rejected line's format list in an offer
        # (codecs_offer_answer runs before the port check); an answer rejecting the
        # line is not narrowed to the offered codecs (no codec_answer_only)
        formats=formats,
        codec_lines=codec_lines,
        strip_extmap=options.has("strip-extmap"),
        # original-sendrecv keeps the direction line in place here too
        direction=None if options.has("original-sendrecv") else "sendrecv",
    )


def _family(r_side: MediaSide, options: CallOptions) -> str:
    return options.media_address_family if options.media_address else r_side.family


def _direction(media: OfferedMedia, options: CallOptions, zero: bool) -> str | None:
    if options.has("original-sendrecv"):
        return None
    direction = media.direction or ("sendonly" if zero else "sendrecv")
    if zero and direction in ("sendrecv", "recvonly"):
        # rtpengine 10.5: a zero address does not receive
        # (sendrecv -> sendonly, recvonly -> inactive)
        direction = "sendonly" if direction == "sendrecv" else "inactive"
    return direction


def _mid(
    s_side: MediaSide, r_side: MediaSide, media: OfferedMedia, options: CallOptions, offer: bool
) -> str | None:
    """a=mid to print: the receiver side's media id (rtpengine's __update_media_id). An
    offer's mid (new or changed) is the sender side's; a receiver without one copies it,
    or with generate-mid numbers the line; answers change nothing."""
    if offer:
        if media.mid is not None:
            s_side.mid = media.mid
        if r_side.mid is None:
            if s_side.mid is not None:
                r_side.mid = s_side.mid
            elif options.has("generate-mid"):
                r_side.mid = str(s_side.index)
    return r_side.mid


def _ptimes(
    s_side: MediaSide, r_side: MediaSide, media: OfferedMedia, options: CallOptions, offer: bool
) -> None:
    """rtpengine keeps one ptime per side (__media_init_from_flags): the SDP's a=ptime sets
    both unless a side's ptime was overridden; an offer's `ptime` sets the answerer's side,
    `ptime-reverse` the offerer's, and both mark both sides overridden (§1.11a)."""
    if media.ptime:
        if not r_side.ptime_override:
            r_side.ptime = media.ptime
        if not s_side.ptime_override:
            s_side.ptime = media.ptime
    if not offer:
        return
    if options.ptime and options.ptime > 0:
        r_side.ptime = options.ptime
        r_side.ptime_override = s_side.ptime_override = True
    if options.rev_ptime and options.rev_ptime > 0:
        s_side.ptime = options.rev_ptime
        r_side.ptime_override = s_side.ptime_override = True


def _formats(
    s_side: MediaSide, r_side: MediaSide, media: OfferedMedia, options: CallOptions, offer: bool
) -> tuple[tuple[str, ...] | None, transcoding.CodecLines | None]:
    """Payload types (and, under transcoding, their codec lines) to print: the codec stores
    of relay.call.transcoding where transcoding can happen, else relay.sdp.codecs."""
    if offer:
        s_side.offer_options = options
    if offer and transcoding.offer_needs_stores(options, s_side, r_side):
        formats, lines = transcoding.offer(s_side, r_side, media, options)
        s_side.offered_names = dict(media.codec_names)
        return formats, lines
    if not offer and transcoding.answer_needs_stores(s_side, r_side, media, options):
        offered = r_side.sdp if r_side.sdp_was_offer else None
        formats, lines = transcoding.answer(s_side, r_side, media, options, offered)
        r_side.sent_formats = r_side.kept_formats = formats
        return formats, lines
    if offer:
        s_side.codec_plan = r_side.codec_plan = None
    return _plain_formats(s_side, r_side, media, options, offer), None


def _plain_formats(
    s_side: MediaSide, r_side: MediaSide, media: OfferedMedia, options: CallOptions, offer: bool
) -> tuple[str, ...] | None:
    """Payload types to print (relay.sdp.codecs): an offer applies strip/mask; an answer
    keeps what was offered to its sender. None keeps the input's list.

    An offer is never narrowed to what the other side offered before: rtpengine 10.5
    repopulates both sides' codecs from the new offer (a callee's re-INVITE may bring new
    codecs)."""
    formats = media.formats
    if offer:
        sent, kept = offer_formats(formats, media.codec_names, options.codec)
        s_side.sent_formats, s_side.kept_formats = sent, kept
        s_side.offered_names = dict(media.codec_names)
        s_side.transcoding = r_side.transcoding = False
        s_side.codecs_touched = codecs_touched(formats, media.codec_names, options.codec)
    else:
        s_side.transcoding = r_side.transcoding = r_side.sent_formats is not None and (
            not answer_has_common(
                formats, r_side.sent_formats, r_side.kept_formats, media.codec_names,
                r_side.offered_names,
            )
        )  # only a rejected line gets here (_answer_needs_stores takes the others)
        if r_side.sent_formats is not None:
            formats = answer_formats(
                formats, r_side.sent_formats, r_side.kept_formats, media.codec_names,
                r_side.offered_names,
            )
        _, sent = offer_formats(formats, media.codec_names, options.codec)  # mask: no-op here
        if options.has("single-codec"):
            sent = single_codec(sent, media.codec_names)
        if r_side.codecs_touched:
            sent = drop_orphans(sent, media.codec_names)
        if r_side.sent_formats is not None:
            # what is agreed now is all a later answer to the same offer may use (rtpengine
            # populates the answerer's codecs "answer only": a 200 OK after a 183, or
            # another fork's answer, is narrowed to the first answer's codecs)
            r_side.sent_formats = r_side.kept_formats = sent
    return None if sent == media.formats else sent


def session_plan(
    receiver: Party, offered: OfferedSession, options: CallOptions,
    media: tuple[MediaPlan, ...], fallback_address: str, instance_id: str,
) -> SessionPlan:
    first = next((m for m in media if m.port), media[0] if media else None)
    address = options.media_address or (first.address if first else fallback_address)
    family = first.family if first else "IP4"
    # rtpengine 10.5 keeps these on the monologue the SDP goes *to* (sdp_replace gets the
    # receiver): the first SDP sent to a party records them; a forked answer therefore
    # gets the first answerer's username back.
    username = session_name = None
    if receiver.origin_username is None:
        receiver.origin_username = offered.origin_username
        receiver.session_name = offered.session_name
    else:
        if "username" in options.replace:
            username = receiver.origin_username
        if "session-name" in options.replace:
            session_name = receiver.session_name
    return SessionPlan(
        address=address,
        family=family,
        media=media,
        replace_origin="origin" in options.replace,
        replace_session_connection="session-connection" in options.replace,
        origin_username=username,
        session_name=session_name,
        loop_protect_id=instance_id if options.has("loop-protect") else None,
    )


def render_versioned(
    receiver: Party, offered: OfferedSession, options: CallOptions, plan: SessionPlan,
    render: Render, rng: random.Random,
) -> str:
    """rtpengine's o= version handling: the receiver's monologue takes its version from the
    first SDP sent to it (flag or not); with `replace: sdp-version` that number is written
    in, and raised by one when the output differs from the last flagged output."""
    if receiver.sdp_version is None:
        version = strtoull(offered.origin_version) if offered.origin_version.isdigit() else 0
        if version in (0, 2**64 - 1):
            version = rng.getrandbits(64)  # the call's RNG (relay.call.rng)
        receiver.sdp_version = version
    if "sdp-version" not in options.replace:
        return render(plan)
    out = render(_with_version(plan, receiver.sdp_version))
    if receiver.last_out is not None and out != receiver.last_out:
        receiver.sdp_version += 1
        out = render(_with_version(plan, receiver.sdp_version))
    receiver.last_out = out
    return out


def _with_version(plan: SessionPlan, version: int) -> SessionPlan:
    return replace(plan, origin_version=str(version))


def receiver_sdp(r_side: MediaSide, offer: bool) -> OfferedMedia | None:
    """The receiver's last SDP for the line: its offer (we answer it) or, in an offer, its last
    answer (secure.wants_ice's `other`)."""
    return r_side.sdp if (not offer or not r_side.sdp_was_offer) else None


def with_secure(
    s_side: MediaSide, r_side: MediaSide, media: OfferedMedia, options: CallOptions,
    offer: bool, media_plan: MediaPlan, ctx: SecureContext, listed: secure.Listed | None = None,
) -> MediaPlan:
    """`media_plan` with the SDES/DTLS/ICE lines for `r_side`'s party;
    `listed`: the addresses our candidates name (secure.ice_lines)."""
    if _plain_exchange(s_side, r_side, media, options, media_plan):
        return media_plan  # nothing secure in this call so far, nor asked for (most calls)
    other = receiver_sdp(r_side, offer)
    if not offer:
        secure.settle_answer(s_side.secure, media)
    secure.remember_received(s_side.secure, media, options.sdes if offer else ())
    if s_side.secure.lite_peer:
        # rtpengine's __ice_offer: a lite peer makes us controlling towards it (unless we are
        # lite too: SecureState.ice_lite_self; measured, docs/spec/ng-protocol.md §4.4)
        s_side.ice_controlling = True
    protocol = media_plan.protocol or media.protocol
    crypto = secure.crypto_lines(
        r_side.secure, protocol, media, options, offer, ctx, other if offer else None
    )
    mux_only = media_plan.rtcp_mux and media_plan.rtcp_port == media_plan.port
    ports = (media_plan.port, media_plan.port + 1)
    ice = secure.ice_lines(
        r_side.secure, other, media, options, offer, ports, mux_only, ctx, media_plan.address,
        listed, media_plan.family,
    )
    keep = secure.passes_ice_on(media, options, offer)
    if offer:
        s_side.secure.ice_passed_on = keep
    media_plan = replace(media_plan, crypto_lines=crypto, ice_lines=ice, keep_ice=keep)
    if offer and options.ice in secure.FORCE_RELAY and media.address is not None:
        # force-relay: the m= port and c= stay the offerer's, no a=rtcp (§1.9a)
        media_plan = replace(
            media_plan, port=media.port, address=media.address, family=media.family,
            rtcp_port=None, rtcp_mux=False,
        )
    return media_plan


_PRISTINE = secure.SecureState()
"""A side that never saw nor sent anything secure (compared against, never changed)."""


def _plain_exchange(
    s_side: MediaSide, r_side: MediaSide, media: OfferedMedia, options: CallOptions,
    media_plan: MediaPlan,
) -> bool:
    """Whether `with_secure` would change nothing: no SRTP protocol, no a=crypto, DTLS or ICE
    attribute in the SDP, no flag that adds any, and both sides' secure state untouched. Saves
    the secure bookkeeping on plain calls (5 % of a plain call's set-up CPU, measured with
    cProfile on offer+answer+delete)."""
    return (
        not (media.ice or media.crypto or media.fingerprint or media.crypto_values
             or media.setup or media.ice_ufrag or media.candidates or media.end_of_candidates
             or media.ice_lite or media.ice_lite_media)
        and media.protocol not in secure.SRTP_PROTOCOLS
        and (media_plan.protocol or media.protocol) not in secure.SRTP_PROTOCOLS
        and options.ice in (None, "remove")
        and options.dtls is None and not options.sdes and not options.osrtp
        and options.ice_lite is None and options.dtls_fingerprint is None
        and (options.transport_protocol is None
             or options.transport_protocol not in secure.SRTP_PROTOCOLS)
        and s_side.secure == _PRISTINE and r_side.secure == _PRISTINE
    )  # fmt: skip
