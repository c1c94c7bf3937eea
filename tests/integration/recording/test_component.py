"""The recording component in-process: subscriber events, stats(), recovery emitted by start()."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from pathlib import Path
from typing import Any

import pytest

from recorder import pcap
from recorder.names import SUBDIRS, RecordingPaths
from relay.config import load_settings, parse_args
from rtpvault.daemon import Daemon
from tests.support.tools import free_port, free_port_range

from .media import sdp

pytestmark = pytest.mark.integration


def _settings(spool: Path) -> Any:
    pmin, pmax = free_port_range(20)
    settings, _ = load_settings(parse_args([
        "--config-file=none", "--table=-1", "--interface=lo/127.0.0.1",
        f"--port-min={pmin}", f"--port-max={pmax}", f"--recording-dir={spool}",
        f"--listen-ng=127.0.0.1:{free_port()}",
        "--recording-format=pcapng",
    ]))  # fmt: skip
    return settings


def _leftover(spool: Path) -> None:
    """What a killed daemon leaves: a `recording` sidecar, a pcap with half a record."""
    for sub in SUBDIRS:
        (spool / sub).mkdir(parents=True, exist_ok=True)
    paths = RecordingPaths(str(spool), "old-0123456789abcdef")
    rec = pcap.record(
        "eth",
        1.0,
        ("127.0.0.1", 1),
        ("127.0.0.1", 2),
        struct.pack("!BBHII", 0x80, 0, 1, 0, 5) + bytes(160),
    )
    Path(paths.pcap).write_bytes(pcap.global_header("eth") + rec + rec[:50])
    Path(paths.sidecar).write_text(json.dumps(
        {"version": 1, "id": "old", "call_id": "old", "status": "recording",
         "path": paths.pcap, "started": 0.5, "streams": [], "pauses": []}))  # fmt: skip


def test_events_and_stats(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    _leftover(spool)
    events: list[dict[str, Any]] = []
    seen_at_start: list[tuple[str, str]] = []

    async def scenario() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        daemon = Daemon(_settings(spool), loop)
        component: Any = daemon.components["recording"]
        component.subscribe(events.append)

        def on_disk(doc: dict[str, Any]) -> None:
            if doc["status"] == "recording":
                side = spool / "sidecars" / (Path(doc["path"]).stem + ".json")
                on = json.loads(side.read_text())
                seen_at_start.append((on["status"], on["id"]))

        component.subscribe(on_disk)
        await daemon.start()
        assert [(e["call_id"], e["status"]) for e in events] == [("old", "interrupted")]
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        a.bind(("127.0.0.1", 0))
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        b.bind(("127.0.0.1", 0))
        try:
            d = daemon.commands.dispatch
            base = {"call-id": "ev-1", "from-tag": "ft"}
            offer = d(
                {
                    **base,
                    "command": "offer",
                    "record-call": "yes",
                    "metadata": "k:v",
                    "sdp": sdp(a.getsockname()[1], 1),
                },
                ("127.0.0.1", 5060),
            )
            assert offer["recordings"][0].endswith(".pcapng")
            for _ in range(200):  # the start event follows the sidecar, from the worker
                if len(events) == 2:
                    break
                await asyncio.sleep(0.02)
            assert [e["status"] for e in events] == ["interrupted", "recording"]
            # an index row may only appear once recovery could find the recording on disk
            assert seen_at_start == [("recording", events[1]["id"])]
            answer = d(
                {**base, "command": "answer", "to-tag": "tt", "sdp": sdp(b.getsockname()[1], 2)},
                ("127.0.0.1", 5060),
            )
            port = int(answer["sdp"].split("m=audio ")[1].split()[0])
            for i in range(5):
                a.sendto(
                    struct.pack("!BBHII", 0x80, 0, i, 160 * i, 9) + bytes(160), ("127.0.0.1", port)
                )
                await asyncio.sleep(0.01)
            d({**base, "command": "delete", "delete-delay": 0}, ("127.0.0.1", 5060))
            for _ in range(200):  # the end event comes from the worker through the loop
                if len(events) == 3:
                    break
                await asyncio.sleep(0.02)
            stats = component.stats()
        finally:
            a.close()
            b.close()
            daemon.shutdown()
        return stats

    stats = asyncio.run(scenario())
    assert [e["status"] for e in events] == ["interrupted", "recording", "complete"]
    end = events[2]
    assert end["call_id"] == "ev-1" and end["metadata"] == "k:v" and len(end["sha256"]) == 64
    assert [s["packets"] for s in end["streams"]] == [5]
    assert stats["recordings"] == {"interrupted": 1, "complete": 1}
    assert stats["recording_errors"] == 0 and stats["recorded_bytes"] >= end["size"]
    assert stats["flush_lag_seconds"] == 0.0
    old = json.loads((spool / "sidecars" / "old-0123456789abcdef.json").read_text())
    assert old["status"] == "interrupted" and "trimmed 50 bytes" in old["reason"]
