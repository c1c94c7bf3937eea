"""A real WebRTC browser for tests: Debian's `chromium`, headless, driven through Playwright's
Python API (issue 17).

Playwright cannot download its own browser build on these machines, so it launches the system
chromium (`executable_path`); .ci/bootstrap installs both. The page is a secure context
(`http://localhost`, answered by `page.route`, so no web server runs) holding one
RTCPeerConnection that sends a WebAudio oscillator: headless chromium has no microphone, and a
tone we choose is what the far end must hear.

Loopback media needs two things from chromium, measured on Chromium 156:
- `--allow-loopback-in-peer-connection`: otherwise 127.0.0.1 / ::1 are never gathered;
- the microphone permission for the origin (granted to the context; getUserMedia is not
  called). Without it chromium gathers only on the interface of the default route (never
  loopback) and hides host addresses behind random `.local` mDNS names no relay resolves. With
  it neither happens, so `--disable-features=WebRtcHideLocalIpsWithMdns` is not needed; that
  switch would also replace Playwright's own `--disable-features` list (the last one wins).
`--autoplay-policy=no-user-gesture-required` lets the AudioContext run without a click (under
Playwright it already does; the switch keeps it from depending on that).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .tools import require, unavailable

CHROMIUM_ARGS = (
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
)
ORIGIN = "http://localhost"
TIMEOUT_MS = 20_000
"""Bound on any one browser step, so a stuck browser fails the test instead of hanging it."""

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>rtpvault webrtc</title></head>
<body><script>
let pc, ctx, analyser;

// The offer: one audio transceiver sending an oscillator at `hz`, restricted to `codec`
// (setCodecPreferences), returned once ICE gathering is complete (no trickle towards a relay).
async function makeOffer(hz, codec) {
  ctx = new AudioContext({sampleRate: 48000});
  await ctx.resume();
  const osc = new OscillatorNode(ctx, {frequency: hz});
  const dst = ctx.createMediaStreamDestination();
  osc.connect(new GainNode(ctx, {gain: 0.5})).connect(dst);
  osc.start();
  pc = new RTCPeerConnection({iceServers: []});
  pc.ontrack = (e) => listen(e.streams[0] || new MediaStream([e.track]));
  const tr = pc.addTransceiver(dst.stream.getAudioTracks()[0], {direction: 'sendrecv'});
  const wanted = 'audio/' + codec.toLowerCase();
  tr.setCodecPreferences(RTCRtpReceiver.getCapabilities('audio').codecs
    .filter((c) => c.mimeType.toLowerCase() === wanted));
  const gathered = new Promise((done) => {
    pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && done();
  });
  await pc.setLocalDescription();
  if (pc.iceGatheringState !== 'complete') await gathered;
  return pc.localDescription.sdp;
}

// What the browser hears: chromium feeds a remote WebRTC track into WebAudio only while a
// media element plays it, so a muted <audio> holds it open and an analyser listens.
function listen(stream) {
  const el = new Audio();
  el.muted = true;
  el.srcObject = stream;
  el.play();
  analyser = new AnalyserNode(ctx, {fftSize: 8192, smoothingTimeConstant: 0});
  ctx.createMediaStreamSource(stream).connect(analyser);
}

async function takeAnswer(sdp) {
  await pc.setRemoteDescription({type: 'answer', sdp: sdp});
}

async function inbound() {
  const out = {ice: pc.iceConnectionState, connection: pc.connectionState};
  for (const s of (await pc.getStats()).values()) {
    if (s.type === 'inbound-rtp' && s.kind === 'audio') {
      out.packetsReceived = s.packetsReceived;
      out.totalAudioEnergy = s.totalAudioEnergy;
      out.codecId = s.codecId;
    }
    if (s.type === 'outbound-rtp' && s.kind === 'audio') out.packetsSent = s.packetsSent;
    if (s.type === 'codec') out['codec:' + s.id] = s.mimeType;
    if (s.type === 'transport') out.dtls = s.dtlsState + '/' + (s.dtlsRole || '-');
    if (s.type === 'candidate-pair') {
      out.checksReceived = (out.checksReceived || 0) + s.requestsReceived;
    }
  }
  return out;
}

// The strongest frequency the analyser hears now (Hz, one FFT bin wide).
function peakHz() {
  if (!analyser) return null;
  const bins = new Float32Array(analyser.frequencyBinCount);
  analyser.getFloatFrequencyData(bins);
  let best = 1;
  for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
  return best * ctx.sampleRate / analyser.fftSize;
}
</script></body></html>
"""


class Page:
    """The test page in a running chromium: offer, answer, statistics."""

    def __init__(self, page: Any, version: str) -> None:
        self._page = page
        self.version = version

    def offer(self, hz: float, codec: str) -> str:
        return str(self._page.evaluate("([hz, c]) => makeOffer(hz, c)", [hz, codec]))

    def answer(self, sdp: str) -> None:
        self._page.evaluate("(sdp) => takeAnswer(sdp)", sdp)

    def stats(self) -> dict[str, Any]:
        """Summary of getStats(): ICE/connection state, inbound-rtp packetsReceived and
        totalAudioEnergy, outbound-rtp packetsSent, codec mime types, DTLS state/role, and the
        connectivity checks received over all candidate pairs."""
        return dict(self._page.evaluate("() => inbound()"))

    def peak_hz(self) -> float | None:
        got = self._page.evaluate("() => peakHz()")
        return None if got is None else float(got)


@contextmanager
def chromium() -> Iterator[Page]:
    """A headless chromium on the test page; skipped (failed when CI=true) if chromium or
    Playwright is missing."""
    executable = require("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright (Python) is not installed (run .ci/bootstrap)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
        try:
            context = browser.new_context(permissions=["microphone"])
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            page.route(f"{ORIGIN}/**", lambda r: r.fulfill(body=PAGE, content_type="text/html"))
            page.goto(f"{ORIGIN}/")
            yield Page(page, browser.version)
        finally:
            browser.close()


def only_candidates(sdp: str, address: str) -> str:
    """`sdp` keeping the UDP host candidates on `address` only (no ::1, no TCP), with the
    default address (c=, m= port) set to the first of them: the relay gets one address family
    and one transport to check, whatever interfaces the browser gathered on."""
    keep = re.compile(rf"a=candidate:\S+ \d+ udp \d+ {re.escape(address)} (\d+) typ host\b", re.I)
    lines = sdp.split("\r\n")
    ports = [m.group(1) for line in lines if (m := keep.match(line))]
    if not ports:
        raise AssertionError(f"the browser gathered no UDP candidate on {address}:\n{sdp}")
    out = []
    for line in lines:
        if line.startswith("a=candidate:") and not keep.match(line):
            continue
        if line.startswith("c=IN "):
            line = f"c=IN {'IP6' if ':' in address else 'IP4'} {address}"
        elif line.startswith("m=audio "):
            line = re.sub(r"^m=audio \d+", f"m=audio {ports[0]}", line)
        out.append(line)
    return "\r\n".join(out)
