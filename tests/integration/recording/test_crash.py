"""kill -9 during recorded calls with media flowing; the restart finalises every recording."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from recorder import pcap, pcapng
from tests.support import daemons

from .conftest import rtp_streams, sidecars, tshark_read, wait_until
from .media import Call

pytestmark = pytest.mark.integration

CALLS = 20


@pytest.mark.parametrize("fmt", ["eth", "pcapng"])
def test_kill9_recovery(
    recording_relay: Callable[..., daemons.Daemon], tmp_path: Path, fmt: str
) -> None:
    spool = tmp_path / "spool"
    relay = recording_relay(fmt)
    calls = [Call(relay, f"crash-{i}@test") for i in range(CALLS)]
    stop = threading.Event()
    sent = [0]

    def pump() -> None:
        i = 0
        while not stop.is_set():
            for c in calls:
                c.media(1, start=i, interval=0)
            i += 1
            sent[0] = i
            stop.wait(0.02)

    try:
        for c in calls:
            c.offer(**{"record-call": "yes", "metadata": f"case:{c.call_id}"})
            c.answer()
        sender = threading.Thread(target=pump)
        sender.start()
        # media is flowing and at least one flush reached the disk
        assert wait_until(
            lambda: (
                sent[0] > 30
                and all(p.stat().st_size > 2000 for p in (spool / "pcaps").iterdir())
                and len(list((spool / "pcaps").iterdir())) == CALLS
            )
        )
        relay.proc.send_signal(signal.SIGKILL)
        relay.proc.wait(10)
        stop.set()
        sender.join()
    finally:
        stop.set()
        for c in calls:
            c.close()
    docs = sidecars(spool)
    assert len(docs) == CALLS and all(d["status"] == "recording" for d in docs)

    recording_relay(fmt, spool)  # restart on the same directory: recovery runs at start-up
    assert wait_until(lambda: all(d["status"] != "recording" for d in sidecars(spool)))
    docs = sidecars(spool)
    assert len(docs) == CALLS
    assert sorted(d["call_id"] for d in docs) == sorted(c.call_id for c in calls)
    assert list((spool / "tmp").iterdir()) == []
    assert len(list((spool / "metadata").iterdir())) == CALLS
    scan = pcapng.valid_prefix if fmt == "pcapng" else pcap.valid_prefix
    for doc in docs:
        path = Path(doc["path"])
        data = path.read_bytes()
        assert doc["status"] == "interrupted" and "trimmed" in doc["reason"]
        assert doc["size"] == len(data) and scan(data) == len(data)
        read = tshark_read(path)
        assert read.returncode == 0 and "cut short" not in read.stderr + read.stdout, read.stderr
        streams = rtp_streams(path)
        assert len(streams) == 2, streams
        by_ssrc = {s["ssrc"]: s["packets"] for s in doc["streams"] if s["kind"] == "rtp"}
        assert by_ssrc == {k[4]: v[1] for k, v in streams.items()}
        assert Path(doc["metadata_path"]).read_text().endswith(f"\n\n\ncase:{doc['call_id']}\n")
