"""A recording's end is the call's end (the `delete`), not the moment delete-delay lets the
daemon destroy the call and finalise the file: `ended`/`duration` in the sidecar and the index
are set at the delete, so `search --max-duration` and `show` see the call's real length."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from rtpvault.cli import cli
from tests.integration.recording.conftest import sidecars
from tests.integration.recording.media import Call
from tests.support import daemons
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration

DELETE_DELAY = 4  # rtpengine's default is 30; the mechanism is the same, the test shorter


def test_ended_is_the_delete_not_the_finalisation(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    conf = tmp_path / "rtpengine.conf"
    conf.write_text(f"[rtpengine]\nrecording-dir = {spool}\n")
    relay = daemons.start("rtpvault", tmp_path / "run", extra=[
        f"--recording-dir={spool}", f"--delete-delay={DELETE_DELAY}"])  # fmt: skip

    def search(*args: str) -> list[dict[str, Any]]:
        r = CliRunner().invoke(cli, ["search", "--config-file", str(conf), "--json", *args])
        assert r.exit_code == 0, r.output
        return list(json.loads(r.stdout))

    try:
        call = Call(relay, "short-call@192.0.2.1")
        call.offer(**{"record-call": "yes"})
        call.answer()
        call.media(50, interval=0.02)  # about a second of media
        call.relayed(50)
        before = time.time()
        r = call.command("delete", **{"from-tag": "ft"})  # the daemon's delete-delay applies
        after = time.time()
        assert r["result"] == "ok", r
        # the row says when the call ended while the file is still open (delete-delay)
        assert wait_for(lambda: [x["ended"] for x in search()] != [None]), relay.log()[-2000:]
        (row,) = search()
        assert row["status"] == "recording"
        assert before <= row["ended"] <= after
        assert row["duration"] == pytest.approx(row["ended"] - row["started"])
        (side,) = sidecars(spool)
        assert side["ended"] == row["ended"] and side["status"] == "recording"
        assert [x["id"] for x in search("--max-duration", "10s")] == [row["id"]]
        # the file is finalised after delete-delay, as rtpengine does; the end stays the delete
        assert wait_for(lambda: [x["status"] for x in search()] == ["complete"])
        call.close()
    finally:
        relay.stop()
    (done,) = search("--max-duration", "10s")
    assert (done["ended"], done["duration"]) == (row["ended"], row["duration"])
    (side,) = sidecars(spool)
    assert side["ended"] == row["ended"] and side["status"] == "complete"
    shown = CliRunner().invoke(cli, ["show", "--config-file", str(conf), "short-call@192.0.2.1",
                                     "--json"])  # fmt: skip
    assert json.loads(shown.stdout)["recording"]["duration"] == row["duration"]
