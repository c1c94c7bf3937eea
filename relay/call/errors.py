"""The call model's refusal."""

from __future__ import annotations


class CallError(Exception):
    """A request the call model refuses; `reason` is the ng error-reason text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
