"""Transcoded calls through the real daemon, rtpengine 10.5 alike (issue 19;
docs/spec/transcoding.md §1). A PCMU-only party A calls through the relay with
`codec: {transcode: [X]}` and B answers X only (PCMA, or Opus decoded and encoded with PyAV):
a 440 Hz tone from A arrives at B in X at its pitch, a 660 Hz tone from B arrives at A as PCMU
at its pitch. The same tests run against rtpengine (the reference) and rtpvault, both with two
workers, for calls owned by either worker; `statistics` (both) and /metrics (rtpvault) show the
chains with the packets of every call so far, whichever worker ran it. No timing asserted.
"""

from __future__ import annotations

import fractions
import itertools
import math
import struct
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
from prometheus_client.parser import text_string_to_metric_families

from recorder.g711 import ALAW_TO_LINEAR
from relay.transcode import packet
from rtpvault.shard import owner_of
from tests.support.daemons import Daemon, start
from tests.support.rtp_party import Party, media_port, ng_sdp, party_sdp
from tests.support.tone import dominant_hz, ulaw_samples, ulaw_tone
from tests.support.tools import free_port

pytestmark = pytest.mark.integration

_ids = itertools.count()
A_SSRC, B_SSRC = 0x0A0A0001, 0x0B0B0002
PACKETS = 50
A_HZ, B_HZ = 440, 660
DONE: dict[str, list[str]] = {}
"""Relay → its PCMU↔PCMA calls so far (the chains' counters add up over them)."""


@pytest.fixture(scope="module", params=["rtpengine", "rtpvault"])
def relay(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Daemon]:  # fmt: skip
    http = free_port()
    extra = ["--delete-delay=0"]
    if request.param == "rtpvault":
        extra.append(f"--listen-http=127.0.0.1:{http}")
    d = start(request.param, Path(tmp_path_factory.mktemp(f"tc-{request.param}")),
              interface="lo/127.0.0.1", ports=40, num_threads=2, extra=extra)  # fmt: skip
    d.http_port = http  # type: ignore[attr-defined]
    try:
        yield d
    finally:
        d.stop()


def _call_id(worker: int) -> str:
    while True:
        call_id = f"tc-{next(_ids)}@192.0.2.1"
        if owner_of(call_id, 2) == worker:
            return call_id


def _rtp(seq: int, ssrc: int, pt: int, ts: int, payload: bytes) -> bytes:
    return packet.build(False, pt, seq, ts, ssrc, payload)


class Opus:
    """PyAV's libopus at 48 kHz mono: a tone encoded into 20 ms packets, packets decoded."""

    def __init__(self) -> None:
        self.enc = av.CodecContext.create("libopus", "w")
        self.enc.sample_rate, self.enc.layout, self.enc.format = 48000, "mono", "s16"
        self.enc.time_base = fractions.Fraction(1, 48000)
        self.dec = av.CodecContext.create("opus", "r")
        self.dec.sample_rate, self.dec.layout = 48000, "mono"
        self.mono = av.AudioResampler(format="s16", layout="mono", rate=48000)

    def tone(self, hz: float, n: int) -> bytes:
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.sample_rate, frame.pts = 48000, 960 * n
        frame.planes[0].update(struct.pack("<960h", *(
            round(8000 * math.sin(2 * math.pi * hz * (960 * n + i) / 48000)) for i in range(960))))
        return b"".join(bytes(p) for p in self.enc.encode(frame))

    def samples(self, payload: bytes) -> list[int]:
        out: list[int] = []
        for frame in self.dec.decode(av.Packet(payload)):
            for mono in self.mono.resample(frame):
                pcm = bytes(mono.planes[0])[: 2 * mono.samples]
                out += struct.unpack(f"<{mono.samples}h", pcm)
        return out


RTPMAP = {"PCMA": (8, "PCMA/8000"), "opus": (96, "opus/48000/2")}
"""What B answers with: payload type and rtpmap of its one codec."""


def _connect(relay: Daemon, call_id: str, a: Party, b: Party, codec: str,
             offer: dict[str, object]) -> tuple[str, str]:  # fmt: skip
    """A offers PCMU (ng offer plus `offer`: the codec flags), B answers with `codec` alone;
    each party then sends to the relay's port facing it. (Offer SDP, answer SDP.)"""
    pt, rtpmap = RTPMAP[codec]
    offer_sdp = ng_sdp(relay, {"command": "offer", "call-id": call_id, "from-tag": "A",
                               "sdp": party_sdp(a.port), **offer})  # fmt: skip
    b.peer = ("127.0.0.1", media_port(offer_sdp))
    bsdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {b.port} RTP/AVP {pt}\r\na=rtpmap:{pt} {rtpmap}\r\na=sendrecv\r\n")
    answer = ng_sdp(relay, {"command": "answer", "call-id": call_id, "from-tag": "A",
                            "to-tag": "B", "sdp": bsdp})  # fmt: skip
    a.peer = ("127.0.0.1", media_port(answer))
    return offer_sdp, answer


def _exchange(relay: Daemon, call_id: str, codec: str, a_rtcp: bytes | None = None
              ) -> tuple[list[bytes], list[bytes]]:  # fmt: skip
    """Offer/answer, then 50 packets each way (and `a_rtcp` from A after them): (what B got,
    what A got)."""
    a, b = Party(timeout=2), Party(timeout=2)
    try:
        offer, answer = _connect(relay, call_id, a, b, codec, {"codec": {"transcode": [codec]}})
        assert f"{RTPMAP[codec][1]}" in offer
        assert "m=audio" in answer and " RTP/AVP 0" in answer
        opus = Opus() if codec == "opus" else None
        for n in range(PACKETS):
            a.send_rtp(_rtp(1000 + n, A_SSRC, 0, 160 * n, ulaw_tone(A_HZ, 160 * n)))
            if opus is not None:
                b.send_rtp(_rtp(2000 + n, B_SSRC, 96, 960 * n, opus.tone(B_HZ, n)))
            else:
                alaw = bytes(_alaw_tone(B_HZ, 160 * n))
                b.send_rtp(_rtp(2000 + n, B_SSRC, 8, 160 * n, alaw))
            time.sleep(0.02)
        if a_rtcp is not None:
            a.send_rtcp(a_rtcp)
        return _drain(b), _drain(a)
    finally:
        a.close()
        b.close()


def _alaw_tone(hz: float, first: int) -> list[int]:
    """A-law codes of a sine: the nearest entry of the decoder's table (no encoder here)."""
    table = sorted((v, c) for c, v in enumerate(ALAW_TO_LINEAR))
    out = []
    for i in range(160):
        x = round(8000 * math.sin(2 * math.pi * hz * (first + i) / 8000))
        out.append(min(table, key=lambda vc: abs(vc[0] - x))[1])
    return out


def _drain(p: Party, rtcp: bool = False) -> list[bytes]:
    """What reaches `p`'s RTP (or RTCP) socket until it is quiet for 0.5 s."""
    sock = p.rtcp if rtcp else p.rtp
    sock.settimeout(0.5)
    got = []
    try:
        while True:
            got.append(sock.recv(65536))
    except TimeoutError:
        return got


def _metrics(relay: Daemon, label: str = "chain") -> dict[tuple[str, str], float]:
    """/metrics as (sample name, its `label`) → value."""
    port = relay.http_port  # type: ignore[attr-defined]
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {(s.name, s.labels.get(label, "")): s.value
            for fam in text_string_to_metric_families(body) for s in fam.samples}  # fmt: skip


@pytest.mark.parametrize("worker", [0, 1])
def test_pcmu_to_pcma_and_back_at_pitch(relay: Daemon, worker: int) -> None:
    call_id = _call_id(worker)
    to_b, to_a = _exchange(relay, call_id, "PCMA")
    assert len(to_b) >= PACKETS - 5 and len(to_a) >= PACKETS - 5
    assert {p[1] & 0x7F for p in to_b} == {8} and {p[1] & 0x7F for p in to_a} == {0}
    assert A_SSRC not in {struct.unpack_from("!I", p, 8)[0] for p in to_b}  # the chain's own
    pcma = [ALAW_TO_LINEAR[x] for p in to_b[5:] for x in p[12:]]
    assert abs(dominant_hz(pcma) - A_HZ) <= 20
    pcmu = [s for p in to_a[5:] for s in ulaw_samples(p[12:])]
    assert abs(dominant_hz(pcmu) - B_HZ) <= 20
    query = relay.client().call({"command": "query", "call-id": call_id})
    assert all("transcoding" in t["medias"][0]["flags"] for t in query["tags"].values())
    stats = relay.client().call({"command": "statistics"})["statistics"]
    assert stats["currentstatistics"]["transcodedmedia"] == 2  # this call, one per direction
    done = DONE.setdefault(relay.name, [])
    done.append(call_id)
    chains = {t["chain"]: t for t in stats["transcoders"]}
    # into the chain: every packet A and B sent, in every call so far (either worker's)
    assert chains["PCMU/8000 -> PCMA/8000"]["packets"] == PACKETS * len(done)
    assert chains["PCMU/8000 -> PCMA/8000"]["bytes"] == PACKETS * 160 * len(done)
    assert chains["PCMA/8000 -> PCMU/8000"]["samples"] == PACKETS * 160 * len(done)
    assert chains["PCMA/8000 -> PCMU/8000"]["num"] == 1
    if relay.name == "rtpvault":
        m = _metrics(relay)
        chain = "PCMU/8000 -> PCMA/8000"
        assert m[("rtpengine_transcode_packets_total", chain)] == PACKETS * len(done)
        assert m[("rtpengine_transcoders", chain)] == 1
        assert m[("rtpengine_transcoded_media", "")] == 2
    relay.client().call({"command": "delete", "call-id": call_id})


@pytest.mark.parametrize("worker", [0, 1])
def test_pcmu_to_opus_and_back_at_pitch(relay: Daemon, worker: int) -> None:
    call_id = _call_id(worker)
    to_b, to_a = _exchange(relay, call_id, "opus")
    assert len(to_b) >= PACKETS - 5 and len(to_a) >= PACKETS - 5
    assert {p[1] & 0x7F for p in to_b} == {96}
    opus = Opus()
    pcm = [s for p in to_b for s in opus.samples(p[12:])]
    assert abs(dominant_hz(pcm[48000 // 10 :], rate=48000) - A_HZ) <= 20
    pcmu = [s for p in to_a[5:] for s in ulaw_samples(p[12:])]
    assert abs(dominant_hz(pcmu) - B_HZ) <= 20
    relay.client().call({"command": "delete", "call-id": call_id})


def test_rtcp_is_rewritten_for_the_other_leg(relay: Daemon) -> None:
    """docs/spec/transcoding.md §2: A's SR reaches B with A's output SSRC and the output's
    counts, its report block about what A receives turned into one about B's own SSRC with the
    highest sequence number the relay got from B; B's RR reaches A likewise. Loss fields are
    not compared (rtpengine 10.5 copies them from reports, rtpvault measures them)."""
    call_id = _call_id(0)
    a, b = Party(timeout=2), Party(timeout=2)
    try:
        _connect(relay, call_id, a, b, "PCMA", {"codec": {"transcode": ["PCMA"]}})
        for n in range(PACKETS):
            a.send_rtp(_rtp(1000 + n, A_SSRC, 0, 160 * n, ulaw_tone(A_HZ, 160 * n)))
            b.send_rtp(_rtp(2000 + n, B_SSRC, 8, 160 * n, bytes(_alaw_tone(B_HZ, 0))))
            time.sleep(0.02)
        to_b, to_a = _drain(b), _drain(a)
        a_out = struct.unpack_from("!I", to_b[0], 8)[0]  # A's SSRC on B's leg
        b_out = struct.unpack_from("!I", to_a[0], 8)[0]
        sr = struct.pack("!BBHI", 0x81, 200, 12, A_SSRC) + struct.pack(
            "!IIIII", 0xE0000000, 0x80000000, 12345, 7, 700)
        sr += struct.pack("!IIIIII", b_out, 0, 7, 9, 0xABCDEF01, 77)
        a.send_rtcp(sr)
        rr = struct.pack("!BBHI", 0x81, 201, 7, B_SSRC) + struct.pack(
            "!IIIIII", a_out, 0, 3, 11, 0, 0)
        b.send_rtcp(rr)
        (got_b,), (got_a,) = _drain(b, rtcp=True), _drain(a, rtcp=True)
    finally:
        a.close()
        b.close()
        relay.client().call({"command": "delete", "call-id": call_id})
    ssrc, msw, lsw, ts, packets, octets = struct.unpack_from("!IIIIII", got_b, 4)
    assert (ssrc, msw, lsw) == (a_out, 0xE0000000, 0x80000000)  # NTP time kept
    assert (packets, octets) == (len(to_b), sum(len(p) for p in to_b))
    assert ts == struct.unpack_from("!I", to_b[-1], 4)[0]
    about, _, highest, jitter, lsr, dlsr = struct.unpack_from("!IIIIII", got_b, 28)
    assert (about, highest, jitter, lsr, dlsr) == (B_SSRC, 2000 + PACKETS - 1, 9, 0xABCDEF01, 77)
    ssrc, about, _, highest, jitter = struct.unpack_from("!IIIII", got_a, 4)
    assert (ssrc, about, highest, jitter) == (b_out, A_SSRC, 1000 + PACKETS - 1, 11)


def test_generated_rtcp_describes_each_leg(relay: Daemon) -> None:
    """`generate-RTCP` on a transcoded call (docs/spec/ng-protocol.md §8): the relay's own SR to
    each party is about the SSRC that party receives (the chain's output), with a report block
    about the SSRC that party sends. Waits for the first report (5-7 s); no timing asserted."""
    call_id = _call_id(1)
    a, b = Party(timeout=2), Party(timeout=2)
    try:
        _connect(relay, call_id, a, b, "PCMA", {"codec": {"transcode": ["PCMA"]},
                                                 "flags": ["generate-RTCP"]})  # fmt: skip
        for s in (a.rtp, b.rtp, a.rtcp, b.rtcp):
            s.setblocking(False)
        seen: dict[str, set[int]] = {"A": set(), "B": set()}
        reports: dict[str, bytes] = {}
        n, bound = 0, time.monotonic() + 20
        while len(reports) < 2 and time.monotonic() < bound:
            a.send_rtp(_rtp(1000 + n, A_SSRC, 0, 160 * n, ulaw_tone(A_HZ, 160 * n)))
            b.send_rtp(_rtp(2000 + n, B_SSRC, 8, 160 * n, bytes(_alaw_tone(B_HZ, 0))))
            n += 1
            time.sleep(0.02)
            for name, p in (("A", a), ("B", b)):
                for sock, kind in ((p.rtp, "rtp"), (p.rtcp, "rtcp")):
                    try:
                        while True:
                            data = sock.recv(4096)
                            if kind == "rtp":
                                seen[name].add(struct.unpack_from("!I", data, 8)[0])
                            elif data[1] == 200:
                                reports.setdefault(name, data)
                    except BlockingIOError:
                        pass
    finally:
        a.close()
        b.close()
        relay.client().call({"command": "delete", "call-id": call_id})
    assert set(reports) == {"A", "B"}
    for name, own in (("A", A_SSRC), ("B", B_SSRC)):
        sr = reports[name]
        assert struct.unpack_from("!I", sr, 4)[0] in seen[name]  # the SSRC this party gets
        assert sr[0] & 0x1F >= 1 and struct.unpack_from("!I", sr, 28)[0] == own
