"""The call model: Call → Party → MediaSide → Stream, offer/answer pairing, deletes, timeouts.

`Registry` (relay.call.registry) is the entry point; relay.ng builds its `CallOptions` from the
request and renders its state into replies. This package never imports relay.ng.
"""

from relay.call.errors import CallError
from relay.call.events import (
    CallClosed,
    CallCreated,
    CallEvent,
    CallListener,
    CallUpdated,
    Exchange,
)
from relay.call.model import Call, MediaSide, Party
from relay.call.offered import OfferedMedia, OfferedSession
from relay.call.options import CallOptions
from relay.call.registry import Registry
from relay.call.streams import NullPlane
from relay.call.teardown import Totals

__all__ = [
    "Call", "CallClosed", "CallCreated", "CallError", "CallEvent", "CallListener", "CallOptions",
    "CallUpdated", "Exchange", "MediaSide", "NullPlane", "OfferedMedia", "OfferedSession", "Party",
    "Registry", "Totals",
]  # fmt: skip
