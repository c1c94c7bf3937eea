"""`show`, `fetch`, `export`, `verify` on SQLite and PostgreSQL, objects in moto_server."""

from __future__ import annotations

import hashlib
import math
import os
import wave
from array import array
from pathlib import Path

import pytest
from sqlalchemy import text

from .conftest import Lab

pytestmark = pytest.mark.integration


def test_show_by_id_prefix_and_call_id(lab: Lab) -> None:
    doc = lab.add("show-1@pbx", loss=1.5, jitter=3.0, mos=4.1)
    r = lab.cli("show", doc["id"][:8])
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert doc["id"] in out and "show-1@pbx" in out
    assert "Streams:" in out and "0x00001111" in out and "0x00002222" in out
    assert 'meta          | {"from": "alice", "to": "bob"}' in out
    assert "o=alice 1 1 IN IP4 203.0.113.1" in out  # the SDP as sent on
    assert '"version": 1' in out  # the sidecar
    by_call = lab.json("show", "show-1@pbx")
    assert by_call["recording"]["id"] == doc["id"]
    assert [s["loss_pct"] for s in by_call["streams"]] == [1.5, 1.5]
    assert by_call["archive"]["state"] == "local"
    assert [a["action"] for a in by_call["audit"]] == ["show", "show"]  # the first show too


def test_show_errors(lab: Lab) -> None:
    lab.add("dup@pbx")
    lab.add("dup@pbx")
    r = lab.cli("show", "dup@pbx")
    assert r.exit_code == 1 and "matches 2 recordings" in r.output
    r = lab.cli("show", "nonexistent")
    assert (
        r.exit_code == 1
        and r.output.strip() == "Error: no recording with id or Call-ID 'nonexistent'"
    )


def test_fetch_local_then_s3(s3lab: Lab, tmp_path: Path) -> None:
    lab = s3lab
    local = lab.add("f1@pbx")
    remote = lab.add("f2@pbx", fmt="pcapng")
    lab.archive(remote, remove_local=True)
    out = tmp_path / "out"
    r = lab.cli("fetch", local["id"], "f2@pbx", "-o", str(out))
    assert r.exit_code == 0, r.output
    for doc, source in ((local, doc_path := local["path"]), (remote, "s3://vault/")):
        got = (out / Path(doc["path"]).name).read_bytes()
        assert hashlib.sha256(got).hexdigest() == doc["sha256"]
        assert f"sha256 {doc['sha256']} ok" in r.stdout and source in r.stdout
    assert doc_path in r.stdout
    assert "fetching 2 recordings" in r.stderr  # the progress bar (label only: not a terminal)
    assert not list(out.glob("*.part"))
    fetched = [a for a in lab.json("audit", "--action", "fetch")]
    assert {a["recording_id"] for a in fetched} == {local["id"], remote["id"]}


def test_fetch_refuses_a_tampered_copy(s3lab: Lab, tmp_path: Path) -> None:
    lab = s3lab
    doc = lab.add("t1@pbx")
    lab.archive(doc, remove_local=True)
    assert lab.s3 is not None
    # the object is replaced by other bytes (a new version; the index names the old one)
    lab.s3.client.put_object(Bucket="vault", Key=f"recordings/{doc['id']}.pcap", Body=b"x" * 99)
    with lab.index.session() as s:
        s.execute(text("UPDATE recordings SET object_version = NULL"))
    r = lab.cli("fetch", doc["id"], "-o", str(tmp_path / "o"))
    assert r.exit_code == 1 and "SHA-256 mismatch" in r.output
    assert list((tmp_path / "o").iterdir()) == []  # nothing left behind, no .part


def test_fetch_and_export_sync_the_file_before_it_takes_its_final_name(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash right after the rename must not leave a short file under the final name: the
    `.part` file is complete and fsynced when os.replace makes it the final file."""
    doc = lab.add("sync@pbx", seconds=1.0)
    synced: set[tuple[int, int]] = set()
    renamed: list[tuple[str, bool]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        synced.add((st.st_dev, st.st_ino))
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        st = os.stat(src)
        renamed.append((str(dst), (st.st_dev, st.st_ino) in synced))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    out = tmp_path / "out"
    fetched, wav = out / Path(doc["path"]).name, out / "call.wav"
    assert lab.cli("fetch", doc["id"], "-o", str(out)).exit_code == 0
    assert lab.cli("export", doc["id"], "--wav", "-o", str(wav)).exit_code == 0
    assert hashlib.sha256(fetched.read_bytes()).hexdigest() == doc["sha256"]
    assert wav.stat().st_size == 44 + int(1.2 * 8000) * 4  # header + every stereo frame
    assert [r for r in renamed if r[0] in (str(fetched), str(wav))] == [
        (str(fetched), True), (str(wav), True)
    ]


def rms(samples: array[int]) -> float:
    return math.sqrt(sum(s * s for s in samples) / max(len(samples), 1))


@pytest.mark.parametrize("pt", [0, 8])
def test_export_wav(lab: Lab, tmp_path: Path, pt: int) -> None:
    doc = lab.add(f"wav-{pt}@pbx", seconds=2.0, pt=pt, fmt="pcapng" if pt else "pcap")
    target = tmp_path / "call.wav"
    r = lab.cli("export", doc["id"], "--wav", "-o", str(target))
    assert r.exit_code == 0, r.output
    with wave.open(str(target)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
        assert w.getnframes() == int(2.2 * 8000)  # B joins 0.2 s late and ends 0.2 s later
        frames = array("h", w.readframes(w.getnframes()))
    left, right = frames[0::2], frames[1::2]
    assert rms(left[: 2 * 8000]) == pytest.approx(8000 / math.sqrt(2), rel=0.05)
    assert rms(right[: int(0.2 * 8000)]) == 0  # callee silent before joining
    assert rms(right[int(0.2 * 8000) :]) == pytest.approx(4000 / math.sqrt(2), rel=0.05)
    assert lab.json("audit", "--action", "export")[0]["recording_id"] == doc["id"]


def test_export_unsupported_codec(lab: Lab, tmp_path: Path) -> None:
    # G.722, Opus, G.729, GSM and G.723.1 decode through FFmpeg now; a dynamic payload type
    # no SDP names (nor an iLBC one) does not
    doc = lab.add("ilbc@pbx", pt=97, codec="iLBC")
    r = lab.cli("export", doc["id"], "--wav", "-o", str(tmp_path / "x.wav"))
    assert r.exit_code == 1
    assert "(payload type 97) is not supported for WAV export yet" in r.output
    assert not (tmp_path / "x.wav").exists()


def test_verify_clean_then_every_kind_of_problem(s3lab: Lab) -> None:
    lab = s3lab
    ok = lab.add("v-ok@pbx")
    tampered = lab.add("v-tampered@pbx")
    gone = lab.add("v-gone@pbx")
    archived = lab.add("v-archived@pbx")
    lab.archive(archived, remove_local=True)
    deleted = lab.add("v-deleted@pbx")
    lab.archive(deleted, remove_local=False)
    r = lab.cli("verify")
    assert r.exit_code == 0, r.output
    assert "verified 5 recordings, 6 copies: 0 problems; audit chain: ok" in r.stdout

    Path(tampered["path"]).write_bytes(Path(tampered["path"]).read_bytes()[:-1] + b"\0")
    Path(gone["path"]).unlink()
    row = lab.row("v-deleted@pbx")
    assert lab.s3 is not None and row is not None
    lab.s3.client.delete_object(
        Bucket="vault", Key=f"recordings/{deleted['id']}.pcap", VersionId=row.object_version
    )
    with lab.index.session() as s:  # somebody edits history
        s.execute(text("UPDATE audit SET \"user\" = 'mallory' WHERE seq = 1"))
    r = lab.cli("verify")
    assert r.exit_code == 1
    lines = r.stdout.splitlines()
    assert any(x.startswith(f"MISMATCH {tampered['id']}") and tampered["path"] in x for x in lines)
    assert any(x.startswith(f"MISSING {gone['id']}") for x in lines)
    assert any(x.startswith(f"MISSING {deleted['id']}") and "s3://vault/" in x for x in lines)
    assert "AUDIT entry 1: content altered (hash mismatch)" in lines
    assert not any(ok["id"] in x or archived["id"] in x for x in lines[:-1])
    assert lines[-1].endswith("3 problems; audit chain: 1 problem")
    # filters narrow what is checked
    r = lab.cli("verify", "--call-id", "v-ok@pbx")
    assert "verified 1 recording, 1 copy: 0 problems" in r.stdout and r.exit_code == 1


def test_verify_reports_a_deleted_audit_row(lab: Lab) -> None:
    lab.add("a@pbx")
    for _ in range(3):
        lab.cli("search")
    with lab.index.session() as s:
        s.execute(text("DELETE FROM audit WHERE seq = 2"))
    r = lab.cli("verify")
    assert r.exit_code == 1 and "AUDIT entry 3: link broken" in r.stdout
