"""Part 2 of bench/srtp.py: DTLS+ICE call setup, offer to first decrypted packet.

The WebRTC-like party B is built from rtpvault's own sans-IO parts, which makes it cheap (no
asyncio, no aiortc): `relay.ice.IceAgent` (full agent, controlled: the relay offered) on two
sockets (RTP and RTCP components, as the relay's offer has no a=rtcp-mux), and a
`relay.dtls.session.DtlsSession` client (`a=setup:active`) on the RTP socket, started once ICE
has selected a pair. The SRTP keys it exports open a pylibsrtp session that decrypts what A
sends. A is plain RTP from one socket, every --setup-interval ms from the answer on.

Calls run one after the other, each bounded by CALL_TIMEOUT. If the first call does not get
through, the relay is reported as without DTLS/ICE media (rtpvault until that is wired) and the
rest of its calls are skipped.
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import re
import secrets
import selectors
import socket
import statistics
import struct
import time
from typing import Any

import _common as common
import pylibsrtp

from relay.dtls import DtlsError
from relay.dtls.cert import DtlsCertificate, generate_certificate, parse_fingerprint
from relay.dtls.session import DtlsSession, Role, State
from relay.ice import IceAgent, LocalSocket, parse_attribute
from relay.ice.sdp import Candidate
from relay.media.secure.transport import DTLS_SUITES
from relay.srtp.libsrtp import PROFILES
from tests.support import daemons
from tests.support.ng import NgClient

HOST = "127.0.0.1"
CALL_TIMEOUT = 10.0
"""Seconds one call may take from offer to first decrypted packet before it counts as failed."""
UNAVAILABLE = "DTLS/ICE media not available"


def _sdp(port: int, protocol: str, extra: str) -> str:
    return (
        f"v=0\r\no=b 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
        f"m=audio {port} {protocol} 0\r\na=rtpmap:0 PCMU/8000\r\n{extra}a=sendrecv\r\n"
    )


def _port(reply: dict[str, Any]) -> int:
    if reply.get("result") != "ok":
        raise RuntimeError(f"ng error: {reply}")
    return int(str(reply["sdp"]).split("m=audio ")[1].split()[0])


def _attr(text: str, name: str) -> str:
    m = re.search(rf"^a={name}:(.*?)\r?$", text, re.M)
    if m is None:
        raise RuntimeError(f"no a={name} in the relay's offer")
    return m.group(1)


class Peer:
    """Party B of one call: two sockets, its ICE agent and DTLS client, then SRTP in."""

    def __init__(self, cert: DtlsCertificate) -> None:
        self.socks = []
        for _ in range(2):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((HOST, 0))
            s.setblocking(False)
            self.socks.append(s)
        self.cert = cert
        self.ufrag, self.pwd = secrets.token_hex(4), secrets.token_hex(12)
        self.agent: IceAgent | None = None
        self.dtls: DtlsSession | None = None
        self.srtp: pylibsrtp.Session | None = None
        self.ice_at: float | None = None
        self.dtls_at: float | None = None
        self.got_dtls = self.got_stun = 0

    def answer_lines(self) -> str:
        lines = [f"a=rtcp:{self.socks[1].getsockname()[1]}\r\n",
                 f"a=ice-ufrag:{self.ufrag}\r\n", f"a=ice-pwd:{self.pwd}\r\n"]  # fmt: skip
        for comp, s in enumerate(self.socks, 1):
            prio = (126 << 24) | (65535 << 8) | (256 - comp)
            lines.append(
                f"a=candidate:b1 {comp} UDP {prio} {HOST} {s.getsockname()[1]} typ host\r\n"
            )
        lines += ["a=setup:active\r\n", f"a=fingerprint:{self.cert.fingerprint().render()}\r\n"]
        return "".join(lines)

    def offered(self, offer_sdp: str) -> None:
        """The relay's offer: its ICE credentials and candidates, its fingerprint."""
        sockets = [
            LocalSocket(
                i, (HOST, s.getsockname()[1]), i + 1, (126 << 24) | (65535 << 8) | (255 - i)
            )
            for i, s in enumerate(self.socks)
        ]
        self.agent = IceAgent(ufrag=self.ufrag, pwd=self.pwd, sockets=sockets,
                              controlling=False, tie_breaker=random.getrandbits(64))  # fmt: skip
        self.agent.set_remote(_attr(offer_sdp, "ice-ufrag"), _attr(offer_sdp, "ice-pwd"))
        for line in re.findall(r"^(a=candidate:.*?)\r?$", offer_sdp, re.M):
            cand = parse_attribute(line)
            if isinstance(cand, Candidate):
                self.agent.add_remote_candidate(cand)
        fingerprint = parse_fingerprint(_attr(offer_sdp, "fingerprint"))
        self.dtls = DtlsSession(self.cert, Role.CLIENT, fingerprint)

    def pump(self, now: float) -> None:
        """Timers due, ICE datagrams out, DTLS start once a pair is selected."""
        agent, dtls = self.agent, self.dtls
        assert agent is not None and dtls is not None
        due = agent.next_timer()
        if due is not None and due <= now:
            agent.handle_timer(now)
        for tx in agent.datagrams_to_send():
            self.socks[tx.socket].sendto(tx.data, tx.addr)
        selected = agent.selected(1)
        if selected is None:
            return
        if self.ice_at is None:
            self.ice_at = now
        out: list[bytes] = []
        if dtls.state is State.NEW:
            out = dtls.start(now)
        else:
            t = dtls.next_timeout()
            if t is not None and t <= now:
                out = dtls.handle_timeout(now)
        for d in out:
            self.socks[0].sendto(d, selected[1])

    def receive(self, key: int, data: bytes, src: tuple[str, int], now: float) -> bool:
        """One datagram on socket `key`; True when it is A's RTP, decrypted."""
        agent, dtls = self.agent, self.dtls
        assert agent is not None and dtls is not None
        first = data[0] if data else 255
        if first < 4:
            self.got_stun += 1
            agent.receive(data, key, src, now)
        elif 20 <= first <= 63 and key == 0:
            self.got_dtls += 1
            try:
                out = dtls.receive(data, now)
            except DtlsError as exc:
                out = list(exc.outgoing)
            for d in out:
                self.socks[0].sendto(d, src)
            if dtls.keys is not None and self.srtp is None:
                self.dtls_at = now
                suite = DTLS_SUITES[dtls.keys.profile.openssl_name]
                self.srtp = pylibsrtp.Session(pylibsrtp.Policy(
                    key=dtls.keys.remote(Role.CLIENT), srtp_profile=PROFILES[suite],
                    ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))  # fmt: skip
        elif 128 <= first <= 191 and key == 0 and self.srtp is not None:
            try:
                return len(self.srtp.unprotect(data)) > 12
            except pylibsrtp.Error:
                return False
        return False

    def close(self) -> None:
        for s in self.socks:
            s.close()


def one_call(ng: NgClient, cert: DtlsCertificate, a: socket.socket, interval: float,
             call_id: str) -> dict[str, Any]:  # fmt: skip
    """Offer to first decrypted packet for one call; the timings (s) or the failure."""
    peer = Peer(cert)
    sel = selectors.DefaultSelector()
    for i, s in enumerate(peer.socks):
        sel.register(s, selectors.EVENT_READ, i)
    out: dict[str, Any] = {"call": call_id}
    base = {"call-id": call_id, "from-tag": "a", "flags": ["trust-address"]}
    try:
        t0 = time.monotonic()
        r = ng.call({**base, "command": "offer", "ICE": "force",
                     "transport-protocol": "UDP/TLS/RTP/SAVPF",
                     "sdp": _sdp(a.getsockname()[1], "RTP/AVP", "")})  # fmt: skip
        _port(r)
        peer.offered(str(r["sdp"]))
        b_sdp = _sdp(peer.socks[0].getsockname()[1], "UDP/TLS/RTP/SAVPF", peer.answer_lines())
        to_a = _port(ng.call({**base, "command": "answer", "to-tag": "b", "sdp": b_sdp}))
        t_answer = time.monotonic()
        out["answer"] = t_answer - t0
        seq, next_rtp, deadline = 0, t_answer, t0 + CALL_TIMEOUT
        while True:
            now = time.monotonic()
            if now >= deadline:
                out["failed"] = (f"no decrypted packet after {CALL_TIMEOUT:g} s (STUN in "
                                 f"{peer.got_stun}, DTLS in {peer.got_dtls}, ICE "
                                 f"{'selected' if peer.ice_at else 'not selected'})")  # fmt: skip
                return out
            if now >= next_rtp:
                seq += 1
                a.sendto(struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0xA1) + bytes(160),
                         (HOST, to_a))  # fmt: skip
                next_rtp += interval
            peer.pump(now)
            for key, _ in sel.select(timeout=max(0.0, min(next_rtp - now, 0.002))):
                s = peer.socks[key.data]
                while True:
                    try:
                        data, src = s.recvfrom(2048)
                    except BlockingIOError:
                        break
                    now = time.monotonic()
                    if peer.receive(key.data, data, src, now):
                        out["first_packet"] = now - t0
                        out["ice"] = (peer.ice_at or now) - t0
                        out["dtls"] = (peer.dtls_at or now) - t0
                        return out
    finally:
        sel.close()
        peer.close()
        try:
            ng.call({"command": "delete", "call-id": call_id, "from-tag": "a",
                     "delete delay": 0, "delete-delay": "0"})  # fmt: skip
        except TimeoutError:
            pass


def _drain(s: socket.socket) -> None:
    try:
        while True:
            s.recv(2048)
    except BlockingIOError:
        pass


def setup_pass(d: daemons.Daemon, args: argparse.Namespace) -> dict[str, Any]:
    """`args.setup_calls` calls through `d`, one after the other; latencies and daemon CPU."""
    cert = generate_certificate(datetime.datetime.now(datetime.UTC), int.from_bytes(
        os.urandom(8), "big") >> 1, "bench-peer")  # fmt: skip
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind((HOST, 0))
    a.setblocking(False)
    ng = d.client(timeout=10)
    calls: list[dict[str, Any]] = []
    result: dict[str, Any] = {"kind": d.name, "calls": calls}
    cpu0, own0 = common.cpu_seconds(d.proc.pid), common.own_cpu_seconds()
    try:
        for i in range(args.setup_calls):
            c = one_call(ng, cert, a, args.setup_interval / 1000, f"dtls-ice-{d.name}-{i}")
            _drain(a)
            calls.append(c)
            if i == 0 and "failed" in c:
                result["unavailable"] = f"{d.name}: {UNAVAILABLE} ({c['failed']})"
                break
    finally:
        ng.close()
        a.close()
    result["daemon_cpu"] = common.cpu_seconds(d.proc.pid) - cpu0
    result["client_cpu"] = common.own_cpu_seconds() - own0
    ok = [c["first_packet"] for c in calls if "first_packet" in c]
    result["ok"], result["failed"] = len(ok), len(calls) - len(ok)
    if ok:
        ms = sorted(1000 * v for v in ok)
        result["median_ms"] = statistics.median(ms)
        result["p90_ms"] = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
        result["max_ms"] = ms[-1]
        result["ice_ms"] = statistics.median(1000 * c["ice"] for c in calls if "ice" in c)
        result["dtls_ms"] = statistics.median(1000 * c["dtls"] for c in calls if "dtls" in c)
        result["cpu_ms_per_call"] = 1000 * result["daemon_cpu"] / len(calls)
    line = result.get("unavailable") or (
        f"{d.name}: {len(ok)}/{len(calls)} calls, offer → first decrypted packet median "
        f"{result.get('median_ms', 0):.1f} ms (ICE selected {result.get('ice_ms', 0):.1f}, "
        f"DTLS keys {result.get('dtls_ms', 0):.1f}), daemon "
        f"{result.get('cpu_ms_per_call', 0):.2f} ms CPU/call"
    )
    print(f"  {line}", flush=True)
    return result


def rows(setups: dict[str, dict[str, Any]]) -> list[common.Row]:
    def get(kind: str, key: str) -> float | None:
        s = setups.get(kind)
        return None if s is None or "unavailable" in s else s.get(key)

    med = (get("rtpengine", "median_ms"), get("rtpvault", "median_ms"))
    met = None if None in med else med[1] <= med[0]  # type: ignore[operator]
    return [
        common.Row("DTLS+ICE: offer → first decrypted, median", "ms", *med, "≤ rtpengine", 1, met),
        common.Row("DTLS+ICE: same, p90", "ms", get("rtpengine", "p90_ms"),
                   get("rtpvault", "p90_ms"), "", 1),
        common.Row("DTLS+ICE: ICE pair selected (B), median", "ms", get("rtpengine", "ice_ms"),
                   get("rtpvault", "ice_ms"), "", 1),
        common.Row("DTLS+ICE: DTLS keys (B), median", "ms", get("rtpengine", "dtls_ms"),
                   get("rtpvault", "dtls_ms"), "", 1),
        common.Row("DTLS+ICE: daemon CPU per call", "ms", get("rtpengine", "cpu_ms_per_call"),
                   get("rtpvault", "cpu_ms_per_call"), "", 2),
    ]  # fmt: skip


def notes(setups: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    for kind, s in setups.items():
        if "unavailable" in s:
            out.append(str(s["unavailable"]))
        elif s.get("failed"):
            out.append(f"{kind}: {s['failed']} of {len(s['calls'])} DTLS+ICE calls failed")
    return out
