"""`hold`, `release`, `purge` and `audit` on SQLite and PostgreSQL, with an Object Lock bucket."""

from __future__ import annotations

import os
import pwd
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from .conftest import Lab

pytestmark = pytest.mark.integration
DAY = 86400.0


def legal_hold(lab: Lab, call_id: str) -> str:
    row = lab.row(call_id)
    assert row is not None and row.object_key
    got = lab.s3.client.get_object_legal_hold(  # type: ignore[union-attr]
        Bucket="vault", Key=row.object_key, VersionId=row.object_version
    )
    return str(got["LegalHold"]["Status"])


def test_hold_release_purge(s3lab: Lab) -> None:
    lab = s3lab
    now = time.time()
    old_held = lab.add("old-held@pbx", started=now - 200 * DAY)
    old_free = lab.add("old-free@pbx", started=now - 100 * DAY)
    old_local = lab.add("old-local@pbx", started=now - 95 * DAY)
    recent = lab.add("recent@pbx", started=now - 10 * DAY)
    for doc in (old_held, old_free, recent):
        lab.archive(doc)

    r = lab.cli("hold", old_held["id"], "--reason", "case 4711")
    assert r.exit_code == 0, r.output
    assert "(and S3 legal hold)" in r.stdout
    assert legal_hold(lab, "old-held@pbx") == "ON"
    row = lab.row("old-held@pbx")
    assert row is not None and row.legal_hold and row.hold_reason == "case 4711"
    # S3 itself now refuses to delete the held version
    with pytest.raises(ClientError):
        lab.s3.client.delete_object(Bucket="vault", Key=row.object_key,  # type: ignore[union-attr]
                                    VersionId=row.object_version)  # fmt: skip

    dry = lab.cli("purge", "--older-than", "90d", "--dry-run")
    assert dry.exit_code == 0, dry.output
    listed = [x.split() for x in dry.stdout.splitlines()[:-1]]
    assert sorted(f[3] for f in listed) == ["old-free@pbx", "old-local@pbx"]
    assert {f[2] for f in listed} == {old_free["id"], old_local["id"]}
    assert ("would purge 2 recordings; kept 1 on hold, 0 still recording, 0 under retention, "
            "0 not yet archived; 0 failed") in dry.stdout
    assert Path(old_free["path"]).exists() and lab.row("old-free@pbx") is not None

    r = lab.cli("purge", "--older-than", "90d")
    assert r.exit_code == 0, r.output
    assert "purged 2 recordings; kept 1 on hold, 0 still recording" in r.stdout
    for doc in (old_free, old_local):
        assert lab.row(doc["call_id"]) is None
        assert not Path(doc["path"]).exists() and not Path(doc["metadata_path"]).exists()
        assert not Path(doc["sidecar_path"]).exists()
    versions = lab.s3.client.list_object_versions(Bucket="vault").get("Versions", [])  # type: ignore[union-attr]
    keys = {v["Key"] for v in versions}
    assert f"recordings/{old_free['id']}.pcap" not in keys  # the version itself is gone
    assert f"recordings/{old_held['id']}.pcap" in keys and Path(old_held["path"]).exists()
    assert lab.row("recent@pbx") is not None

    r = lab.cli("release", "old-held@pbx")
    assert r.exit_code == 0 and legal_hold(lab, "old-held@pbx") == "OFF"
    r = lab.cli("purge", "--older-than", "90d")
    assert "purged 1 recording; kept 0 on hold" in r.stdout
    assert lab.row("old-held@pbx") is None and lab.row("recent@pbx") is not None

    entries = lab.json("audit", "--limit", "0")
    user = pwd.getpwuid(os.getuid()).pw_name
    assert all(e["user"] == user for e in entries)
    # a dry run, then one entry per purged recording (under its id) and the summary
    assert [(e["action"], e["recording_id"]) for e in reversed(entries)] == [
        ("hold", old_held["id"]), ("purge", None), ("purge", old_free["id"]),
        ("purge", old_local["id"]), ("purge", None), ("release", old_held["id"]),
        ("purge", old_held["id"]), ("purge", None)]  # fmt: skip
    purge = [e for e in entries if e["details"].get("dry_run") is False][-1]
    assert sorted(purge["details"]["ids"]) == sorted([old_free["id"], old_local["id"]])
    hold = [e for e in entries if e["action"] == "hold"][0]
    assert hold["recording_id"] == old_held["id"] and hold["details"]["reason"] == "case 4711"
    assert hold["details"]["s3_legal_hold"] is True


def test_hold_without_object_lock_is_index_only(lab: Lab) -> None:
    doc = lab.add("h@pbx", started=time.time() - 400 * DAY)
    r = lab.cli("hold", "h@pbx", "--reason", "audit request")
    assert r.exit_code == 0 and "S3" not in r.stdout
    assert lab.cli("purge", "--older-than", "1d").stdout.endswith(
        "purged 0 recordings; kept 1 on hold, 0 still recording, 0 under retention, "
        "0 not yet archived; 0 failed\n"
    )
    assert Path(doc["path"]).exists()
    r = lab.cli("hold", "h@pbx", "--reason", " ")
    assert r.exit_code == 2 and "--reason" in r.output


def test_audit_filters(lab: Lab) -> None:
    doc = lab.add("au@pbx")
    lab.cli("search")
    lab.cli("show", "au@pbx")
    lab.cli("show", doc["id"])
    entries = lab.json("audit", "--recording", "au@pbx")
    assert [e["action"] for e in entries] == ["show", "show"]
    assert all(e["recording_id"] == doc["id"] for e in entries)
    assert [e["action"] for e in lab.json("audit", "--action", "search")] == ["search"]
    assert lab.json("audit", "--user", "nobody-else") == []
    assert lab.json("audit", "--since", "1h", "--limit", "2")[0]["action"] == "audit"
    assert lab.json("audit", "--until", "1h") == []
    table = lab.cli("audit")
    assert table.stdout.splitlines()[0].split() == ["TIME", "USER", "ACTION", "RECORDING",
                                                    "DETAILS"]  # fmt: skip


def test_purge_keeps_unexpired_retention_open_and_uploading(lab: Lab) -> None:
    old = time.time() - 200 * DAY
    docs = {name: lab.add(f"{name}@pbx", started=old)
            for name in ("retained", "open", "uploading", "gone")}  # fmt: skip
    with lab.index.session() as s:
        from storage.models import Recording

        rows = {n: s.get(Recording, d["id"]) for n, d in docs.items()}
        rows["retained"].retain_until = time.time() + DAY  # type: ignore[union-attr]
        rows["open"].status = "recording"  # type: ignore[union-attr]
        rows["uploading"].archive_state = "uploading"  # type: ignore[union-attr]
    r = lab.cli("purge", "--older-than", "90d")
    assert r.exit_code == 0, r.output
    assert r.stdout.endswith("purged 1 recording; kept 0 on hold, 1 still recording, "
                             "1 under retention, 1 not yet archived; 0 failed\n")  # fmt: skip
    assert [n for n in docs if lab.row(f"{n}@pbx") is None] == ["gone"]
    assert all(Path(docs[n]["path"]).exists() for n in ("retained", "open", "uploading"))
