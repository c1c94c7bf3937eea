"""Exceptions of the ng layer.

`NgError` is what a command handler raises to produce an error reply; the control server turns
it into exactly `{"result": "error", "error-reason": reason}` (docs/spec/ng-protocol.md §2.2).
"""

from __future__ import annotations


class NgError(ValueError):
    """An ng request that gets an error reply; `reason` is the exact `error-reason` text.

    `cookie` and `is_json` are filled in by the codec when the request itself is malformed, so
    the caller can still address the reply and pick its encoding.
    """

    def __init__(self, reason: str, *, cookie: bytes = b"", is_json: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cookie = cookie
        self.is_json = is_json


class BencodeError(ValueError):
    """Bytes that are not (lenient, rtpengine-style) bencode, or a value bencode cannot carry."""


# rtpengine 10.5's error-reason texts for bodies it cannot read (docs/spec/ng-protocol.md §1)
INVALID_NO_PAYLOAD = "Invalid data (no payload)"
INVALID_FORMAT = "Invalid NG data format"
NO_COMMAND = 'Dictionary contains no key "command"'
BAD_JSON = "Failed to parse JSON document"
BAD_BENCODE = "Could not decode bencode dictionary"
