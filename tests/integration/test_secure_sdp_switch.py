"""The experimental `x-secure-sdp` switch on a real rtpvault daemon: off (the default), SRTP and
ICE offers are refused as before; on, they are rewritten, and neither the SDES keys nor the ICE
password reach the log (at --log-level=7)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.daemons import start

pytestmark = pytest.mark.integration

KEY = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"
OFFER = (
    "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=Talk\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    "m=audio 16000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}\r\n"
    "a=ice-ufrag:F7gI\r\na=ice-pwd:x9cml/YzichV2+XlhiMu8g\r\n"
    "a=candidate:1 1 UDP 2130706431 192.0.2.10 16000 typ host\r\n"
)


def _offer(extra: list[str], workdir: Path) -> tuple[dict[str, object], str]:
    d = start("rtpvault", workdir, ports=20, extra=extra)
    try:
        c = d.client()
        try:
            reply = c.call({"command": "offer", "call-id": "sec-1", "from-tag": "ft",
                            "sdp": OFFER, "flags": ["trust-address"]})
        finally:
            c.close()
    finally:
        d.stop()
    return reply, d.log()


def test_default_refuses_srtp_and_ice(tmp_path: Path) -> None:
    reply, _ = _offer([], tmp_path)
    assert reply["result"] == "error"
    assert "not supported by rtpvault yet" in str(reply["error-reason"])


def test_switch_rewrites_and_logs_no_secrets(tmp_path: Path) -> None:
    reply, log = _offer(["--x-secure-sdp=yes"], tmp_path)
    assert reply["result"] == "ok", reply
    sdp = str(reply["sdp"])
    assert f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}\r\n" in sdp
    own_pwd = re.search(r"a=ice-pwd:(\S+)", sdp)
    assert own_pwd is not None and re.search(r"a=fingerprint:sha-256 [0-9A-F:]{95}\r\n", sdp)
    new_keys = re.findall(r"inline:([A-Za-z0-9+/]+)", sdp)
    assert len(new_keys) == 12
    for secret in [*new_keys, own_pwd.group(1), "x9cml/YzichV2+XlhiMu8g"]:
        assert secret not in log
