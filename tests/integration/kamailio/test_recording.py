"""Recording chosen per call in Kamailio: `X-Record: yes` → `record-call=yes` in the offer.

The relay runs with rtpengine's pcap recording options; a recorded call leaves one pcap (the
packets the relay received on both legs) and one metadata file carrying the `metadata=` value;
an unrecorded call leaves nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from .capture import read_udp
from .rig import SipRig
from .sipcall import CallSpec

pytestmark = pytest.mark.integration

RECORDING_KINDS = [
    "rtpengine",
    pytest.param(
        "rtpvault",
        marks=pytest.mark.xfail(strict=False, reason="recording: issue 6"),
    ),
]


def wait_for_files(folder: Path, count: int, must_contain: str = "") -> list[Path]:
    """Files in `folder` once there are `count` of them (each containing `must_contain`)."""
    deadline = time.monotonic() + 10  # a bound on a stuck relay, not a measured threshold
    while True:
        files = sorted(p for p in folder.glob("*") if p.is_file()) if folder.exists() else []
        if len(files) >= count and all(
            must_contain in p.read_text(errors="replace") for p in files
        ):
            return files
        if time.monotonic() > deadline:
            return files
        time.sleep(0.05)


@pytest.mark.parametrize("kind", RECORDING_KINDS)
def test_recorded_and_unrecorded_calls(
    sip_rig: Callable[..., SipRig], tmp_path: Path, kind: str
) -> None:
    spool = tmp_path / "recordings"
    spool.mkdir()
    extra = [f"--recording-dir={spool}", "--recording-method=pcap", "--delete-delay=0"]
    rig = sip_rig(kind, relay_options={"extra": extra})

    recorded = rig.call(
        CallSpec(media=True, media_packets=20, record=True, metadata="from:alice|to:bob")
    )
    assert recorded.ok, recorded.describe() + rig.logs()
    metadata = wait_for_files(spool / "metadata", 1, "call end time")
    assert len(metadata) == 1, (metadata, rig.logs())
    assert "from:alice|to:bob" in metadata[0].read_text()
    pcaps = sorted((spool / "pcaps").glob("*.pcap"))
    assert len(pcaps) == 1, pcaps
    call_id = recorded.call_ids[0]
    assert call_id.replace("@", "%40") in pcaps[0].name

    # the relay recorded what it received on each of its two ports
    by_port = Counter(p.dst[1] for p in read_udp(pcaps[0]))
    relay_ports = {
        recorded.offer_seen_by_callee().audio.port,
        recorded.answer_seen_by_caller().audio.port,
    }
    assert set(by_port) == relay_ports, by_port
    assert all(n == 20 for n in by_port.values()), by_port

    plain = rig.call(CallSpec(media=True, media_packets=20))
    assert plain.ok, plain.describe() + rig.logs()
    assert sorted((spool / "pcaps").glob("*.pcap")) == pcaps
    assert len(list((spool / "metadata").glob("*"))) == 1
