"""`kill -9` during recorded *transcoded* calls (issues 18 and 19): PCMU callers, PCMA-only callees
(`codec: {mask: [all], transcode: [PCMA]}`), two calls per worker, tones both ways every 20 ms.

* One worker killed: the other worker's transcoded calls keep flowing (every packet sent, both
  ways, comes out transcoded: PT 8 to the callee, PT 0 to the caller, at the tone's pitch) and
  finish `complete`; the killed worker's recordings are recovered `interrupted`; its new
  incarnation transcodes a new call.
* The whole daemon killed, then started again on the same spool: every recording `interrupted`.

Either way a recovered file is read by tshark without an error, holds each leg as received (PCMU
with the caller's SSRC, PCMA with the callee's: docs/spec/recording.md §4.2), and keeps every
packet that was on disk when the kill came (ARCHITECTURE rule 4: recovery only trims a partial
trailing record).
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import struct
from collections import Counter
from pathlib import Path

import dpkt
import pytest

from recorder.g711 import ALAW_TO_LINEAR, ULAW_TO_LINEAR, encode_alaw
from relay.transcode import packet
from tests.integration.recording.conftest import sidecars
from tests.integration.recording.media import Call
from tests.integration.storage.test_daemon_kill9 import tshark_packets
from tests.support import daemons
from tests.support.tone import dominant_hz, ulaw_tone
from tests.support.wait import wait_for

from .both_ways import BothWays, Key
from .workers import assert_forgotten, indexed_status, owned_call_ids, wait_workers

pytestmark = pytest.mark.integration

KILLED = 1
CALLER_SSRC, CALLEE_SSRC = 0xAAAA0001, 0xBBBB0002
A_HZ, B_HZ = 440, 660
ON_DISK = 50
"""Packets of each leg a killed call's file holds before the kill comes."""


def alaw_tone(hz: float, first: int) -> bytes:
    return bytes(
        encode_alaw(round(8000 * math.sin(2 * math.pi * hz * (first + n) / 8000)))
        for n in range(160)
    )


def one_codec_sdp(port: int, user: str, pt: int, codec: str) -> str:
    return (
        f"v=0\r\no={user} 222 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {codec}/8000\r\na=sendrecv\r\n"
    )


class Media(BothWays):
    """PCMU tone from every caller, PCMA tone from every callee, every 20 ms; keeps what the
    relay sent each party: (PT, payload) per (call-id, direction)."""

    def __init__(self, calls: list[Call]) -> None:
        self.sent: Counter[Key] = Counter()
        self.got: dict[Key, list[tuple[int, bytes]]] = {}
        super().__init__(calls)

    def track(self, key: Key) -> None:
        self.got[key] = []

    def _send(self) -> None:
        n = 0
        while not self.stop.is_set():
            a = ulaw_tone(A_HZ, 160 * n)
            b = alaw_tone(B_HZ, 160 * n)
            for c in self.calls:
                for leg, direction, ssrc, pt, payload in (
                    (c.caller, "to-callee", CALLER_SSRC, 0, a),
                    (c.callee, "to-caller", CALLEE_SSRC, 8, b),
                ):
                    data = packet.build(False, pt, n, 160 * n, ssrc, payload)
                    try:
                        leg.rtp.sendto(data, ("127.0.0.1", leg.relay_port))
                    except OSError:
                        continue  # a killed worker's ports may refuse
                    self.sent[(c.call_id, direction)] += 1
            n += 1
            self.stop.wait(0.02)

    def heard(self, key: Key, data: bytes) -> None:
        self.got[key].append((data[1] & 0x7F, data[12:]))


def recorded(data: bytes) -> Counter[tuple[int, int]]:
    """(SSRC, PT) → RTP packets in the whole records of pcap bytes (a partial last one is
    left out: the writer may be mid-flush)."""
    out: Counter[tuple[int, int]] = Counter()
    try:
        for _ts, buf in dpkt.pcap.Reader(io.BytesIO(data)):
            ip = dpkt.ip.IP(buf) if buf[0] >> 4 == 4 else dpkt.ethernet.Ethernet(buf).data
            rtp = bytes(ip.data.data)
            if len(rtp) >= 12 and not 192 <= rtp[1] <= 223:
                out[(struct.unpack_from("!I", rtp, 8)[0], rtp[1] & 0x7F)] += 1
    except (dpkt.NeedData, dpkt.UnpackError, ValueError):
        pass
    return out


def _pcap_of(spool: Path, call_id: str) -> Path | None:
    for doc in sidecars(spool):
        if doc["call_id"] == call_id:
            return Path(doc["path"])
    return None


def _start(tmp_path: Path, name: str) -> daemons.Daemon:
    spool = tmp_path / "spool"
    extra = [f"--recording-dir={spool}", "--recording-method=pcap", "--delete-delay=0"]
    return daemons.start("rtpvault", tmp_path / name, num_threads=2, ports=100, extra=extra)


def _setup(d: daemons.Daemon, prefix: str, owners: tuple[int, ...] = (0, 1),
           count: int = 2) -> dict[int, list[Call]]:  # fmt: skip
    """`count` recorded PCMU→PCMA calls owned by each worker of `owners`."""
    calls: dict[int, list[Call]] = {0: [], 1: []}
    for owner in owners:
        for call_id in owned_call_ids(owner, count, f"{prefix}{owner}"):
            c = Call(d, call_id)
            calls[owner].append(c)
            offer = c.offer(**{"record-call": "yes",
                               "sdp": one_codec_sdp(c.caller.port, "alice", 0, "PCMU"),
                               "codec": {"mask": ["all"], "transcode": ["PCMA"]}})  # fmt: skip
            assert "m=audio" in offer["sdp"] and " RTP/AVP 8" in offer["sdp"], offer["sdp"]
            answer = c.answer(sdp=one_codec_sdp(c.callee.port, "bob", 8, "PCMA"))
            assert " RTP/AVP 0" in answer["sdp"], answer["sdp"]
    return calls


def _snapshot(spool: Path, victims: list[Call]) -> dict[str, bytes]:
    """Each victim's file once it holds ON_DISK packets of each leg (as received)."""
    snaps: dict[str, bytes] = {}

    def on_disk() -> bool:
        for c in victims:
            path = _pcap_of(spool, c.call_id)
            data = path.read_bytes() if path is not None and path.exists() else b""
            got = recorded(data)
            if min(got[(CALLER_SSRC, 0)], got[(CALLEE_SSRC, 8)]) < ON_DISK:
                return False
            snaps[c.call_id] = data
        return True

    assert wait_for(on_disk, 30), {k: recorded(v) for k, v in snaps.items()}
    return snaps


def _check_recovered(spool: Path, snaps: dict[str, bytes]) -> None:
    status = {doc["call_id"]: doc for doc in sidecars(spool)}
    for call_id, before in snaps.items():
        doc = status[call_id]
        assert doc["status"] == "interrupted", json.dumps(doc)[:500]
        path = Path(doc["path"])
        tshark_packets(path)  # tshark reads it without an error
        after = recorded(path.read_bytes())
        assert set(after) == {(CALLER_SSRC, 0), (CALLEE_SSRC, 8)}, after  # legs as received
        kept = recorded(before)
        assert all(after[k] >= kept[k] for k in kept), (call_id, kept, after)


def test_kill9_of_one_worker_during_recorded_transcoded_calls(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    d = _start(tmp_path, "run")
    calls: dict[int, list[Call]] = {0: [], 1: []}
    media: Media | None = None
    try:
        calls = _setup(d, "k9tc")
        media = Media(calls[0] + calls[1])
        snaps = _snapshot(spool, calls[KILLED])
        before = wait_workers(d, 2)
        os.kill(before[KILLED], signal.SIGKILL)
        after = wait_workers(d, 2, not_pids=frozenset({before[KILLED]}))
        assert after[1 - KILLED] == before[1 - KILLED]
        survivors = calls[1 - KILLED]
        # media on the surviving calls after the restart
        counts = {c.call_id: len(media.got[(c.call_id, "to-callee")]) for c in survivors}
        assert wait_for(
            lambda: all(len(media.got[(c.call_id, "to-callee")]) >= counts[c.call_id] + 100
                        for c in survivors), 30)  # fmt: skip
        media.stop_sending()
        keys = [(c.call_id, way) for c in survivors for way in ("to-callee", "to-caller")]
        wait_for(lambda: all(len(media.got[k]) >= media.sent[k] for k in keys), 10)
        for k in keys:
            got = media.got[k]
            assert len(got) == media.sent[k], (k, len(got), media.sent[k], d.log()[-3000:])
            pt, table, hz = (8, ALAW_TO_LINEAR, A_HZ) if k[1] == "to-callee" else (
                0, ULAW_TO_LINEAR, B_HZ)  # fmt: skip
            assert Counter(p for p, _ in got) == {pt: len(got)}, k
            tail = [table[b] for _, payload in got[-30:] for b in payload]
            assert dominant_hz(tail) == hz, k
        assert_forgotten(calls[KILLED])
        for c in survivors:
            c.delete()
        # the new incarnation transcodes a new call of its own
        [fresh] = _setup(d, "k9new", owners=(KILLED,), count=1)[KILLED]
        calls[KILLED].append(fresh)
        fresh_media = Media([fresh])
        key = (fresh.call_id, "to-callee"), (fresh.call_id, "to-caller")
        assert wait_for(lambda: min(len(fresh_media.got[k]) for k in key) >= 30, 30)
        fresh_media.close()
        assert {p for p, _ in fresh_media.got[key[0]]} == {8}
        assert {p for p, _ in fresh_media.got[key[1]]} == {0}
        fresh.delete()
    finally:
        if media is not None:
            media.close()
        for c in calls[0] + calls[1]:
            c.close()

    def settled() -> bool:
        docs = sidecars(spool)
        return len(docs) == 5 and {doc["status"] for doc in docs} <= {"complete", "interrupted"}

    assert wait_for(settled, 30), [(s["call_id"], s["status"]) for s in sidecars(spool)]
    status = {doc["call_id"]: doc for doc in sidecars(spool)}
    assert status[fresh.call_id]["status"] == "complete"
    for c in calls[1 - KILLED]:
        doc = status[c.call_id]
        assert doc["status"] == "complete", json.dumps(doc)[:500]
        path = Path(doc["path"])
        tshark_packets(path)
        sent = media.sent[(c.call_id, "to-callee")], media.sent[(c.call_id, "to-caller")]
        assert recorded(path.read_bytes()) == {(CALLER_SSRC, 0): sent[0], (CALLEE_SSRC, 8): sent[1]}
    _check_recovered(spool, snaps)
    assert indexed_status(spool) == {cid: doc["status"] for cid, doc in status.items()}
    assert "Traceback" not in d.log(), d.log()[-5000:]
    assert d.stop() == 0


def test_kill9_of_the_daemon_during_recorded_transcoded_calls(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    d = _start(tmp_path, "run1")
    calls: dict[int, list[Call]] = {0: [], 1: []}
    media: Media | None = None
    try:
        calls = _setup(d, "k9dtc")
        media = Media(calls[0] + calls[1])
        workers = wait_workers(d, 2)
        snaps = _snapshot(spool, calls[0] + calls[1])
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(10)
        # the workers follow their supervisor (they would hold the ports otherwise)
        assert wait_for(lambda: not any(Path(f"/proc/{p}").exists() for p in workers.values()),
                        10), workers  # fmt: skip
    finally:
        if media is not None:
            media.close()
        for c in calls[0] + calls[1]:
            c.close()
    assert {doc["status"] for doc in sidecars(spool)} == {"recording"}
    d2 = _start(tmp_path, "run2")
    try:
        assert wait_for(lambda: {doc["status"] for doc in sidecars(spool)} == {"interrupted"}, 30)
        _check_recovered(spool, snaps)
    finally:
        assert d2.stop() == 0
