"""The audit trail proves itself: failed accesses are audited, purged recordings keep their
history, a cut-off tail is caught by the checkpoints (S3 under Object Lock, local head file),
and `verify` cross-checks the SHA-256 the sidecar and S3 recorded. SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from storage.audit.anchor import HEAD_FILE, Checkpoint, checkpoint_prefix

from .conftest import Lab

pytestmark = pytest.mark.integration
DAY = 86400.0
PREFIX = checkpoint_prefix("{yyyy}/{mm}/{dd}/")


def entries(lab: Lab, *args: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = lab.json("audit", "--limit", "0", *args)
    return [e for e in got if e["action"] != "audit"]  # not the audit reads themselves


def swap_file_and_index_hash(doc: dict[str, Any]) -> str:
    """What an insider with disk and index access does: new bytes, their hash in the row."""
    forged = Path(doc["path"]).read_bytes()[:-1] + b"\x7f"
    Path(doc["path"]).write_bytes(forged)
    return hashlib.sha256(forged).hexdigest()


def test_refused_fetch_export_and_unknown_ids_are_audited(lab: Lab, tmp_path: Path) -> None:
    doc = lab.add("tampered@pbx")
    Path(doc["path"]).write_bytes(Path(doc["path"]).read_bytes()[:-1] + b"\0")
    r = lab.cli("fetch", doc["id"], "-o", str(tmp_path / "o"))
    assert r.exit_code == 1 and "SHA-256 mismatch" in r.output
    r = lab.cli("export", doc["id"], "--wav", "-o", str(tmp_path / "x.wav"))
    assert r.exit_code == 1 and "no intact copy" in r.output
    r = lab.cli("show", "no-such-call@pbx")
    assert r.exit_code == 1
    got = {e["action"]: e for e in entries(lab)}
    assert got["fetch"]["recording_id"] == doc["id"]
    assert "SHA-256 mismatch" in got["fetch"]["details"]["error"]
    assert got["fetch"]["details"]["to"].endswith(Path(doc["path"]).name)
    assert got["export"]["recording_id"] == doc["id"]
    assert "no intact copy" in got["export"]["details"]["error"]
    assert got["show"]["recording_id"] is None
    assert got["show"]["details"] == {
        "refs": ["no-such-call@pbx"],
        "error": "no recording with id or Call-ID 'no-such-call@pbx'",
    }


def test_audit_of_a_purged_recording(lab: Lab) -> None:
    doc = lab.add("gone@pbx", started=time.time() - 100 * DAY)
    lab.add("stays@pbx")
    lab.cli("show", "gone@pbx")
    assert lab.cli("purge", "--older-than", "90d").exit_code == 0
    assert lab.row("gone@pbx") is None
    for ref in (doc["id"], doc["id"][:8], "gone@pbx"):
        got = entries(lab, "--recording", ref)
        assert [(e["action"], e["recording_id"]) for e in got] == [
            ("purge", doc["id"]), ("show", doc["id"])], ref  # fmt: skip
    purge = entries(lab, "--recording", "gone@pbx")[0]["details"]
    assert purge["call_id"] == "gone@pbx" and doc["path"] in purge["removed"]
    r = lab.cli("audit", "--recording", "never@pbx")
    assert r.exit_code == 1
    assert "no recording (indexed or purged) with id or Call-ID 'never@pbx'" in r.output


def truncate(lab: Lab, newest: int) -> None:
    with lab.index.session() as s:
        s.execute(text("DELETE FROM audit WHERE seq > (SELECT MAX(seq) FROM audit) - :n"),
                  {"n": newest})  # fmt: skip


def test_truncated_tail_caught_by_the_s3_checkpoint(s3lab: Lab) -> None:
    lab = s3lab
    lab.add("c@pbx")
    for _ in range(3):
        assert lab.cli("search").exit_code == 0
    assert lab.s3 is not None
    client = lab.s3.client
    listed = client.list_objects_v2(Bucket="vault", Prefix=PREFIX)["Contents"]
    newest = listed[0]["Key"]  # keys count down: the newest checkpoint lists first
    body = client.get_object(Bucket="vault", Key=newest)["Body"].read()
    assert Checkpoint.parse(body).seq == 3 and len(listed) == 3
    # Object Lock: the writer cannot take it back (moto's GetObjectRetention answers 500; HEAD
    # carries the same fields)
    head = client.head_object(Bucket="vault", Key=newest)
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert head["ObjectLockRetainUntilDate"].timestamp() > time.time() + DAY / 2
    assert lab.cli("verify").exit_code == 0

    (lab.spool / HEAD_FILE).unlink()  # only S3 can tell now
    truncate(lab, 2)  # the newest two: the verify entry and the last search
    r = lab.cli("verify")
    assert r.exit_code == 1, r.output
    assert "AUDIT audit chain truncated: checkpoint seq 4 hash" in r.stdout
    assert "not in the index (it ends at seq 2)" in r.stdout
    assert "AUDIT audit chain truncated: checkpoint seq 3 hash" in r.stdout
    assert r.stdout.splitlines()[-1].endswith("audit chain: 2 problems")


def test_truncated_tail_caught_by_the_head_file(lab: Lab) -> None:
    lab.add("h@pbx")
    for _ in range(3):
        lab.cli("search")
    head = Checkpoint.parse((lab.spool / HEAD_FILE).read_bytes())
    assert head.seq == 3
    truncate(lab, 1)
    r = lab.cli("verify")
    assert r.exit_code == 1
    assert f"AUDIT audit chain truncated: checkpoint seq 3 hash {head.hash[:16]}… (head file " \
           in r.stdout  # fmt: skip


def test_rewritten_chain_and_deleted_checkpoint_are_caught(s3lab: Lab) -> None:
    lab = s3lab
    lab.add("w@pbx")
    lab.cli("search")
    lab.cli("search")
    with lab.index.session() as s:  # recompute a consistent chain with other content
        from storage.audit import chain as audit
        from storage.models import AuditEntry

        prev = audit.GENESIS
        for row in s.query(AuditEntry).order_by(AuditEntry.seq):
            row.prev_hash = f"{row.seq:064d}"  # UNIQUE: make room before re-linking
            s.flush()
        for row in s.query(AuditEntry).order_by(AuditEntry.seq):
            row.user = "mallory"
            row.prev_hash = prev
            row.hash = prev = audit.entry_hash(prev, row.time, row.user, row.action,
                                               row.target, row.details)  # fmt: skip
            s.flush()
    assert lab.s3 is not None
    newest = lab.s3.client.list_objects_v2(Bucket="vault", Prefix=PREFIX)["Contents"][0]["Key"]
    lab.s3.client.delete_object(Bucket="vault", Key=newest)  # only a delete marker (versioned)
    r = lab.cli("verify")
    assert r.exit_code == 1
    assert "AUDIT audit chain rewritten: entry 2 has hash" in r.stdout
    assert f"AUDIT checkpoint s3://vault/{newest}: hidden by a delete marker" in r.stdout


def test_checkpoint_retried_after_an_s3_outage(s3lab: Lab, tmp_path: Path) -> None:
    lab = s3lab
    lab.add("o@pbx")
    down = tmp_path / "down.conf"
    assert lab.s3 is not None
    down.write_text(lab.conf.read_text().replace(lab.s3.endpoint, "http://127.0.0.1:9"))
    r = lab.cli("search", "--config-file", str(down), conf=False)
    assert r.exit_code == 0, r.output  # the access itself is not refused ...
    assert "warning: audit S3 checkpoint not written (S3 unavailable" in r.stderr
    client = lab.s3.client
    assert "Contents" not in client.list_objects_v2(Bucket="vault", Prefix=PREFIX)
    with lab.index.session() as s:  # ... nor the entry lost
        assert s.execute(text("SELECT action FROM audit")).scalars().all() == ["search"]
    lab.cli("search")  # S3 is back: the next command anchors everything so far
    listed = client.list_objects_v2(Bucket="vault", Prefix=PREFIX)["Contents"]
    assert [Checkpoint.parse(client.get_object(Bucket="vault", Key=o["Key"])["Body"].read()).seq
            for o in listed] == [2]  # fmt: skip
    assert lab.cli("verify").exit_code == 0


def test_verify_cross_checks_sidecar_and_s3(s3lab: Lab) -> None:
    lab = s3lab
    local = lab.add("swap-local@pbx")
    archived = lab.add("swap-archived@pbx")
    lab.archive(archived)
    assert lab.cli("verify").exit_code == 0
    with lab.index.session() as s:
        for doc in (local, archived):
            s.execute(text("UPDATE recordings SET sha256 = :h WHERE id = :i"),
                      {"h": swap_file_and_index_hash(doc), "i": doc["id"]})  # fmt: skip
    r = lab.cli("verify")
    assert r.exit_code == 1
    lines = r.stdout.splitlines()
    for doc in (local, archived):
        assert any(x.startswith(f"MISMATCH {doc['id']}") and f"sidecar {doc['sidecar_path']} "
                   f"records SHA-256 {doc['sha256']}" in x for x in lines), doc  # fmt: skip
    key = f"s3://vault/recordings/{archived['id']}.pcap"
    for what in ("checksum", "metadata"):
        assert any(x.startswith(f"MISMATCH {archived['id']}") and
                   f"{key} {what} records SHA-256 {archived['sha256']}" in x for x in lines)
    assert any(x.startswith(f"MISMATCH {archived['id']}") and "object_sha256" in x
               for x in lines)  # fmt: skip


def test_verify_skips_recordings_in_progress(lab: Lab) -> None:
    """An intact store of every kind: complete, interrupted, waiting for its upload, and one
    still recording (skipped and counted apart, not as verified)."""
    lab.add("done@pbx")
    lab.add("cut@pbx", status="interrupted")
    waiting = lab.add("waiting@pbx")
    open_ = lab.add("open@pbx")
    with lab.index.session() as s:
        s.execute(text("UPDATE recordings SET status = 'recording', sha256 = NULL, size = NULL "
                       "WHERE id = :i"), {"i": open_["id"]})  # fmt: skip
        s.execute(text("UPDATE recordings SET archive_state = 'pending' WHERE id = :i"),
                  {"i": waiting["id"]})  # fmt: skip
    side = json.loads(Path(open_["sidecar_path"]).read_text())
    Path(open_["sidecar_path"]).write_text(json.dumps({**side, "sha256": None}))
    r = lab.cli("verify")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[-1] == (
        "verified 3 recordings, 3 copies (skipped: 1 still recording): 0 problems; "
        "audit chain: ok")
    assert lab.json("audit", "--action", "verify")[0]["details"]["skipped"] == {"recording": 1}


def test_release_of_a_recording_not_held(lab: Lab) -> None:
    doc = lab.add("free@pbx")
    r = lab.cli("release", "free@pbx")
    assert r.exit_code == 0
    assert r.stdout == f"not held: {doc['id']} free@pbx (nothing to release)\n"
    assert lab.json("audit", "--action", "release")[0]["details"]["was_held"] is False


def test_audit_vertical_details_are_json(lab: Lab) -> None:
    lab.add("v@pbx")
    lab.cli("search", "--caller", "al*")
    r = lab.cli("audit", "--action", "search", "--vertical")
    assert r.exit_code == 0
    assert "details      | " + json.dumps({"filter": {"caller": "al*"}, "results": 1}) \
           in r.stdout.splitlines()  # fmt: skip


def test_unknown_option_shows_the_usage_hint(lab: Lab) -> None:
    for cmd in ("search", "verify", "purge"):
        r = lab.cli(cmd, "--bogus", conf=False)
        assert r.exit_code == 2
        assert f" {cmd} --help' for help." in r.output  # the hint (CliRunner's program name)
        assert "No such option" in r.output
    r = lab.cli("search", "--since", "last tuesday", conf=False)  # a bad value stays one line
    assert r.exit_code == 2 and "Try" not in r.output


def test_verify_multipart_object_composite_checksum(s3lab: Lab) -> None:
    """An object the uploader stored as a multipart upload: S3's checksum is over its parts;
    verify recomputes that composite from the bytes it reads."""
    from storage.s3.objects import ObjectWriter, digests

    lab = s3lab
    doc = lab.add("mp@pbx", seconds=3.0)
    assert lab.s3 is not None
    writer = ObjectWriter(lab.s3.client, "vault", multipart_threshold=0)
    key = f"recordings/{doc['id']}.pcap"
    args = writer.object_args(key, doc["sha256"], doc["id"])
    d = digests(doc["path"], writer.part_size)
    version = writer.multipart(doc["path"], args, d, None, [], lambda _u, _p: None,
                               lambda: False)  # fmt: skip
    head = writer.head(key, version)
    assert head is not None and str(head["ETag"]).endswith('-1"')  # one part, but multipart
    with lab.index.session() as s:
        s.execute(text("UPDATE recordings SET object_key = :k, object_version = :v, "
                       "archive_state = 'archived', object_sha256 = sha256, "
                       "local_removed = true WHERE id = :i"),
                  {"k": key, "v": version, "i": doc["id"]})  # fmt: skip
    Path(doc["path"]).unlink()
    r = lab.cli("verify")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[-1].startswith("verified 1 recording, 1 copy: 0 problems")

    from rtpvault.cli.search.ctx import Vault
    from rtpvault.cli.search.verify import _s3_record

    vault = Vault(str(lab.conf))
    record = _s3_record(vault, lab.row("mp@pbx"))  # what verify compared: the composite
    assert record is not None and record.part_size == doc["size"] and record.checksum
    vault.close()
