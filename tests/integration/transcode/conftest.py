"""Two rtpengine 10.5 (the reference chain, rtpengine×2) and one rtpvault per module, all on
127.0.0.1 without an advertised address, so each relay's SDP names the address where the next
one sends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemons import Daemon, start


@pytest.fixture(scope="module")
def relays(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Daemon]]:
    base = Path(tmp_path_factory.mktemp("transcode-chain"))
    started: dict[str, Daemon] = {}
    try:
        for name, kind in (("rtpengine", "rtpengine"), ("rtpengine2", "rtpengine"),
                           ("rtpvault", "rtpvault")):  # fmt: skip
            started[name] = start(kind, base / name, interface="lo/127.0.0.1", ports=40)
        yield started
    finally:
        for d in reversed(started.values()):
            d.stop()
