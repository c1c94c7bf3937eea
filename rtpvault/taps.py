"""Several subscribers (recorder, HEP exporter) on one stream's single `tap` slot.

The forwarding plane calls `stream.tap(stream, packet, source, wall_time)` for every packet a
stream receives (relay.media.userspace). A stream has one slot because the hot path can afford
one call; the composition root owns that slot through a `TapHub`: with one subscriber the slot
holds that subscriber's function itself (no extra call per packet), with several it holds a
fan-out closure, with none it is None (the plane then skips the call entirely).

A subscriber's exception is the plane's business (counted in `stream.tap_errors`); with a
fan-out one failing subscriber must not starve the next, so the fan-out catches per subscriber
and counts into the same counter.
"""

from __future__ import annotations

from collections.abc import Callable

from relay.media.stream import Address, Stream, Tap


class TapHub:
    """Keeps, per stream, the subscribers keyed by name, and sets `stream.tap` to match."""

    def __init__(self, changed: Callable[[Stream], None] | None = None) -> None:
        self._subs: dict[Stream, dict[str, Tap]] = {}
        self._changed = changed
        """Told after a stream's tap slot changed (the kernel plane must hand the stream back
        to userspace before the next packet, or may take it again)."""

    def subscribe(self, stream: Stream, name: str, tap: Tap) -> None:
        """Add (or replace) subscriber `name` on `stream`."""
        self._subs.setdefault(stream, {})[name] = tap
        self._install(stream)

    def unsubscribe(self, stream: Stream, name: str) -> None:
        """Remove subscriber `name` from `stream`; unknown names are ignored."""
        subs = self._subs.get(stream)
        if subs is None or subs.pop(name, None) is None:
            return
        if not subs:
            del self._subs[stream]
        self._install(stream)

    def _install(self, stream: Stream) -> None:
        self._set(stream)
        if self._changed is not None:
            self._changed(stream)

    def _set(self, stream: Stream) -> None:
        subs = self._subs.get(stream)
        if not subs:
            stream.tap = None
            return
        taps = tuple(subs.values())
        if len(taps) == 1:
            stream.tap = taps[0]
            return

        def fan_out(s: Stream, packet: bytes, source: Address, now: float) -> None:
            for tap in taps:
                try:
                    tap(s, packet, source, now)
                except Exception:  # one subscriber's bug must not starve the others
                    s.tap_errors += 1

        stream.tap = fan_out
