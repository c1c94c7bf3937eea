"""One rtpengine 10.5 and one rtpvault per module, both on 127.0.0.1 without an advertised
address, so each relay's SDP names the address where the other one sends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemons import Daemon, start


@pytest.fixture(scope="module")
def relays(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Daemon]]:
    base = Path(tmp_path_factory.mktemp("srtp-chain"))
    engine = start("rtpengine", base / "rtpengine", interface="lo/127.0.0.1", ports=40)
    try:
        vault = start("rtpvault", base / "rtpvault", interface="lo/127.0.0.1", ports=40)
    except BaseException:
        engine.stop()
        raise
    try:
        yield {"rtpengine": engine, "rtpvault": vault}
    finally:
        vault.stop()
        engine.stop()




@pytest.fixture(scope="module")
def rtpvault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start("rtpvault", Path(tmp_path_factory.mktemp("srtp-vault")), interface="lo/127.0.0.1",
              ports=40)
    try:
        yield d
    finally:
        d.stop()
