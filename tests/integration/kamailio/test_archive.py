"""Issue 7 end to end: a Kamailio + sipp call recorded through rtpvault (X-Record / X-Metadata
→ record-call / metadata) ends as an index row with caller and callee from the metadata and an
S3 object (moto_server) whose SHA-256 is the local file's."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from storage.db import open_index
from storage.models import Recording
from tests.support import daemons
from tests.support.s3 import (
    MotoServer,
    s3,  # noqa: F401  (fixture)
)

from .rig import SipRig
from .sipcall import CallSpec

pytestmark = pytest.mark.integration


def test_recorded_kamailio_call_is_indexed_and_archived(
    sip_rig: Callable[..., SipRig], s3: MotoServer, tmp_path: Path  # noqa: F811
) -> None:
    s3.client.create_bucket(Bucket="kam-calls")
    spool = tmp_path / "spool"
    extra = [f"--recording-dir={spool}", "--recording-format=eth", "--delete-delay=0",
             "--s3-bucket=kam-calls", f"--s3-endpoint-url={s3.endpoint}",
             "--s3-region=us-east-1", "--s3-retry-initial=0.2"]  # fmt: skip
    rig = sip_rig("rtpvault", relay_options={"extra": extra})
    result = rig.call(CallSpec(media=True, media_packets=20, record=True,
                               metadata="from:alice|to:bob"))  # fmt: skip
    assert result.ok, result.describe() + rig.logs()
    index = open_index("sqlite:///" + str(spool / "recordings.db"), create=False)
    try:
        deadline = time.monotonic() + 20  # bounds a stuck daemon; not a timing assertion
        rec = None
        while time.monotonic() < deadline:
            with index.session() as s:
                rec = s.scalars(select(Recording)).first()
                if rec is not None and rec.archive_state == "archived":
                    break
            time.sleep(0.1)
        assert rec is not None and rec.archive_state == "archived", rig.logs()
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
    extra = [f"--recording-dir={spool}", "--recording-format=eth", "--delete-delay=0",
             "--s3-bucket=kam-kill", f"--s3-endpoint-url={s3.endpoint}",
             "--s3-region=us-east-1", "--s3-retry-initial=0.2"]  # fmt: skip
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

        deadline = time.monotonic() + 30  # bounds a stuck run; not a timing assertion
        while not recording_media() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert recording_media(), rig.logs()
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
        deadline = time.monotonic() + 30  # bounds a stuck daemon; not a timing assertion
        rows: list[Recording] = []
        while time.monotonic() < deadline:
            with index.session() as s:
                rows = list(s.scalars(select(Recording)))
                s.expunge_all()
            if len(rows) == calls and {r.archive_state for r in rows} == {"archived"}:
                break
            time.sleep(0.1)
        assert {r.archive_state for r in rows} == {"archived"}, relay.log()[-3000:]
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
