"""Open-file limits (issue 15 items 8 and 17): the soft limit is raised at start-up, and when
descriptors do run out, no recorded call is lost silently — the reply, the log and the sidecar
say what happened, and "Ran out of ports" names the interface and EMFILE."""

from __future__ import annotations

import resource
from pathlib import Path
from typing import Any

import pytest

from tests.support import daemons
from tests.support.ng import NgClient

from .conftest import sidecars, wait_until

pytestmark = pytest.mark.integration


def _sdp(port: int) -> str:
    return (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=sendrecv\r\n"
    )


def _recorded_call(ng: NgClient, i: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    base = {"call-id": f"fd-{i}", "from-tag": "a", "record-call": "yes"}
    offer = ng.call({**base, "command": "offer", "sdp": _sdp(20000 + 2 * i)})
    if offer.get("result") != "ok":
        return offer, None
    answer = ng.call({**base, "command": "answer", "to-tag": "b", "sdp": _sdp(30000 + 2 * i)})
    return offer, answer


def _start(tmp_path: Path, spool: Path, soft: int | None = None) -> daemons.Daemon:
    """The relay, started with the open-files soft limit at `soft` (inherited from here; 220
    ports: the 49 calls' 196, and few enough for daemons.start to probe under that limit)."""
    saved = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft is not None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, saved[1]))
    try:
        return daemons.start("rtpvault", tmp_path / "run", ports=220, extra=[
            f"--recording-dir={spool}", "--delete-delay=0"])  # fmt: skip
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, saved)


def test_a_low_soft_limit_is_raised_and_every_call_is_recorded(tmp_path: Path) -> None:
    """Under `ulimit -Sn 256`, 25 of 49 recorded calls used to get no recording at all."""
    spool = tmp_path / "spool"
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    relay = _start(tmp_path, spool, soft=256)
    ng = relay.client()
    try:
        replies = [_recorded_call(ng, i) for i in range(49)]
        assert f"open files limit: soft 256 raised to {hard} (hard limit {hard})" in relay.log()
        assert all(o["result"] == "ok" and "warning" not in o for o, _ in replies)
        listed = [o["recordings"][0] for o, _ in replies]
        assert wait_until(lambda: all(Path(p).exists() for p in listed))
        assert len(set(listed)) == 49
    finally:
        ng.close()
        relay.stop()


def test_out_of_descriptors_nothing_is_lost_silently(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    relay = _start(tmp_path, spool)
    ng = relay.client()
    try:
        # the daemon and its worker processes (num-threads: the calls live in the workers)
        pid = relay.proc.pid
        workers = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        for each in (pid, *map(int, workers)):
            resource.prlimit(each, resource.RLIMIT_NOFILE, (100, 100))
        replies = []
        for i in range(100):  # ~6 descriptors a call: the limit is reached long before
            offer, answer = _recorded_call(ng, i)
            replies.append((offer, answer))
            if offer["result"] != "ok":
                break
        assert relay.proc.poll() is None
        last, _ = replies[-1]
        assert last == {"result": "error", "error-reason": "Ran out of ports"}
        log = relay.log()
        assert ("Failed to get 2 consecutive ports on interface 127.0.0.1 for media relay "
                "(last error: Too many open files)") in log  # fmt: skip
        assert "Failed to get 2 consecutive ports on all locals of logical 'lo'" in log
        # every offer answered ok either names a file that exists or says why there is none
        for offer, _ in replies[:-1]:
            assert offer["result"] == "ok"
            if "warning" in offer:
                assert "recordings" not in offer
                assert "(EMFILE)" in offer["warning"], offer["warning"]
            else:
                assert Path(offer["recordings"][0]).exists()
        warned = sum("warning" in o for o, _ in replies)
        assert log.count("recording not created: ") == warned
    finally:
        ng.close()
        relay.stop()
    # recorded, or failed with the reason: the sidecars written at the shutdown say which
    assert wait_until(lambda: len(sidecars(spool)) >= len(replies) - 1 - warned)
    for doc in sidecars(spool):
        assert doc["status"] == "complete" or "(EMFILE)" in (doc["reason"] or ""), doc
