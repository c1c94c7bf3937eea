"""A call restored from Redis goes on recording into part 2 of the same recording (issue 20).

Daemon A records a call and notes its recording in the call's journal (`set_extra`). What a
`kill -9` of A leaves on disk is A's spool as it stood mid-call (copied while A was recording:
pcap flushed up to a record boundary or cut inside one, sidecar `recording`, metadata in tmp/).
Daemon B starts on that spool with an index, gets the call back as the replay builds it
(`Call.restored` = the journal's extra, set before CallCreated reaches the recorder), and the
signalling and media go on: part 1 is recovered `interrupted`, part 2 is a new file linked to
part 1, tshark reads both, and the index holds both rows linked.

The journal here is a stand-in with the contract's `set_extra` (docs/design/redis-state.md):
the real one (relay/state/journal.py) and the kill -9 flow through Redis are other branches'.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import struct
from pathlib import Path
from typing import Any

import pytest

from relay.call import CallCreated, CallEvent
from relay.config import load_settings, parse_args
from rtpvault.daemon import Daemon
from storage.db import open_index, upgrade
from storage.models import Recording
from tests.support.tools import free_port, free_port_range

from .conftest import rtp_streams, tshark_read
from .media import sdp

pytestmark = pytest.mark.integration

CALL = "parts-1@pbx"
BASE = {"call-id": CALL, "from-tag": "ft"}


class Journal:
    """The part of relay.state.journal.Journal the recorder uses: the call's `extra`."""

    def __init__(self) -> None:
        self.extra: dict[str, dict[str, Any]] = {}

    def set_extra(self, call_id: str, key: str, value: Any) -> None:
        json.dumps(value)  # JSON-able, as the document needs
        self.extra.setdefault(call_id, {})[key] = value


def _settings(spool: Path, *extra: str) -> Any:
    pmin, pmax = free_port_range(20)
    settings, _ = load_settings(parse_args([
        "--config-file=none", "--table=-1", "--interface=lo/127.0.0.1",
        f"--port-min={pmin}", f"--port-max={pmax}", f"--recording-dir={spool}",
        f"--listen-ng=127.0.0.1:{free_port()}", *extra,
    ]))  # fmt: skip
    return settings


def _udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s


async def _until(cond: Any) -> None:
    for _ in range(500):  # the bound only stops a stuck worker from hanging the test
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not reached: {cond.__doc__ or cond}")


async def _talk(daemon: Daemon, a: socket.socket, b: socket.socket, seqs: range) -> None:
    """Offer (recorded) and answer as the proxy (or the replay) sends them; RTP from a."""
    d = daemon.commands.dispatch
    d({**BASE, "command": "offer", "record-call": "yes", "metadata": "from:alice|to:bob",
       "sdp": sdp(a.getsockname()[1], 1, "alice")}, ("127.0.0.1", 5060))  # fmt: skip
    answer = d({**BASE, "command": "answer", "to-tag": "tt", "sdp": sdp(b.getsockname()[1], 2)},
               ("127.0.0.1", 5060))  # fmt: skip
    port = int(answer["sdp"].split("m=audio ")[1].split()[0])
    for i in seqs:
        a.sendto(struct.pack("!BBHII", 0x80, 0, i, 160 * i, 0xA1) + b"\xff" * 160,
                 ("127.0.0.1", port))  # fmt: skip
        await asyncio.sleep(0.005)


def _sidecars(spool: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((spool / "sidecars").glob("*.json"))]


def test_restored_call_records_part_two_linked_to_part_one(tmp_path: Path) -> None:
    live, left = tmp_path / "live", tmp_path / "left"
    index_url = f"sqlite:///{tmp_path / 'index.db'}"
    upgrade(index_url)  # one index both daemons share (as nodes share PostgreSQL)
    journal_a, journal_b = Journal(), Journal()

    async def daemon_a() -> None:
        daemon = Daemon(_settings(live, f"--recording-db={index_url}"),
                        asyncio.get_running_loop())  # fmt: skip
        daemon.journal = journal_a  # type: ignore[attr-defined]
        await daemon.start()
        a, b = _udp(), _udp()
        try:
            await _talk(daemon, a, b, range(20))
            pcap = next((live / "pcaps").glob("*.pcap"))
            # flushed at least twice a second: wait for the 20 packets to be on disk
            # 20 records: 16-byte header, IPv4 + UDP (raw link, the pcap default), RTP
            await _until(lambda: pcap.stat().st_size >= 24 + 20 * (16 + 28 + 172))
            await _until(lambda: bool(_sidecars(live)) and bool(_sidecars(live)[0]["parties"]))
            shutil.copytree(live, left)  # what kill -9 would leave
        finally:
            a.close()
            b.close()
            daemon.shutdown()

    asyncio.run(daemon_a())
    (part1,) = _sidecars(left)
    assert part1["status"] == "recording" and part1["part"] == 1
    assert part1["series"] == part1["id"]
    state = journal_a.extra[CALL]["recording"]
    assert (state["id"], state["part"], state["part_id"], state["path"]) == (
        part1["id"], 1, part1["id"], part1["path"])  # fmt: skip
    assert {p["tag"] for p in state["parties"]} == {"ft", "tt"}
    # the copy's paths: the killed daemon's spool is `left`
    moved = {k: part1[k].replace(str(live), str(left)) for k in ("path", "sidecar_path")}
    part1.update(moved, metadata_path=part1["metadata_path"].replace(str(live), str(left)))
    (left / "sidecars" / Path(part1["sidecar_path"]).name).write_text(json.dumps(part1))
    restored = {"recording": {**state, "path": moved["path"]}}

    async def daemon_b() -> None:
        daemon = Daemon(_settings(left, f"--recording-db={index_url}"),
                        asyncio.get_running_loop())  # fmt: skip
        daemon.journal = journal_b  # type: ignore[attr-defined]

        def replay(event: CallEvent) -> None:  # what relay.state.replay sets before CallCreated
            if isinstance(event, CallCreated):
                event.call.restored = restored

        daemon.registry.listeners.insert(0, replay)
        await daemon.start()
        a, b = _udp(), _udp()
        try:
            await _talk(daemon, a, b, range(20, 50))
            daemon.commands.dispatch({**BASE, "command": "delete", "delete-delay": 0},
                                     ("127.0.0.1", 5060))  # fmt: skip
            await _until(lambda: sorted(s["status"] for s in _sidecars(left)) == [
                "complete", "interrupted"])  # fmt: skip
        finally:
            a.close()
            b.close()
            daemon.shutdown()

    asyncio.run(daemon_b())
    docs = {s["part"]: s for s in _sidecars(left)}
    one, two = docs[1], docs[2]
    assert one["id"] == part1["id"] and one["status"] == "interrupted"
    assert two["status"] == "complete" and two["series"] == one["id"] and two["id"] != one["id"]
    assert Path(two["path"]).name != Path(one["path"]).name
    assert Path(two["path"]).name.startswith("parts-1%40pbx-")
    # part 2's sidecar knows the parties from the journal (the replay has no ng replies)
    assert {p["tag"] for p in two["parties"]} >= {"ft", "tt"} and two["codecs"]
    # the restored call notes part 2 for a second restore
    assert journal_b.extra[CALL]["recording"]["part"] == 2
    assert journal_b.extra[CALL]["recording"]["id"] == one["id"]
    for doc, packets in ((one, 20), (two, 30)):
        assert tshark_read(Path(doc["path"])).returncode == 0
        streams = rtp_streams(Path(doc["path"]))
        assert [(k[4], v[1]) for k, v in streams.items()] == [(0xA1, packets)], streams
    ix = open_index(index_url, create=False)
    try:
        with ix.session() as s:
            rows = {r.part: (r.id, r.series_id, r.status, r.call_id) for r in s.query(Recording)}
    finally:
        ix.close()
    assert rows == {1: (one["id"], one["id"], "interrupted", CALL),
                    2: (two["id"], one["id"], "complete", CALL)}  # fmt: skip
