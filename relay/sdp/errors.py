"""The SDP package's error type."""

from __future__ import annotations


class SdpError(ValueError):
    """An SDP body rtpengine 10.5 would refuse (the peer's fault), or a plan that does not fit.

    The message names the offending line (or value) so it can go into an ng `error-reason`.
    """
