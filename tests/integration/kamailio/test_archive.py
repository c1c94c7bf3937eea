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
