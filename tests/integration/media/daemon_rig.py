"""Real relay daemons (rtpvault and rtpengine 10.5) inside a relay namespace, hosts around it.

The daemon is started by a thread that has entered the relay namespace, so the process (and
its ng socket on 127.0.0.1) lives there; ng clients are made the same way. Media is bound on
the relay's address towards host a (10.99.1.1); hosts b and c reach it through the relay
namespace's routing, so every packet crosses a veth link and the relay rewrites addresses.
"""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path
from typing import Any

from tests.support import daemons
from tests.support.ng import NgClient

from .netns import Topology

HOST_PORT = 40000


def rtp(seq: int, payload: bytes = b"", ssrc: int = 0xCAFEF00D) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + (payload or bytes(160))


def rtcp_sr(ssrc: int = 0xCAFEF00D) -> bytes:
    """An RTCP sender report without report blocks (28 bytes)."""
    return struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, 1, 2, 3, 4, 5)


def sdp(addr: str, port: int, direction: str = "sendrecv", sess: int = 1, ver: int = 1) -> str:
    return (
        f"v=0\r\no=- {sess} {ver} IN IP4 {addr}\r\ns=-\r\nc=IN IP4 {addr}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na={direction}\r\n"
    )


def media_port(reply: dict[str, Any]) -> int:
    assert reply.get("result") == "ok", reply
    return int(reply["sdp"].split("m=audio ")[1].split()[0])


class Relay:
    """One daemon in the relay namespace of `topo`."""

    def __init__(self, kind: str, topo: Topology, work: Path, extra: list[str]) -> None:
        self.kind = kind
        self.topo = topo
        self.address = topo.relay_address("a")
        with topo.hosts["relay"].entered():
            # disjoint fixed ranges: free_port_range probes 127.0.0.1, the media binds 10.99.1.1
            base = {"rtpvault": 20000, "rtpengine": 21000}[kind]
            ports = [f"--port-min={base}", f"--port-max={base + 99}"]
            self.d = daemons.start(
                kind, work / kind, interface=self.address, ports=8, extra=[*extra, *ports]
            )

    def ng(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.topo.hosts["relay"].entered():
            c: NgClient = self.d.client()
        try:
            return c.call(body)
        finally:
            c.close()

    def call(
        self,
        cid: str,
        a: str = "sendrecv",
        b: str = "sendrecv",
        flags: list[str] | None = None,
        zero: str = "",
    ) -> tuple[int, int]:
        """Offer from host a, answer from host b; (relay port facing a, relay port facing b).

        `zero` = "a" or "b" puts c=0.0.0.0 into that party's SDP."""
        extra: dict[str, Any] = {"flags": flags} if flags else {}
        addr = {n: "0.0.0.0" if zero == n else self.topo.host_address(n) for n in ("a", "b")}
        to_b = media_port(
            self.ng(
                {
                    "command": "offer",
                    "call-id": cid,
                    "from-tag": "ta",
                    "sdp": sdp(addr["a"], HOST_PORT, a),
                    **extra,
                }
            )
        )
        to_a = media_port(
            self.ng(
                {
                    "command": "answer",
                    "call-id": cid,
                    "from-tag": "ta",
                    "to-tag": "tb",
                    "sdp": sdp(addr["b"], HOST_PORT, b),
                    **extra,
                }
            )
        )
        return to_a, to_b

    def query(self, cid: str) -> dict[str, Any]:
        r = self.ng({"command": "query", "call-id": cid})
        assert r["result"] == "ok", r
        return r

    def calls(self) -> list[str]:
        return list(self.ng({"command": "list"})["calls"])

    def totals(self) -> dict[str, Any]:
        return dict(self.ng({"command": "statistics"})["statistics"]["totalstatistics"])

    def stop(self) -> None:
        self.d.stop()


def rtp_stream(reply: dict[str, Any], tag: str, rtcp: bool = False) -> dict[str, Any]:
    """The RTP (or RTCP) stream dict of `tag`'s first media in a query reply."""
    streams = reply["tags"][tag]["medias"][0]["streams"]
    return next(s for s in streams if ("RTCP" in s["flags"]) == rtcp)


def wait_counted(relay: Relay, cid: str, tag: str, packets: int, deadline: float = 10.0) -> None:
    """Wait until `tag`'s RTP stream has counted `packets` (the relay has read them); after
    `deadline` seconds go on anyway: a relay that drops them must fail on what follows."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if rtp_stream(relay.query(cid), tag)["stats"]["packets"] >= packets:
            return
        time.sleep(0.05)


class Host:
    """A UDP socket on host `name` (port HOST_PORT or `port`) that also reports the TOS byte."""

    def __init__(self, topo: Topology, name: str, port: int = HOST_PORT) -> None:
        with topo.hosts[name].entered():
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((topo.host_address(name), port))
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
        self.sock.settimeout(5)
        self.relay = topo.relay_address("a")

    def send(self, port: int, data: bytes) -> None:
        self.sock.sendto(data, (self.relay, port))

    def recv(self, timeout: float = 5.0) -> tuple[bytes, tuple[str, int], int | None]:
        """(datagram, source, TOS byte); raises TimeoutError when nothing comes."""
        self.sock.settimeout(timeout)
        data, anc, _flags, addr = self.sock.recvmsg(65536, 64)
        tos = next(
            (
                raw[0]
                for lvl, kind, raw in anc
                if lvl == socket.IPPROTO_IP and kind == socket.IP_TOS
            ),
            None,
        )
        return data, (addr[0], addr[1]), tos

    def drain(self, quiet: float = 0.5) -> list[bytes]:
        """Everything that arrives until nothing has for `quiet` seconds."""
        got = []
        while True:
            try:
                got.append(self.recv(quiet)[0])
            except TimeoutError:
                return got

    def close(self) -> None:
        self.sock.close()


def wait_until_gone(relay: Relay, cid: str, deadline: float = 30.0) -> None:
    """Poll `list` until `cid` is gone (a bound against a hung daemon, not a timing check)."""
    end = time.monotonic() + deadline
    while cid in relay.calls():
        if time.monotonic() > end:
            raise AssertionError(f"{relay.kind}: {cid} still listed after {deadline} s")
        time.sleep(0.2)
