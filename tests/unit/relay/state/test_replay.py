"""relay.state.journal + relay.state.replay over real loopback sockets, the userspace plane and
the real ng codec (docs/design/redis-state.md): a daemon's calls (SDES, ICE, DTLS, transcoding,
recording, a deleted branch) journalled to documents, the daemon closed, the documents restored
into a fresh Registry/Commands: the same ports bound, `query` answering as before, a re-offer
giving the SDP the first daemon gave, learned peers latched (a real packet is forwarded at
once), and refusals (port taken, call present) that leave nothing behind."""

from __future__ import annotations

import asyncio
import random
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from relay.call import Call, Registry
from relay.call.secure import SecureContext
from relay.config.interfaces import Interface
from relay.dtls.cert import DtlsCertificate, generate_certificate
from relay.media.userspace import UserspacePlane
from relay.ng.codec import bencode_decode
from relay.ng.commands import Commands
from relay.state.document import decode
from relay.state.journal import Journal
from relay.state.replay import RestoreError, restore
from tests.unit.relay.dtls.conftest import NOW

SOURCE = ("127.0.0.1", 5060)
PORT_MIN, PORT_MAX = 46200, 46599
CRYPTO = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + "A" * 40 + "\r\n"


LOOPBACK = Interface("default", "127.0.0.1", "127.0.0.1", "IP4")


@pytest.fixture(scope="module")
def cert() -> DtlsCertificate:
    return generate_certificate(NOW, 0x5151, "rtpvault-replay-test")


def sdp(port: int, protocol: str = "RTP/AVP", extra: str = "", pts: str = "0 8") -> str:
    maps = "".join(f"a=rtpmap:{pt} {'PCMU' if pt == '0' else 'PCMA'}/8000\r\n"
                   for pt in pts.split())  # fmt: skip
    return ("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} {protocol} {pts}\r\n{maps}{extra}a=sendrecv\r\n")  # fmt: skip


def port_of(text: str) -> int:
    m = re.search(r"^m=audio (\d+) ", text, re.M)
    assert m is not None, text
    return int(m.group(1))


class Daemon:
    """A Registry + Commands + Journal as rtpvault.daemon composes them (one worker)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, cert: DtlsCertificate) -> None:
        self.plane = UserspacePlane(loop)
        ctx = SecureContext(fingerprint=lambda h: cert.fingerprint(h).render(),
                            interfaces=[("f1", "127.0.0.1")], rng=random.Random(3),
                            certificate=cert)  # fmt: skip
        self.registry = Registry([LOOPBACK], PORT_MIN, PORT_MAX, self.plane, secure=ctx,
                                 endpoint_learning="immediate")  # fmt: skip
        self.commands = Commands(self.registry)
        self.docs: dict[str, bytes | None] = {}
        self.sink_calls = 0
        self.journal = Journal(self.commands, self.registry, "node-a", self._sink)

    def _sink(self, call_id: str, data: bytes | None) -> None:
        self.sink_calls += 1
        self.docs[call_id] = data

    def ng(self, **body: Any) -> dict[str, Any]:
        reply = self.commands.dispatch(body, SOURCE)
        assert reply["result"] == "ok", reply
        return reply

    def restore(self, data: bytes) -> Call:
        """The stored call rebuilt here, journalled on by this daemon's journal."""
        return restore(self.commands, self.registry, data, self.journal)

    async def media_pass(self) -> None:
        """The journal's once-a-second look at what media taught the calls (the daemon's
        ticker), then time for its writes."""
        self.journal.poll_media()
        await settle()

    def ports(self) -> set[int]:
        return set(self.registry.pools["127.0.0.1"].used)

    def close(self) -> None:
        for call_id in list(self.registry.calls):
            self.registry.terminate(call_id)
        self.plane.close()
        assert self.ports() == set()  # every socket released


def udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


async def recv(sock: socket.socket) -> bytes:
    data, _ = await asyncio.wait_for(asyncio.get_running_loop().sock_recvfrom(sock, 4096), 10)
    return data


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0.01)


@pytest.fixture()
def parties() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = udp(), udp()
    yield a, b
    a.close()
    b.close()


def scenario(d: Daemon, a: socket.socket, b: socket.socket) -> None:
    """The calls: plain (B's SDP names port 9, B sends from elsewhere: latched), SDES, ICE,
    DTLS, transcoding, recording, a forked answer whose branch is deleted."""
    pa, pb = a.getsockname()[1], b.getsockname()[1]
    d.ng(command="offer", **{"call-id": "plain", "from-tag": "a", "sdp": sdp(pa)})
    d.ng(command="answer", **{"call-id": "plain", "from-tag": "a", "to-tag": "b",
                              "sdp": sdp(9)})  # fmt: skip
    d.ng(command="start recording", **{"call-id": "plain"})
    d.ng(command="block DTMF", **{"call-id": "plain", "from-tag": "a"})
    d.ng(command="offer", **{"call-id": "sdes", "from-tag": "a", "sdp": sdp(pa),
                             "transport-protocol": "RTP/SAVP", "ICE": "remove"})  # fmt: skip
    d.ng(command="answer", **{"call-id": "sdes", "from-tag": "a", "to-tag": "b",
                              "sdp": sdp(pb, "RTP/SAVP", CRYPTO)})  # fmt: skip
    d.ng(command="offer", **{"call-id": "ice", "from-tag": "a", "sdp": sdp(pa), "ICE": "force"})
    d.ng(command="answer", **{"call-id": "ice", "from-tag": "a", "to-tag": "b", "sdp": sdp(pb),
                              "ICE": "force"})  # fmt: skip
    d.ng(command="offer", **{"call-id": "dtls", "from-tag": "a", "sdp": sdp(pa),
                             "transport-protocol": "UDP/TLS/RTP/SAVP", "ICE": "remove",
                             "SDES": ["off"]})  # fmt: skip
    d.ng(command="offer", **{"call-id": "tc", "from-tag": "a", "sdp": sdp(pa, pts="0"),
                             "codec": {"transcode": ["PCMA"]}})  # fmt: skip
    d.ng(command="answer", **{"call-id": "tc", "from-tag": "a", "to-tag": "b",
                              "sdp": sdp(pb, pts="8")})  # fmt: skip
    d.ng(command="offer", **{"call-id": "fork", "from-tag": "a", "sdp": sdp(pa),
                             "via-branch": "z9"})  # fmt: skip
    d.ng(command="answer", **{"call-id": "fork", "from-tag": "a", "to-tag": "b1",
                              "sdp": sdp(pb), "via-branch": "z9"})  # fmt: skip
    d.ng(command="answer", **{"call-id": "fork", "from-tag": "a", "to-tag": "b2",
                              "sdp": sdp(pb + 2 if pb < 65000 else pb - 2)})  # fmt: skip
    d.ng(command="delete", **{"call-id": "fork", "from-tag": "a", "to-tag": "b1"})
    d.ng(command="query", **{"call-id": "fork"})  # not journalled


# Fields of `query` that differ after a restore (docs/design/redis-state.md): `last signal` is
# the restore's time (timeouts count from it), and what packets taught the streams before the
# restart is not stored: packet/byte/error counters, the SSRC and codec seen, last packet.
DIFFER = {"last signal", "packets", "bytes", "errors", "SSRC", "codec", "last packet"}


def without(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without(v) for k, v in value.items() if k not in DIFFER}
    if isinstance(value, list):
        return [without(v) for v in value]
    return value


def query(d: Daemon, call_id: str, strip: bool = True) -> dict[str, Any]:
    reply = d.commands.dispatch({"command": "query", "call-id": call_id}, SOURCE)
    if not strip:  # only `last signal` may differ
        return {k: v for k, v in reply.items() if k != "last signal"}
    out = without(reply)
    assert isinstance(out, dict)
    return out


def streams_of(d: Daemon, call_id: str) -> list[tuple[str, int]]:
    return sorted((s.local_address, s.local_port) for s in d.registry.calls[call_id].streams())


def test_documents_restore_the_same_calls(cert: DtlsCertificate,
                                          parties: tuple[socket.socket, socket.socket]) -> None:
    a, b = parties

    async def run() -> None:
        loop = asyncio.get_running_loop()
        first = Daemon(loop, cert)
        scenario(first, a, b)
        await settle()
        # B speaks from its own socket: its stream latches to it (not the SDP's port 9)
        plain = first.registry.calls["plain"]
        to_b = plain.parties["b"].medias[0].rtp
        to_a = plain.parties["a"].medias[0].rtp
        assert to_b is not None and to_a is not None
        b.sendto(b"\x80\x00" + bytes(170), ("127.0.0.1", to_b.local_port))
        assert await recv(a)
        await first.media_pass()
        docs = dict(first.docs)
        assert set(docs) == {"plain", "sdes", "ice", "dtls", "tc", "fork"}
        plain_doc = decode(docs["plain"] or b"")
        assert [bencode_decode(e.body)["command"] for e in plain_doc.ng] == [
            "offer", "answer", "start recording", "block DTMF"]
        assert plain_doc.media[f"127.0.0.1:{to_b.local_port}"]["peer"] == list(b.getsockname())
        assert [len(e.ports) for e in plain_doc.ng] == [2, 0, 0, 0]  # two pairs per offer
        fork_doc = decode(docs["fork"] or b"")
        assert [bencode_decode(e.body)["command"] for e in fork_doc.ng] == [
            "offer", "answer", "answer", "delete"]
        ports = first.ports()
        queries = {cid: query(first, cid) for cid in docs}
        whole = {cid: query(first, cid, strip=False) for cid in docs if cid != "plain"}
        layout = {cid: streams_of(first, cid) for cid in docs}
        created = {cid: first.registry.calls[cid].created for cid in docs}
        # what the first daemon answers to a re-offer (ICE added: fresh draws from call.rng)
        reoffer = {"command": "offer", "call-id": "sdes", "from-tag": "a",
                   "sdp": sdp(a.getsockname()[1]), "transport-protocol": "RTP/SAVP",
                   "ICE": "force"}  # fmt: skip
        expected_sdp = first.ng(**reoffer)["sdp"]
        await settle()
        first.close()

        second = Daemon(loop, cert)
        for cid, data in docs.items():
            assert data is not None
            call = second.restore(data)
            assert call.restored == {} and call.created == created[cid]
            assert call.last_signal >= time.time() - 60
        await settle()
        assert second.sink_calls == 0  # restoring writes nothing: the stored documents are current
        assert second.ports() == ports
        for cid in docs:
            assert streams_of(second, cid) == layout[cid], cid
            assert query(second, cid) == queries[cid], cid
        for cid, reply in whole.items():  # no packets: all but `last signal` the same
            assert query(second, cid, strip=False) == reply, cid
        # learned peer applied: A's packet goes to B's real socket at once, not to port 9
        plain2 = second.registry.calls["plain"].parties["a"].medias[0].rtp
        assert plain2 is not None and plain2.local_port == to_a.local_port
        a.sendto(b"\x80\x00" + b"restored" * 20, ("127.0.0.1", plain2.local_port))
        assert (await recv(b)).endswith(b"restored" * 20)
        assert second.ng(**reoffer)["sdp"] == expected_sdp
        # the restored daemon journals on: the re-offer extends the stored document
        await settle()
        doc = decode(second.docs["sdes"] or b"")
        assert len(doc.ng) == len(decode(docs["sdes"] or b"").ng) + 1
        second.ng(command="delete", **{"call-id": "plain", "delete-delay": 0})
        await settle()
        assert second.docs["plain"] is None
        second.close()

    asyncio.run(run())


def test_a_port_taken_or_a_call_present_refuses_the_restore(
        cert: DtlsCertificate, parties: tuple[socket.socket, socket.socket]) -> None:
    a, b = parties

    async def run() -> None:
        loop = asyncio.get_running_loop()
        first = Daemon(loop, cert)
        first.ng(command="offer", **{"call-id": "c", "from-tag": "a", "sdp": sdp(1000)})
        first.ng(command="answer", **{"call-id": "c", "from-tag": "a", "to-tag": "b",
                                      "sdp": sdp(2000)})  # fmt: skip
        first.ng(command="offer", **{"call-id": "c", "from-tag": "a", "sdp": sdp(1002)})
        await settle()
        data = first.docs["c"]
        assert data is not None
        ports = sorted(p for e in decode(data).ng for _, p in e.ports)
        first.close()
        second = Daemon(loop, cert)
        events: list[tuple[str, dict[str, Any] | None]] = []
        second.registry.listeners.append(
            lambda e: events.append((type(e).__name__, e.call.restored)))
        blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        blocker.bind(("127.0.0.1", ports[-1]))  # the last port the re-offer took
        try:
            with pytest.raises(RestoreError, match=f"port {ports[-1]} taken on 127.0.0.1"):
                second.restore(data)
            await settle()
            assert second.registry.calls == {} and second.ports() == set()
            # the recorder saw the call created (as restored) and then closed: nothing stays open
            assert [name for name, _ in events] == [  # offer, answer; the re-offer failed
                "CallCreated", "CallUpdated", "CallUpdated", "CallClosed"]
            assert events[0][1] == {}
        finally:
            blocker.close()
        second.restore(data)
        with pytest.raises(RestoreError, match="call already present"):
            second.restore(data)
        with pytest.raises(RestoreError, match="bad document"):
            second.restore(b"{}")
        await settle()
        second.close()

    asyncio.run(run())


def _attr(text: str, name: str) -> str:
    m = re.search(rf"^a={name}:(\S+)", text, re.M)
    assert m is not None, text
    return m.group(1)


async def _rtp_at(sock: socket.socket) -> bytes:
    """The next RTP packet at `sock` (STUN checks of the relay's agent skipped)."""
    while True:
        data = await recv(sock)
        if data[0] & 0xC0 == 0x80:
            return data


def test_the_selected_ice_pair_is_restored(cert: DtlsCertificate) -> None:
    """B does ICE (a controlled agent of relay.ice); our agent towards B nominates a pair, the
    document names it, and after the restore A's media reaches B at once, B answering no
    check (without the stored pair media would wait for a new nomination)."""
    from relay.ice import Candidate, IceAgent, LocalSocket, parse_attribute

    a, b, b2 = udp(), udp(), udp()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        first = Daemon(loop, cert)
        pa, pb, pb2 = (s.getsockname()[1] for s in (a, b, b2))
        offer = first.ng(command="offer", **{"call-id": "icep", "from-tag": "a",
                                             "sdp": sdp(pa), "ICE": "force"})["sdp"]  # fmt: skip
        peer = IceAgent(ufrag="peerufrag", pwd="peerpassword0123456789ab",
                        sockets=[LocalSocket(0, ("127.0.0.1", pb), 1, 2130706431),
                                 LocalSocket(1, ("127.0.0.1", pb2), 2, 2130706430)],
                        controlling=False, tie_breaker=7)  # fmt: skip
        peer.set_remote(_attr(offer, "ice-ufrag"), _attr(offer, "ice-pwd"))
        for line in re.findall(r"^(a=candidate:.*?)\r?$", offer, re.M):
            cand = parse_attribute(line)
            if isinstance(cand, Candidate):
                peer.add_remote_candidate(cand)
        ice = ("a=ice-ufrag:peerufrag\r\na=ice-pwd:peerpassword0123456789ab\r\n"
               f"a=rtcp:{pb2}\r\n"
               f"a=candidate:1 1 UDP 2130706431 127.0.0.1 {pb} typ host\r\n"
               f"a=candidate:1 2 UDP 2130706430 127.0.0.1 {pb2} typ host\r\n")
        first.ng(command="answer", **{"call-id": "icep", "from-tag": "a", "to-tag": "b",
                                      "sdp": sdp(pb, extra=ice)})  # fmt: skip
        side = first.registry.calls["icep"].parties["b"].medias[0]
        assert side.rtp is not None and side.rtp.transport is not None
        link = side.rtp.transport.ice
        assert link is not None
        deadline = loop.time() + 10  # only stops a stuck run
        while link.agent.selected(1) is None or link.agent.selected(2) is None:
            assert loop.time() < deadline, "no ICE pair selected"
            now = loop.time()
            due = peer.next_timer()
            if due is not None and due <= now:
                peer.handle_timer(now)
            for tx in peer.datagrams_to_send():
                (b, b2)[tx.socket].sendto(tx.data, tx.addr)
            for key, s in enumerate((b, b2)):
                try:
                    got, src = s.recvfrom(4096)
                except BlockingIOError:
                    continue
                peer.receive(got, key, src, now)
            await asyncio.sleep(0.005)
        to_a = first.registry.calls["icep"].parties["a"].medias[0].rtp
        assert to_a is not None
        a.sendto(b"\x80\x00" + b"before" * 20, ("127.0.0.1", to_a.local_port))
        assert (await _rtp_at(b)).endswith(b"before" * 20)
        await first.media_pass()
        data = first.docs["icep"]
        assert data is not None
        media = decode(data).media
        assert media[f"127.0.0.1:{side.rtp.local_port}"]["ice"] == {"remote": ["127.0.0.1", pb]}
        first.close()

        second = Daemon(loop, cert)
        second.restore(data)
        await settle()
        a.sendto(b"\x80\x00" + b"after" * 20, ("127.0.0.1", to_a.local_port))
        assert (await _rtp_at(b)).endswith(b"after" * 20)
        await second.media_pass()  # the adopted pair stays in the document
        assert second.sink_calls == 0
        second.close()

    try:
        asyncio.run(run())
    finally:
        for s in (a, b, b2):
            s.close()


def test_dtls_srtp_keys_are_restored(cert: DtlsCertificate) -> None:
    """B is a DTLS client (relay.dtls); once the handshake gave SRTP keys, the document holds
    them, and the restored call protects and unprotects with them at once: no new handshake
    (B's side would not start one: its session is up)."""
    from relay.dtls.session import DtlsSession, Role, State
    from relay.srtp import open_context
    from relay.srtp.suites import suite as suite_named

    b_cert = generate_certificate(NOW, 0x5152, "party-b")
    a, b = udp(), udp()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        first = Daemon(loop, cert)
        pa, pb = a.getsockname()[1], b.getsockname()[1]
        offer = first.ng(command="offer", **{
            "call-id": "dt", "from-tag": "a", "sdp": sdp(pa), "ICE": "remove", "SDES": ["off"],
            "transport-protocol": "UDP/TLS/RTP/SAVP"})["sdp"]  # fmt: skip
        fp = b_cert.fingerprint().render()
        first.ng(command="answer", **{
            "call-id": "dt", "from-tag": "a", "to-tag": "b",
            "sdp": sdp(pb, "UDP/TLS/RTP/SAVP", f"a=setup:active\r\na=fingerprint:{fp}\r\n")})
        to_b = ("127.0.0.1", port_of(offer))
        client = DtlsSession(b_cert, Role.CLIENT, cert.fingerprint())
        for d in client.start(loop.time()):
            b.sendto(d, to_b)
        while client.state is State.CONNECTING:
            for d in client.receive(await recv(b), loop.time()):
                b.sendto(d, to_b)
        assert client.state is State.CONNECTED and client.keys is not None
        suite = suite_named({"SRTP_AEAD_AES_256_GCM": "AEAD_AES_256_GCM",
                             "SRTP_AES128_CM_SHA1_80": "AES_CM_128_HMAC_SHA1_80"}
                            [client.keys.profile.openssl_name])  # fmt: skip
        b_out = open_context(suite, client.keys.local(Role.CLIENT), outbound=True)
        b_in = open_context(suite, client.keys.remote(Role.CLIENT), outbound=False)
        to_a = first.registry.calls["dt"].parties["a"].medias[0].rtp
        assert to_a is not None
        rtp = [bytes([0x80, 0, 0, seq]) + bytes(8) + bytes([seq]) * 160 for seq in range(1, 5)]
        a.sendto(rtp[0], ("127.0.0.1", to_a.local_port))
        assert b_in.unprotect_rtp(await recv(b)) == rtp[0]
        b.sendto(b_out.protect_rtp(rtp[1]), to_b)
        assert await recv(a) == rtp[1]
        await first.media_pass()
        data = first.docs["dt"]
        assert data is not None
        media = decode(data).media
        assert {"srtp"} <= set(media[f"127.0.0.1:{to_b[1]}"])
        first.close()

        second = Daemon(loop, cert)
        second.restore(data)
        await settle()
        a.sendto(rtp[2], ("127.0.0.1", to_a.local_port))
        assert b_in.unprotect_rtp(await recv(b)) == rtp[2]
        b.sendto(b_out.protect_rtp(rtp[3]), to_b)
        assert await recv(a) == rtp[3]
        await second.media_pass()  # the applied keys stay in the document
        assert second.sink_calls == 0
        second.close()

    try:
        asyncio.run(run())
    finally:
        a.close()
        b.close()


def test_extra_set_during_the_replay_is_kept_and_written(cert: DtlsCertificate) -> None:
    """The recorder notes its new part when CallCreated of a restored call arrives, while the
    replay runs; the restored document must keep that note (else a second crash would make
    another part with the same number)."""

    async def run() -> None:
        loop = asyncio.get_running_loop()
        first = Daemon(loop, cert)
        first.ng(command="offer", **{"call-id": "x", "from-tag": "a", "sdp": sdp(1000)})
        first.journal.set_extra("x", "recording", {"id": "r1", "part": 1})
        await settle()
        data = first.docs["x"]
        assert data is not None and decode(data).extra["recording"]["part"] == 1
        first.close()
        second = Daemon(loop, cert)

        def on_event(event: Any) -> None:
            restored = event.call.restored
            if type(event).__name__ == "CallCreated" and restored:
                second.journal.set_extra("x", "recording", {"id": "r1", "part": 2})

        second.registry.listeners.append(on_event)
        second.restore(data)
        await settle()
        written = second.docs.get("x")
        assert written is not None and decode(written).extra["recording"]["part"] == 2
        kept = second.journal.document("x")
        assert kept is not None and decode(kept).extra["recording"]["part"] == 2
        second.close()

    asyncio.run(run())
