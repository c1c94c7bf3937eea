"""HEP of a transcoded call (issue 19, item 4): each leg's QoS report describes the stream its
party sent, in that leg's codec (A: PCMU, B: PCMA), and the RTCP exported is what the party
sent, before it was rewritten for the other leg (docs/spec/transcoding.md §2.1); received by an
independent HEP capture server."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from tests.integration.media.test_transcoding import A_SSRC, B_SSRC, PACKETS, _exchange
from tests.support import daemons
from tests.support.hep_receiver import HepReceiver

pytestmark = pytest.mark.integration


def test_qos_per_leg_and_rtcp_as_received(receiver: HepReceiver, tmp_path: Path) -> None:
    d = daemons.start("rtpvault", tmp_path, interface="lo/127.0.0.1", extra=[
        f"--homer=127.0.0.1:{receiver.port}", "--homer-id=2042", "--homer-qos-interval=60",
        "--delete-delay=0"])  # fmt: skip
    sr = struct.pack("!BBHI", 0x80, 200, 6, A_SSRC) + struct.pack("!IIIII", 1, 2, 3, 4, 5)
    try:
        to_b, to_a = _exchange(d, "hep-tc@192.0.2.9", "PCMA", a_rtcp=sr)
        d.client().call({"command": "delete", "call-id": "hep-tc@192.0.2.9"})
        assert receiver.wait(lambda rs: sum(r.proto_type == 34 and b'"HANGUP"' in r.payload
                                            for r in rs) >= 2)  # fmt: skip
        assert receiver.wait(lambda rs: any(r.proto_type == 5 for r in rs))
    finally:
        d.stop()
    hangup = {h["SSRC"]: h for h in (json.loads(r.payload) for r in receiver.records
                                     if r.proto_type == 34 and b'"HANGUP"' in r.payload)}
    assert set(hangup) == {A_SSRC, B_SSRC}  # the legs' own streams, not the chains' output
    assert (hangup[A_SSRC]["CODEC_PT"], hangup[A_SSRC]["TOTAL_PK"]) == (0, PACKETS)
    assert (hangup[B_SSRC]["CODEC_PT"], hangup[B_SSRC]["TOTAL_PK"]) == (8, PACKETS)
    assert hangup[A_SSRC]["PACKET_LOSS"] == hangup[B_SSRC]["PACKET_LOSS"] == 0
    out_ssrcs = {struct.unpack_from("!I", p, 8)[0] for p in to_b + to_a}
    assert not out_ssrcs & set(hangup)
    rtcp = [r.payload for r in receiver.records if r.proto_type == 5]
    (a_sr,) = [p for p in rtcp if f'"ssrc":{A_SSRC},"type":200'.encode() in p]
    assert b'"packets":4}' in a_sr  # A's own counts, not the transcoded output's
