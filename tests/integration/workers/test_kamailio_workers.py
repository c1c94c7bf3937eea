"""Calls on both workers through one Kamailio (issue 18, "A test sends calls whose call-ids land
on both workers through one Kamailio and checks media, recordings, index rows and totals").

sipp's call-ids are chosen (-cid_str) so that two calls belong to each worker. Kamailio (one SIP
child) talks to the relay from one socket, which the kernel gives to one worker: the other
worker's calls are handed to it for every command (offer, answer, delete), as the relay's log
shows. Checked: media both ways through the relay on every leg (tshark on lo), one recording
per call that tshark reads with every packet, the index row of each, and the ng `statistics`
totals of the whole daemon.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from recorder.names import escape_call_id
from rtpvault.shard import owner_of
from storage.db import open_index
from storage.models import Recording
from tests.integration.kamailio.rig import SipRig
from tests.integration.kamailio.sipcall import CallSpec
from tests.integration.kamailio.test_recording import wait_for_files
from tests.integration.recording.conftest import rtp_streams

from .workers import handed

pytestmark = pytest.mark.integration

CALLS = 4
PACKETS = 25


def call_id_format() -> str:
    """A sipp -cid_str whose calls 1..CALLS (0..CALLS-1 too) are two on each worker."""
    for n in range(1000):
        fmt = f"kw{n}-%u@192.0.2.1"
        for first in (0, 1):
            owners = [owner_of(fmt.replace("%u", str(first + i)), 2) for i in range(CALLS)]
            if owners.count(0) != CALLS // 2:
                break
        else:
            return fmt
    raise AssertionError("no call-id format")


def test_calls_on_both_workers_through_one_kamailio(
    sip_rig: Callable[..., SipRig], tmp_path: Path
) -> None:
    spool = tmp_path / "recordings"
    extra = [f"--recording-dir={spool}", "--recording-method=pcap", "--delete-delay=0"]
    # one Kamailio SIP worker: every ng request leaves from one socket, so one rtpvault worker
    # receives them all (with more, each Kamailio child's socket reaches either)
    rig = sip_rig("rtpvault", relay_options={"extra": extra, "num_threads": 2}, children=1)
    before = rig.commands()
    spec = CallSpec(calls=CALLS, media=True, media_packets=PACKETS, record=True,
                    call_id=call_id_format())  # fmt: skip
    result, legs = rig.call_with_capture(spec)
    assert result.ok, result.describe() + rig.logs()
    calls = result.call_ids
    assert len(calls) == CALLS and sorted(owner_of(c, 2) for c in calls) == [0, 0, 1, 1], calls

    # Kamailio's socket reached one worker; the other's calls were handed over, every command
    [receiver] = {h.receiver for h in handed(rig.relay)}
    foreign = {c for c in calls if owner_of(c, 2) != receiver}
    commands = {(h.call_id, h.command) for h in handed(rig.relay)}
    assert commands == {(c, cmd) for c in foreign for cmd in ("offer", "answer", "delete")}

    # media: every packet the callers played went through the relay, and the echo came back
    assert legs.caller_to_relay == CALLS * PACKETS, legs
    assert legs.relay_to_callee == legs.caller_to_relay, legs
    assert legs.callee_to_relay == legs.relay_to_callee, legs
    assert legs.relay_to_caller == legs.callee_to_relay, legs

    # one recording per call, whole: tshark reads both directions, every packet, none lost
    wait_for_files(spool / "metadata", CALLS, "call end time")
    pcaps = sorted((spool / "pcaps").glob("*.pcap"))
    assert len(pcaps) == CALLS, pcaps
    for call_id in calls:
        [pcap] = [p for p in pcaps if p.name.startswith(escape_call_id(call_id) + "-")]
        streams = rtp_streams(pcap)
        assert sorted(streams.values()) == [("g711A", PACKETS, 0)] * 2, (call_id, streams)

    index = open_index(f"sqlite:///{spool}/recordings.db", create=False)
    try:
        with index.session() as s:
            rows = s.scalars(select(Recording)).all()
            assert sorted(r.call_id for r in rows) == sorted(calls)
            assert {(r.status, r.packets) for r in rows} == {("complete", 2 * PACKETS)}
            assert {r.path for r in rows} == {str(p) for p in pcaps}
    finally:
        index.close()

    # the whole daemon's totals, whichever worker answers `statistics`
    assert rig.sent_since(before) == (CALLS, CALLS, CALLS)
    client = rig.relay.client()
    try:
        stats = client.call({"command": "statistics"})["statistics"]
    finally:
        client.close()
    total = stats["totalstatistics"]
    assert (int(total["managedsessions"]), int(total["regularterminatedsessions"])) == (
        CALLS, CALLS
    ), total
    assert int(stats["currentstatistics"]["sessionstotal"]) == 0
