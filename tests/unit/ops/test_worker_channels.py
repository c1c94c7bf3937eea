"""rtpvault.peers between real forked processes, and the call-id → worker rule of rtpvault.shard."""

from __future__ import annotations

import asyncio
import os
import signal
import zlib

from hypothesis import given
from hypothesis import strategies as st

from rtpvault.peers import Channels, Peers
from rtpvault.shard import owner_of


@given(st.text(), st.integers(min_value=1, max_value=64))
def test_owner_is_the_crc32_of_the_call_id_modulo_the_workers(call_id: str, workers: int) -> None:
    owner = owner_of(call_id, workers)
    assert 0 <= owner < workers
    assert owner == zlib.crc32(call_id.encode("utf-8", "surrogatepass")) % workers


def test_owner_is_the_same_in_every_process() -> None:
    """Python's str hash is salted per process; the owner must not be."""
    assert [owner_of(f"call-{i}", 2) for i in range(6)] == [0, 0, 0, 0, 1, 1]
    assert owner_of("\udcff lone surrogate", 3) in (0, 1, 2)


def _child(channels: Channels, index: int) -> None:
    async def main() -> None:
        peers = Peers(channels, index)
        peers.serve("double", lambda x: 2 * x)
        peers.serve("boom", lambda x: 1 // 0)
        peers.start(asyncio.get_running_loop())
        await asyncio.sleep(30)

    try:
        asyncio.run(main())
    finally:
        os._exit(0)


def test_ask_gather_and_a_dead_worker() -> None:
    channels = Channels(3)
    pids = []
    for index in (1, 2):
        pid = os.fork()
        if pid == 0:
            _child(channels, index)
        pids.append(pid)

    async def main() -> None:
        peers = Peers(channels, 0)
        peers.serve("double", lambda x: 2 * x)
        peers.start(asyncio.get_running_loop())
        assert await peers.ask(1, "double", 21) == 42
        assert await peers.gather("double", 5) == [10, 10, 10]
        try:
            await peers.ask(2, "boom", 0)
        except RuntimeError as exc:
            assert "ZeroDivisionError" in str(exc)
        else:
            raise AssertionError("a failing handler must fail the ask")
        os.kill(pids[1], signal.SIGKILL)
        os.waitpid(pids[1], 0)
        # worker 2 is dead: the gather gives up on it after the timeout, the others answer
        assert await peers.gather("double", 1, timeout=0.5) == [2, 2]
        peers.close()

    try:
        asyncio.run(main())
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        channels.close()
