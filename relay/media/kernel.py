"""In-kernel forwarding of established IPv4 streams with stock nftables (`table` >= 0).

rtpengine forwards established streams in its own kernel module (`xt_RTPENGINE`, `table = 0`);
rtpvault does the same with stateless nftables rewrites, so packets of an established stream
never wake the daemon. Everything else stays in the userspace plane it wraps, unchanged:
learning, the drop-and-count rule for foreign sources, recording and HEP taps, IPv6.

A stream X (packets from party A arrive on X's local port; they leave from X.sink's local port
towards X.sink.peer, party B) is *offloaded* once it is established: confirmed with a peer, no
tap, not `media-handover`, IPv4, no secure transport on it or its sink (SRTP, DTLS, ICE:
relay.media.secure), not transcoded (relay.media.transcoder), and its sink has an IPv4 peer
it may send to. Then one mark
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

Worker processes (issue 18, relay.media.ruleset): a plane opened with `worker=(index, count)`
attaches to the table the supervisor created and never creates or deletes it. It writes only
its own maps (`streams_<index>`, …) with marks of its own range, reads only their counters, and
empties only them: on start (what a killed predecessor with the same index left), on `stop` and
when it disables itself (the blackhole check counts its own streams only), so the other workers
forward on.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Callable

from relay.media import ruleset
from relay.media.nft import Nft, NftError
from relay.media.plane import ForwardingPlane
from relay.media.ruleset import MARK_BASE, TABLE, table_name
from relay.media.stream import Stream

logger = logging.getLogger("rtpvault.media.kernel")

SYNC_INTERVAL = 1.0
HEADERS = 28
"""IPv4 + UDP header bytes: nft counts whole IP packets, streams count UDP payload."""
BLACKHOLE_AFTER = 20
"""Packets matched but never sent on before the plane decides the host does not forward."""

__all__ = ["MARK_BASE", "TABLE", "KernelPlane", "open_kernel_plane", "table_name"]


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
        or s.transcoder is not None  # transcoding: the codec chain runs in userspace
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


def _elements(mark: int, key: Key, s: str = "") -> list[str]:
    """The elements of one stream, in maps whose names end with `s` (a worker's: `_i`)."""
    pa, pp, la, lp, da, dp, sa, sp = key
    return [
        f"streams{s} {{ {pa} . {pp} . {la} . {lp} : {mark} }}",
        f"daddr{s} {{ {mark} : {da} }}",
        f"dport{s} {{ {mark} : {dp} }}",
        f"saddr{s} {{ {mark} : {sa} }}",
        f"sport{s} {{ {mark} : {sp} }}",
        f"sent{s} {{ {mark} }}",
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
        worker: tuple[int, int] | None = None,
    ) -> None:
        """`worker` = (index, count): attach to the shared table as that worker (module
        docstring); None: own the table, creating it here and deleting it on `stop`."""
        self._loop = loop
        self._inner = inner
        self._nft = nft
        self._wallclock = wallclock
        self._interval = interval
        self._table = table_name(table)
        self._streams: set[Stream] = set()
        self._installed: dict[Stream, _Entry] = {}
        self._worker = worker[0] if worker is not None else None
        self._s = ruleset.suffix(self._worker)
        self._marks = ruleset.single_marks() if worker is None else ruleset.worker_marks(*worker)
        self._next_mark = self._marks.start
        self._free: list[int] = []
        self.enabled = True
        self.packets = 0
        """Packets forwarded in the kernel so far (all streams, live and ended)."""
        self.bytes = 0
        if self._worker is None:
            ruleset.create(nft, self._table)
        else:  # raises NftError when the supervisor made no table (for this worker)
            stale = ruleset.held(nft, self._table, self._worker)
            ruleset.flush(nft, self._table, self._worker)
            if stale:
                logger.warning(
                    "kernel forwarding: removed %d stream(s) a previous worker %d left in "
                    "table ip %s",
                    stale,
                    self._worker,
                    self._table,
                )
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
        one read, delete the table (a worker: its own elements) in one command, and stay off,
        so the calls then end in userspace at no nft cost each. (Withdrawing stream by stream
        reads every counter once per stream: quadratic, seconds for a few hundred calls.)
        Idempotent."""
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
            self._release(was_on)
        if not was_on:
            return
        if self._worker is None:
            logger.info(
                "kernel forwarding stopped: %d stream(s) back in userspace, table ip %s deleted",
                streams,
                self._table,
            )
        else:
            logger.info(
                "kernel forwarding stopped: %d stream(s) back in userspace, worker %d's "
                "elements removed from table ip %s",
                streams,
                self._worker,
                self._table,
            )

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self._inner.close()

    def _release(self, was_on: bool) -> None:
        """Take this plane's kernel state away: its own table, or (a worker) its elements in
        the shared table, which other workers keep using."""
        try:
            if self._worker is None:
                ruleset.delete(self._nft, self._table)
            elif was_on:  # once off, nothing of ours is left to remove
                ruleset.flush(self._nft, self._table, self._worker)
        except NftError as exc:
            if "No such file" not in str(exc):
                logger.error("kernel forwarding: cannot clean table ip %s: %s", self._table, exc)

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
            if mark is None:  # every mark of this worker in use: the stream stays in userspace
                continue
            self._installed[s] = _Entry(mark, want)
            commands.extend(
                f"add element ip {self._table} {e}" for e in _elements(mark, want, self._s)
            )
        if commands:
            try:
                self._nft.run("\n".join(commands))
            except NftError as exc:
                self._disable(f"nftables refused a stream: {exc}")

    def _take_mark(self) -> int | None:
        mark = self._next_mark
        if mark not in self._marks:
            return None
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
            for el in _elements(e.mark, e.key, self._s)
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
        """Counters of this plane's streams (a worker's own maps: only its own)."""
        fwd: dict[int, tuple[int, int]] = {}
        out: dict[int, int] = {}
        for item in self._nft.json(f"list map ip {self._table} streams{self._s}"):
            for el in item.get("map", {}).get("elem", []):
                # [{"elem": {"val": {"concat": [...]}, "counter": {...}}}, mark]
                if isinstance(el, list) and len(el) == 2 and isinstance(el[0], dict):
                    counter = el[0].get("elem", {}).get("counter", {})
                    fwd[int(el[1])] = (int(counter.get("packets", 0)), int(counter.get("bytes", 0)))
        for item in self._nft.json(f"list set ip {self._table} sent{self._s}"):
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
        self._release(True)


def open_kernel_plane(
    loop: asyncio.AbstractEventLoop,
    inner: ForwardingPlane,
    table: int,
    worker: tuple[int, int] | None = None,
) -> tuple[ForwardingPlane, str]:
    """The plane the daemon should use for `table`, and why (for the log).

    `table` < 0: userspace only, as rtpengine. Otherwise the kernel plane when this process may
    change nftables, libnftables is there and IPv4 forwarding is on; else the userspace plane
    with the reason (rtpengine: 'FAILED TO CREATE KERNEL TABLE … KERNEL FORWARDING DISABLED').

    `worker` = (index, count): a worker process attaching to the table its supervisor made with
    relay.media.ruleset.create_shared_table; it fails (userspace, with the reason) if there is
    none. None: one process owning the table, as before issue 18.
    """
    if table < 0:
        return inner, ""
    reason = ruleset.why_not()
    if reason:
        return inner, reason
    try:
        nft = Nft()
    except NftError as exc:
        return inner, str(exc)
    try:
        return KernelPlane(loop, inner, nft, table, worker=worker), ""
    except NftError as exc:
        nft.close()
        if worker is not None and "No such file" in str(exc):
            return inner, f"no shared table ip {table_name(table)} to attach to ({exc})"
        return inner, str(exc)
