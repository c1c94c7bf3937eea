"""`generate-RTCP` through rtpengine 10.5 and rtpvault alike (docs/spec/ng-protocol.md §8).

Two plain parties send RTP both ways; A also sends SRs of its own every 200 ms. With the flag,
each party receives the relay's own reports (SR about the SSRC forwarded to it, one report
block about its own SSRC, SDES CNAME), and A's SRs are not forwarded to B. What arrives is
written to a pcap and decoded by tshark. A third case has an SDES leg that muxes: its reports
arrive on its RTP port as SRTCP under the key the relay gave it (pylibsrtp decrypts them).
Waits for the first report of each side (5-7 s after the offer); no timing is asserted.
"""

from __future__ import annotations

import base64
import itertools
import os
import select
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dpkt
import pylibsrtp
import pytest

from tests.support.daemons import Daemon, per_module
from tests.support.rtp_party import Party, fresh_payload, media_port, ng_sdp, party_sdp, rtp_packet
from tests.support.tools import require

pytestmark = pytest.mark.integration

_ids = itertools.count()
SSRC_A, SSRC_B = 0xAAAA0001, 0xBBBB0002
BOUND = 20.0
"""Seconds before a missing report fails the test (never a timing assertion)."""
A_SR_COUNT = 777_777
"""The packet count in A's own SRs: a report carrying it would be A's, forwarded."""


@pytest.fixture(scope="module", params=["rtpengine", "rtpvault"])
def relay(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Daemon]:  # fmt: skip
    yield from per_module(request, tmp_path_factory, "gen", interface="lo/127.0.0.1",
                          ports=40)  # fmt: skip


Got = list[tuple[str, int, int, bytes]]
"""(receiving socket name, its port, relay source port, datagram)."""


def _run(a: Party, b: Party, want: set[str], a_tx: pylibsrtp.Session | None = None,
         b_tx: pylibsrtp.Session | None = None) -> Got:  # fmt: skip
    """Send RTP both ways (and A's SRs) until every socket in `want` got an RTCP packet."""
    socks = {"A.rtp": a.rtp, "A.rtcp": a.rtcp, "B.rtp": b.rtp, "B.rtcp": b.rtcp}
    for s in socks.values():
        s.setblocking(False)
    got: Got = []
    seq, start_at, due = 0, time.monotonic(), 0.0
    while time.monotonic() - start_at < BOUND and not want <= {g[0] for g in got}:
        now = time.monotonic()
        if now >= due:
            seq += 1
            due = now + 0.02
            pa = rtp_packet(seq, SSRC_A, fresh_payload())
            pb = rtp_packet(seq, SSRC_B, fresh_payload())
            a.send_rtp(a_tx.protect(pa) if a_tx else pa)
            b.send_rtp(b_tx.protect(pb) if b_tx else pb)
            if seq % 10 == 0:
                sr = struct.pack("!BBHIIIIII", 0x80, 200, 6, SSRC_A, int(time.time()) + 2208988800,
                                 0, seq * 160, A_SR_COUNT, seq * 160)  # fmt: skip
                a.send_rtcp(a_tx.protect_rtcp(sr) if a_tx else sr)
        ready, _, _ = select.select(list(socks.values()), [], [], 0.005)
        for s in ready:
            name = next(k for k, v in socks.items() if v is s)
            while True:
                try:
                    data, src = s.recvfrom(4096)
                except BlockingIOError:
                    break
                if len(data) >= 8 and 192 <= data[1] <= 223:
                    got.append((name, s.getsockname()[1], src[1], data))
    return got


def _tshark(tmp: Path, got: Got) -> list[dict[str, str]]:
    """tshark's RTCP fields of each datagram (as RTCP on its destination port)."""
    path = tmp / "rtcp.pcap"
    with path.open("wb") as f:
        w = dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_RAW)
        for i, (_, dport, sport, data) in enumerate(got):
            udp = dpkt.udp.UDP(sport=sport, dport=dport, data=data)
            udp.ulen = len(udp)
            ip = dpkt.ip.IP(src=socket.inet_aton("127.0.0.1"), dst=socket.inet_aton("127.0.0.1"),
                            p=dpkt.ip.IP_PROTO_UDP, data=udp)  # fmt: skip
            ip.len = len(ip)
            w.writepkt(bytes(ip), ts=float(i))
    fields = ["rtcp.pt", "rtcp.senderssrc", "rtcp.sender.packetcount", "rtcp.ssrc.identifier",
              "rtcp.ssrc.high_seq", "rtcp.sdes.type", "rtcp.sdes.text", "rtcp.length_check"]
    ports = sorted({g[1] for g in got})
    cmd = [require("tshark"), "-r", str(path)]
    for p in ports:
        cmd += ["-d", f"udp.port=={p},rtcp"]
    cmd += ["-T", "fields", "-E", "separator=;"] + [x for f in fields for x in ("-e", f)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()
    return [dict(zip(fields, line.split(";"), strict=True)) for line in out]


def _check(rows: list[dict[str, str]], sender: int, about: int) -> None:
    """Each row is the relay's report: SR for `sender` with a block about `about`, SDES CNAME
    (12 characters: the relay's instance id) for `sender`."""
    assert rows
    for r in rows:
        assert r["rtcp.pt"] == "200,202", r
        assert int(r["rtcp.senderssrc"], 16) == sender
        assert int(r["rtcp.sender.packetcount"]) not in (0, A_SR_COUNT)
        # the report block's source, then the SDES chunk's
        assert [int(x, 16) for x in r["rtcp.ssrc.identifier"].split(",")] == [about, sender]
        assert int(r["rtcp.ssrc.high_seq"]) > 0
        assert r["rtcp.sdes.type"] == "1,0" and len(r["rtcp.sdes.text"]) == 12
        assert r["rtcp.length_check"] == "1"  # the lengths add up to the datagram


def _offer_answer(d: Daemon, a: Party, b: Party, offer_extra: dict[str, object],
                  a_sdp: str, b_sdp: str) -> tuple[str, str]:  # fmt: skip
    base = {"call-id": f"gen-{next(_ids)}", "from-tag": "a"}
    offer = ng_sdp(d, {**base, "command": "offer", "sdp": a_sdp, **offer_extra})
    answer = ng_sdp(d, {**base, "command": "answer", "to-tag": "b", "sdp": b_sdp})
    a.peer, b.peer = ("127.0.0.1", media_port(answer)), ("127.0.0.1", media_port(offer))
    return offer, answer


@pytest.mark.parametrize("how", [{"flags": ["generate-RTCP"]}, {"generate-RTCP": "on"}])
def test_reports_to_both_plain_parties(relay: Daemon, tmp_path: Path, how: dict[str, object]
                                       ) -> None:  # fmt: skip
    a, b = Party(), Party()
    _offer_answer(relay, a, b, how, party_sdp(a.port), party_sdp(b.port))
    got = _run(a, b, {"A.rtcp", "B.rtcp"})
    assert {g[0] for g in got} == {"A.rtcp", "B.rtcp"}, got  # nothing on the RTP ports
    assert {(g[0], g[2]) for g in got} == {("A.rtcp", a.peer[1] + 1), ("B.rtcp", b.peer[1] + 1)}
    rows = _tshark(tmp_path, got)
    _check([r for r, g in zip(rows, got, strict=True) if g[0] == "A.rtcp"], SSRC_B, SSRC_A)
    _check([r for r, g in zip(rows, got, strict=True) if g[0] == "B.rtcp"], SSRC_A, SSRC_B)


def test_without_the_flag_the_parties_rtcp_crosses(relay: Daemon) -> None:
    a, b = Party(), Party()
    _offer_answer(relay, a, b, {}, party_sdp(a.port), party_sdp(b.port))
    got = _run(a, b, {"B.rtcp"})
    assert got and all(g[0] == "B.rtcp" and g[3][20:24] == struct.pack("!I", A_SR_COUNT)
                       for g in got)  # fmt: skip


def _crypto(key: bytes, tag: int = 1) -> str:
    return f"a=crypto:{tag} AES_CM_128_HMAC_SHA1_80 inline:{base64.b64encode(key).decode()}\r\n"


def _session(key: bytes, outbound: bool) -> pylibsrtp.Session:
    kind = pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND
    return pylibsrtp.Session(policy=pylibsrtp.Policy(key=key, ssrc_type=kind))


def test_reports_to_a_muxed_sdes_party_are_srtcp(relay: Daemon, tmp_path: Path) -> None:
    """A offers SDES with a=rtcp-mux (demuxed towards B): its reports arrive on its RTP port,
    protected under the key in the answer; B's arrive in the clear on its RTCP port.
    rtpengine 10.5's SRTCP here does not authenticate under that key (measured, §8): pinned,
    not copied."""
    a, b = Party(), Party()
    key = os.urandom(30)
    _, answer = _offer_answer(
        relay, a, b, {"flags": ["generate-RTCP"], "rtcp-mux": ["demux"],
                      "transport-protocol": "RTP/AVP", "DTLS": "off"},
        party_sdp(a.port, "RTP/SAVP", "a=rtcp-mux\r\n" + _crypto(key)), party_sdp(b.port))
    line = next(v for v in answer.split("\r\n") if v.startswith("a=crypto:1 "))
    theirs = base64.b64decode(line.split("inline:")[1].split()[0].split("|")[0])
    rx = _session(theirs, outbound=False)
    got = _run(a, b, {"A.rtp", "B.rtcp"}, a_tx=_session(key, outbound=True))
    assert {g[0] for g in got} == {"A.rtp", "B.rtcp"}, got
    if relay.name == "rtpengine":
        srtcp = next(d for n, _, _, d in got if n == "A.rtp")
        assert len(srtcp) == 76 + 4 + 10 and srtcp[-14] & 0x80  # SR+SDES, E+index, tag
        with pytest.raises(pylibsrtp.Error, match="authentication failure"):
            rx.unprotect_rtcp(srtcp)
        return
    plain = [(n, p, s, rx.unprotect_rtcp(d) if n == "A.rtp" else d) for n, p, s, d in got]
    rows = _tshark(tmp_path, plain)
    _check([r for r, g in zip(rows, plain, strict=True) if g[0] == "A.rtp"], SSRC_B, SSRC_A)
    _check([r for r, g in zip(rows, plain, strict=True) if g[0] == "B.rtcp"], SSRC_A, SSRC_B)
