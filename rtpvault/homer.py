"""The daemon's Homer part: HEP export of (a) received RTCP as rtpengine's JSON (type 5), (b)
RTP-derived QoS per stream every `homer-qos-interval` seconds and at call end (type 34), and
(c) each ng offer/answer/delete with its SDP in and out (type 61, upstream rtpengine's ng-trace
type; SDES keys, MIKEY data and ICE passwords redacted, rtp.redact), every packet correlated by
the SIP Call-ID.

Hooks (rtpvault.component): registry listeners find the streams of each call and subscribe taps
(`homer` on TapHub). RTCP streams export every packet. RTP streams are analysed in sampled
windows (hep.qos.SampledQos: QOS_WINDOW seconds in every QOS_PERIOD, recorder.rtpstats RtpStats
per window): between windows a stream has no homer tap at all, so the media path pays nothing —
except on streams that may carry RTCP muxed on the RTP port, whose tap stays to export that RTCP
and feeds the statistics only inside a window. Packet and byte totals are the plane's exact
counters. Taps and observers run on the loop: they encode and `put_nowait` on the sender's queue,
never wait on the network (hep.sender).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from hep.codec import (
    PROTO_NG_TRACE,
    PROTO_QOS_REPORT,
    PROTO_RTCP_JSON,
    HepError,
    HepPacket,
    encode,
)
from hep.qos import SampledQos, merge_windows, qos_report
from hep.rtcp import rtcp_json
from hep.sender import HepSender
from recorder.rtpstats import RtpStats, mos_g107
from relay.call import CallClosed, CallEvent, MediaSide
from relay.ng.codec import bencode_encode  # the ng wire form, as upstream rtpengine traces it
from rtp.demux import is_rtcp
from rtp.redact import redact_sdp
from rtpvault.component import DaemonContext

logger = logging.getLogger("rtpvault.homer")

TRACED = ("offer", "answer", "delete")
QOS_WINDOW = 2.0
"""Seconds of each analysed window of an RTP stream (the first opens when the stream appears and
stays open until its first packet)."""
QOS_PERIOD = 10.0
"""Seconds between the starts of two windows: a fifth of the packets are analysed."""
TICK = 0.25
"""How often windows are opened and closed."""


class _RtpState:
    """One RTP stream's QoS sampling and whether its tap must stay for muxed RTCP."""

    __slots__ = ("stream", "call_id", "qos", "mux", "cell", "rtcp_packets", "rtcp_bytes")

    def __init__(self, stream: Any, call_id: str, qos: SampledQos | None, mux: bool) -> None:
        self.stream = stream
        self.call_id = call_id
        self.qos = qos
        self.mux = mux
        self.cell: list[Any] = [qos.stats.update if qos is not None and qos.stats else None]
        self.rtcp_packets = 0
        self.rtcp_bytes = 0
        """RTCP seen muxed on the stream: in the plane's counters, not RTP for the QoS report."""


def _may_mux(side: MediaSide) -> bool:
    """RTCP may arrive on the RTP port of this m= line (RFC 5761): no RTCP port, rtcp-mux in
    use with this party (rtpengine's MEDIA_FLAG_RTCP_MUX), or offered in its SDP."""
    return side.rtcp is None or side.rtcp_mux or bool(side.sdp is not None and side.sdp.rtcp_mux)


def _redacted(message: dict[str, Any]) -> dict[str, Any]:
    """An ng request or reply whose `sdp` has no SDES key, MIKEY data or ICE password left
    (rtp.redact, docs/recording.md): the trace goes to Homer, which is no place for keys."""
    sdp = message.get("sdp")
    if not isinstance(sdp, str):
        return message
    clean = redact_sdp(sdp)
    return message if clean == sdp else {**message, "sdp": clean}


class HomerComponent:
    def __init__(
        self, daemon: DaemonContext, sender: HepSender | None, ng_sender: HepSender | None
    ) -> None:
        s = daemon.settings
        self.daemon = daemon
        self.sender = sender
        self.ng_sender = ng_sender
        self.capture_id = s.homer_id
        self.auth = s.homer_password.encode() if s.homer_password else None
        self.rtcp = s.homer_rtcp and sender is not None
        self.qos = s.homer_qos and sender is not None
        self.interval = s.homer_qos_interval
        self.window = QOS_WINDOW
        self.period = QOS_PERIOD
        self.rtp: dict[Any, _RtpState] = {}  # subscribed RTP stream → its state
        self.calls: dict[str, list[Any]] = {}  # call-id → subscribed streams (RTP and RTCP)
        self.call_of: dict[Any, str] = {}  # subscribed stream → its call-id
        self.encode_errors = 0
        self._timer: Any = None
        self._ticker: Any = None
        daemon.registry.listeners.append(self._on_call)
        if ng_sender is not None and s.homer_ng_trace:
            daemon.commands.observers.append(self._on_ng)

    # -- packets --------------------------------------------------------------------------------

    def _packet(self, target: HepSender | None, proto: int, call_id: str, payload: bytes,
                src: tuple[str, int], dst: tuple[str, int], when: float) -> None:  # fmt: skip
        if target is None:
            return
        sec = int(when)
        try:
            packet = HepPacket(src_ip=src[0], dst_ip=dst[0], src_port=src[1], dst_port=dst[1],
                               ts_sec=sec, ts_usec=int((when - sec) * 1e6), proto_type=proto,
                               capture_id=self.capture_id, payload=payload,
                               correlation_id=call_id.encode(), auth_key=self.auth)  # fmt: skip
            data = encode(packet)
        except HepError:
            self.encode_errors += 1
            return
        target.send(data)

    def _rtcp_tap(self, stream: Any, packet: bytes, source: tuple[str, int], now: float) -> None:
        text = rtcp_json(packet)
        if text is not None:
            self._packet(self.sender, PROTO_RTCP_JSON, self.call_of.get(stream, stream.call_id),
                         text.encode(), source,
                         (stream.local_address, stream.local_port), now)  # fmt: skip

    def _mux_tap(self, state: _RtpState) -> Any:
        """Tap of an RTP stream that may carry RTCP: export that, feed the open window."""
        cell = state.cell
        rtcp_tap = self._rtcp_tap if self.rtcp else None

        def tap(s: Any, packet: bytes, source: tuple[str, int], now: float) -> None:
            if is_rtcp(packet):
                state.rtcp_packets += 1
                state.rtcp_bytes += len(packet)
                if rtcp_tap is not None:
                    rtcp_tap(s, packet, source, now)
                return
            update = cell[0]
            if update is not None:
                update(packet, now)

        return tap

    @staticmethod
    def _window_tap(update: Any) -> Any:
        def tap(s: Any, packet: bytes, source: tuple[str, int], now: float) -> None:
            update(packet, now)  # RtpStats ignores anything that is not RTP

        return tap

    # -- calls ----------------------------------------------------------------------------------

    def _on_call(self, event: CallEvent) -> None:
        call = event.call
        if isinstance(event, CallClosed):
            self._finish(call)
            return
        streams = self.calls.setdefault(call.call_id, [])
        taps = self.daemon.taps
        now = time.time()
        for party in call.all_parties():
            for side in party.medias:
                mux = _may_mux(side)
                for stream in side.streams():
                    if stream in streams:
                        state = self.rtp.get(stream)
                        if state is not None and mux and not state.mux:
                            state.mux = True  # a re-offer turned rtcp-mux on
                            taps.subscribe(stream, "homer", self._mux_tap(state))
                        continue
                    self.call_of[stream] = call.call_id
                    if stream.is_rtcp:
                        if self.rtcp:
                            taps.subscribe(stream, "homer", self._rtcp_tap)
                            streams.append(stream)
                        continue
                    if not (self.qos or (self.rtcp and mux)):
                        continue
                    qos = SampledQos(now, self.window, self.period, RtpStats) if self.qos else None
                    state = self.rtp[stream] = _RtpState(stream, call.call_id, qos, mux)
                    if mux:
                        taps.subscribe(stream, "homer", self._mux_tap(state))
                    else:
                        taps.subscribe(stream, "homer", self._window_tap(state.cell[0]))
                    streams.append(stream)
        if self.qos and self._timer is None:
            self._timer = self.daemon.loop.call_later(self.interval, self._periodic)
        if self.qos and self._ticker is None and self.window < self.period:
            self._ticker = self.daemon.loop.call_later(TICK, self._tick)

    def _tick(self) -> None:
        """Open and close sampling windows; a closed window's stream loses its tap."""
        self._ticker = None
        now = time.time()
        taps = self.daemon.taps
        for state in self.rtp.values():
            qos = state.qos
            if qos is None:
                continue
            was_open = qos.stats is not None
            is_open = qos.tick(now)
            if was_open == is_open:
                continue
            update = qos.stats.update if qos.stats is not None else None
            state.cell[0] = update
            if state.mux:
                continue  # its tap stays; the cell decides
            if update is None:
                taps.unsubscribe(state.stream, "homer")
            else:
                taps.subscribe(state.stream, "homer", self._window_tap(update))
        if self.rtp:
            self._ticker = self.daemon.loop.call_later(TICK, self._tick)

    def _report(self, state: _RtpState, kind: str, now: float) -> None:
        if state.qos is None:
            return
        stream = state.stream
        windows = state.qos.windows()
        snap = merge_windows(windows, max(0, int(stream.packets) - state.rtcp_packets),
                             max(0, int(stream.bytes) - state.rtcp_bytes),
                             stream.last_packet or None)  # fmt: skip
        if not snap["packets"]:
            return
        snap["mos"] = mos_g107(snap["loss_pct"], snap["jitter_ms"]) if snap["g711"] else None
        src = stream.peer or ("0.0.0.0", 0)
        dst = (stream.local_address, stream.local_port)
        payload = qos_report(state.call_id, snap, src, dst, kind, now, stream.tag)
        self._packet(self.sender, PROTO_QOS_REPORT, state.call_id, payload, src, dst, now)

    def _periodic(self) -> None:
        self._timer = None
        now = time.time()
        for state in self.rtp.values():
            self._report(state, "PERIODIC", now)
        if self.rtp:
            self._timer = self.daemon.loop.call_later(self.interval, self._periodic)

    def _finish(self, call: Any) -> None:
        streams = self.calls.pop(call.call_id, [])
        now = time.time()
        for stream in streams:
            state = self.rtp.pop(stream, None)
            if state is not None:
                self._report(state, "HANGUP", now)
            self.call_of.pop(stream, None)
            self.daemon.taps.unsubscribe(stream, "homer")

    # -- signalling -----------------------------------------------------------------------------

    def _on_ng(self, command: str, request: dict[str, Any], reply: dict[str, Any],
               source: tuple[str, int], received: float) -> None:  # fmt: skip
        if command not in TRACED:
            return
        call_id = request.get("call-id")
        if not isinstance(call_id, str):
            return
        ng = self.daemon.settings.listen_ng
        local = (ng[0] or "127.0.0.1", ng[1]) if ng else ("127.0.0.1", 0)
        try:
            req, rep = bencode_encode(_redacted(request)), bencode_encode(_redacted(reply))
        except Exception:
            self.encode_errors += 1
            return
        self._packet(self.ng_sender, PROTO_NG_TRACE, call_id, b"ng-request " + req, source, local,
                     received)  # fmt: skip
        self._packet(self.ng_sender, PROTO_NG_TRACE, call_id, b"ng-reply " + rep, local, source,
                     time.time())  # fmt: skip

    # -- component ------------------------------------------------------------------------------

    async def start(self) -> None:
        pass

    def close(self) -> None:
        for timer in (self._timer, self._ticker):
            if timer is not None:
                timer.cancel()
        for sender in self._senders():
            sender.close()

    def _senders(self) -> list[HepSender]:
        """Each distinct sender once (homer-ng may share the homer sender)."""
        return [x for x in {self.sender, self.ng_sender} if x is not None]

    def stats(self) -> dict[str, Any]:
        senders = self._senders()
        return {
            "hep_sent": sum(x.sent for x in senders),
            "hep_dropped": sum(x.dropped for x in senders),
            "hep_errors": sum(x.errors for x in senders) + self.encode_errors,
            "hep_queue": sum(x.queued for x in senders),
        }


def attach(daemon: DaemonContext) -> HomerComponent | None:
    s = daemon.settings
    if s.homer is None and s.homer_ng is None:
        return None
    sender = HepSender(s.homer[0], s.homer[1], s.homer_protocol) if s.homer is not None else None
    ng_sender = sender
    if s.homer_ng is not None:
        ng_sender = HepSender(s.homer_ng.host, s.homer_ng.port, s.homer_ng.protocol)
    logger.info("HEP export: %s%s", f"homer {s.homer[0]}:{s.homer[1]}/{s.homer_protocol}"
                if s.homer else "", f", ng trace to {s.homer_ng.host}:{s.homer_ng.port}"
                if s.homer_ng else "")  # fmt: skip
    return HomerComponent(daemon, sender, ng_sender)
