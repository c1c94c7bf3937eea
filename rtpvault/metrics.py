"""The daemon part for metrics: `/metrics` on `listen-http` and on the deployment guide's
`prometheus = yes` + `prometheus-listen`. The collector is rtpvault.prometheus, the listener
rtpvault.http; both (and prometheus-client) are imported only when one of those keys is set.
"""

from __future__ import annotations

from typing import Any

from rtpvault.component import DaemonContext


def attach(daemon: DaemonContext) -> Any:
    s = daemon.settings
    if not s.listen_http and not (s.prometheus and s.prometheus_listen is not None):
        return None
    from rtpvault.http import attach as http_attach

    return http_attach(daemon)
