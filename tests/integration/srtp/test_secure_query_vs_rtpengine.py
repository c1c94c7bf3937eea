"""An SDES leg getting good SRTP, bad authentication tags, a STUN with a bad MESSAGE-INTEGRITY
and DTLS garbage, side by side on the real rtpengine 10.5 and on rtpvault: `query`,
`statistics` and `rtpengine-ctl list sessions <call-id>` must show the same numbers (the
decrypted bytes, each dropped datagram an error) and the same crypto suite and flags
(docs/spec/ng-protocol.md §4.4). Replays are left out: 10.5 relays them, rtpvault drops them."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.srtp.test_secure_drops import (
    _bad_tag,
    _call,
    _ng,
    _stun_bad_integrity,
)
from tests.integration.test_sdes_media import SSRC, _rtp
from tests.support.daemons import Daemon, start
from tests.support.tools import free_port, require

pytestmark = pytest.mark.integration


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[dict[str, tuple[Daemon, int]]]:
    require("rtpengine-ctl")
    started: dict[str, tuple[Daemon, int]] = {}
    try:
        for kind in ("rtpengine", "rtpvault"):
            cli = free_port(socket.SOCK_STREAM)
            extra = [f"--listen-cli=127.0.0.1:{cli}"]
            started[kind] = (start(kind, tmp_path / kind, ports=20, extra=extra), cli)
        yield started
    finally:
        for d, _ in started.values():
            d.stop()


def _play(d: Daemon) -> None:
    a, b, out = _call(d, "sq-1")

    def good(seq: int) -> None:
        plain = _rtp(seq, SSRC["b"], os.urandom(160))
        b.send(out.protect(plain))
        assert a.recv() == plain  # in order on loopback: nothing bad went through before

    good(1)
    good(2)
    for seq in (3, 4):
        b.send(_bad_tag(out.protect(_rtp(seq, SSRC["b"], os.urandom(160)))))
    b.send(_stun_bad_integrity())
    b.send(bytes([22, 254, 253]) + os.urandom(40))
    good(5)


def _shape(reply: dict[str, Any]) -> dict[str, Any]:
    """What must be equal: per tag, media protocol and flags, and per stream the crypto suite,
    flags and counters (ports, addresses and times differ)."""
    tags = {}
    for tag, t in reply["tags"].items():
        tags[tag] = [(m["protocol"], m["flags"],
                      [(s.get("crypto suite"), s["flags"], s["stats"], list(s))
                       for s in m["streams"]]) for m in t["medias"]]  # fmt: skip
    return {"tags": tags, "totals": reply["totals"]}


def _ctl(cli: int) -> str:
    out = subprocess.run([require("rtpengine-ctl"), "-ip", "127.0.0.1", "-port", str(cli),
                          "list", "sessions", "sq-1"],
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert out.returncode == 0, out.stderr
    text = re.sub(r"127\.0\.0\.1:\d+", "ADDR", str(out.stdout))
    text = re.sub(r"\d+ ts\b|callduration [\d.]+|created: \d+|last_signal: \d+", "T", text)
    return text


def test_query_statistics_and_ctl_match_rtpengine(pair: dict[str, tuple[Daemon, int]]) -> None:
    seen = {}
    for kind, (d, cli) in pair.items():
        _play(d)
        totals = _ng(d, {"command": "statistics"})["statistics"]["totalstatistics"]
        seen[kind] = (
            _shape(_ng(d, {"command": "query", "call-id": "sq-1"})),
            {k: totals[k] for k in ("relayedpackets_user", "relayedbytes_user",
                                    "relayedpacketerrors_user")},  # fmt: skip
            _ctl(cli),
        )
    assert seen["rtpvault"] == seen["rtpengine"]
    query, totals, ctl = seen["rtpvault"]
    assert totals == {"relayedpackets_user": 3, "relayedbytes_user": 3 * 172,
                      "relayedpacketerrors_user": 4}  # fmt: skip
    assert "3 p, 516 b, 4 e" in ctl and "(audio over RTP/SAVP)" in ctl
    assert query["tags"]["tb"][0][2][0][0] == "AES_CM_128_HMAC_SHA1_80"
