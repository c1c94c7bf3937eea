"""Call state in Redis through real daemons (issue 20 items 3-4; docs/design/redis-state.md,
docs/spec/config.md §2.10): the key written and deleted, a `kill -9` and restart that brings the
call back with its ports and media, Redis going away mid-call, start-up without Redis, a
restore that skips what it cannot rebuild, and two workers each restoring their own calls."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bencodepy
import pytest
import redis

from tests.integration.recording.media import Call
from tests.support.ng import encode_ordered
from tests.support.tools import free_port, require
from tests.support.wait import wait_for

from .rig import OwnRedis, Relaunch, kill9

KEY = b"rtpvault:call:"


def _doc(client: redis.Redis, call_id: str) -> dict[str, Any] | None:
    raw = client.get(KEY + call_id.encode())
    return json.loads(raw) if isinstance(raw, bytes) else None


def _answered(client: redis.Redis, call_id: str) -> dict[str, Any] | None:
    """The call's document once it holds the offer and the answer (writer threads write after
    the reply), or None after 10 s (a bound on a stuck run, not a measured threshold)."""

    def both() -> dict[str, Any] | None:
        doc = _doc(client, call_id)
        return doc if doc and len(doc["ng"]) == 2 else None

    found: dict[str, Any] | None = wait_for(both, 10)
    return found


def _answer_all(client: redis.Redis, calls: Sequence[Call]) -> dict[str, dict[str, Any]]:
    """Offer and answer each call, wait until each one's document holds both, and return what
    `query` says of each (its `_view`), to compare after a restore."""
    for c in calls:
        c.offer()
        c.answer()
    for c in calls:
        assert _answered(client, c.call_id)
    return {c.call_id: _view(c.command("query")) for c in calls}


def _commands(doc: dict[str, Any]) -> list[bytes]:
    return [bencodepy.decode(base64.b64decode(e["body"]))[b"command"] for e in doc["ng"]]


def _view(reply: dict[str, Any]) -> dict[str, Any]:
    """What `query` says of a call that must be the same after a restore: created, tags, each
    side's local ports."""
    tags = {}
    for tag, side in reply["tags"].items():
        ports = [(s.get("local port"), s.get("local address"))
                 for m in side.get("medias", []) for s in m.get("streams", [])]  # fmt: skip
        tags[tag] = (side.get("tag"), side.get("created"), ports)
    return {"created": reply.get("created"), "tags": tags}


def _both_ways(call: Call, n: int, start: int) -> tuple[int, int]:
    call.media(n, start=start)
    return call.received(call.callee, n), call.received(call.caller, n)


def _close(*things: Any) -> None:
    for t in things:
        t.close()


def test_offer_answer_write_the_key_and_delete_removes_it(redis_db: tuple[int, redis.Redis],
                                                          tmp_path: Path) -> None:  # fmt: skip
    db, client = redis_db
    d = Relaunch(tmp_path, [f"--redis=[::1]:6379/{db}"]).start()  # rtpengine's IPv6 spelling
    call = Call(d, "redis-write-1")
    try:
        call.offer()
        call.answer()
        doc = _answered(client, "redis-write-1")
        assert doc is not None, d.log()
        assert doc["v"] == 1 and doc["call_id"] == "redis-write-1"
        assert _commands(doc) == [b"offer", b"answer"]
        assert doc["ng"][0]["ports"]  # the ports the offer took
        assert 0 < client.ttl(KEY + b"redis-write-1") <= 86400  # SET … EX redis-expires
        call.delete()
        assert wait_for(lambda: client.exists(KEY + b"redis-write-1") == 0, 10), d.log()
    finally:
        _close(call)
        d.stop()
    assert "Established initial connection to Redis [::1]:6379" in d.log()


def test_redis_write_takes_the_writes_and_redis_the_restore(
        redis_db: tuple[int, redis.Redis], own_redis: OwnRedis,
        tmp_path: Path) -> None:  # fmt: skip
    db, client = redis_db
    rig = Relaunch(tmp_path, [f"--redis=127.0.0.1:6379/{db}",
                              f"--redis-write=127.0.0.1:{own_redis.port}/0"])  # fmt: skip
    d = rig.start()
    call = Call(d, "redis-split")
    try:
        call.offer()
        call.answer()
        written = own_redis.client()
        assert wait_for(lambda: _doc(written, "redis-split"), 10), d.log()
        assert client.exists(KEY + b"redis-split") == 0  # not in the read DB
        kill9(d)
        d2 = rig.start()  # restores from `redis`, which has no call
        ng = d2.client()
        assert ng.call({"command": "query", "call-id": "redis-split"})["result"] == "error"
        ng.close()
    finally:
        _close(call)
        rig.stop_all()
    assert re.search(r"Redis restore: 0 calls restored, 0 skipped", d2.log()), d2.log()


def test_kill9_restart_restores_call_ports_and_media(redis_db: tuple[int, redis.Redis],
                                                     tmp_path: Path) -> None:  # fmt: skip
    db, client = redis_db
    rig = Relaunch(tmp_path, [f"--redis=127.0.0.1:6379/{db}"])
    d = rig.start()
    call = Call(d, "redis-kill9")
    try:
        call.offer()
        call.answer()
        assert _both_ways(call, 10, 0) == (10, 10)

        def peers_stored() -> bool:  # delayed learning confirms the peers after 3 s of media
            call.media(5, start=10)
            call.received(call.callee, 5)
            call.received(call.caller, 5)
            doc = _doc(client, "redis-kill9")
            return bool(doc and len(doc["ng"]) == 2
                        and sum("peer" in m for m in doc["media"].values()) >= 2)  # fmt: skip

        assert wait_for(peers_stored, 30), d.log()
        before = call.command("query")
        assert before["result"] == "ok"
        kill9(d)
        d2 = rig.start()
        call.ng.close()
        call.ng = d2.client()
        after = call.command("query")
        assert after["result"] == "ok", after
        assert _view(after) == _view(before)
        got = _both_ways(call, 10, 100)
        assert got[0] > 0 and got[1] > 0, (got, d2.log())  # RTP flows again both ways
        call.delete()
        assert wait_for(lambda: client.exists(KEY + b"redis-kill9") == 0, 10), d2.log()
    finally:
        _close(call)
        rig.stop_all()
    assert re.search(r"Redis restore: 1 calls restored, 0 skipped in \d+ ms", d2.log())


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())


def _sample(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, flags=re.M)
    assert m, (name, text[-2000:])
    return float(m.group(1))


def test_redis_down_mid_call_calls_go_on_and_state_is_written_when_back(
        own_redis: OwnRedis, tmp_path: Path) -> None:  # fmt: skip
    mport = free_port(socket.SOCK_STREAM)
    d = Relaunch(tmp_path, [f"--redis=127.0.0.1:{own_redis.port}/0", "--prometheus",
                            f"--prometheus-listen=127.0.0.1:{mport}"]).start()  # fmt: skip
    client = own_redis.client()
    a, b = Call(d, "redis-down-a"), Call(d, "redis-down-b")
    try:
        a.offer()
        a.answer()
        assert wait_for(lambda: _doc(client, "redis-down-a"), 10)
        own_redis.kill()
        b.offer()  # signalling goes on without Redis
        b.answer()
        assert _both_ways(a, 5, 0) == (5, 5) and _both_ways(b, 5, 0) == (5, 5)
        lost = f"Lost connection to Redis 127.0.0.1:{own_redis.port}"
        assert wait_for(lambda: lost in d.log(), 15), d.log()
        text = _metrics(mport)
        assert _sample(text, "rtpvault_redis_up") == 0
        assert _sample(text, "rtpvault_redis_write_errors_total") >= 1
        assert wait_for(lambda: _sample(_metrics(mport), "rtpvault_redis_write_errors_total")
                        >= 2, 20)  # retried, each attempt counted  # fmt: skip
        own_redis.start()
        client = own_redis.client()
        doc = wait_for(lambda: _doc(client, "redis-down-b"), 60)
        assert doc is not None and _commands(doc)[:2] == [b"offer", b"answer"], d.log()
        text = _metrics(mport)
        assert _sample(text, "rtpvault_redis_up") == 1
        assert _sample(text, "rtpvault_redis_retried_writes_total") >= 1
        assert a.command("query")["result"] == b.command("query")["result"] == "ok"
    finally:
        _close(a, b)
        d.stop()
    log = d.log()
    assert log.count(lost) == 1, log  # one line, not one per write or retry
    assert log.count(f"RE-Established connection to Redis 127.0.0.1:{own_redis.port}") == 1


@pytest.mark.parametrize("workers", [1, 2])
def test_startup_without_redis_fails_as_rtpengine(tmp_path: Path, workers: int) -> None:
    port = free_port(socket.SOCK_STREAM)  # nothing listens there
    proc, log_path = Relaunch(tmp_path, [f"--redis=127.0.0.1:{port}/0"],
                              num_threads=workers).popen()  # fmt: skip
    try:
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = log_path.read_text()
    assert code == 255, log
    assert f"Failed to connect to Redis 127.0.0.1:{port}, error:" in log
    assert (f"Fatal error: Cannot start up without running Redis 127.0.0.1:{port} database! "
            "See also NO_REDIS_REQUIRED parameter.") in log  # fmt: skip


def test_startup_without_redis_and_no_redis_required_serves(tmp_path: Path) -> None:
    port = free_port(socket.SOCK_STREAM)
    d = Relaunch(tmp_path, [f"--redis=127.0.0.1:{port}/0", "--no-redis-required"]).start()
    call = Call(d, "redis-not-required")
    server = OwnRedis(port, tmp_path)
    try:
        call.offer()
        call.answer()
        assert _both_ways(call, 5, 0) == (5, 5)
        assert f"Starting with no initial connection to Redis 127.0.0.1:{port} !" in d.log()
        server.start()  # Redis comes: what is kept is written
        assert wait_for(lambda: _doc(server.client(), "redis-not-required"), 60), d.log()
    finally:
        _close(call)
        d.stop()
        server.kill()


def test_restore_skips_a_call_whose_port_is_taken(redis_db: tuple[int, redis.Redis],
                                                  tmp_path: Path) -> None:  # fmt: skip
    db, client = redis_db
    rig = Relaunch(tmp_path, [f"--redis=127.0.0.1:6379/{db}"])
    d = rig.start()
    a, b = Call(d, "redis-skip-a"), Call(d, "redis-skip-b")
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        _answer_all(client, (a, b))
        client.set(KEY + b"redis-skip-bad", b"{not a document")
        kill9(d)
        blocker.bind(("127.0.0.1", a.callee.relay_port))  # one of a's relay ports is taken
        d2 = rig.start()
        ng = d2.client()
        assert ng.call({"command": "query", "call-id": "redis-skip-b"})["result"] == "ok"
        gone = ng.call({"command": "query", "call-id": "redis-skip-a"})
        assert gone["result"] == "error", gone
        ng.close()
        # one writer thread writes in order: once a new call's key is there, a deletion of the
        # skipped call's key queued before it would have gone first
        c = Call(d2, "redis-skip-c")
        c.offer()
        assert wait_for(lambda: _doc(client, "redis-skip-c"), 10)
        c.close()
        # deleted, as rtpengine's json_restore_call does with a call it cannot restore
        assert _doc(client, "redis-skip-a") is None
        assert client.get(KEY + b"redis-skip-bad") is None
    finally:
        blocker.close()
        _close(a, b)
        rig.stop_all()
    log = d2.log()
    assert re.search(r"Redis restore: call redis-skip-a skipped: .*\b"
                     rf"{a.callee.relay_port}\b", log), log  # fmt: skip
    assert re.search(r"Redis restore: call redis-skip-bad skipped: bad document", log), log
    assert re.search(r"Redis restore: 1 calls restored, 2 skipped in \d+ ms", log), log


def test_two_workers_restore_each_their_calls(redis_db: tuple[int, redis.Redis],
                                              tmp_path: Path) -> None:  # fmt: skip
    db, client = redis_db
    rig = Relaunch(tmp_path, [f"--redis=127.0.0.1:6379/{db}"], num_threads=2, ports=200)
    d = rig.start()
    ids = [f"redis-w2-{i}" for i in range(6)]
    calls = [Call(d, i) for i in ids]
    try:
        before = _answer_all(client, calls)
        kill9(d)
        d2 = rig.start()
        ng = d2.client()
        for i in ids:  # one ng port: each query reaches the worker that owns the call
            r = ng.call({"command": "query", "call-id": i})
            assert r["result"] == "ok", (i, r, d2.log())
            assert _view(r) == before[i]
        ng.close()
    finally:
        _close(*calls)
        rig.stop_all()
    restored = [int(n) for n in re.findall(
        r"Redis restore \(worker \d\): (\d+) calls restored, 0 skipped", d2.log())]  # fmt: skip
    assert len(restored) == 2 and sum(restored) == 6, d2.log()


def test_bad_address_is_a_config_error(tmp_path: Path) -> None:
    proc, log_path = Relaunch(tmp_path, ["--redis=127.0.0.1:6379"]).popen()
    assert proc.wait(30) == 1
    assert "Invalid Redis endpoint" in log_path.read_text()


def test_a_killed_worker_comes_back_with_its_calls(redis_db: tuple[int, redis.Redis],
                                                   tmp_path: Path) -> None:  # fmt: skip
    """The supervisor forks a killed worker again (rtpvault.supervisor); with `redis` the new
    worker restores the calls the dead one owned, the other worker's calls are untouched."""
    from tests.integration.workers.workers import owned_call_ids, wait_workers

    db, client = redis_db
    d = Relaunch(tmp_path, [f"--redis=127.0.0.1:6379/{db}"], num_threads=2, ports=200).start()
    ids = owned_call_ids(0, 2, "redis-wk0-") + owned_call_ids(1, 2, "redis-wk1-")
    calls = [Call(d, i) for i in ids]
    try:
        before = _answer_all(client, calls)
        pids = wait_workers(d, 2)
        os.kill(pids[0], signal.SIGKILL)
        wait_workers(d, 2, frozenset({pids[0]}))
        for c in calls:
            r = c.command("query")
            assert r["result"] == "ok", (c.call_id, r, d.log())
            assert _view(r) == before[c.call_id]
        for c in calls:
            got = _both_ways(c, 5, 0)
            assert got[0] > 0 and got[1] > 0, (c.call_id, got)
    finally:
        _close(*calls)
        d.stop()
    n0 = len(owned_call_ids(0, 2, "redis-wk0-"))
    assert re.search(rf"Redis restore \(worker 0\): {n0} calls restored, 0 skipped", d.log())


def test_a_hung_redis_blocks_no_call(own_redis: OwnRedis, tmp_path: Path) -> None:
    """Redis stopped (SIGSTOP: connections open, no answers): with `redis-cmd-timeout` the
    writes time out and are retried; ng and media never wait for Redis."""
    d = Relaunch(tmp_path, [f"--redis=127.0.0.1:{own_redis.port}/0",
                            "--redis-cmd-timeout=200"]).start()  # fmt: skip
    client = own_redis.client()
    a, b = Call(d, "redis-hung-a"), Call(d, "redis-hung-b")
    assert own_redis.proc is not None
    try:
        a.offer()
        a.answer()
        assert wait_for(lambda: _doc(client, "redis-hung-a"), 10)
        own_redis.proc.send_signal(signal.SIGSTOP)
        try:
            b.offer()
            b.answer()
            assert _both_ways(b, 5, 0) == (5, 5)
            assert a.command("query")["result"] == "ok"
            lost = f"Lost connection to Redis 127.0.0.1:{own_redis.port}"
            assert wait_for(lambda: lost in d.log(), 15), d.log()
        finally:
            own_redis.proc.send_signal(signal.SIGCONT)
        assert wait_for(lambda: _doc(client, "redis-hung-b"), 60), d.log()
    finally:
        _close(a, b)
        d.stop()


@pytest.mark.parametrize("required", [True, False])
def test_startup_without_redis_as_the_real_rtpengine(tmp_path: Path, required: bool) -> None:
    """rtpengine 10.5 and rtpvault, same options, Redis unreachable: the same exit status and
    the same lines (docs/spec/config.md §2.10)."""
    port = free_port(socket.SOCK_STREAM)
    extra = [f"--redis=127.0.0.1:{port}/0", *([] if required else ["--no-redis-required"])]
    rig = Relaunch(tmp_path / "rtpvault", extra)
    lines = [f"Failed to connect to Redis 127.0.0.1:{port}, error: Connection refused",
             f"Fatal error: Cannot start up without running Redis 127.0.0.1:{port} database! "
             "See also NO_REDIS_REQUIRED parameter." if required else
             f"Starting with no initial connection to Redis 127.0.0.1:{port} !"]  # fmt: skip
    engine = subprocess.Popen([require("rtpengine"), *rig.args(), "--no-log-timestamps"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        out, _ = engine.communicate(timeout=3)
    except subprocess.TimeoutExpired:  # it serves: stop it
        engine.terminate()
        out, _ = engine.communicate(timeout=10)
    text = out.decode(errors="replace")
    assert all(line in text for line in lines), text
    assert (engine.returncode == 255) == required, text
    if required:
        proc, log_path = rig.popen()
        assert proc.wait(30) == 255
        log = log_path.read_text()
    else:
        d = rig.start()
        log = d.log()
        d.stop()
    assert all(line in log for line in lines), log


def test_a_graceful_stop_keeps_the_keys(redis_db: tuple[int, redis.Redis],
                                        tmp_path: Path) -> None:  # fmt: skip
    """SIGTERM ends the calls locally but keeps their keys, as rtpengine's shutdown (call_free
    deletes none; docs/spec/config.md §2.10): the next start restores them."""
    db, client = redis_db
    rig = Relaunch(tmp_path, [f"--redis=127.0.0.1:6379/{db}"])
    d = rig.start()
    call = Call(d, "redis-sigterm")
    try:
        call.offer()
        call.answer()
        assert _answered(client, "redis-sigterm")
        assert d.stop() == 0
        assert _doc(client, "redis-sigterm") is not None
        d2 = rig.start()
        call.ng.close()
        call.ng = d2.client()
        assert call.command("query")["result"] == "ok"
    finally:
        _close(call)
        rig.stop_all()


def test_password_in_the_address_or_the_environment(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """`PASSWORD@HOST:PORT/DB`, else RTPENGINE_REDIS_AUTH_PW (docs/spec/config.md §2.10); a
    wrong one is a failed connection: exit 255 without no-redis-required."""
    server = OwnRedis(free_port(socket.SOCK_STREAM), tmp_path, password="s3cret@pw")
    server.start()
    client = server.client()
    try:
        d = Relaunch(tmp_path / "a", [f"--redis=s3cret@pw@127.0.0.1:{server.port}/0"]).start()
        call = Call(d, "redis-pw-a")
        call.offer()
        assert wait_for(lambda: _doc(client, "redis-pw-a"), 10), d.log()
        _close(call)
        d.stop()
        monkeypatch.setenv("RTPENGINE_REDIS_AUTH_PW", "s3cret@pw")
        d = Relaunch(tmp_path / "b", [f"--redis=127.0.0.1:{server.port}/0"]).start()
        call = Call(d, "redis-pw-b")
        call.offer()
        assert wait_for(lambda: _doc(client, "redis-pw-b"), 10), d.log()
        _close(call)
        d.stop()
        monkeypatch.setenv("RTPENGINE_REDIS_AUTH_PW", "wrong")
        proc, log_path = Relaunch(tmp_path / "c", [f"--redis=127.0.0.1:{server.port}/0"]).popen()
        assert proc.wait(30) == 255
        log = log_path.read_text()
        assert f"Failed to connect to Redis 127.0.0.1:{server.port}, error:" in log
        assert "wrong" not in log and "s3cret" not in log
    finally:
        server.kill()


def test_no_ng_answer_before_the_restore_ends(redis_db: tuple[int, redis.Redis],
                                              tmp_path: Path) -> None:  # fmt: skip
    """Queries sent from the moment the daemon starts: the first answer already knows every
    restored call (rtpengine restores before its pollers read the ng socket, §2.10)."""
    db, client = redis_db
    rig = Relaunch(tmp_path, [f"--redis=127.0.0.1:6379/{db}"], ports=400)
    d = rig.start()
    ng = d.client()
    sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           "m=audio {} RTP/AVP 0\r\n")  # fmt: skip
    ids = [f"redis-early-{i}" for i in range(60)]
    for n, i in enumerate(ids):
        body = {"command": "offer", "call-id": i, "from-tag": "a", "sdp": sdp.format(9000 + 2 * n)}
        assert ng.call(body)["result"] == "ok"
    ng.close()
    assert wait_for(lambda: client.dbsize() == len(ids), 10)
    kill9(d)
    proc, log_path = rig.popen()
    answers: list[str] = []
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(0.2)
        query = b"early " + encode_ordered({"command": "query", "call-id": ids[-1]})
        deadline = wait_for(lambda: proc.poll() is not None or _asked(sock, rig.ng_port, query,
                                                                      answers), 30)  # fmt: skip
        assert deadline and proc.poll() is None, log_path.read_text()
        sock.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert answers and "result2:ok" in answers[0], (answers, log_path.read_text())


def _asked(sock: socket.socket, port: int, query: bytes, answers: list[str]) -> bool:
    try:
        sock.sendto(query, ("127.0.0.1", port))
        data = sock.recv(65535)
    except OSError:  # not bound yet (ICMP port unreachable), or no answer yet
        return False
    answers.append(data.decode(errors="replace"))
    return True


def test_a_worker_killed_while_redis_is_down_still_serves(own_redis: OwnRedis,
                                                          tmp_path: Path) -> None:  # fmt: skip
    """no-redis-required is false, but it is a start-up rule: a worker forked again while the
    daemon serves starts without Redis (its old calls are lost) instead of failing every
    second, and new calls on it work; their state is written once Redis is back."""
    from tests.integration.workers.workers import owned_call_ids, wait_workers

    d = Relaunch(tmp_path, [f"--redis=127.0.0.1:{own_redis.port}/0"], num_threads=2,
                 ports=200).start()  # fmt: skip
    other = Call(d, owned_call_ids(1, 1, "redis-wd1-")[0])
    fresh = Call(d, owned_call_ids(0, 1, "redis-wd0-")[0])
    try:
        other.offer()
        other.answer()
        own_redis.kill()
        pids = wait_workers(d, 2)
        os.kill(pids[0], signal.SIGKILL)
        wait_workers(d, 2, frozenset({pids[0]}))
        fresh.offer()
        fresh.answer()
        assert _both_ways(fresh, 5, 0) == (5, 5)
        assert other.command("query")["result"] == "ok"
        own_redis.start()
        assert wait_for(lambda: _doc(own_redis.client(), fresh.call_id), 60), d.log()
    finally:
        _close(other, fresh)
        d.stop()
    assert (f"Starting with no initial connection to Redis 127.0.0.1:{own_redis.port} !"
            in d.log())  # fmt: skip
