"""rtpvault.archive's sweep of rows purged from another host (docs/storage.md "Several nodes"):
a node removes the files and rows that `rtpvault purge` left to it (status `purged`), its own
only, once; index on SQLite (one node, the embedded default) and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from sqlalchemy import select, update

from rtpvault import archive
from storage.audit import chain
from storage.db import open_index, upgrade
from storage.models import AuditEntry, Recording
from storage.retention import PURGED
from storage.spool_owner import owner
from tests.integration.storage.test_archive_component import archive_default, daemon, documents
from tests.support.wait import wait_for


def test_a_node_removes_what_purge_left_to_it(index_url: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    argv = [f"--recording-dir={spool}", "--recording-node=relay-t"]
    if index_url.startswith("postgresql"):
        upgrade(index_url)
        argv.append(f"--recording-db={index_url}")
    spool.mkdir()
    d, recorder = daemon(*argv)
    comp = archive.attach(d)
    assert comp is not None
    assert owner(str(spool / "pcaps" / "x.pcap")) == "relay-t"  # the spool's mark
    url = index_url if index_url.startswith("postgresql") else archive_default(spool)
    index = open_index(url, create=False)
    try:
        asyncio.run(comp.start())
        docs = [end for _, end in documents(spool, 3)]
        for doc in docs:
            recorder.publish(doc)

        def indexed() -> bool:
            with index.session() as s:
                return len(s.scalars(select(Recording)).all()) == 3

        assert wait_for(indexed, 30, retry_on=(Exception,))
        mine, other, kept = (str(doc["id"]) for doc in docs)
        with index.session() as s:  # as purge on another host leaves them
            s.execute(update(Recording).where(Recording.id.in_((mine, other)))
                      .values(status=PURGED))  # fmt: skip
            s.execute(update(Recording).where(Recording.id == other).values(node="relay-u"))

        def swept() -> bool:
            with index.session() as s:
                return sorted(s.scalars(select(Recording.id)).all()) == sorted((other, kept))

        assert wait_for(swept, 60, retry_on=(Exception,))
        assert not Path(str(docs[0]["path"])).exists()
        assert Path(str(docs[1]["path"])).exists()  # relay-u's row: not this node's to remove
        assert Path(str(docs[2]["path"])).exists()

        def audited() -> list[AuditEntry]:  # appended right after the rows go
            with index.session() as s:
                return list(s.scalars(select(AuditEntry).where(
                    AuditEntry.action == "purge-files")))  # fmt: skip

        assert wait_for(audited, 30, retry_on=(Exception,))
        (entry,) = audited()  # counted, then audited: both done now
        assert (entry.target, entry.user) == (mine, "rtpvault@relay-t")
        assert json.loads(entry.details)["removed"] == [str(docs[0]["path"])]
        assert comp.stats()["purged_local"] == 1 and comp.stats()["db_errors"] == 0
        assert chain.verify(index) == []
    finally:
        comp.close()
        index.close()
