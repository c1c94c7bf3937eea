"""DTLS-SRTP across re-offers, on rtpengine 10.5 and on rtpvault alike (docs/spec/sdp.md
§1.12b "Re-offers", "a=tls-id", "Delete").

A plays the DTLS side with `relay.dtls` (offer `UDP/TLS/RTP/SAVPF`, `a=setup:actpass`,
`transport-protocol=RTP/AVP`), B a plain phone. After the handshake A re-offers (a new
`a=setup` or `a=tls-id`) and B re-answers. Checked on the wire, for each relay: the re-answer's
a=setup, whether a new ClientHello comes, and that SRTP under the first handshake's keys still
reaches B (the session, or at least its keys, survived).
"""

from __future__ import annotations

import datetime
import itertools
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relay.dtls.cert import DtlsCertificate, Setup, generate_certificate, parse_fingerprint
from relay.dtls.session import DtlsSession, Role
from tests.integration.dtls.test_dtls_vs_rtpengine import (
    attr,
    handshake,
    media_port,
    rtp,
    sdp,
    srtp,
    udp,
)
from tests.support import daemons
from tests.support.daemons import Daemon

pytestmark = pytest.mark.integration

_ids = itertools.count()
TLS_ID = "a=tls-id:1111aaaa2222bbbb\r\n"


@pytest.fixture(scope="module", params=["rtpengine", "rtpvault"])
def relay(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Daemon]:  # fmt: skip
    kind = str(request.param)
    d = daemons.start(kind, Path(tmp_path_factory.mktemp(kind)), interface="127.0.0.1",
                      ports=60)  # fmt: skip
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="module")
def cert() -> DtlsCertificate:
    return generate_certificate(datetime.datetime.now(datetime.UTC), 0x0B, "reoffer")


def records(sock: socket.socket, seconds: float) -> list[str]:
    """What arrives for `seconds`: "ClientHello", "alert", "dtls" or "rtp"."""
    out = []
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data = sock.recv(65535)
        except TimeoutError:
            break
        if data[0] == 22 and data[3:5] == b"\0\0" and data[13] == 1:
            out.append("ClientHello")
        elif data[0] == 21:
            out.append("alert")
        elif 20 <= data[0] <= 63:
            out.append("dtls")
        else:
            out.append("rtp")
    return out


class Leg:
    """One call: A's DTLS session after the first offer/answer, and how to re-negotiate."""

    def __init__(self, relay: Daemon, cert: DtlsCertificate, answer: dict[str, Any]) -> None:
        self.ng = relay.client()
        self.call = f"reoffer-{next(_ids)}"
        self.a, self.b = udp(), udp()
        self.cert = cert
        self.offer_out = self._offer("actpass", TLS_ID, 1)
        reply = self._answer(answer, 1)
        self.role = Role.SERVER if Setup(attr(reply, "a=setup:")) is Setup.ACTIVE else Role.CLIENT
        fp = parse_fingerprint(attr(reply, "a=fingerprint:"))
        self.session = DtlsSession(cert, self.role, fp, handshake_timeout=10.0)
        self.relay_a = ("127.0.0.1", media_port(reply))
        handshake(self.a, self.session, self.relay_a)
        assert self.session.keys is not None
        profile = self.session.keys.profile.openssl_name
        self.out = srtp(self.session.keys.local(self.role), profile, True)
        self.seq = 0
        assert self.carries(), "no SRTP through after the first handshake"

    def _offer(self, setup: str, extra: str, version: int) -> str:
        body = sdp(self.a.getsockname()[1], "UDP/TLS/RTP/SAVPF",
                   f"a=setup:{setup}\r\na=fingerprint:{self.cert.fingerprint().render()}\r\n"
                   f"{extra}").replace("o=- 1 1 ", f"o=- 1 {version} ")  # fmt: skip
        r = self.ng.call({"command": "offer", "call-id": self.call, "from-tag": "a", "sdp": body,
                          "transport-protocol": "RTP/AVP"})  # fmt: skip
        assert r["result"] == "ok", r
        return str(r["sdp"])

    def _answer(self, flags: dict[str, Any], version: int) -> str:
        body = sdp(self.b.getsockname()[1], "RTP/AVP").replace("o=- 1 1 ", f"o=- 1 {version} ")
        r = self.ng.call({"command": "answer", "call-id": self.call, "from-tag": "a",
                          "to-tag": "b", "sdp": body, **flags})  # fmt: skip
        assert r["result"] == "ok", r
        return str(r["sdp"])

    def reoffer(self, setup: str, extra: str, answer: dict[str, Any]) -> tuple[str, str, list[str]]:
        """Re-offer and re-answer; (offer passed to B, answer back to A, what A got after
        each: a relay forced to turn client sends its ClientHello right after the re-offer)."""
        offer = self._offer(setup, extra, 2)
        got = records(self.a, 1.0)
        reply = self._answer(answer, 2)
        return offer, reply, got + records(self.a, 1.5)

    def carries(self, tries: int = 20) -> bool:
        """SRTP under the first handshake's keys reaches B (a few packets: the relay may
        install its keys a moment after our side of the handshake ends)."""
        for _ in range(tries):
            self.seq += 1
            packet = rtp(self.seq, b"media")
            self.a.sendto(self.out.protect(packet), self.relay_a)
            self.b.settimeout(0.5)
            try:
                if self.b.recv(2000) == packet:
                    return True
            except TimeoutError:
                continue
        return False

    def old_keys_carry(self) -> bool:
        return self.carries(tries=4)

    def close(self) -> None:
        self.ng.call({"command": "delete", "call-id": self.call, "from-tag": "a"})
        self.ng.close()
        self.a.close()
        self.b.close()


@pytest.mark.parametrize(
    ("first", "setup", "again", "expected", "client_hello"),
    [
        ({}, "actpass", {}, "active", False),
        ({}, "active", {}, "passive", False),
        ({}, "actpass", {"DTLS": "passive"}, "passive", False),
        ({"DTLS": "passive"}, "actpass", {}, "passive", False),
        ({"DTLS": "passive"}, "actpass", {"DTLS": "active"}, "passive", False),
        ({"DTLS": "passive"}, "passive", {}, "active", True),
    ],
    ids=["active-actpass", "active-to-passive", "active-flag-passive", "passive-kept",
         "passive-kept-flag-active", "passive-to-active"],
)
def test_role_and_keys_across_a_reoffer(
    relay: Daemon, cert: DtlsCertificate, first: dict[str, Any], setup: str,
    again: dict[str, Any], expected: str, client_hello: bool,
) -> None:
    """The relay keeps passive on an actpass re-offer; a role change answers the new role, and
    the first handshake's keys still carry media (a relay turned client sends a ClientHello)."""
    leg = Leg(relay, cert, first)
    try:
        _, reply, got = leg.reoffer(setup, TLS_ID, again)
        assert attr(reply, "a=setup:") == expected
        assert ("ClientHello" in got) == client_hello, got
        assert leg.old_keys_carry()
    finally:
        leg.close()


@pytest.mark.parametrize("tls_id", ["a=tls-id:3333cccc4444dddd\r\n", ""], ids=["new", "gone"])
def test_tls_id_is_passed_on_and_changes_nothing(
    relay: Daemon, cert: DtlsCertificate, tls_id: str
) -> None:
    """10.5 neither writes nor reads a=tls-id (RFC 8842): the offerer's line goes on to B as an
    unknown attribute, the answer back has none, and a new or missing one in a re-offer starts
    no new handshake."""
    leg = Leg(relay, cert, {})
    try:
        assert TLS_ID.strip() in leg.offer_out.split("\r\n")
        offer, reply, got = leg.reoffer("actpass", tls_id, {})
        assert [ln for ln in offer.split("\r\n") if ln.startswith("a=tls-id")] == (
            [tls_id.strip()] if tls_id else [])
        assert "a=tls-id" not in reply
        assert got == [] and leg.old_keys_carry()
    finally:
        leg.close()


@pytest.mark.parametrize("first", [{}, {"DTLS": "passive"}], ids=["relay-client", "relay-server"])
def test_no_dtls_alert_at_delete(relay: Daemon, cert: DtlsCertificate, first: dict[str, Any]
                                 ) -> None:  # fmt: skip
    """10.5 sends nothing (no close_notify) to the DTLS peer when the call is deleted."""
    leg = Leg(relay, cert, first)
    try:
        leg.ng.call({"command": "delete", "call-id": leg.call, "from-tag": "a"})
        assert records(leg.a, 2.0) == []
    finally:
        leg.close()
