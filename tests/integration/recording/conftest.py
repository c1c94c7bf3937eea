"""Shared helpers: a recording rtpvault, tshark's view of a capture, the sidecars."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import daemons
from tests.support.tools import require
from tests.support.wait import wait_for

# tshark decodes UDP 47000 as HCrt and 47808 as BACnet, hiding RTP in -z rtp,streams
TSHARK_RTP = ["-o", "rtp.heuristic_rtp:TRUE", "--disable-protocol", "hcrt",
              "--disable-protocol", "bvlc"]  # fmt: skip


def rtp_streams(path: Path) -> dict[tuple[str, int, str, int, int], tuple[str, int, int]]:
    """tshark -z rtp,streams: (src, sport, dst, dport, ssrc) -> (payload, packets, lost)."""
    tshark = require("tshark")
    # Ports are random: any of them may belong to some other dissector (HCrt, BACnet, ...), so
    # every UDP port in the file is decoded as RTP explicitly (RTCP is found by rtp's own rules).
    ports = subprocess.run(
        [tshark, "-r", str(path), "-T", "fields", "-e", "udp.dstport", "-e", "udp.srcport"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    decode = [a for p in sorted(set(ports)) for a in ("-d", f"udp.port=={p},rtp")]
    out = subprocess.run(
        [tshark, "-r", str(path), *TSHARK_RTP, *decode, "-q", "-z", "rtp,streams"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    streams = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) > 9 and re.fullmatch(r"0x[0-9A-Fa-f]{8}", f[6]):
            streams[(f[2], int(f[3]), f[4], int(f[5]), int(f[6], 16))] = (
                f[7],
                int(f[8]),
                int(f[9]),
            )
    return streams


def tshark_read(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require("tshark"), "-r", str(path)], capture_output=True, text=True)


def sidecars(spool: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((spool / "sidecars").glob("*.json"))]


def wait_until(cond: Callable[[], bool], bound: float = 10.0) -> bool:
    """Poll `cond`; the bound only stops a stuck daemon from hanging the test."""
    return bool(wait_for(cond, bound, interval=0.05))


@pytest.fixture
def recording_relay(tmp_path: Path) -> Iterator[Callable[..., daemons.Daemon]]:
    started: list[daemons.Daemon] = []

    def start(
        fmt: str = "eth", spool: Path | None = None, extra: list[str] | None = None
    ) -> daemons.Daemon:
        spool = spool or tmp_path / "spool"
        d = daemons.start("rtpvault", tmp_path / f"run{len(started)}", extra=[
            f"--recording-dir={spool}", f"--recording-format={fmt}", "--delete-delay=0",
            *(extra or [])])  # fmt: skip
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()
