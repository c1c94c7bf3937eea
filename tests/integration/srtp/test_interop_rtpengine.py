"""relay.srtp against rtpengine 10.5's own SRTP: plain A ↔ rtpengine ↔ SDES leg B (us).

A offers plain RTP/AVP with `transport-protocol: RTP/SAVP`; B answers with one suite, its own key
and the tag of rtpengine's line. rtpengine encrypts A's RTP/RTCP towards B with the key it put
in its offer; B (relay.srtp) decrypts that and sends SRTP/SRTCP back under its own key, which
rtpengine decrypts for A. Every suite rtpengine offers, libsrtp and native back-ends both.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.srtp import SUITES, Cipher, Suite, open_context
from relay.srtp.sdes import Crypto, parse, render
from tests.support.daemons import Daemon, start
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration

_ids = itertools.count()
# rtpengine 10.5.3.5 offers NULL_HMAC_SHA1_80/_32 but segfaults (jump to address 0) on the first
# packet it must protect with them (docs/spec/sdp.md §1.12a), so they cannot be checked here.
INTEROP_SUITES = [s for s in SUITES if s.cipher is not Cipher.NULL]


@pytest.fixture(scope="module")
def rtpengine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start("rtpengine", Path(tmp_path_factory.mktemp("srtp-rtpengine")))
    try:
        yield d
    finally:
        d.stop()


def _udp_pair() -> tuple[socket.socket, socket.socket]:
    """An RTP socket on an even port and its RTCP socket on port+1."""
    while True:
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        port = rtp.getsockname()[1]
        if port % 2 == 0:
            rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                rtcp.bind(("127.0.0.1", port + 1))
            except OSError:
                rtcp.close()
                rtp.close()
                continue
            for s in (rtp, rtcp):
                s.settimeout(0.2)
            return rtp, rtcp
        rtp.close()


def _sdp(port: int, proto: str, extra: str = "") -> str:
    return (
        "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} {proto} 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n{extra}"
    )


def _port(sdp: str) -> int:
    return int(sdp.split("m=audio ")[1].split(" ")[0])


def _rtp(seq: int) -> bytes:
    return (
        bytes([0x80, 0])
        + seq.to_bytes(2, "big")
        + (seq * 160).to_bytes(4, "big")
        + (b"\xa1\xb2\xc3\xd4" + bytes([seq & 0xFF]) * 160)
    )


SR = bytes.fromhex("80c80006a1b2c3d40000000100000002000000030000000400000005")


def _receive(sock: socket.socket, send: socket.socket, data: bytes, to: tuple[str, int]) -> bytes:
    """Send `data` until something arrives on `sock` (the first packets may race latching)."""
    got: list[bytes] = []

    def arrived() -> bool:
        send.sendto(data, to)
        try:
            got.append(sock.recv(2048))
        except TimeoutError:
            return False
        return True

    wait_for(arrived, bound=10)
    return got[0]


@pytest.mark.parametrize("use_libsrtp", [True, False], ids=["libsrtp", "native"])
@pytest.mark.parametrize("suite", INTEROP_SUITES, ids=lambda s: s.name)
def test_sdes_leg_interoperates_with_rtpengine(
    rtpengine: Daemon, suite: Suite, use_libsrtp: bool
) -> None:
    a_rtp, a_rtcp = _udp_pair()
    b_rtp, b_rtcp = _udp_pair()
    ng = rtpengine.client()
    call = f"srtp-{next(_ids)}"
    try:
        offer = ng.call(
            {
                "command": "offer",
                "call-id": call,
                "from-tag": "a",
                "flags": ["trust-address"],
                "transport-protocol": "RTP/SAVP",
                "sdp": _sdp(a_rtp.getsockname()[1], "RTP/AVP"),
            }
        )
        assert offer["result"] == "ok", offer
        lines = [
            parse(v[len("a=crypto:") :])
            for v in offer["sdp"].split("\r\n")
            if v.startswith("a=crypto:")
        ]
        theirs = next(c for c in lines if c.suite is suite)
        ours = Crypto(theirs.tag, suite, bytes((5 * i + 1) & 0xFF for i in range(suite.inline_len)))
        answer = ng.call(
            {
                "command": "answer",
                "call-id": call,
                "from-tag": "a",
                "to-tag": "b",
                "flags": ["trust-address"],
                "sdp": _sdp(b_rtp.getsockname()[1], "RTP/SAVP", f"a=crypto:{render(ours)}\r\n"),
            }
        )
        assert answer["result"] == "ok", answer
        to_b_side = ("127.0.0.1", _port(offer["sdp"]))  # rtpengine's port facing B
        to_a_side = ("127.0.0.1", _port(answer["sdp"]))  # rtpengine's port facing A

        rx = open_context(suite, theirs.key_salt, outbound=False, use_libsrtp=use_libsrtp)
        tx = open_context(suite, ours.key_salt, outbound=True, use_libsrtp=use_libsrtp)

        # A → rtpengine → B: rtpengine encrypts, we decrypt
        srtp = _receive(b_rtp, a_rtp, _rtp(1), to_a_side)
        assert srtp != _rtp(1)
        assert rx.unprotect_rtp(srtp) == _rtp(1)
        srtcp = _receive(b_rtcp, a_rtcp, SR, (to_a_side[0], to_a_side[1] + 1))
        assert rx.unprotect_rtcp(srtcp) == SR

        # B → rtpengine → A: we encrypt, rtpengine decrypts
        for seq in range(100, 103):
            plain = _receive(a_rtp, b_rtp, tx.protect_rtp(_rtp(seq)), to_b_side)
            assert plain == _rtp(seq)
        plain = _receive(a_rtcp, b_rtcp, tx.protect_rtcp(SR), (to_b_side[0], to_b_side[1] + 1))
        assert plain == SR
    finally:
        ng.call({"command": "delete", "call-id": call, "from-tag": "a"})
        ng.close()
        for s in (a_rtp, a_rtcp, b_rtp, b_rtcp):
            s.close()
