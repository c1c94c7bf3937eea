"""storage.audit.anchor.CheckpointStore against a real S3 API (moto_server): a stored
checkpoint whose content does not match its key is reported, never trusted."""

from __future__ import annotations

import pytest

from storage.audit.anchor import Checkpoint, CheckpointStore
from tests.support.s3 import MotoServer, s3  # noqa: F401 - fixture

pytestmark = pytest.mark.integration

PREFIX = "audit/checkpoints/"


def test_a_checkpoint_under_another_checkpoints_key_is_reported(s3: MotoServer) -> None:  # noqa: F811
    client = s3.client
    client.create_bucket(Bucket="audit-anchors")
    store = CheckpointStore(client, "audit-anchors", PREFIX)
    good = Checkpoint(5, "a" * 64, 1.0)
    store.put(good)
    moved = Checkpoint(6, "b" * 64, 2.0)
    other_seq = store.key(Checkpoint(7, moved.hash, 2.0))
    other_hash = store.key(Checkpoint(6, "c" * 64, 2.0))
    for key in (other_seq, other_hash):
        client.put_object(Bucket="audit-anchors", Key=key, Body=moved.to_json())
    found = {s.key: (s.checkpoint, s.problem) for s in store.newest()}
    assert found == {
        store.key(good): (good, None),
        other_seq: (moved, "content (seq 6) does not match its key"),
        other_hash: (moved, "content (seq 6) does not match its key"),
    }
