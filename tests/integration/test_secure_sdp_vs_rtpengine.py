"""SRTP, DTLS and ICE offers through a real rtpvault daemon started without any switch, side by
side with the real rtpengine 10.5 (issue 17): an SDES `RTP/SAVP` offer and a WebRTC offer
(`UDP/TLS/RTP/SAVPF`, ICE, DTLS actpass) are answered as rtpengine answers them, both ways
(docs/spec/sdp.md §1.9a, §1.12, §1.12b). Replies are compared after the differential suite's
normalisation (ports, SDES keys, ICE ufrag/pwd, fingerprints numbered). Neither the SDES keys nor
the ICE passwords reach rtpvault's log at --log-level=7."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.differential.harness import load_sdps
from tests.integration.differential.normalise import ScenarioState, normalise_reply
from tests.support.daemons import Daemon, start

pytestmark = pytest.mark.integration

SDPS = load_sdps()


def _sdp(name: str) -> str:
    return "".join(f"{line}\r\n" for line in SDPS[name]["lines"])


FLOWS: dict[str, list[dict[str, Any]]] = {
    # an SDES offer with no flags: passed on as RTP/SAVP with rtpengine's 12 own keys, the
    # offered suite first (§1.12); the SDES answer back carries the offerer's suite only
    "sdes": [
        {"command": "offer", "from-tag": "ft", "flags": ["trust-address"],
         "sdp": _sdp("alice_savp")},
        {"command": "answer", "from-tag": "ft", "to-tag": "tt", "flags": ["trust-address"],
         "sdp": _sdp("alice_savp").replace("alice", "bob").replace("192.0.2.10", "192.0.2.20")},
    ],
    # the deployment guide's browser towards SIP: DTLS/ICE removed towards the plain side, then
    # rtpengine's own ICE candidates, a=setup:passive and its fingerprint back to the browser
    "webrtc": [
        {"command": "offer", "from-tag": "ft", "ICE": "remove", "DTLS": "off", "SDES": ["off"],
         "transport-protocol": "RTP/AVP", "rtcp-mux": ["demux"], "sdp": _sdp("alice_webrtc")},
        {"command": "answer", "from-tag": "ft", "to-tag": "tt", "flags": ["trust-address"],
         "ICE": "force", "DTLS": "passive", "SDES": ["off"], "sdp": _sdp("bob1")},
    ],
    # a WebRTC offer passed on as it is (DTLS to DTLS, ICE kept and re-candidated)
    "webrtc-passthrough": [
        {"command": "offer", "from-tag": "ft", "sdp": _sdp("alice_webrtc")},
        {"command": "answer", "from-tag": "ft", "to-tag": "tt", "sdp": _sdp("bob_webrtc")},
    ],
}


@pytest.fixture(scope="module", params=[None, 1], ids=["default-threads", "one-thread"])
def relays(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[Daemon, Daemon]]:
    """Both with their default `num-threads` (the CPU count), then both with one (issue 18)."""
    workdir = tmp_path_factory.mktemp("secure-sdp")
    threads: int | None = request.param
    engine = start("rtpengine", workdir / "rtpengine", ports=60, num_threads=threads)
    try:
        # no switch, no extra option
        vault = start("rtpvault", workdir / "rtpvault", ports=60, num_threads=threads)
    except BaseException:
        engine.stop()
        raise
    yield engine, vault
    engine.stop()
    vault.stop()


def _play(d: Daemon, flow: str) -> list[dict[str, Any]]:
    st = ScenarioState(d.port_min, d.port_max, 0, "run")
    c = d.client()
    out = []
    try:
        for step in FLOWS[flow]:
            request = {"call-id": f"sec-{flow}", **step}
            reply = c.call(request)
            out.append(normalise_reply(reply, st, frozenset(), str(step.get("sdp", ""))))
    finally:
        c.close()
    return out


@pytest.mark.parametrize("flow", sorted(FLOWS))
def test_answered_as_rtpengine_answers(relays: tuple[Daemon, Daemon], flow: str) -> None:
    engine, vault = relays
    expected = _play(engine, flow)
    got = _play(vault, flow)
    assert all(r["result"] == "ok" for r in expected), expected
    assert got == expected


def test_secure_values_in_the_sdp_never_reach_the_log(relays: tuple[Daemon, Daemon]) -> None:
    _, vault = relays
    c = vault.client()
    try:
        replies = [c.call({"call-id": "sec-log", **step}) for step in FLOWS["sdes"]]
        replies += [c.call({"call-id": "sec-log-webrtc", **step})
                    for step in FLOWS["webrtc-passthrough"]]
    finally:
        c.close()
    sdps = "".join(str(r["sdp"]) for r in replies) + "".join(
        str(s["sdp"]) for f in ("sdes", "webrtc-passthrough") for s in FLOWS[f])
    secrets = set(re.findall(r"inline:([A-Za-z0-9+/]{20,})", sdps))
    secrets |= set(re.findall(r"a=ice-pwd:(\S+)", sdps))
    assert len(secrets) >= 14  # 12 own keys, the offerer's, our and the peers' ICE passwords
    log = vault.log()
    assert "Generating new DTLS certificate" in log  # the log is the daemon's, read whole
    assert [s for s in secrets if s in log] == []
