"""Recording chosen per call in Kamailio: `X-Record: yes` → `record-call=yes` in the offer.

The relay runs with rtpengine's pcap recording options; a recorded call leaves one pcap (the
packets the relay received on both legs) and one metadata file carrying the `metadata=` value;
an unrecorded call leaves nothing.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from recorder.names import escape_call_id
from tests.integration.recording.conftest import rtp_streams

from .capture import read_udp
from .rig import ONE_WORKER, SipRig
from .sipcall import CallSpec

pytestmark = pytest.mark.integration

RECORDING_KINDS = ["rtpengine", "rtpvault", ONE_WORKER]


def wait_for_files(folder: Path, count: int, must_contain: str = "") -> list[Path]:
    """Files in `folder` once there are `count` of them (each containing `must_contain`)."""
    deadline = time.monotonic() + 10  # a bound on a stuck relay, not a measured threshold
    while True:
        # dot files are the recorder's locks (recorder.filelock), not recordings
        found = folder.glob("*") if folder.exists() else []
        files = sorted(p for p in found if p.is_file() and not p.name.startswith("."))
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

    # tshark sees both directions with the packets sipp sent, as PCMA (sipp's g711a.pcap)
    streams = rtp_streams(pcaps[0])
    assert sorted((k[3], v) for k, v in streams.items()) == sorted(
        (port, ("g711A", 20, 0)) for port in relay_ports
    ), streams
    if kind.startswith("rtpvault"):
        [sidecar] = [json.loads(p.read_text()) for p in (spool / "sidecars").glob("*.json")]
        assert sidecar["status"] == "complete" and sidecar["call_id"] == call_id
        assert (sidecar["caller"], sidecar["callee"]) == ("alice", "bob")
        by_flow = {(s["src"], s["dst"]): s for s in sidecar["streams"] if s["kind"] == "rtp"}
        assert len(by_flow) == len(streams) == 2
        for (src, sport, dst, dport, ssrc), (_, packets, lost) in streams.items():
            s = by_flow[(f"{src}:{sport}", f"{dst}:{dport}")]
            assert (s["ssrc"], s["packets"], s["lost"], s["codec"]) == (ssrc, packets, lost, "PCMA")

    plain = rig.call(CallSpec(media=True, media_packets=20))
    assert plain.ok, plain.describe() + rig.logs()
    assert sorted((spool / "pcaps").glob("*.pcap")) == pcaps
    assert len(list((spool / "metadata").glob("*"))) == 1

    # several recorded calls at once: exactly one recording each
    more = rig.call(CallSpec(calls=3, media=True, media_packets=20, record=True))
    assert more.ok, more.describe() + rig.logs()
    wait_for_files(spool / "metadata", 4, "call end time")
    names = sorted(p.name for p in (spool / "pcaps").glob("*.pcap"))
    assert len(names) == 4, names
    for cid in more.call_ids:
        assert sum(n.startswith(escape_call_id(cid) + "-") for n in names) == 1, (cid, names)


def test_a_recording_that_cannot_be_created_does_not_stop_the_call(
    sip_rig: Callable[..., SipRig], tmp_path: Path
) -> None:
    """Issue 15 item 8: the offer's reply carries `warning` (and no `recordings`) when the
    capture cannot be created; Kamailio's rtpengine module reads `result` and `sdp` only, so the
    call is set up and relayed as usual, and the log, sidecar and index row say why."""
    from sqlalchemy import select

    from storage.db import open_index
    from storage.models import Recording

    spool = tmp_path / "recordings"
    extra = [f"--recording-dir={spool}", "--recording-method=pcap", "--delete-delay=0"]
    rig = sip_rig("rtpvault", relay_options={"extra": extra})
    (spool / "pcaps").rmdir()
    (spool / "pcaps").write_text("not a directory")
    result = rig.call(CallSpec(media=True, media_packets=20, record=True))
    assert result.ok, result.describe() + rig.logs()
    sidecars = wait_for_files(spool / "sidecars", 1, '"status": "failed"')
    [doc] = [json.loads(p.read_text()) for p in sidecars]
    assert doc["call_id"] == result.call_ids[0]
    assert doc["reason"].endswith("Not a directory (ENOTDIR)")
    assert "recording not created: cannot create" in rig.logs()
    index = open_index(f"sqlite:///{spool}/recordings.db", create=False)
    try:
        with index.session() as s:
            row = s.scalars(select(Recording)).one()
            assert (row.status, row.reason) == ("failed", doc["reason"])
    finally:
        index.close()
