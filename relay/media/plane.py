"""The interface every forwarding plane offers the call model: userspace
(relay.media.userspace) and nftables offload on top of it (relay.media.kernel).

A plane moves packets between linked `Stream`s: a packet arriving on stream X leaves through
X.sink's socket towards X.sink.peer, and X's counters and learned peer are updated in place on
the shared `Stream` objects (the call model reads them for `query`/`delete` and timeouts).

Contract for the caller (relay.call.streams / rtpvault.daemon):

* `add(stream)` once the stream's socket exists (non-blocking is set by the plane). Adding both
  streams of a pair is what makes traffic flow both ways; a stream with no `sink`, or whose sink
  has no `peer`, still receives and counts packets but forwards nothing.
* `update(stream)` after changing anything the plane may have cached outside the `Stream`
  (sink, peer, flags, tap). The userspace plane reads the `Stream` per packet and ignores it;
  an in-kernel plane re-renders its rules.
* `remove(stream)` BEFORE closing the stream's socket (the plane unregisters by fd).
* `close()` at shutdown: removes every stream; closes no sockets (the caller owns them).
"""

from __future__ import annotations

from typing import Protocol

from relay.media.stream import Stream


class ForwardingPlane(Protocol):
    """Registers streams for forwarding; all methods are called from the event loop thread."""

    def __contains__(self, stream: Stream) -> bool:
        """Whether `stream` was added and not removed."""
        ...

    def add(self, stream: Stream) -> None:
        """Start receiving on `stream.sock` and forwarding to its sink."""
        ...

    def update(self, stream: Stream) -> None:
        """Tell the plane that `stream`'s sink, peer, flags or tap changed."""
        ...

    def remove(self, stream: Stream) -> None:
        """Stop receiving on `stream.sock` (call before closing the socket)."""
        ...

    def close(self) -> None:
        """Remove every stream; sockets stay open (the caller owns them)."""
        ...
