"""`rtpvault db upgrade | current | reindex` as an operator runs them (a process, from a directory
that is not the repository), index on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from storage.db import open_index
from storage.models import Recording, Upload
from storage.uploader import S3Settings, Uploader
from tests.support.s3 import ENV, MotoServer

REPO = Path(__file__).resolve().parents[3]


def db(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **ENV, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "rtpvault", "db", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def sidecar(spool: Path, i: int) -> dict[str, Any]:
    (spool / "pcaps").mkdir(parents=True, exist_ok=True)
    (spool / "sidecars").mkdir(parents=True, exist_ok=True)
    rid = str(uuid.uuid4())
    pcap = spool / "pcaps" / f"c{i}-{rid[:8]}.pcap"
    data = os.urandom(4000 + i)
    pcap.write_bytes(data)
    doc = {
        "version": 1,
        "id": rid,
        "node": "n1",
        "call_id": f"c{i}@h",
        "tags": [],
        "metadata": f"from:u{i}|to:v{i}",
        "format": "pcap",
        "path": str(pcap),
        "started": time.time() - 100,
        "ended": time.time() - 40,
        "status": "complete",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "streams": [],
    }
    (spool / "sidecars" / f"{pcap.stem}.json").write_text(json.dumps(doc))
    return doc


def test_current_then_upgrade(index_url: str, tmp_path: Path) -> None:
    before = db(tmp_path, "current", "--db", index_url)
    assert before.returncode == 3 and "schema at none" in before.stdout
    up = db(tmp_path, "upgrade", "--db", index_url)
    assert up.returncode == 0, up.stderr
    after = db(tmp_path, "current", "--db", index_url)
    assert after.returncode == 0 and after.stdout.split()[2] == up.stdout.split()[2]


def test_reindex_rebuilds_rows_and_reports_bad_sidecars(index_url: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    docs = [sidecar(spool, i) for i in range(3)]
    (spool / "sidecars" / "broken.json").write_text("{not json")
    assert db(tmp_path, "upgrade", "--db", index_url).returncode == 0
    for _ in range(2):  # idempotent
        out = db(tmp_path, "reindex", "--db", index_url, "--recording-dir", str(spool))
        assert out.returncode == 1  # one sidecar skipped
        assert "indexed 3 recordings, skipped 1" in out.stdout
        assert "broken.json" in out.stderr
    index = open_index(index_url, create=False)
    with index.session() as s:
        rows = s.scalars(select(Recording).order_by(Recording.call_id)).all()
        assert [(r.id, r.caller, r.callee) for r in rows] == [
            (d["id"], f"u{i}", f"v{i}") for i, d in enumerate(docs)
        ]
    index.close()


def test_reindex_after_losing_the_index_uploads_only_what_s3_lacks(
    index_url: str, s3: MotoServer, tmp_path: Path
) -> None:
    """Two recordings were archived, then the index was lost; a third was never uploaded."""
    s3.client.create_bucket(Bucket="lost")
    s3.client.put_bucket_versioning(Bucket="lost", VersioningConfiguration={"Status": "Enabled"})
    spool = tmp_path / "spool"
    docs = [sidecar(spool, i) for i in range(3)]
    conf = tmp_path / "rtpengine.conf"
    conf.write_text(
        f"[rtpengine]\ninterface = lo/127.0.0.1\nrecording-dir = {spool}\n"
        f"recording-db = {index_url}\ns3-bucket = lost\n"
        f"s3-endpoint-url = {s3.endpoint}\ns3-region = us-east-1\n"
        "s3-prefix = {call_id}/\n"
    )
    st = S3Settings(
        bucket="lost", prefix="{call_id}/", endpoint_url=s3.endpoint, region="us-east-1"
    )
    assert db(tmp_path, "upgrade", "--config-file", str(conf)).returncode == 0
    # first life of the index: the first two are archived
    out = db(tmp_path, "reindex", "--config-file", str(conf))
    assert out.returncode == 0 and "queued 3 for S3" in out.stdout, out.stderr
    index = open_index(index_url, create=False)
    with index.session() as s:
        s.execute(delete(Upload).where(Upload.recording_id == docs[2]["id"]))
    Uploader(index, st, "n1").run_once()
    assert len(s3.client.list_object_versions(Bucket="lost")["Versions"]) == 2
    # the index is lost and rebuilt
    with index.session() as s:
        s.execute(delete(Upload))
        s.execute(delete(Recording))
    out = db(tmp_path, "reindex", "--config-file", str(conf))
    assert out.returncode == 0 and "queued 3 for S3" in out.stdout, out.stderr
    assert Uploader(index, st, "n1").run_once() == 3
    versions = s3.client.list_object_versions(Bucket="lost")["Versions"]
    assert len(versions) == 3  # the two archived ones were found, not uploaded again
    with index.session() as s:
        assert set(s.scalars(select(Recording.archive_state)).all()) == {"archived"}
    index.close()
