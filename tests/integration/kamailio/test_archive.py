"""Issue 7 end to end: a Kamailio + sipp call recorded through rtpvault (X-Record / X-Metadata
→ record-call / metadata) ends as an index row with caller and callee from the metadata and an
S3 object (moto_server) whose SHA-256 is the local file's."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from storage.db import open_index
from storage.models import Recording
from tests.support import daemons
from tests.support.db import all_archived
from tests.support.s3 import (
    MotoServer,
    s3,  # noqa: F401  (fixture)
)
from tests.support.wait import wait_for

from .rig import SipRig
from .sipcall import CallSpec

pytestmark = pytest.mark.integration


def archiving_options(spool: Path, bucket: str, moto: MotoServer) -> list[str]:
    """Relay options: eth captures in `spool`, archived to `bucket` on the moto server."""
    return [f"--recording-dir={spool}", "--recording-format=eth", "--delete-delay=0",
            f"--s3-bucket={bucket}", f"--s3-endpoint-url={moto.endpoint}",
            "--s3-region=us-east-1", "--s3-retry-initial=0.2"]  # fmt: skip


def test_recorded_kamailio_call_is_indexed_and_archived(
    sip_rig: Callable[..., SipRig], s3: MotoServer, tmp_path: Path  # noqa: F811
) -> None:
    s3.client.create_bucket(Bucket="kam-calls")
    spool = tmp_path / "spool"
    extra = archiving_options(spool, "kam-calls", s3)
    rig = sip_rig("rtpvault", relay_options={"extra": extra})
    result = rig.call(CallSpec(media=True, media_packets=20, record=True,
                               metadata="from:alice|to:bob"))  # fmt: skip
    assert result.ok, result.describe() + rig.logs()
    index = open_index("sqlite:///" + str(spool / "recordings.db"), create=False)
    try:
        def archived_row() -> Recording | None:
            with index.session() as s:
                rec = s.scalars(select(Recording)).first()
            return rec if rec is not None and rec.archive_state == "archived" else None

        rec = wait_for(archived_row, 20)
        assert rec is not None, rig.logs()
        assert (rec.call_id, rec.caller, rec.callee) == (result.call_ids[0], "alice", "bob")
        assert rec.status == "complete" and rec.packets >= 40
        local = Path(rec.path).read_bytes()
        assert hashlib.sha256(local).hexdigest() == rec.sha256
        body = s3.client.get_object(Bucket="kam-calls", Key=rec.object_key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == rec.sha256
    finally:
        index.close()


def test_kill9_during_recorded_kamailio_calls(
    sip_rig: Callable[..., SipRig], s3: MotoServer, tmp_path: Path  # noqa: F811
) -> None:
    """Calls recorded because Kamailio asked (X-Record → record-call=yes, X-Metadata →
    metadata), rtpvault killed with media flowing: the captures read cleanly as they are, and a
    new daemon on the same spool finishes them (`interrupted`) and archives them."""
    import json
    import signal
    import threading

    from tests.integration.recording.conftest import rtp_streams, tshark_read

    s3.client.create_bucket(Bucket="kam-kill")
    spool = tmp_path / "spool"
    extra = archiving_options(spool, "kam-kill", s3)
    rig = sip_rig("rtpvault", relay_options={"extra": extra})
    calls = 3
    spec = CallSpec(calls=calls, media=True, media_packets=None, record=True,
                    metadata="from:carol|to:dave")  # fmt: skip
    runner = threading.Thread(target=rig.call, args=(spec,))
    runner.start()
    try:

        def recording_media() -> bool:  # every call's file holds media from both sides
            files = list((spool / "pcaps").glob("*.pcap"))
            return len(files) == calls and all(f.stat().st_size > 24 + 50 * 214 for f in files)

        assert wait_for(recording_media, 30, interval=0.05), rig.logs()
        rig.relay.proc.send_signal(signal.SIGKILL)
        rig.relay.proc.wait(10)
    finally:
        runner.join()  # the calls end on their own (Kamailio's delete finds no relay)
    pcaps = sorted((spool / "pcaps").glob("*.pcap"))
    for path in pcaps:  # before anything repaired them
        read = tshark_read(path)
        assert read.returncode == 0 and "cut short" not in read.stderr + read.stdout, read.stderr
    docs = [json.loads(p.read_text()) for p in (spool / "sidecars").glob("*.json")]
    assert {d["status"] for d in docs} == {"recording"} and len(docs) == calls

    relay = daemons.start("rtpvault", tmp_path / "restart", extra=extra)
    index = open_index("sqlite:///" + str(spool / "recordings.db"), create=False)
    try:
        assert wait_for(lambda: all_archived(index, calls), 30), relay.log()[-3000:]
        with index.session() as s:
            rows = list(s.scalars(select(Recording)))
            s.expunge_all()
        assert sorted(r.path for r in rows) == [str(p) for p in pcaps]
        for rec in rows:
            local = Path(rec.path).read_bytes()
            assert (rec.status, rec.caller, rec.callee) == ("interrupted", "carol", "dave")
            assert (rec.size, rec.sha256) == (len(local), hashlib.sha256(local).hexdigest())
            streams = rtp_streams(Path(rec.path))  # both directions, what the row counted
            assert len(streams) == 2 and sum(v[1] for v in streams.values()) == rec.packets
            body = s3.client.get_object(Bucket="kam-kill", Key=rec.object_key)["Body"].read()
            assert body == local
    finally:
        index.close()
        relay.stop()
