"""A recorded call survives `kill -9` of its daemon with Redis on (issue 20 item 3): the
restarted daemon restores the call and goes on recording it into part 2 of the same recording,
while its start-up recovery finalises part 1 (docs/recording.md "Parts"). Real daemons, the
machine's Redis, the default SQLite index in the spool, tshark over both files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import redis

from storage.db import default_url, open_index
from storage.models import Recording
from tests.integration.recording.conftest import rtp_streams, tshark_read
from tests.integration.recording.media import Call
from tests.support.wait import wait_for

from .rig import Relaunch, kill9

KEY = b"rtpvault:call:"
CALL = "parts-kill9@pbx"
PER_PACKET = 16 + 28 + 172  # record header, IPv4 + UDP (raw link), RTP with 160 bytes


def _state(client: redis.Redis) -> dict[str, Any] | None:
    """The recording's state in the call's Redis document, once both parties are in it."""
    raw = client.get(KEY + CALL.encode())
    if not isinstance(raw, bytes):
        return None
    state = (json.loads(raw).get("extra") or {}).get("recording")
    return state if isinstance(state, dict) and len(state.get("parties") or []) == 2 else None


def _sidecars(spool: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((spool / "sidecars").glob("*.json"))]


def _both_ways(call: Call, n: int, start: int) -> tuple[int, int]:
    call.media(n, start=start)
    return call.received(call.callee, n), call.received(call.caller, n)


def test_kill9_recording_goes_on_in_a_linked_part(redis_db: tuple[int, redis.Redis],
                                                  tmp_path: Path) -> None:  # fmt: skip
    db, client = redis_db
    spool = tmp_path / "spool"
    rig = Relaunch(tmp_path / "run", [f"--redis=127.0.0.1:6379/{db}", f"--recording-dir={spool}"])
    d = rig.start()
    call = Call(d, CALL)
    try:
        call.offer(**{"record-call": "yes", "metadata": "from:alice|to:bob"})
        call.answer()
        assert _both_ways(call, 20, 0) == (20, 20)
        state = wait_for(lambda: _state(client), 10)
        assert state is not None, d.log()
        pcap = Path(state["path"])
        # both directions' 20 packets flushed (at least twice a second) before the kill
        assert wait_for(lambda: pcap.stat().st_size >= 24 + 40 * PER_PACKET, 10), d.log()
        kill9(d)
        d2 = rig.start()
        call.ng.close()
        call.ng = d2.client()
        assert call.command("query")["result"] == "ok", d2.log()
        after = _both_ways(call, 30, 20)
        assert after[0] > 0 and after[1] > 0, (after, d2.log())
        call.delete()
        assert wait_for(lambda: sorted(s["status"] for s in _sidecars(spool)) == [
            "complete", "interrupted"], 15), d2.log()  # fmt: skip
    finally:
        call.close()
        rig.stop_all()
    docs = {s["part"]: s for s in _sidecars(spool)}
    one, two = docs[1], docs[2]
    assert (state["id"], state["part"], state["part_id"]) == (one["id"], 1, one["id"])
    assert one["status"] == "interrupted" and one["series"] == one["id"]
    assert two["status"] == "complete" and two["series"] == one["id"]
    assert two["path"] != one["path"] and Path(two["path"]).name.startswith("parts-kill9%40pbx-")
    assert {p["tag"] for p in two["parties"]} == {"ft", "tt"}
    for doc, least in ((one, 20), (two, 1)):
        assert tshark_read(Path(doc["path"])).returncode == 0
        streams = rtp_streams(Path(doc["path"]))
        ssrcs = {k[4]: v[1] for k, v in streams.items()}
        assert set(ssrcs) == {0xAAAA0001, 0xBBBB0002}, streams
        assert min(ssrcs.values()) >= least, streams
    # part 2 holds what reached the relay after the restore: at least what each side received
    # (the tap comes before forwarding), at most what was sent
    part2 = {k[4]: v[1] for k, v in rtp_streams(Path(two["path"])).items()}
    assert after[0] <= part2[0xAAAA0001] <= 30 and after[1] <= part2[0xBBBB0002] <= 30, part2
    ix = open_index(default_url(str(spool)), create=False)
    try:
        with ix.session() as s:
            rows = {r.part: (r.id, r.series_id, r.status) for r in s.query(Recording)}
    finally:
        ix.close()
    assert rows == {1: (one["id"], one["id"], "interrupted"),
                    2: (two["id"], one["id"], "complete")}  # fmt: skip


def test_a_second_kill_gives_part_three(redis_db: tuple[int, redis.Redis],
                                        tmp_path: Path) -> None:  # fmt: skip
    """The restored call's Redis document names part 2 (noted after the replay, which seeds
    the journal with the stored document), so the next restore records part 3."""
    db, client = redis_db
    spool = tmp_path / "spool"
    rig = Relaunch(tmp_path / "run", [f"--redis=127.0.0.1:6379/{db}", f"--recording-dir={spool}"])
    daemons = [rig.start()]
    call = Call(daemons[0], CALL)
    try:
        call.offer(**{"record-call": "yes"})
        call.answer()
        for part in (1, 2):
            assert min(_both_ways(call, 10, 10 * part)) > 0, daemons[-1].log()

            def noted(n: int = part) -> bool:
                state = _state(client)
                return state is not None and state["part"] == n

            assert wait_for(noted, 10), (_state(client), daemons[-1].log())
            kill9(daemons[-1])
            daemons.append(rig.start())
            call.ng.close()
            call.ng = daemons[-1].client()
        assert min(_both_ways(call, 10, 40)) > 0, daemons[-1].log()
        call.delete()
        assert wait_for(lambda: sorted(s["status"] for s in _sidecars(spool)) == [
            "complete", "interrupted", "interrupted"], 15), daemons[-1].log()  # fmt: skip
    finally:
        call.close()
        rig.stop_all()
    docs = sorted(_sidecars(spool), key=lambda s: s["part"])
    assert [(s["part"], s["series"], s["status"]) for s in docs] == [
        (1, docs[0]["id"], "interrupted"), (2, docs[0]["id"], "interrupted"),
        (3, docs[0]["id"], "complete")]  # fmt: skip
    assert len({s["path"] for s in docs}) == 3
    for s in docs:
        assert tshark_read(Path(s["path"])).returncode == 0
