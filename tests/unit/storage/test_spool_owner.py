"""storage.spool_owner and the purge rules that use it (docs/storage.md "Several nodes"): a
recording's files are purged where they are, and left to their node where they are not."""

from __future__ import annotations

import hashlib
import time
import uuid
from pathlib import Path

from sqlalchemy import select

from storage.db import Index
from storage.ingest import upsert_sidecar
from storage.models import Recording
from storage.retention import PURGED, purge_claim, purge_one, purge_query, purged_here
from storage.spool_owner import MARKER, mark, on_this_host, owner


def spool(root: Path) -> Path:
    for sub in ("pcaps", "metadata", "sidecars"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def test_marking_a_spool_names_its_node(tmp_path: Path) -> None:
    s = spool(tmp_path / "spool")
    f = str(s / "pcaps" / "x.pcap")
    assert owner(f) is None and on_this_host(f, "media-b")  # unmarked: as before
    mark(str(s), "media-a")
    assert (s / MARKER).read_text() == "media-a\n" and owner(f) == "media-a"
    assert on_this_host(f, "media-a") and not on_this_host(f, "media-b")
    assert not on_this_host(str(tmp_path / "other" / "pcaps" / "x.pcap"), "media-a")
    mark(str(s), "media-b")  # the node renamed: the mark follows
    assert owner(f) == "media-b" and list(s.glob(f"{MARKER}.*")) == []


def add(index: Index, root: Path, node: str, started: float) -> str:
    rid = str(uuid.uuid4())
    paths = {"path": root / "pcaps" / f"{rid}.pcap", "metadata_path": root / "metadata" /
             f"{rid}.txt", "sidecar_path": root / "sidecars" / f"{rid}.json"}  # fmt: skip
    for p in paths.values():
        if p.parent.is_dir():
            p.write_bytes(b"x")
    doc = {"id": rid, "call_id": f"c-{rid[:6]}", "status": "complete", "started": started,
           "ended": started + 1, "size": 1, "sha256": hashlib.sha256(b"x").hexdigest(),
           "node": node, "streams": [], **{k: str(v) for k, v in paths.items()}}  # fmt: skip
    with index.session() as s:
        upsert_sidecar(s, doc, node=node)
    return rid


def test_purge_removes_what_is_here_and_leaves_the_rest_to_its_node(
    index: Index, tmp_path: Path
) -> None:
    here = spool(tmp_path / "a")
    mark(str(here), "media-a")
    old = time.time() - 1000
    own = add(index, here, "media-a", old)
    theirs = add(index, tmp_path / "b", "media-b", old)  # media-b's spool is not on this host
    now = time.time()
    results = {}
    for rid in (own, theirs):
        with index.session() as s:
            rec = s.scalars(purge_claim(rid, now - 10, now)).one()
            results[rid] = purge_one(s, rec, store=None, bucket=None)
    assert results[own].left_to is None and len(results[own].removed) == 3
    assert results[theirs].left_to == "media-b" and results[theirs].removed == ()
    with index.session() as s:
        assert s.get(Recording, own) is None
        assert s.get(Recording, theirs).status == PURGED  # type: ignore[union-attr]
        assert s.scalars(purge_query(now - 10, now)).all() == []  # not selected again
        assert purged_here(s, "media-a") == []
        assert [r.id for r in purged_here(s, "media-b")] == [theirs]
        assert s.scalars(purge_claim(theirs, now - 10, now)).first() is None
        assert s.scalars(select(Recording.id)).all() == [theirs]
