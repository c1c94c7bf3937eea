"""A real browser through the relay to a plain RTP phone (issue 17; docs/spec/sdp.md §1.9a ICE,
§1.12b DTLS).

Headless Debian chromium (tests/support/browser.py) offers one audio m= line with a 1000 Hz
oscillator, PCMU only (setCodecPreferences), over ICE + DTLS-SRTP on loopback. The offer goes
to the relay with Kamailio's SIP-side flags (`ICE=remove DTLS=off SDES-off RTP/AVP`); a Python
plain RTP peer answers PCMU and sends 440 Hz; its answer goes back with the browser-side flags
(`ICE=force DTLS=passive SDES-off`) and the browser calls setRemoteDescription with it.
Everything runs in a network namespace of its own with only `lo`: the browser gathers on every
interface it sees, and the machine's other addresses would otherwise turn up as peer-reflexive
candidates.

Two flows:
- `prflx`: the offer reaches the relay without its candidate lines, so the relay learns the
  browser's address from the browser's connectivity checks (peer-reflexive, RFC 8445 §7.3.1.3),
  which start only once the browser has the answer: nothing reaches the browser before it.
- `late-answer`: the offer keeps its 127.0.0.1 candidate and the peer answers a second after
  the relay's first check reached the browser (or two after the offer), as a phone rings.
  rtpengine 10.5 sends its DTLS ClientHello as soon as its checks succeed (docs/spec/sdp.md
  §1.12b: "before any answer"); Chromium takes that as its cue to be the DTLS server
  (getStats: `dtlsRole` "server" before the answer), then `DTLS=passive` makes it the client,
  and it never sends a ClientHello (`dtlsState` stays "connecting"): no media. Measured with
  rtpengine 10.5.3.5 and Chromium 156; the same with an immediate answer whenever the checks
  win the race (about half the runs).

Asserted: the peer hears 1000 Hz in the PCMU it receives, the browser's getStats counts
inbound packets (and its analyser hears 440 Hz), and rtpvault's recording exports as a WAV
that carries the browser's tone. rtpengine 10.5 runs the same test to prove the harness.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import time
import wave
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from rtpvault.cli import cli
from tests.support import daemons
from tests.support.browser import Page, chromium, only_candidates
from tests.support.daemons import Daemon
from tests.support.tone import dominant_hz, ulaw_samples
from tests.support.tools import unavailable
from tests.support.wait import wait_for

from ..media.netns import Netns
from .peer import PlainPeer

pytestmark = pytest.mark.integration

BROWSER_HZ = 1000.0
PEER_HZ = 440.0
SIP_SIDE = {"ICE": "remove", "DTLS": "off", "SDES": ["off"], "transport-protocol": "RTP/AVP"}
BROWSER_SIDE = {"ICE": "force", "DTLS": "passive", "SDES": ["off"]}
BOUND = 20.0
"""Seconds a stuck relay or browser may take before the test gives up (not a timing check)."""
RING = 1.0
"""Seconds the peer "rings" in the late-answer flow before it answers."""
CASES = [
    pytest.param("rtpengine", "prflx", id="rtpengine-prflx"),
    # rtpengine 10.5 fails the late-answer flow (3 of 3 runs with a 1 s ring, about half with
    # an immediate answer): its ClientHello before the answer makes Chromium the DTLS server,
    # and its a=setup:passive answer then leaves Chromium waiting as a client that never
    # starts (see above). Not run: it only shows rtpengine's bug and takes the 20 s bound.
    pytest.param("rtpvault", "prflx", id="rtpvault-prflx"),
    pytest.param("rtpvault", "late-answer", id="rtpvault-late-answer"),
]


class Relay:
    """The relay under test in namespace `ns`, its recording spool (rtpvault) and ng client."""

    def __init__(self, kind: str, tmp: Path, ns: Netns) -> None:
        self.kind = kind
        self.ns = ns
        self.spool = tmp / "spool"
        extra = ["--delete-delay=0"]
        if kind == "rtpvault":
            extra += [f"--recording-dir={self.spool}"]
        with ns.entered():
            # no advertised address: every candidate and c= line the relay writes is 127.0.0.1
            self.daemon: Daemon = daemons.start(
                kind, tmp / kind, interface="lo/127.0.0.1", ports=20, extra=extra
            )

    def ng(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.ns.entered():
            c = self.daemon.client()
        try:
            reply = c.call(body)
        finally:
            c.close()
        assert reply.get("result") == "ok", (body["command"], reply, self.daemon.log()[-3000:])
        return reply


@pytest.fixture
def ns() -> Iterator[Netns]:
    """A network namespace with only its loopback: the browser can gather nothing else."""
    n = Netns(f"webrtc-{os.getpid()}-{secrets.token_hex(3)}")
    try:
        n.create()
    except (OSError, RuntimeError) as e:
        unavailable(f"cannot create a network namespace (needs root and iproute2): {e}")
    try:
        yield n
    finally:
        n.delete()


@pytest.fixture
def relay(request: pytest.FixtureRequest, tmp_path: Path, ns: Netns) -> Iterator[Relay]:
    r = Relay(request.param, tmp_path, ns)
    try:
        yield r
    finally:
        r.daemon.stop()


def _media_address(sdp: str) -> tuple[str, int]:
    """(c= address, m=audio port) of a plain SDP."""
    lines = sdp.split("\r\n")
    address = next(ln.split()[2] for ln in lines if ln.startswith("c=IN "))
    port = next(int(ln.split()[1]) for ln in lines if ln.startswith("m=audio "))
    return address, port


def _export_wav(relay: Relay, call_id: str, tmp: Path) -> tuple[list[int], list[int]]:
    """The finished recording of `call_id` exported by the CLI: (left, right) samples."""
    conf = tmp / "cli.conf"
    conf.write_text(f"[rtpengine]\nrecording-dir = {relay.spool}\n")

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, [args[0], "--config-file", str(conf), *args[1:]])

    def complete() -> bool:
        r = run("search", "--call-id", call_id, "--json")
        return r.exit_code == 0 and any(x["status"] == "complete" for x in json.loads(r.stdout))

    assert wait_for(complete, BOUND), relay.daemon.log()[-3000:]
    out = tmp / "call.wav"
    r = run("export", call_id, "--wav", "-o", str(out))
    assert r.exit_code == 0, r.output
    with wave.open(io.BytesIO(out.read_bytes())) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
        frames = array("h", w.readframes(w.getnframes()))
    return list(frames[0::2]), list(frames[1::2])


def _negotiate(relay: Relay, page: Page, peer: PlainPeer, call_id: str, flow: str) -> str:
    """The browser's offer through the relay to the peer, the peer's answer back; returns the
    SDP the browser gets (the peer starts sending when the relay has answered)."""
    offer_sdp = only_candidates(page.offer(BROWSER_HZ, "PCMU"), "127.0.0.1")
    assert "UDP/TLS/RTP/SAVPF" in offer_sdp and "a=fingerprint:" in offer_sdp
    if flow == "prflx":
        offer_sdp = "\r\n".join(
            ln for ln in offer_sdp.split("\r\n") if not ln.startswith("a=candidate:")
        )
    record = {"record-call": "yes"} if relay.kind == "rtpvault" else {}
    base = {"call-id": call_id, "from-tag": "browser"}
    offer = relay.ng({"command": "offer", **base, "sdp": offer_sdp, **SIP_SIDE, **record})
    to_peer = str(offer["sdp"])
    assert " RTP/AVP 0" in to_peer and "a=candidate" not in to_peer, to_peer
    assert "a=fingerprint" not in to_peer and "a=crypto" not in to_peer, to_peer
    if flow == "late-answer":
        # a relay that checks before the answer (rtpengine) has reached the browser by then
        wait_for(lambda: page.stats().get("checksReceived"), RING)
        time.sleep(RING)
    answer = relay.ng({"command": "answer", **base, "to-tag": "peer",
                       "sdp": peer.answer(to_peer), **BROWSER_SIDE})  # fmt: skip
    to_browser = str(answer["sdp"])
    assert "UDP/TLS/RTP/SAVPF" in to_browser and "a=setup:passive" in to_browser, to_browser
    assert "a=candidate:" in to_browser and "a=ice-ufrag:" in to_browser, to_browser
    peer.start(_media_address(to_peer))
    return to_browser


@pytest.mark.parametrize(("relay", "flow"), CASES, indirect=["relay"])
def test_browser_call_through_relay(relay: Relay, flow: str, tmp_path: Path) -> None:
    call_id = f"browser-{relay.kind}-{flow}@127.0.0.1"
    # the thread stays in the namespace: the peer's socket and the browser (Playwright's driver
    # and chromium, its children) are made there
    with relay.ns.entered(), chromium() as page:
        peer = PlainPeer(PEER_HZ)
        try:
            page.answer(_negotiate(relay, page, peer, call_id, flow))

            def flowing() -> dict[str, Any] | None:
                stats = page.stats()
                if peer.count() >= 100 and stats.get("packetsReceived", 0) >= 100:
                    return stats
                return None

            stats = wait_for(flowing, BOUND, interval=0.2)
            assert stats, f"browser {page.stats()}, peer got {peer.count()} packets; relay log:\n" \
                f"{relay.daemon.log()[-3000:]}"
            heard_by_browser = page.peak_hz()
        finally:
            peer.stop()
        print(f"chromium {page.version} via {relay.kind}: {stats}, hears {heard_by_browser} Hz")
    relay.ng({"command": "delete", "call-id": call_id, "from-tag": "browser"})

    assert stats["packetsReceived"] > 0 and "audio/PCMU" in stats.values()
    # the peer hears the browser's tone (from 1 s in: the oscillator's start is past)
    heard_by_peer = ulaw_samples(b"".join(peer.payloads()[50:100]))
    assert dominant_hz(heard_by_peer) == pytest.approx(BROWSER_HZ, abs=20)
    # the browser hears the peer's (its analyser: 8192-point FFT at 48 kHz, 5.9 Hz bins)
    assert heard_by_browser == pytest.approx(PEER_HZ, abs=12)

    if relay.kind == "rtpvault":
        left, right = _export_wav(relay, call_id, tmp_path)
        # left is the offerer (the browser), right the peer; 1 s in, half a second of each
        assert dominant_hz(left[8000:12000]) == pytest.approx(BROWSER_HZ, abs=20)
        assert dominant_hz(right[8000:12000]) == pytest.approx(PEER_HZ, abs=20)
