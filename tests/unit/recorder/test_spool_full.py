"""recorder.spool on a real full file system (a small tmpfs): short writes, the free-space
reserve, sidecars owed until there is room again (issue 15 items 9 and 10)."""

from __future__ import annotations

import errno
import json
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recorder import pcap
from recorder.diskspace import MIB
from recorder.formats import FORMATS
from recorder.names import SUBDIRS, RecordingPaths
from recorder.recording import Recording
from recorder.spool import Spool, write_json_atomic
from tests.support.fs import fill, free_bytes, tmpfs

ETH = FORMATS["eth"]


@pytest.fixture
def small(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "fs", "4m") as root:
        for sub in SUBDIRS:
            (root / sub).mkdir()
        yield root


def _rtp(i: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, i, 160 * i, 0xAAAA0001) + b"\xff" * 160


def _leftovers(root: Path) -> list[str]:
    """Temporary files that must not outlive a failure: sidecar .tmp files, metadata in tmp/."""
    return sorted(p.name for p in (root / "sidecars").iterdir() if p.name.endswith(".tmp")) + \
        sorted(p.name for p in (root / "tmp").iterdir())  # fmt: skip


def test_a_short_write_never_replaces_a_good_sidecar(small: Path) -> None:
    path = small / "sidecars" / "x.json"
    good = json.dumps({"id": "x", "status": "complete", "pad": "g" * 2000})
    write_json_atomic(str(path), good)
    fill(small, leave=4096)  # one page: write(2) of 20 kB writes 4 kB and returns 4096
    with pytest.raises(OSError) as caught:
        write_json_atomic(str(path), json.dumps({"id": "x", "pad": "n" * 20000}))
    assert caught.value.errno == errno.ENOSPC
    assert path.read_text() == good
    assert _leftovers(small) == []


def _record(spool: Spool, root: Path, name: str) -> Recording:
    rec = Recording(f"{name}@1", RecordingPaths(str(root), f"{name}%401-0000000000000000"), ETH,
                    1000.0, {})  # fmt: skip
    assert spool.create(rec, rec.file_header("")) is None
    spool.submit("sidecar", rec, json.dumps(rec.doc))
    deadline = time.monotonic() + 30  # the worker writes it; bounded, not a timing assertion
    while not os.path.exists(rec.paths.sidecar) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert os.path.exists(rec.paths.sidecar)
    return rec


def _feed_until_failed(spool: Spool, rec: Recording) -> None:
    tap = rec.make_tap(False, ("127.0.0.1", 30000))
    deadline = time.monotonic() + 30  # bounds a broken spool; not a timing assertion
    i = 0
    while not rec.failed and time.monotonic() < deadline:
        for _ in range(50):
            tap(None, _rtp(i), ("127.0.0.1", 4000), 1000 + i * 0.02)
            i += 1
        time.sleep(0.03)
    assert rec.failed


def _finish(spool: Spool, rec: Recording) -> None:
    rec.finished = True
    spool.submit("finish", rec, (b"\ntrailer\n", 1002.0))


def test_below_the_reserve_recordings_fail_and_their_ends_still_fit(small: Path) -> None:
    ended: list[dict[str, Any]] = []
    spool = Spool(ended.append, interval=0.02, root=str(small), min_free=1 * MIB)
    fill(small, leave=MIB + 64 * 1024)
    try:
        rec = _record(spool, small, "reserve")
        _feed_until_failed(spool, rec)
        _finish(spool, rec)
        late = Recording("late@1", RecordingPaths(str(small), "late%401-0000000000000000"),
                         ETH, 1001.0, {})  # fmt: skip
        reason = spool.create(late, late.file_header(""))
    finally:
        spool.close()
    [doc] = ended
    assert doc["status"] == "failed" and doc["reason"].startswith("spool nearly full: ")
    assert "recording-min-free reserve of 1 MiB" in doc["reason"]
    data = Path(doc["path"]).read_bytes()
    assert len(data) > 24 and pcap.valid_prefix(data) == len(data) == doc["size"]
    assert json.loads(Path(doc["sidecar_path"]).read_text())["status"] == "failed"
    assert Path(doc["metadata_path"]).read_text().endswith("\ntrailer\n")
    assert _leftovers(small) == []
    # a new recording is refused while below the reserve, and says why
    assert reason is not None and reason.startswith("spool nearly full: ")
    assert late.failed and not os.path.exists(late.paths.pcap)
    assert spool.free_bytes is not None and spool.free_bytes < MIB


def test_a_full_disk_fails_the_recording_and_the_sidecar_follows_once_there_is_room(
    small: Path,
) -> None:
    ended: list[dict[str, Any]] = []
    spool = Spool(ended.append, interval=0.02, root=str(small), min_free=0)
    try:
        rec = _record(spool, small, "full")
        filler = fill(small, leave=8192)
        _feed_until_failed(spool, rec)
        _finish(spool, rec)
        deadline = time.monotonic() + 30
        while not ended and time.monotonic() < deadline:
            time.sleep(0.02)
        [doc] = ended
        assert doc["status"] == "failed" and "(ENOSPC)" in doc["reason"]
        assert _leftovers(small) == []  # no .json.tmp, the metadata moved out of tmp/
        assert Path(doc["metadata_path"]).exists()
        on_disk = json.loads(Path(doc["sidecar_path"]).read_text())
        assert on_disk["status"] == "recording"  # the disk has had no room for the final one
        filler.unlink()
        assert free_bytes(small) > 64 * 1024
        deadline = time.monotonic() + 30
        while on_disk["status"] == "recording" and time.monotonic() < deadline:
            time.sleep(0.02)
            on_disk = json.loads(Path(doc["sidecar_path"]).read_text())
    finally:
        spool.close()
    assert on_disk["status"] == "failed" and on_disk["reason"] == doc["reason"]
    data = Path(doc["path"]).read_bytes()
    assert pcap.valid_prefix(data) == len(data) == doc["size"]
