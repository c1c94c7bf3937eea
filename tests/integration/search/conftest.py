"""A recordings lab for the search CLI tests: real pcap files in a spool, rows in the index
(SQLite or PostgreSQL, via storage.ingest), optional objects in a moto_server bucket, and a
config file in rtpengine.conf format naming all of it."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from rtpvault.cli import cli
from storage.db import Index
from storage.ingest import upsert_sidecar
from storage.models import Recording
from tests.support.db import index, index_url  # noqa: F401 - fixtures
from tests.support.s3 import MotoServer, s3  # noqa: F401 - fixtures
from tests.unit.search.synth import Leg, pcap_bytes, pcapng_bytes, sidecar_for

A = (("192.0.2.10", 4000), ("127.0.0.1", 30000))
B = (("198.51.100.5", 5000), ("127.0.0.1", 30002))
NOW = 1764028800.0


@dataclass
class Lab:
    tmp: Path
    url: str
    index: Index
    s3: MotoServer | None = None
    bucket: str | None = None
    object_lock: bool = False
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def spool(self) -> Path:
        return self.tmp / "spool"

    @property
    def conf(self) -> Path:
        lines = ["[rtpengine]", "interface = eth9/198.51.100.77", "listen-ng = 127.0.0.1:2223",
                 f"recording-dir = {self.spool}", f"recording-db = {self.url}"]  # fmt: skip
        if self.s3 is not None and self.bucket:
            lines += [f"s3-bucket = {self.bucket}", f"s3-endpoint-url = {self.s3.endpoint}",
                      "s3-region = us-east-1"]  # fmt: skip
            if self.object_lock:
                lines += ["s3-object-lock-mode = GOVERNANCE", "s3-object-lock-days = 1"]
        path = self.tmp / "rtpengine.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def add(self, call_id: str, *, started: float = NOW - 3600, seconds: float = 1.0,
            caller: str | None = "alice", callee: str | None = "bob", status: str = "complete",
            node: str = "relay-1", pt: int = 0, fmt: str = "pcap", loss: float = 0.0,
            jitter: float = 0.5, mos: float | None = 4.4, meta: dict[str, str] | None = None,
            ip: str = "192.0.2.10", codec: str | None = None,
            extra: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
        """A recording with a real file (two G.711 tone legs) and its index row; `extra`: more
        sidecar keys (a part's `series` and `part`)."""
        rid = str(uuid.uuid4())
        legs = [Leg((ip, 4000), A[1], ssrc=0x1111, freq=440, start=0.0, seconds=seconds, pt=pt),
                Leg(*B, ssrc=0x2222, freq=1000, start=0.2, seconds=seconds, pt=pt,
                    amplitude=4000)]  # fmt: skip
        data = (pcapng_bytes if fmt == "pcapng" else pcap_bytes)(legs, started)
        for sub in ("pcaps", "metadata", "sidecars"):
            (self.spool / sub).mkdir(parents=True, exist_ok=True)
        base = f"{call_id.replace('/', '%2F')}-{rid[:8]}"
        path = self.spool / "pcaps" / f"{base}.{fmt}"
        path.write_bytes(data)
        meta_path = self.spool / "metadata" / f"rtpengine-meta-{base}.txt"
        meta_path.write_text(f"{path}\n")
        side = sidecar_for(legs)
        name = codec or ("PCMU" if pt == 0 else "PCMA" if pt == 8 else "G722")
        streams = side["streams"]
        assert isinstance(streams, list)
        for s in streams:
            s.update({"codec": name, "packets": int(seconds * 50), "loss_pct": loss,
                      "jitter_ms": jitter, "mos": mos, "dst": "127.0.0.1:30000"})  # fmt: skip
        meta = meta if meta is not None else {"from": caller or "", "to": callee or ""}
        doc = {
            **side, "id": rid, "node": node, "call_id": call_id, "tags": ["from-a", "to-b"],
            "metadata": "|".join(f"{k}:{v}" for k, v in meta.items()), "meta": meta,
            "caller": caller, "callee": callee, "format": fmt, "link": "eth",
            "path": str(path), "metadata_path": str(meta_path), "started": started,
            "ended": started + seconds + 0.2, "status": status, "reason": None,
            "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "codecs": [name],
            "sdp": [{"direction": "offer", "party": "from-a", "in": "v=0\r\n",
                     "out": "v=0\r\no=alice 1 1 IN IP4 203.0.113.1\r\n", "time": started}],
            "pauses": [], **(extra or {}),
        }  # fmt: skip
        side_path = self.spool / "sidecars" / f"{base}.json"
        side_path.write_text(json.dumps(doc))
        doc["sidecar_path"] = str(side_path)
        with self.index.session() as s:
            upsert_sidecar(s, doc)
        self.docs[call_id] = doc
        return doc

    def archive(self, doc: dict[str, Any], *, remove_local: bool = False) -> str | None:
        """Upload the file to the bucket as the uploader would and mark the row archived."""
        assert self.s3 is not None and self.bucket
        key = f"recordings/{doc['id']}.{doc['format']}"
        put = self.s3.client.put_object(  # as storage.s3.objects does: checksum and sha256 metadata
            Bucket=self.bucket, Key=key, Body=Path(doc["path"]).read_bytes(),
            ChecksumAlgorithm="SHA256", Metadata={"sha256": doc["sha256"]})
        version: str | None = put.get("VersionId")
        if remove_local:
            os.unlink(doc["path"])
        with self.index.session() as s:
            rec = s.get(Recording, doc["id"])
            assert rec is not None
            rec.object_key, rec.object_version = key, version
            rec.object_sha256, rec.archive_state = doc["sha256"], "archived"
            rec.local_removed = remove_local
        return version

    def row(self, call_id: str) -> Recording | None:
        with self.index.session() as s:
            return s.get(Recording, self.docs[call_id]["id"])

    def cli(self, *args: str, conf: bool = True) -> Result:
        extra = ["--config-file", str(self.conf)] if conf else []
        runner = CliRunner()
        return runner.invoke(cli, [args[0], *extra, *args[1:]], catch_exceptions=False,
                             env={"COLUMNS": "200"})  # fmt: skip

    def json(self, *args: str) -> Any:
        r = self.cli(*args, "--json")
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout)


@pytest.fixture
def lab(tmp_path: Path, index: Index, index_url: str) -> Iterator[Lab]:  # noqa: F811
    yield Lab(tmp_path, index_url, index)


@pytest.fixture
def s3lab(lab: Lab, s3: MotoServer) -> Iterator[Lab]:  # noqa: F811
    lab.s3, lab.bucket, lab.object_lock = s3, "vault", True
    s3.client.create_bucket(Bucket="vault", ObjectLockEnabledForBucket=True)
    yield lab
