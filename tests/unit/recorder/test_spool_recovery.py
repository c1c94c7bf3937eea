"""recorder.spool (worker-thread writes, disk full) and recorder.recovery (after a crash)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import dpkt
import pytest

from recorder import pcap
from recorder.names import SUBDIRS, RecordingPaths
from recorder.recovery import recover

REPO = Path(__file__).resolve().parents[3]


def _spool(root: Path) -> None:
    for sub in SUBDIRS:
        (root / sub).mkdir(parents=True)


def _rtp(i: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, i, 160 * i, 0xAAAA0001) + b"\xff" * 160


def test_recover_trims_partial_record(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    _spool(root)
    paths = RecordingPaths(str(root), "c%401-0123456789abcdef")
    data = pcap.global_header("eth") + b"".join(
        pcap.record("eth", 1000 + i * 0.02, ("127.0.0.1", 4000), ("127.0.0.1", 30000), _rtp(i))
        for i in range(10)
    )
    Path(paths.pcap).write_bytes(data + data[24:124])  # plus the first 100 bytes of a record
    Path(paths.meta_tmp).write_text(f"{paths.pcap}\n\n\nSDP mode: offer\n")
    doc = {"version": 1, "id": "x", "call_id": "c@1", "status": "recording", "path": paths.pcap,
           "metadata": "case:1", "started": 999.0, "streams": [], "pauses": [
               {"start": 1000.05, "end": None}]}  # fmt: skip
    Path(paths.sidecar).write_text(json.dumps(doc))
    # an rtpengine leftover (no sidecar), as rtpengine 10.5 leaves it after kill -9
    other = RecordingPaths(str(root), "other%20id-fedcba9876543210")
    Path(other.pcap).write_bytes(data[:1000])
    Path(other.meta_tmp).write_text(f"{other.pcap}\n\n")

    done = recover(str(root), "node-1", "eth")

    assert sorted(d["call_id"] for d in done) == ["c@1", "other id"]
    assert Path(paths.pcap).read_bytes() == data
    with open(paths.pcap, "rb") as f:
        assert len(list(dpkt.pcap.Reader(f))) == 10
    side = json.loads(Path(paths.sidecar).read_text())
    assert side["status"] == "interrupted" and "trimmed 100 bytes" in side["reason"]
    assert side["size"] == len(data) and len(side["sha256"]) == 64
    assert side["streams"][0]["packets"] == 10 and side["streams"][0]["lost"] == 0
    assert side["ended"] == side["streams"][0]["last"] and side["pauses"][0]["end"] == side["ended"]
    assert not os.path.exists(paths.meta_tmp)
    text = Path(paths.meta_final).read_text()
    assert "Timestamp terminated ms(first monologue): 0.000" in text and text.endswith(
        "\n\n\ncase:1\n"
    )
    leftover = json.loads(Path(other.sidecar).read_text())
    assert leftover["status"] == "interrupted" and leftover["node"] == "node-1"
    assert pcap.valid_prefix(Path(other.pcap).read_bytes()) == leftover["size"]
    assert recover(str(root), "node-1", "eth") == []  # nothing left to do


def test_recovery_keeps_the_delete_as_the_end(tmp_path: Path) -> None:
    """A crash during delete-delay: the sidecar already has the call's end (the delete); packets
    recorded after it do not move it."""
    root = tmp_path / "spool"
    _spool(root)
    paths = RecordingPaths(str(root), "c%402-0123456789abcdef")
    Path(paths.pcap).write_bytes(pcap.global_header("eth") + b"".join(
        pcap.record("eth", 1000 + i * 0.02, ("127.0.0.1", 4000), ("127.0.0.1", 30000), _rtp(i))
        for i in range(10)))  # fmt: skip
    doc = {"version": 1, "id": "y", "call_id": "c@2", "status": "recording", "path": paths.pcap,
           "started": 999.0, "ended": 1000.1, "streams": [], "pauses": []}  # fmt: skip
    Path(paths.sidecar).write_text(json.dumps(doc))

    (done,) = recover(str(root), "node-1", "eth")

    assert done["status"] == "interrupted" and done["streams"][0]["last"] == 1000.18
    assert done["ended"] == 1000.1 == json.loads(Path(paths.sidecar).read_text())["ended"]


def test_recovery_names_the_codecs_the_streams_used(tmp_path: Path) -> None:
    """An interrupted recording's `codecs` are those of its recorded streams, as a finished
    one's (docs/recording-sidecar.md), not every codec the SDPs offered: PCMU was offered with
    PCMA and telephone-event, only PCMU was recorded."""
    root = tmp_path / "spool"
    _spool(root)
    paths = RecordingPaths(str(root), "c%403-0123456789abcdef")
    Path(paths.pcap).write_bytes(pcap.global_header("eth") + b"".join(
        pcap.record("eth", 1000 + i * 0.02, ("127.0.0.1", 4000), ("127.0.0.1", 30000), _rtp(i))
        for i in range(10)))  # fmt: skip
    offered = [{"pt": 0, "name": "PCMU", "rate": 8000}, {"pt": 8, "name": "PCMA", "rate": 8000},
               {"pt": 101, "name": "telephone-event", "rate": 8000}]  # fmt: skip
    doc = {"version": 1, "id": "z", "call_id": "c@3", "status": "recording", "path": paths.pcap,
           "started": 999.0, "pauses": [], "codecs": ["PCMA", "PCMU", "telephone-event"],
           "parties": [{"tag": "ft", "media": [{"type": "audio", "codecs": offered}]}],
           "streams": [{"dst": "127.0.0.1:30000", "party": "ft"}]}  # fmt: skip
    Path(paths.sidecar).write_text(json.dumps(doc))

    (done,) = recover(str(root), "node-1", "eth")

    assert done["streams"][0]["codec"] == "PCMU"
    assert done["codecs"] == ["PCMU"] == json.loads(Path(paths.sidecar).read_text())["codecs"]


def test_disk_full_marks_failed_and_keeps_whole_records(tmp_path: Path) -> None:
    """A real EFBIG from RLIMIT_FSIZE (in a child process) stands for a full disk."""
    root = tmp_path / "spool"
    _spool(root)
    script = textwrap.dedent(f"""
        import json, resource, struct, sys, time
        sys.path.insert(0, {str(REPO)!r})
        from recorder.formats import FORMATS
        from recorder.names import RecordingPaths
        from recorder.recording import Recording
        from recorder.spool import Spool
        resource.setrlimit(resource.RLIMIT_FSIZE, (5000, 5000))
        ended = []
        spool = Spool(ended.append, interval=0.05)
        rec = Recording("full@1", RecordingPaths({str(root)!r}, "full%401-0000000000000000"),
                        FORMATS["eth"], 1000.0, {{}})
        spool.create(rec, rec.file_header(""))
        tap = rec.make_tap(False, ("127.0.0.1", 30000))
        for i in range(60):
            tap(None, struct.pack("!BBHII", 0x80, 0, i, 160 * i, 7) + b"x" * 160,
                ("127.0.0.1", 4000), 1000 + i * 0.02)
            if i % 10 == 9:
                spool.submit("flush", rec)
        rec.finished = True
        spool.submit("finish", rec, (b"", 1002.0))
        spool.close()
        print(json.dumps({{"ended": ended, "errors": spool.errors, "writing": rec.writing}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["errors"] == 1 and result["writing"] is False
    [doc] = result["ended"]
    assert doc["status"] == "failed" and "File too large" in doc["reason"]
    data = Path(doc["path"]).read_bytes()
    assert 0 < len(data) <= 5000 and pcap.valid_prefix(data) == len(data)
    assert doc["size"] == len(data)
    assert "recording failed" in out.stderr and out.stderr.count("recording failed") == 1


def test_a_slow_finish_does_not_hold_up_the_other_recordings_flushes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finishing a recording fsyncs and hashes it, which on a busy disk or a long call takes
    seconds; meanwhile the other open recordings must still be flushed (ARCHITECTURE rule 4:
    kill -9 loses at most the last second). Here the finish's fsync is held until the other
    recording's new records are on disk."""
    from recorder.formats import FORMATS
    from recorder.recording import Recording
    from recorder.spool import Spool

    eth = FORMATS["eth"]
    root = tmp_path / "spool"
    _spool(root)
    entered, release = threading.Event(), threading.Event()
    real_fsync = os.fsync
    calls = []

    def slow_fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 1:  # the first: the finishing recording's capture
            entered.set()
            release.wait(30)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    ended: list[dict[str, object]] = []
    spool = Spool(ended.append, interval=0.02)
    try:
        a = Recording("a@1", RecordingPaths(str(root), "a%401-0000000000000000"), eth, 1.0, {})
        b = Recording("b@1", RecordingPaths(str(root), "b%401-0000000000000000"), eth, 1.0, {})
        for rec in (a, b):
            spool.create(rec, rec.file_header(""))
        tap_a = a.make_tap(False, ("127.0.0.1", 30000))
        tap_b = b.make_tap(False, ("127.0.0.1", 30002))
        for i in range(5):
            tap_a(None, _rtp(i), ("127.0.0.1", 4000), 1000 + i * 0.02)
        a.finished = True
        spool.submit("finish", a, (b"", 1001.0))
        assert entered.wait(30)
        size = 24 + 10 * (16 + 14 + 28 + 172)
        for i in range(10):
            tap_b(None, _rtp(i), ("127.0.0.1", 4002), 1000 + i * 0.02)
        deadline = time.monotonic() + 10  # bounds the wait; the fsync is held until then
        while os.path.getsize(b.paths.pcap) < size and time.monotonic() < deadline:
            time.sleep(0.01)
        assert os.path.getsize(b.paths.pcap) == size
        assert ended == []  # a is still being finished
    finally:
        release.set()
        spool.close()
    [doc] = ended
    assert doc["status"] == "complete" and doc["call_id"] == "a@1"
    assert doc["size"] == os.path.getsize(a.paths.pcap) == 24 + 5 * (16 + 14 + 28 + 172)


def test_sidecars_of_different_recordings_are_written_side_by_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one sidecar's write (and fsync) is stuck, another recording's sidecar is still
    written: the finisher threads do not take turns at one lock (shutdown with many calls)."""
    import zlib

    from recorder import spool as spool_mod
    from recorder.formats import FORMATS
    from recorder.recording import Recording

    root = tmp_path / "spool"
    _spool(root)
    names = [f"side{i}%401-000000000000000{i}" for i in range(4)]
    # two recordings whose sidecars fall on different stripes of the per-path locks
    a = names[0]
    b = next(n for n in names[1:] if zlib.crc32(str(RecordingPaths(str(root), n).sidecar).encode())
             % 64 != zlib.crc32(str(RecordingPaths(str(root), a).sidecar).encode()) % 64)
    rec_a, rec_b = (Recording(f"{n}@1", RecordingPaths(str(root), n), FORMATS["eth"], 1000.0, {})
                    for n in (a, b))  # fmt: skip
    stuck, release = threading.Event(), threading.Event()
    real = spool_mod.write_json_atomic

    def slow_for_a(path: str, text: str, fsync: bool = False) -> None:
        if path == rec_a.paths.sidecar:
            stuck.set()
            release.wait(30)
        real(path, text, fsync)

    monkeypatch.setattr(spool_mod, "write_json_atomic", slow_for_a)
    spool = spool_mod.Spool(lambda doc: None, interval=0.05)
    try:
        first = threading.Thread(target=spool._write_sidecar, args=(rec_a, "{}", True))
        first.start()
        assert stuck.wait(10)
        second = threading.Thread(target=spool._write_sidecar, args=(rec_b, "{}", True))
        second.start()
        second.join(10)
        written_while_a_stuck = not second.is_alive()
        release.set()
        first.join(10)
        second.join(10)
    finally:
        release.set()
        spool.close()
    assert written_while_a_stuck
    assert json.loads(Path(rec_b.paths.sidecar).read_text()) == {}


def test_recovery_redacts_a_sidecar_written_before_redaction(tmp_path: Path) -> None:
    """A sidecar left by a version that stored keys (docs/recording.md): recovery rewrites it
    without them, the SDP otherwise unchanged."""
    root = tmp_path / "spool"
    _spool(root)
    paths = RecordingPaths(str(root), "c%403-0123456789abcdef")
    Path(paths.pcap).write_bytes(pcap.global_header("eth"))
    key, pwd = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR", "x9cml/YzichV2+XlhiMu8g"
    sdp = ("v=0\r\nm=audio 30000 RTP/SAVP 0\r\n"
           f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\na=ice-pwd:{pwd}\r\n")  # fmt: skip
    doc = {"version": 1, "id": "z", "call_id": "c@3", "status": "recording", "path": paths.pcap,
           "started": 999.0, "streams": [], "pauses": [],
           "sdp": [{"direction": "offer", "party": "ft", "in": sdp, "out": sdp, "time": 1.0}]}
    Path(paths.sidecar).write_text(json.dumps(doc))

    (done,) = recover(str(root), "node-1", "eth")

    text = Path(paths.sidecar).read_text()
    assert key not in text and pwd not in text and done["status"] == "interrupted"
    assert json.loads(text)["sdp"][0]["out"] == (
        "v=0\r\nm=audio 30000 RTP/SAVP 0\r\n"
        f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{'REDACTED' * 5}\r\na=ice-pwd:REDACTED\r\n")
