"""rtpvault records calls driven over ng: files, metadata, sidecar, tshark's view."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from storage.db import open_index
from storage.models import Recording
from tests.support import daemons
from tests.support.tools import free_port, require
from tests.support.wait import wait_for

from .conftest import rtp_streams, sidecars, tshark_read, wait_until
from .media import Call

pytestmark = pytest.mark.integration


def finished(spool: Path, n: int) -> bool:
    docs = sidecars(spool)
    return len(docs) == n and all(d["status"] != "recording" for d in docs)


@pytest.mark.parametrize("fmt", ["eth", "raw", "pcapng"])
def test_recorded_call(
    recording_relay: Callable[..., daemons.Daemon], tmp_path: Path, fmt: str
) -> None:
    relay = recording_relay(fmt)
    spool = tmp_path / "spool"
    call = Call(relay, "rec-1@host/ ü ..")
    try:
        offer = call.offer(
            **{"record-call": "yes", "metadata": "from:alice|to:bob", "label": "caller"}
        )
        ext = "pcapng" if fmt == "pcapng" else "pcap"
        assert wait_until(lambda: any((spool / "pcaps").iterdir()))  # created by the worker
        pcaps = list((spool / "pcaps").glob(f"*.{ext}"))
        assert len(pcaps) == 1
        assert offer["recordings"] == [str(pcaps[0])]
        assert list(offer) == ["recordings", "sdp", "result"]
        assert pcaps[0].name.startswith("rec-1%40host%2F%20%C3%BC%20..-")
        call.answer(label="callee")
        call.media(10, rtcp=True)
        # recording does not change what the relay forwards
        assert call.received(call.caller, 10) == 10 and call.received(call.callee, 10) == 10
        call.delete()
        assert wait_until(lambda: finished(spool, 1))
    finally:
        call.close()
    assert list((spool / "tmp").iterdir()) == []
    meta = list((spool / "metadata").glob("rtpengine-meta-*.txt"))
    assert [m.name for m in meta] == [f"rtpengine-meta-{pcaps[0].stem}.txt"]
    text = meta[0].read_text()
    assert text.startswith(f"{pcaps[0]}\n\n\nLabel: caller\n")
    assert "SDP mode: answer" in text and text.endswith("\n\n\nfrom:alice|to:bob\n")

    read = tshark_read(pcaps[0])
    assert read.returncode == 0 and "cut short" not in read.stderr
    streams = rtp_streams(pcaps[0])
    assert sorted((k[4], v) for k, v in streams.items()) == [
        (0xAAAA0001, ("g711U", 10, 0)),
        (0xBBBB0002, ("g711U", 10, 0)),
    ]
    # ingress only: each packet once, to the relay port the sender was given
    for src, sport, _dst, dport, ssrc in streams:
        leg = call.caller if ssrc == 0xAAAA0001 else call.callee
        assert (src, sport, dport) == ("127.0.0.1", leg.port, leg.relay_port)

    doc = sidecars(spool)[0]
    data = pcaps[0].read_bytes()
    assert doc["status"] == "complete" and doc["reason"] is None
    assert doc["sha256"] == hashlib.sha256(data).hexdigest() and doc["size"] == len(data)
    assert doc["call_id"] == "rec-1@host/ ü .."
    assert doc["tags"] == ["ft", "tt"] and doc["caller"] == "alice" and doc["callee"] == "bob"
    assert doc["meta"] == {"from": "alice", "to": "bob"}
    assert doc["format"] == ("pcapng" if fmt == "pcapng" else "pcap")
    assert doc["link"] == ("raw" if fmt == "raw" else "eth")
    assert doc["metadata_path"] == str(meta[0]) and doc["ended"] >= doc["started"]
    assert doc["sidecar_path"] == str(spool / "sidecars" / f"{pcaps[0].stem}.json")
    assert [s["direction"] for s in doc["sdp"]] == ["offer", "answer"]
    assert [p["role"] for p in doc["parties"]] == ["offerer", "answerer"]
    assert doc["codecs"] == ["PCMU"]
    rtp = {s["ssrc"]: s for s in doc["streams"] if s["kind"] == "rtp"}
    for (_, sport, _, dport, ssrc), (_, packets, lost) in streams.items():
        s = rtp[ssrc]
        assert (s["packets"], s["lost"], s["codec"], s["payload_types"]) == (
            packets,
            lost,
            "PCMU",
            [0],
        )
        assert s["src"] == f"127.0.0.1:{sport}" and s["dst"] == f"127.0.0.1:{dport}"
        assert s["party"] == ("ft" if ssrc == 0xAAAA0001 else "tt") and s["mos"] > 4
    assert sorted(s["packets"] for s in doc["streams"] if s["kind"] == "rtcp") == [1, 1]
    count = subprocess.run(
        [require("capinfos"), "-c", "-M", str(pcaps[0])], capture_output=True, text=True
    ).stdout
    # 22 media packets (+ 2 SDP and 1 metadata note in pcapng)
    assert f"Number of packets:   {25 if fmt == 'pcapng' else 22}" in count, count


def test_start_pause_stop(recording_relay: Callable[..., daemons.Daemon], tmp_path: Path) -> None:
    relay = recording_relay("pcapng")
    spool = tmp_path / "spool"
    call = Call(relay, "cmd-1")
    try:
        call.offer()
        call.answer()
        call.media(3)  # not recorded
        call.relayed(3)
        assert call.command("start recording", metadata="m:1") == {"result": "ok"}
        call.media(4, start=3)
        call.relayed(4)
        assert call.command("pause recording") == {"result": "ok"}
        call.media(5, start=7)  # paused: not written
        call.relayed(5)
        assert call.command("start recording") == {"result": "ok"}  # resume, same file
        call.media(6, start=12)
        call.relayed(6)
        assert call.command("start recording") == {"result": "ok"}  # still the same file
        assert len(sidecars(spool)) == 1
        assert call.command("stop recording") == {"result": "ok"}
        assert call.command("stop recording") == {"result": "ok"}  # no-op
        assert wait_until(lambda: finished(spool, 1))
        assert len(list((spool / "metadata").iterdir())) == 1  # finished while the call runs
        call.media(2, start=18)
        assert call.offer(**{"record-call": "yes"})["recordings"]  # a new pair
        call.delete()
        assert wait_until(lambda: finished(spool, 2))
        assert call.command("stop recording")["error-reason"] == "Unknown call-id"
    finally:
        call.close()
    docs = sorted(sidecars(spool), key=lambda d: d["started"])
    first = Path(docs[0]["path"])
    streams = rtp_streams(first)
    assert sorted(v[1] for v in streams.values()) == [10, 10]  # 4 before the pause + 6 after
    assert sorted(s["packets"] for s in docs[0]["streams"]) == [10, 10]
    assert len(docs[0]["pauses"]) == 1 and docs[0]["pauses"][0]["end"] is not None
    comments = subprocess.run(
        [require("tshark"), "-r", str(first), "-Y", "frame.comment", "-T", "fields",
         "-e", "frame.comment"], capture_output=True, text=True).stdout.split("\n")  # fmt: skip
    assert comments[:3] == [
        "rtpvault: recording paused",
        "rtpvault: recording resumed",
        "rtpvault: metadata: m:1",
    ]
    assert all(d["status"] == "complete" for d in docs) and docs[0]["metadata"] == "m:1"
    assert (
        "Timestamp terminated ms(first monologue): 0.000"
        in Path(docs[0]["metadata_path"]).read_text()
    )


def test_unwritable_spool_keeps_the_call(
    recording_relay: Callable[..., daemons.Daemon], tmp_path: Path
) -> None:
    relay = recording_relay("eth")
    spool = tmp_path / "spool"
    (spool / "pcaps").rmdir()
    (spool / "pcaps").write_text("not a directory")
    call = Call(relay, "broken-1")
    try:
        offer = call.offer(**{"record-call": "yes"})
        # no file to name; the reply says why (ng `warning`, which Kamailio logs) and the
        # media is relayed all the same
        assert list(offer) == ["sdp", "warning", "result"]
        assert offer["warning"].startswith(f"Recording not created: cannot create {spool}/pcaps/")
        assert offer["warning"].endswith(": Not a directory (ENOTDIR)")
        assert call.answer()["warning"] == offer["warning"]
        call.media(10)
        assert call.received(call.caller, 10) == 10 and call.received(call.callee, 10) == 10
        call.delete()
        assert wait_until(lambda: finished(spool, 1))
        assert relay.client().call({"command": "ping"})["result"] == "pong"
    finally:
        call.close()
    doc = sidecars(spool)[0]
    assert doc["status"] == "failed" and offer["warning"].endswith(doc["reason"])
    assert relay.log().count("recording not created: cannot create") == 1
    index = open_index(f"sqlite:///{spool}/recordings.db", create=False)
    try:
        def row() -> tuple[str, str | None] | None:
            with index.session() as s:
                rec = s.scalars(select(Recording)).one_or_none()
                return (rec.status, rec.reason) if rec and rec.status != "recording" else None

        assert wait_for(row, 10, retry_on=(Exception,)) == ("failed", doc["reason"])
    finally:
        index.close()


def test_record_call_values(recording_relay: Callable[..., daemons.Daemon], tmp_path: Path) -> None:
    relay = recording_relay("eth")
    spool = tmp_path / "spool"
    call = Call(relay, "vals-1")
    try:
        assert "recordings" not in call.offer(**{"record call": "YES"})  # case-sensitive
        assert "recordings" not in call.answer(**{"record-call": "maybe"})
        assert call.offer(**{"record call": "on"})["recordings"]  # rtpengine's spelling
        call.answer()
        call.media(5)
        # the relay handled all 10 (forwarded both ways) before recording is switched off
        assert call.received(call.caller, 5) == 5 and call.received(call.callee, 5) == 5
        assert "recordings" not in call.offer(**{"record-call": "off"})
        assert wait_until(lambda: finished(spool, 1))  # finished at once, the call goes on
        assert call.offer(flags=["record-call"])["recordings"]
        call.delete()
        assert wait_until(lambda: finished(spool, 2))
    finally:
        call.close()
    docs = sorted(sidecars(spool), key=lambda d: d["started"])
    assert [d["status"] for d in docs] == ["complete", "complete"]
    assert sorted(s["packets"] for s in docs[0]["streams"]) == [5, 5]
    assert docs[1]["streams"] == []


def test_sigterm_finishes_recordings(
    recording_relay: Callable[..., daemons.Daemon], tmp_path: Path
) -> None:
    """rtpengine leaves the metadata in tmp/ on SIGTERM (docs/spec/recording.md §6.2); we finish."""
    relay = recording_relay("eth")
    spool = tmp_path / "spool"
    call = Call(relay, "term-1")
    try:
        call.offer(**{"record-call": "yes", "metadata": "m:term"})
        call.answer()
        call.media(8)
        call.relayed(8)
        assert relay.stop() == 0
    finally:
        call.close()
    [doc] = sidecars(spool)
    assert doc["status"] == "complete"
    assert list((spool / "tmp").iterdir()) == []
    assert Path(doc["metadata_path"]).read_text().endswith("\n\n\nm:term\n")
    assert sorted(s["packets"] for s in doc["streams"]) == [8, 8]
    assert sorted(v[1] for v in rtp_streams(Path(doc["path"])).values()) == [8, 8]


@pytest.mark.parametrize("problem", ["missing parent", "a file"])
def test_bad_recording_dir_stops_startup(tmp_path: Path, problem: str) -> None:
    target = tmp_path / "nope" / "spool"
    if problem == "a file":
        target = tmp_path / "file"
        target.write_text("x")
    proc = subprocess.run(
        [*daemons.rtpvault_command(), "run", "--config-file=none", "--foreground",
         "--log-stderr", "--table=-1", "--interface=lo/127.0.0.1",
         f"--listen-ng=127.0.0.1:{free_port()}", f"--recording-dir={target}"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 255  # as rtpengine (docs/spec/recording.md §2.1)
    expected = "not a directory" if problem == "a file" else "Failed to create spool directory"
    assert expected in proc.stderr
