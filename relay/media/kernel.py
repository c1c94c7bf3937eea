"""In-kernel forwarding of established IPv4 streams with stock nftables (`table` >= 0).

rtpengine forwards established streams in its own kernel module (`xt_RTPENGINE`, `table = 0`);
rtpvault does the same with stateless nftables rewrites, so packets of an established stream
never wake the daemon. Everything else stays in the userspace plane it wraps, unchanged:
learning, the drop-and-count rule for foreign sources, recording and HEP taps, IPv6.

A stream X (packets from party A arrive on X's local port; they leave from X.sink's local port
towards X.sink.peer, party B) is *offloaded* once it is established: confirmed with a peer, no
tap, not `media-handover`, IPv4, no secure transport on it or its sink (SRTP, DTLS, ICE:
relay.media.secure), and its sink has an IPv4 peer it may send to. Then one mark
identifies it, and the `rtpvault` table holds:

* `streams`: A's address . A's port . X's address . X's port → mark (with a per-element counter),
  looked up in prerouting at raw priority: a match marks the packet, skips conntrack
  (`notrack`) and rewrites its destination to B (maps `daddr`/`dport`);
* `sent`: the mark (with a counter), looked up after routing — postrouting for a packet routed
  on, input for a peer on this host — which rewrites its source to X.sink's address and port.

Only packets from the learned peer match; any other source still reaches X's socket and the
userspace rules (drop and count). Counters are read once per `SYNC_INTERVAL` and added to the
streams' `packets`/`bytes`/`last_packet` (so `query`, `statistics` and timeouts see kernel
traffic); the same sweep offloads newly established streams and takes back streams whose
state changed. Control-plane changes (`update`, `remove`: re-offer, hold, recording start,
delete) apply at once, so no packet goes to an old peer or past a new recorder.

Safety: if `streams` counts packets for a while but `sent` does not (the host does not forward:
`ip_forward` off, a FORWARD policy of drop, a missing route), the plane logs an error, takes
every stream back to userspace and stays off.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Callable

from relay.media.nft import Nft, NftError
from relay.media.plane import ForwardingPlane
from relay.media.stream import Stream

logger = logging.getLogger("rtpvault.media.kernel")

TABLE = "rtpvault"
SYNC_INTERVAL = 1.0
MARK_BASE = 0x7E000000
"""Marks this plane sets are MARK_BASE + n; only packets it matched carry one."""
HEADERS = 28
"""IPv4 + UDP header bytes: nft counts whole IP packets, streams count UDP payload."""
BLACKHOLE_AFTER = 20
"""Packets matched but never sent on before the plane decides the host does not forward."""

PRE_RULE = " ".join(
    (
        "meta l4proto udp",
        "meta mark set ip saddr . udp sport . ip daddr . udp dport map @streams",
        "notrack",
        "ip daddr set meta mark map @daddr udp dport set meta mark map @dport",
    )
)
RULESET = """
table ip {table} {{
    map streams {{ type ipv4_addr . inet_service . ipv4_addr . inet_service : mark; counter; }}
    map daddr {{ type mark : ipv4_addr; }}
    map dport {{ type mark : inet_service; }}
    map saddr {{ type mark : ipv4_addr; }}
    map sport {{ type mark : inet_service; }}
    set sent {{ type mark; counter; }}
    chain pre {{
        type filter hook prerouting priority raw; policy accept;
        {pre_rule}
    }}
    chain post {{
        type filter hook postrouting priority srcnat; policy accept;
        meta mark @sent ip saddr set meta mark map @saddr udp sport set meta mark map @sport
    }}
    chain local {{
        type filter hook input priority 100; policy accept;
        meta mark @sent ip saddr set meta mark map @saddr udp sport set meta mark map @sport
    }}
}}
"""


def table_name(table: int) -> str:
    """`ip rtpvault` for table 0, `ip rtpvault<N>` otherwise: like rtpengine's table numbers,
    it keeps several daemons on one host (or namespace) out of each other's entries."""
    return TABLE if table == 0 else f"{TABLE}{table}"


Key = tuple[str, int, str, int, str, int, str, int]
"""peer address, peer port, local address, local port → sink's peer, port, local address, port."""


def _v4(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv4Address) and host != "0.0.0.0"
    except ValueError:
        return False


def desired(s: Stream) -> Key | None:
    """What `s` needs in the kernel, or None while it must stay in userspace."""
    sink = s.sink
    if (
        not s.confirmed
        or s.peer is None
        or s.tap is not None
        or s.media_handover
        or s.family != socket.AF_INET
        or not s.local_port
        or sink is None
        or sink.peer is None
        or sink.send_blocked
        or not sink.local_port
        or s.transport is not None  # SRTP, DTLS, ICE: the pair stays in userspace
        or sink.transport is not None
        or s.rtcp_sink is not None  # muxed RTCP to the other party's RTCP port: userspace
        or s.reports is not None  # generate-RTCP: statistics per packet
        or sink.reports is not None
    ):
        return None
    key = (*s.peer, s.local_address, s.local_port, *sink.peer, sink.local_address, sink.local_port)
    if not all(_v4(h) for h in (key[0], key[2], key[4], key[6])):
        return None
    return key


class _Entry:
    __slots__ = ("mark", "key", "packets", "bytes", "sent")

    def __init__(self, mark: int, key: Key) -> None:
        self.mark = mark
        self.key = key
        self.packets = 0
        self.bytes = 0
        self.sent = 0


def _elements(mark: int, key: Key) -> list[str]:
    pa, pp, la, lp, da, dp, sa, sp = key
    return [
        f"streams {{ {pa} . {pp} . {la} . {lp} : {mark} }}",
        f"daddr {{ {mark} : {da} }}",
        f"dport {{ {mark} : {dp} }}",
        f"saddr {{ {mark} : {sa} }}",
        f"sport {{ {mark} : {sp} }}",
        f"sent {{ {mark} }}",
    ]


class KernelPlane:
    """A userspace plane plus nftables offload of established streams (see module docstring)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        inner: ForwardingPlane,
        nft: Nft,
        table: int = 0,
        wallclock: Callable[[], float] = time.time,
        interval: float = SYNC_INTERVAL,
    ) -> None:
        self._loop = loop
        self._inner = inner
        self._nft = nft
        self._wallclock = wallclock
        self._interval = interval
        self._table = table_name(table)
        self._streams: set[Stream] = set()
        self._installed: dict[Stream, _Entry] = {}
        self._next_mark = MARK_BASE + 1
        self._free: list[int] = []
        self.enabled = True
        self.packets = 0
        """Packets forwarded in the kernel so far (all streams, live and ended)."""
        self.bytes = 0
        ruleset = RULESET.format(table=self._table, pre_rule=PRE_RULE)
        nft.run(f"table ip {self._table}\ndelete table ip {self._table}\n{ruleset}")
        self._timer: asyncio.TimerHandle | None = loop.call_later(interval, self._tick)

    # -- ForwardingPlane -----------------------------------------------------------------------

    def __contains__(self, stream: Stream) -> bool:
        return stream in self._inner

    def add(self, stream: Stream) -> None:
        self._inner.add(stream)
        self._streams.add(stream)

    def update(self, stream: Stream) -> None:
        """Re-render `stream` and the stream whose packets it sends (its sink's partner)."""
        self._inner.update(stream)
        self._apply([s for s in {stream, stream.sink} if s is not None and s in self._streams])

    def remove(self, stream: Stream) -> None:
        self._streams.discard(stream)
        if stream in self._installed:
            self._withdraw([stream])
        self._inner.remove(stream)

    def stop(self) -> None:
        """Stop offloading, for shutdown: count what the kernel forwarded for every stream in
        one read, delete the table in one command, and stay off, so the calls then end in
        userspace at no nft cost each. (Withdrawing stream by stream reads every counter once
        per stream: quadratic, seconds for a few hundred calls.) Idempotent."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        was_on, streams = self.enabled, len(self._installed)
        try:
            if self.enabled and self._installed:
                self._read_counters()
        except NftError as exc:
            logger.error("kernel forwarding: cannot read the last counters: %s", exc)
        finally:
            self.enabled = False
            self._installed.clear()
            self._delete_table()
        if was_on:
            logger.info(
                "kernel forwarding stopped: %d stream(s) back in userspace, table ip %s deleted",
                streams,
                self._table,
            )

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self._inner.close()

    def _delete_table(self) -> None:
        try:
            self._nft.run(f"delete table ip {self._table}")
        except NftError as exc:
            if "No such file" not in str(exc):
                logger.error("kernel forwarding: cannot delete table ip %s: %s", self._table, exc)

    @property
    def offloaded(self) -> int:
        """Streams forwarded in the kernel right now."""
        return len(self._installed)

    # -- sync ----------------------------------------------------------------------------------

    def _tick(self) -> None:
        self._timer = None
        try:
            if self.enabled:
                self._read_counters()
            if self.enabled:
                self._apply(list(self._streams))
        except NftError as exc:
            self._disable(f"nftables failed: {exc}")
        except Exception:  # never let the sweep die: media keeps flowing in userspace
            logger.exception("kernel forwarding sweep failed")
        self._timer = self._loop.call_later(self._interval, self._tick)

    def _apply(self, streams: list[Stream]) -> None:
        """Bring the kernel in line with what `streams` need now (one nft transaction)."""
        if not self.enabled:
            return
        wanted = [(s, desired(s) if s in self._streams else None) for s in streams]
        gone = [s for s, want in wanted if s in self._installed and self._installed[s].key != want]
        if gone:
            self._withdraw(gone)
        commands: list[str] = []
        for s, want in wanted:
            if want is None or s in self._installed:
                continue
            mark = self._free.pop() if self._free else self._take_mark()
            self._installed[s] = _Entry(mark, want)
            commands.extend(f"add element ip {self._table} {e}" for e in _elements(mark, want))
        if commands:
            try:
                self._nft.run("\n".join(commands))
            except NftError as exc:
                self._disable(f"nftables refused a stream: {exc}")

    def _take_mark(self) -> int:
        mark = self._next_mark
        self._next_mark += 1
        return mark

    def _withdraw(self, streams: list[Stream]) -> None:
        """Delete `streams`' elements, counting what the kernel forwarded for them until now."""
        entries = [(s, self._installed.pop(s)) for s in streams if s in self._installed]
        if not entries or not self.enabled:
            return
        self._read_counters(entries)
        lines = [
            f"delete element ip {self._table} {el}"
            for _, e in entries
            for el in _elements(e.mark, e.key)
        ]
        try:
            self._nft.run("\n".join(lines))
        except NftError as exc:
            self._disable(f"nftables could not remove a stream: {exc}")
            return
        self._free.extend(e.mark for _, e in entries)

    def _read_counters(self, only: list[tuple[Stream, _Entry]] | None = None) -> None:
        entries = only if only is not None else list(self._installed.items())
        if not entries:
            return
        fwd, out = self._counters()
        now = self._wallclock()
        moved = stuck = 0
        for s, e in entries:
            packets, nbytes = fwd.get(e.mark, (e.packets, e.bytes))
            sent = out.get(e.mark, e.sent)
            dp, db = packets - e.packets, nbytes - e.bytes
            if dp > 0:
                s.packets += dp
                s.bytes += db - HEADERS * dp
                s.last_packet = now
                self.packets += dp
                self.bytes += db - HEADERS * dp
                moved += dp
                if sent == e.sent:
                    stuck += dp
            e.packets, e.bytes, e.sent = packets, nbytes, sent
        if stuck >= BLACKHOLE_AFTER and stuck == moved:
            self._disable(
                f"{stuck} packets matched but none left this host: it does not forward them "
                "(net.ipv4.ip_forward, a FORWARD policy of drop, routes)"
            )

    def _counters(self) -> tuple[dict[int, tuple[int, int]], dict[int, int]]:
        fwd: dict[int, tuple[int, int]] = {}
        out: dict[int, int] = {}
        for item in self._nft.json(f"list map ip {self._table} streams"):
            for el in item.get("map", {}).get("elem", []):
                # [{"elem": {"val": {"concat": [...]}, "counter": {...}}}, mark]
                if isinstance(el, list) and len(el) == 2 and isinstance(el[0], dict):
                    counter = el[0].get("elem", {}).get("counter", {})
                    fwd[int(el[1])] = (int(counter.get("packets", 0)), int(counter.get("bytes", 0)))
        for item in self._nft.json(f"list set ip {self._table} sent"):
            for el in item.get("set", {}).get("elem", []):
                if isinstance(el, dict) and "elem" in el:
                    counter = el["elem"].get("counter", {})
                    out[int(el["elem"]["val"])] = int(counter.get("packets", 0))
        return fwd, out

    def _disable(self, reason: str) -> None:
        if not self.enabled:
            return
        logger.error("kernel forwarding disabled, forwarding in userspace: %s", reason)
        self.enabled = False
        self._installed.clear()
        self._delete_table()


def open_kernel_plane(
    loop: asyncio.AbstractEventLoop, inner: ForwardingPlane, table: int
) -> tuple[ForwardingPlane, str]:
    """The plane the daemon should use for `table`, and why (for the log).

    `table` < 0: userspace only, as rtpengine. Otherwise the kernel plane when this process may
    change nftables, libnftables is there and IPv4 forwarding is on; else the userspace plane
    with the reason (rtpengine: 'FAILED TO CREATE KERNEL TABLE … KERNEL FORWARDING DISABLED').
    """
    from relay.media.nft import can_admin_network, ip_forwarding

    if table < 0:
        return inner, ""
    if not can_admin_network():
        return inner, "no CAP_NET_ADMIN (run as root or grant it)"
    if not ip_forwarding():
        return inner, "net.ipv4.ip_forward is 0 (forwarded media could not leave this host)"
    try:
        nft = Nft()
        return KernelPlane(loop, inner, nft, table), ""
    except NftError as exc:
        return inner, str(exc)
