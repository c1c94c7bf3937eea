"""A full spool through the real daemon (issue 15 item 10): on a small tmpfs holding the
recordings and the embedded index, a recording stops at the free-space reserve, and its sidecar
and index row both end `failed` with the reason; nothing is left in tmp/ or as a .json.tmp; the
early warning and the free-bytes metric are there."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from storage.db import open_index
from storage.models import Recording
from tests.integration.ops.test_ops import one, scrape
from tests.support import daemons
from tests.support.fs import fill, tmpfs
from tests.support.tools import free_port
from tests.support.wait import wait_for

from .conftest import sidecars, wait_until
from .media import Call

pytestmark = pytest.mark.integration

MIB = 1 << 20


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "spool", "16m") as root:
        yield root


def _status(spool: Path) -> str | None:
    docs = sidecars(spool)
    return docs[0]["status"] if docs else None


def _rows(spool: Path) -> list[tuple[str, str, str | None]]:
    index = open_index(f"sqlite:///{spool}/recordings.db", create=False)
    try:
        with index.session() as s:
            return [(r.call_id, r.status, r.reason) for r in s.scalars(select(Recording))]
    finally:
        index.close()


def test_a_full_spool_ends_sidecar_and_row_failed_with_the_reason(
    tmp_path: Path, spool: Path
) -> None:
    http = free_port()
    relay = daemons.start("rtpvault", tmp_path / "run", extra=[
        f"--recording-dir={spool}", "--delete-delay=0", "--recording-min-free=1",
        f"--listen-http=127.0.0.1:{http}"])  # fmt: skip
    try:
        fill(spool, leave=MIB + 96 * 1024)
        call = Call(relay, "full-1")
        call.offer(**{"record-call": "yes"})
        call.answer()
        for batch in range(60):  # ~230 bytes a packet each way: the reserve is met well before
            call.media(25, start=25 * batch, interval=0.001)
            call.relayed(25)  # and the media is relayed all along
            if wait_until(lambda: _status(spool) == "failed", 0.2):
                break
        call.media(5, start=2000)
        call.relayed(5)
        metrics = scrape(http)
        assert one(metrics, "rtpvault_spool_free_bytes") < MIB
        late = Call(relay, "full-2")
        refused = late.offer(**{"record-call": "yes"})
        assert refused["warning"].startswith("Recording not created: spool nearly full: ")
        late.delete()
        late.close()
        call.delete()
        call.close()
        assert wait_until(lambda: all(d["status"] == "failed" for d in sidecars(spool))
                          and len(sidecars(spool)) == 2)  # fmt: skip
        docs = {d["call_id"]: d for d in sidecars(spool)}
        reason = docs["full-1"]["reason"]
        assert reason.startswith("spool nearly full: ") and "reserve of 1 MiB" in reason
        assert wait_for(lambda: sorted(_rows(spool)) == [
            ("full-1", "failed", reason), ("full-2", "failed", docs["full-2"]["reason"])],
            20, retry_on=(Exception,)), relay.log()[-3000:]  # fmt: skip
        # each counted once, the refused one too (failed from its start)
        assert one(scrape(http), "rtpvault_recordings_total", status="failed") == 2
        log = relay.log()
        assert "% full (" in log and "recordings stop at 1 MiB free" in log
        assert relay.proc.poll() is None
    finally:
        assert relay.stop() == 0
    assert list((spool / "tmp").iterdir()) == []
    assert [p.name for p in (spool / "sidecars").iterdir() if p.name.endswith(".tmp")] == []
    meta = docs["full-1"]["metadata_path"]
    assert Path(meta).parent == spool / "metadata" and Path(meta).exists()
    assert json.loads(Path(docs["full-1"]["sidecar_path"]).read_text())["status"] == "failed"


def test_a_spool_filled_to_the_last_byte_catches_up_once_there_is_room(
    tmp_path: Path, spool: Path
) -> None:
    """No reserve (another program filled the disk): the write fails with ENOSPC, the final
    sidecar and the row cannot be written yet; both are retried and end `failed` with the reason
    once space is freed, and no temporary file is left behind meanwhile."""
    relay = daemons.start("rtpvault", tmp_path / "run", extra=[
        f"--recording-dir={spool}", "--delete-delay=0", "--recording-min-free=0"])  # fmt: skip
    try:
        call = Call(relay, "brim-1")
        call.offer(**{"record-call": "yes"})
        call.answer()
        assert wait_for(lambda: _rows(spool), 20, retry_on=(Exception,))  # the start row
        filler = fill(spool, leave=0)
        for batch in range(40):
            call.media(25, start=25 * batch, interval=0.001)
            call.relayed(25)
            if "recording failed: cannot write" in relay.log():
                break
        call.delete()
        call.close()
        assert wait_until(lambda: "could not be written" in relay.log() or
                          "cannot write sidecar" in relay.log())  # fmt: skip
        assert [p.name for p in (spool / "sidecars").iterdir() if p.name.endswith(".tmp")] == []
        filler.unlink()
        assert wait_until(lambda: _status(spool) == "failed", 20)
        doc = sidecars(spool)[0]
        assert "(ENOSPC)" in doc["reason"]
        assert wait_for(lambda: _rows(spool) == [("brim-1", "failed", doc["reason"])], 60,
                        retry_on=(Exception,)), relay.log()[-3000:]  # fmt: skip
        assert relay.proc.poll() is None
    finally:
        assert relay.stop() == 0
    assert list((spool / "tmp").iterdir()) == []
