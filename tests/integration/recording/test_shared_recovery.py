"""Start-up recovery (recorder.recovery) when several processes share one recording-dir
(the `num-threads` workers, issue 18): processes starting together recover each leftover
recording exactly once, and none of them touches a recording a live process is writing
(recorder.filelock). Real processes: the recoveries and the live writer (recorder.spool) each
run in a process of their own."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from recorder import pcap
from recorder.names import SUBDIRS, RecordingPaths
from tests.support.tools import require
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
LEFTOVERS = 150
RECOVERERS = 3

# Waits for the start signal (a file), recovers, prints the ids it recovered.
RECOVER = textwrap.dedent("""
    import json, os, sys, time
    from recorder.recovery import recover
    root, go = sys.argv[1], sys.argv[2]
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.001)
    print(json.dumps([d["id"] for d in recover(root, "node-1", "eth")]), flush=True)
""")

# A live recording through the real spool: one packet per `step` line on stdin, "finish" ends
# it; prints "flushed N" once N packets are in the file.
WRITER = textwrap.dedent("""
    import json, struct, sys, time
    from recorder.formats import recording_format
    from recorder.names import RecordingPaths
    from recorder.recording import Recording
    from recorder.spool import Spool
    root = sys.argv[1]
    done = []
    spool = Spool(done.append, interval=0.05, root=root)
    fmt = recording_format("eth")
    paths = RecordingPaths(root, "live%40host-00000000000000aa", fmt.suffix)
    rec = Recording("live@host", paths, fmt, time.time(), {"node": "node-2"})
    assert spool.create(rec, rec.file_header("live")) is None
    spool.submit("sidecar", rec, json.dumps(rec.doc))
    tap = rec.make_tap(False, ("127.0.0.1", 30000))
    n = 0
    for line in sys.stdin:
        if line.strip() == "finish":
            break
        payload = struct.pack("!BBHII", 0x80, 0, n, 160 * n, 0xAAAA0001) + b"\\xff" * 160
        tap(None, payload, ("127.0.0.1", 4000), time.time())
        n += 1
        spool.submit("flush", rec)
        while spool.open_recs and sum(s.size for s in spool.open_recs.values()) < 24 + n * 230:
            time.sleep(0.005)
        print("flushed", n, flush=True)
    spool.submit("finish", rec, (b"", time.time()))
    spool.close()
    print(json.dumps(done[0]), flush=True)
""")


def _rtp(i: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, i, 160 * i, 0xAAAA0001) + b"\xff" * 160


def leftover(root: Path, i: int) -> RecordingPaths:
    """What a daemon killed -9 leaves of one recording: media file with a partial last record,
    metadata file in tmp/, sidecar `recording`."""
    paths = RecordingPaths(str(root), f"dead{i}%40host-{i:016x}")
    data = pcap.global_header("eth") + b"".join(
        pcap.record("eth", 1000 + k * 0.02, ("127.0.0.1", 4000), ("127.0.0.1", 30000), _rtp(k))
        for k in range(20)
    )
    Path(paths.pcap).write_bytes(data + data[24:90])
    Path(paths.meta_tmp).write_text(f"{paths.pcap}\n\n\nSDP mode: offer\n")
    doc = {"version": 1, "id": f"id-{i}", "call_id": f"dead{i}@host", "status": "recording",
           "path": paths.pcap, "started": 999.0, "streams": [], "pauses": []}  # fmt: skip
    Path(paths.sidecar).write_text(json.dumps(doc))
    return paths


def spool(tmp_path: Path) -> Path:
    root = tmp_path / "spool"
    for sub in SUBDIRS:
        (root / sub).mkdir(parents=True)
    return root


def python(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=REPO, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip


def line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


def test_processes_starting_together_recover_each_leftover_once(tmp_path: Path) -> None:
    root = spool(tmp_path)
    for i in range(LEFTOVERS):
        leftover(root, i)
    go = tmp_path / "go"
    procs = [python(RECOVER, str(root), str(go)) for _ in range(RECOVERERS)]
    try:
        assert [line(p) for p in procs] == ["ready"] * RECOVERERS
        go.touch()  # all at once
        recovered = [json.loads(line(p)) for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    everything = [rid for ids in recovered for rid in ids]
    assert sorted(everything) == sorted(f"id-{i}" for i in range(LEFTOVERS))  # each once
    assert list((root / "tmp").iterdir()) == []
    for side in (root / "sidecars").glob("*.json"):
        doc = json.loads(side.read_text())
        assert doc["status"] == "interrupted" and "trimmed 66 bytes" in doc["reason"]
        assert doc["streams"][0]["packets"] == 20


def test_recovery_leaves_a_live_writers_recording_alone(tmp_path: Path) -> None:
    root = spool(tmp_path)
    dead = leftover(root, 1)
    writer = python(WRITER, str(root))
    go = tmp_path / "go"
    go.touch()
    try:
        assert writer.stdin is not None
        for n in range(1, 6):
            writer.stdin.write("step\n")
            writer.stdin.flush()
            assert line(writer) == f"flushed {n}"
        live = RecordingPaths(str(root), "live%40host-00000000000000aa")
        assert wait_for(lambda: Path(live.sidecar).exists(), 10)
        # a worker restarting meanwhile, in a process of its own
        recoverer = python(RECOVER, str(root), str(go))
        assert line(recoverer) == "ready"
        assert json.loads(line(recoverer)) == ["id-1"]
        recoverer.wait(10)
        assert json.loads(Path(dead.sidecar).read_text())["status"] == "interrupted"
        assert json.loads(Path(live.sidecar).read_text())["status"] == "recording"
        assert Path(live.meta_tmp).exists()
        for n in range(6, 11):  # it goes on recording
            writer.stdin.write("step\n")
            writer.stdin.flush()
            assert line(writer) == f"flushed {n}"
        writer.stdin.write("finish\n")
        writer.stdin.flush()
        final = json.loads(line(writer))
        writer.wait(10)
    finally:
        if writer.poll() is None:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
    assert final["status"] == "complete"
    side = json.loads(Path(live.sidecar).read_text())
    assert (side["status"], side["sha256"]) == ("complete", final["sha256"])
    assert not Path(live.meta_tmp).exists() and Path(live.meta_final).exists()
    out = subprocess.run(
        [require("tshark"), "-r", live.pcap, "-T", "fields", "-e", "udp.payload"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert [int(p.replace(":", "")[4:8], 16) for p in out] == list(range(10))
    assert os.path.getsize(live.pcap) == side["size"]


def test_a_finished_recordings_leftover_metadata_is_only_moved(tmp_path: Path) -> None:
    """A recording that ended `failed` (disk full) while its writer was killed before the
    finish moved its metadata file: recovery moves that file to metadata/ and leaves the
    recording as its sidecar says, instead of indexing the same call again under a new id."""
    root = spool(tmp_path)
    paths = leftover(root, 3)
    doc = json.loads(Path(paths.sidecar).read_text())
    failed = dict(doc, status="failed", reason="cannot write: No space left on device (ENOSPC)",
                  ended=1005.0, metadata="from:x")  # fmt: skip
    Path(paths.sidecar).write_text(json.dumps(failed))
    go = tmp_path / "go"
    go.touch()
    recoverer = python(RECOVER, str(root), str(go))
    assert line(recoverer) == "ready"
    assert json.loads(line(recoverer)) == []
    recoverer.wait(10)
    assert json.loads(Path(paths.sidecar).read_text()) == failed
    assert not Path(paths.meta_tmp).exists()
    assert Path(paths.meta_final).read_text().endswith("\n\n\nfrom:x\n")
