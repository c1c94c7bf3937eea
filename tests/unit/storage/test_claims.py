"""storage.claims: which `uploading` jobs a process may hand back (issue 18: several workers
drain one node's upload queue)."""

from __future__ import annotations

import os
import subprocess
import sys

from storage import claims

NOW = 1_800_000_000.0


def token(h: claims.Holder) -> str:
    return "|".join(("c1", h.host, h.boot, h.pidns, str(h.pid), h.start, "0123abcd"))


def test_own_token_names_this_process() -> None:
    me = claims.current()
    held = claims.parse(claims.own_token())
    assert held == me and me.pid == os.getpid() and me.start != "-"
    assert len(claims.own_token()) <= 128  # uploads.claimed_by


def test_a_live_process_keeps_its_claim_a_dead_one_loses_it() -> None:
    me = claims.current()
    assert not claims.abandoned(claims.own_token(), NOW, NOW)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = claims.Holder(me.host, me.boot, me.pidns, child.pid, claims.start_time(child.pid))
        assert not claims.abandoned(token(alive), 0.0, NOW, me)  # however old the row
    finally:
        child.kill()
        child.wait()
    assert claims.abandoned(token(alive), NOW, NOW, me)


def test_a_reused_pid_is_not_its_former_process() -> None:
    me = claims.current()
    earlier = claims.Holder(me.host, me.boot, me.pidns, me.pid, str(int(me.start) - 1))
    assert claims.abandoned(token(earlier), NOW, NOW, me)


def test_claims_this_host_cannot_check_expire() -> None:
    me = claims.current()
    for other in (
        claims.Holder("other-host", me.boot, me.pidns, me.pid, me.start),
        claims.Holder(me.host, me.boot, "4026539999", me.pid, me.start),  # another container
    ):
        assert not claims.abandoned(token(other), NOW - 60, NOW, me)
        assert claims.abandoned(token(other), NOW - claims.CLAIM_EXPIRY - 1, NOW, me)


def test_same_host_before_a_reboot_is_dead() -> None:
    me = claims.current()
    before = claims.Holder(me.host, "000000000000", me.pidns, me.pid, me.start)
    assert claims.abandoned(token(before), NOW, NOW, me)


def test_tokens_of_earlier_versions_count_as_dead() -> None:
    assert claims.abandoned("n1:1234:abcdef12", NOW, NOW)
    assert claims.abandoned(None, NOW, NOW)
    assert claims.parse("n1:1234:abcdef12") is None
