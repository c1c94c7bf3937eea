"""rtpvault.peers between two workers' ends of real socketpairs (one process, one loop): an
answer far larger than one datagram (a whole-daemon `forwarding` over thousands of calls)
arrives whole; one beyond MAX_MESSAGE is not sent and the asker gives up."""

from __future__ import annotations

import asyncio
import os

import pytest

from rtpvault.peers import FRAGMENT, MAX_MESSAGE, Channels, Peers


def _pair() -> tuple[Channels, Peers, Peers]:
    channels = Channels(2)
    return channels, Peers(channels, 0), Peers(channels, 1)


def test_large_answers_arrive_whole() -> None:
    noise = os.urandom(3 * FRAGMENT + 123)  # does not compress: four fragments
    rows = [f"call-{i} ft rtp 127.0.0.1:{i} path=userspace\n" for i in range(200_000)]

    async def main() -> None:
        channels, zero, one = _pair()
        one.serve("noise", lambda _: noise)
        one.serve("rows", lambda n: rows[:n])
        loop = asyncio.get_running_loop()
        zero.start(loop)
        one.start(loop)
        try:
            assert await zero.ask(1, "noise", None) == noise
            assert await zero.ask(1, "rows", len(rows)) == rows  # ~9 MB pickled
            assert await zero.ask(1, "rows", 3) == rows[:3]  # small: one plain datagram
        finally:
            zero.close()
            one.close()
            channels.close()

    asyncio.run(main())


def test_a_message_beyond_the_limit_is_dropped_and_counted() -> None:
    async def main() -> None:
        channels, zero, one = _pair()
        one.serve("huge", lambda _: os.urandom(MAX_MESSAGE + 1))
        loop = asyncio.get_running_loop()
        zero.start(loop)
        one.start(loop)
        try:
            with pytest.raises(TimeoutError):
                await zero.ask(1, "huge", None, timeout=1.0)
            assert one.dropped == 1
        finally:
            zero.close()
            one.close()
            channels.close()

    asyncio.run(main())
