"""relay.state.journal: what is journalled (successful state-changing call requests, with their
ports and clock reads), what is not (query, errors, play media), coalescing (one sink call per
call per loop iteration, on the loop), `set_extra`, and the document of a closed call (None)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from relay.call import Registry
from relay.call.secure import SecureContext
from relay.config.interfaces import Interface
from relay.ng.codec import bencode_decode
from relay.ng.commands import Commands
from relay.ng.errors import NgError
from relay.state.document import decode
from relay.state.journal import Journal

SOURCE = ("127.0.0.1", 5060)
SDP = ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
       "m=audio 4000 RTP/AVP 0\r\n")  # fmt: skip


LOOPBACK = Interface("default", "127.0.0.1", "127.0.0.1", "IP4")


class Rig:
    def __init__(self) -> None:
        ctx = SecureContext(fingerprint=lambda h: f"{h} AA", interfaces=[("f", "127.0.0.1")],
                            rng=random.Random(1))  # fmt: skip
        self.registry = Registry([LOOPBACK], 46600, 46799, secure=ctx)
        self.commands = Commands(self.registry)
        self.sunk: list[tuple[str, bytes | None]] = []
        self.journal = Journal(self.commands, self.registry, "n1",
                               lambda cid, data: self.sunk.append((cid, data)))  # fmt: skip

    def ng(self, **body: Any) -> dict[str, Any]:
        return self.commands.dispatch(body, SOURCE)

    def commands_of(self, call_id: str) -> list[str]:
        data = self.journal.document(call_id)
        assert data is not None
        return [bencode_decode(e.body)["command"] for e in decode(data).ng]

    def close(self) -> None:
        for call_id in list(self.registry.calls):
            self.registry.terminate(call_id)


def test_what_is_journalled_without_a_loop() -> None:
    rig = Rig()
    try:
        rig.ng(command="offer", **{"call-id": "c", "from-tag": "a", "sdp": SDP})
        assert len(rig.sunk) == 1  # no loop: handed over at once
        rig.ng(command="query", **{"call-id": "c"})
        rig.ng(command="ping")
        try:
            rig.ng(command="answer", **{"call-id": "c", "from-tag": "a", "to-tag": "b"})
        except NgError:
            pass  # no SDP: an error reply, not journalled
        rig.ng(command="answer", **{"call-id": "c", "from-tag": "a", "to-tag": "b", "sdp": SDP})
        rig.ng(command="silence media", **{"call-id": "c", "from-tag": "a"})
        rig.ng(command="stop recording", **{"call-id": "c"})
        assert rig.commands_of("c") == ["offer", "answer", "silence media", "stop recording"]
        doc = decode(rig.journal.document("c") or b"")
        assert doc.node == "n1" and doc.seed == rig.registry.calls["c"].seed
        assert doc.created == rig.registry.calls["c"].created == doc.ng[0].clock[0]
        assert [len(e.ports) for e in doc.ng] == [2, 0, 0, 0]  # the offer took both sides' pairs
        assert all(a == "127.0.0.1" for e in doc.ng for a, _ in e.ports)
        assert rig.sunk[-1] == ("c", rig.journal.document("c"))
        rig.ng(command="delete", **{"call-id": "c", "delete-delay": 0})
        assert rig.sunk[-1] == ("c", None) and rig.journal.document("c") is None
        rig.ng(command="delete", **{"call-id": "c"})  # unknown now: a warning, nothing sunk
        assert rig.sunk[-1] == ("c", None)
    finally:
        rig.close()


def test_changes_coalesce_to_one_sink_call_per_loop_iteration() -> None:
    rig = Rig()

    async def run() -> None:
        rig.ng(command="offer", **{"call-id": "c", "from-tag": "a", "sdp": SDP})
        rig.ng(command="answer", **{"call-id": "c", "from-tag": "a", "to-tag": "b", "sdp": SDP})
        rig.journal.set_extra("c", "recording", {"id": "r1", "part": 1})
        rig.ng(command="offer", **{"call-id": "d", "from-tag": "a", "sdp": SDP})
        assert rig.sunk == []  # nothing on the request path: the loop's next iteration
        await asyncio.sleep(0)
        assert [cid for cid, _ in rig.sunk] == ["c", "d"]
        c = decode(rig.sunk[0][1] or b"")
        assert len(c.ng) == 2 and c.extra == {"recording": {"id": "r1", "part": 1}}
        rig.journal.set_extra("nope", "recording", 1)  # no such call: ignored
        await asyncio.sleep(0)
        assert len(rig.sunk) == 2

    try:
        asyncio.run(run())
    finally:
        rig.close()


def test_a_failing_sink_is_logged_not_raised() -> None:
    rig = Rig()

    def broken(call_id: str, data: bytes | None) -> None:
        raise RuntimeError("queue full")

    rig.journal.sink = broken
    try:
        assert rig.ng(command="offer", **{"call-id": "c", "from-tag": "a",
                                          "sdp": SDP})["result"] == "ok"  # fmt: skip
        assert rig.journal.written == 0
    finally:
        rig.close()


def test_an_offer_refused_after_it_made_the_call_is_journalled_and_replayed() -> None:
    """No m= line: rtpengine (and rtpvault) answer "Error rewriting SDP" but keep the call and
    its parties; the journal keeps that request (with the reason), the replay expects it."""
    from relay.state.replay import restore

    rig = Rig()
    no_media = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    try:
        try:
            rig.ng(command="offer", **{"call-id": "c", "from-tag": "a", "to-tag": "b",
                                       "sdp": no_media})  # fmt: skip
        except NgError as exc:
            assert exc.reason == "Error rewriting SDP"
        assert "c" in rig.registry.calls
        rig.ng(command="offer", **{"call-id": "c", "from-tag": "a", "sdp": SDP})
        try:  # refused again: the call was journalled already, nothing to add
            rig.ng(command="offer", **{"call-id": "c", "from-tag": "a", "sdp": no_media})
        except NgError:
            pass
        data = rig.journal.document("c")
        assert data is not None
        doc = decode(data)
        assert [e.error for e in doc.ng] == ["Error rewriting SDP", None]
        before = rig.ng(command="query", **{"call-id": "c"})
        rig.close()
        other = Rig()
        try:
            restore(other.commands, other.registry, data, other.journal)
            after = other.ng(command="query", **{"call-id": "c"})
            before.pop("last signal"), after.pop("last signal")
            assert after == before
        finally:
            other.close()
    finally:
        rig.close()
