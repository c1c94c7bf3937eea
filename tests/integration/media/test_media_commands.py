"""The media commands through rtpengine 10.5 and rtpvault alike, with real packets
(docs/spec/ng-protocol.md §9): A and B talk PCMU (A 440 Hz, B 1000 Hz) through the relay, both
with telephone-event 101, while the test sends `play media`, `stop media`, `play DTMF`,
`block`/`unblock media` and DTMF, `silence media`; what each party receives is decoded.

Both daemons run two workers; the calls are chosen so that each worker owns one (rtpvault.shard
routes a command to the call's owner). Waits are bounded polls; no timing is asserted.
"""

from __future__ import annotations

import base64
import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pylibsrtp
import pytest

from rtpvault.shard import owner_of
from tests.support.daemons import Daemon, start
from tests.support.media_rig import Conversation, Rtp, Talker
from tests.support.rtp_party import media_port
from tests.support.tone import dominant_hz, power, ulaw_samples
from tests.unit.relay.transcode.test_fileplay import write_wav

pytestmark = pytest.mark.integration

SSRC_A, SSRC_B = 0xAAAA0001, 0xBBBB0002
BOUND = 8.0
"""Seconds before a wait gives up (never a timing assertion)."""
_ids = itertools.count()


@pytest.fixture(scope="module", params=["rtpengine", "rtpvault"])
def relay(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Daemon]:  # fmt: skip
    d = start(request.param, Path(tmp_path_factory.mktemp(f"cmds-{request.param}")),
              interface="lo/127.0.0.1", ports=60, num_threads=2)  # fmt: skip
    try:
        yield d
    finally:
        d.stop()


def sdp(port: int, dtmf: bool = True) -> str:
    events = "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n" if dtmf else ""
    return ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0{' 101' if dtmf else ''}\r\na=rtpmap:0 PCMU/8000\r\n"
            f"{events}a=sendrecv\r\na=ptime:20\r\n")  # fmt: skip


def call_id_for(worker: int) -> str:
    return next(c for c in (f"cmd-{next(_ids)}" for _ in range(1000)) if owner_of(c, 2) == worker)


class Call:
    """One A-B call through `relay`, talking from set-up until `stop()`."""

    def __init__(self, relay: Daemon, worker: int, offer_extra: dict[str, object] | None = None,
                 a_dtmf: bool = True) -> None:  # fmt: skip
        self.relay = relay
        self.call_id = call_id_for(worker)
        self.a, self.b = Talker("A", SSRC_A, 440), Talker("B", SSRC_B, 1000)
        base = {"call-id": self.call_id, "from-tag": "a"}
        a_sdp = sdp(self.a.party.port, a_dtmf)
        offer = self.ng({"command": "offer", **base, "sdp": a_sdp, **(offer_extra or {})})
        answer = self.ng({"command": "answer", **base, "to-tag": "b",
                          "sdp": sdp(self.b.party.port)})  # fmt: skip
        self.a.party.peer = ("127.0.0.1", media_port(str(answer["sdp"])))
        self.b.party.peer = ("127.0.0.1", media_port(str(offer["sdp"])))
        self.conv = Conversation(self.a, self.b)
        self.wait(lambda: len(self.a.got) > 5 and len(self.b.got) > 5)

    def ng(self, body: dict[str, object]) -> dict[str, object]:
        c = self.relay.client()
        try:
            return c.call(body)
        finally:
            c.close()

    def command(self, command: str, **body: object) -> dict[str, object]:
        return self.ng({"command": command, "call-id": self.call_id, **body})

    def wait(self, done: Callable[[], bool], bound: float = BOUND) -> None:
        end = time.monotonic() + bound
        while time.monotonic() < end and not done():
            time.sleep(0.02)

    def settle(self, packets: int = 15) -> tuple[int, int]:
        """Wait until each party received `packets` more (what was in flight is past), and
        return the marks to slice what comes next."""
        a0, b0 = self.conv.mark()
        self.wait(lambda: len(self.a.got) >= a0 + packets and len(self.b.got) >= b0 + packets)
        return self.conv.mark()

    def stop(self) -> None:
        self.conv.stop()
        self.a.party.close()
        self.b.party.close()


@pytest.fixture
def call(relay: Daemon, request: pytest.FixtureRequest) -> Iterator[Call]:
    """A call owned by worker 0, or by the worker given with `indirect` parametrisation."""
    c = Call(relay, getattr(request, "param", 0))
    try:
        yield c
    finally:
        c.stop()


def played(got: list[Rtp], own: int) -> list[Rtp]:
    return [p for p in got if p.ssrc != own]


BOTH_WORKERS = pytest.mark.parametrize("call", [0, 1], ids=["worker0", "worker1"], indirect=True)


@BOTH_WORKERS
def test_play_media_reaches_the_party_named_as_its_own_stream(call: Call, tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "tone.wav", 2000, 1.0)
    a0, b0 = call.conv.mark()
    reply = call.command("play media", **{"from-tag": "a", "file": str(wav)})
    assert reply == {"duration": 1000, "result": "ok"}
    call.wait(lambda: len(played(call.a.got[a0:], SSRC_B)) >= 50)
    a1, b1 = call.settle(25)  # the file ended a while ago: nothing more comes from the player
    got = played(call.a.got[a0:a1], SSRC_B)
    assert len(got) == 50
    assert len({p.ssrc for p in got}) == 1 and {p.pt for p in got} == {0}
    assert [p.marker for p in got] == [True] + [False] * 49
    assert all((q.seq - p.seq) % 65536 == 1 and (q.ts - p.ts) % 2**32 == 160
               for p, q in itertools.pairwise(got))  # fmt: skip
    assert {len(p.payload) for p in got} == {160}
    assert dominant_hz(ulaw_samples(b"".join(p.payload for p in got[5:30]))) == 2000
    # B's own media went on reaching A meanwhile, and B heard nothing of the file
    assert sum(p.ssrc == SSRC_B for p in call.a.got[a0:a1]) >= 40
    assert {p.ssrc for p in call.b.got[b0:b1]} == {SSRC_A}


def test_stop_media_ends_the_playback(call: Call, tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "long.wav", 2000, 5.0)
    a0, _ = call.conv.mark()
    assert call.command("play media", **{"from-tag": "b", "file": str(wav)})["duration"] == 5000
    call.wait(lambda: len(played(call.b.got, SSRC_A)) >= 10)
    assert call.command("stop media", **{"from-tag": "b"}) == {"result": "ok"}
    _, b1 = call.settle()
    _, b2 = call.settle(40)
    assert played(call.b.got[b1:b2], SSRC_A) == []  # nothing from the player after the stop
    assert 10 <= len(played(call.b.got, SSRC_A)) < 250


@BOTH_WORKERS
def test_block_media_from_one_party_and_unblock(call: Call) -> None:
    assert call.command("block media", **{"from-tag": "a"}) == {"result": "ok"}
    a0, b0 = call.settle()
    a1, b1 = call.settle(25)
    assert call.b.got[b0:b1] == [] and len(call.a.got[a0:a1]) >= 25  # A → B only is blocked
    assert call.command("unblock media", **{"from-tag": "a"}) == {"result": "ok"}
    call.wait(lambda: len(call.b.got) > b1 + 10)
    assert {p.ssrc for p in call.b.got[b1:]} == {SSRC_A}


def test_call_wide_block_media(call: Call) -> None:
    assert call.command("block media") == {"result": "ok"}
    call.wait(lambda: False, 0.3)  # what was in flight arrives
    a0, b0 = call.conv.mark()
    call.wait(lambda: False, 0.6)
    assert call.conv.mark() == (a0, b0)
    assert call.command("unblock media") == {"result": "ok"}
    call.settle()


@BOTH_WORKERS
def test_block_dtmf_drops_only_that_partys_events(call: Call) -> None:
    assert call.command("block DTMF", **{"from-tag": "a"}) == {"result": "ok"}
    a0, b0 = call.settle()
    call.a.send_event(101, 7)
    call.b.send_event(101, 3)
    a1, b1 = call.settle()
    to_b, to_a = call.b.got[b0:b1], call.a.got[a0:a1]
    assert [p for p in to_b if p.pt == 101] == [] and any(p.pt == 0 for p in to_b)
    assert {p.event()[0] for p in to_a if p.pt == 101} == {3}
    assert call.command("unblock DTMF", **{"from-tag": "a"}) == {"result": "ok"}
    _, b2 = call.conv.mark()
    call.a.send_event(101, 7)
    _, b3 = call.settle()
    assert {p.event()[0] for p in call.b.got[b2:b3] if p.pt == 101} == {7}


def test_silence_media_sends_codec_silence(call: Call) -> None:
    assert call.command("silence media", **{"from-tag": "a"}) == {"result": "ok"}
    a0, b0 = call.settle()
    a1, b1 = call.settle()
    assert {p.payload for p in call.b.got[b0:b1]} == {b"\xff" * 160}
    assert {p.ssrc for p in call.b.got[b0:b1]} == {SSRC_A}
    assert dominant_hz(ulaw_samples(call.a.got[a1 - 1].payload)) == 1000  # B → A untouched
    assert call.command("unsilence media", **{"from-tag": "a"}) == {"result": "ok"}
    _, b2 = call.settle()
    _, b3 = call.settle()
    assert dominant_hz(ulaw_samples(b"".join(p.payload for p in call.b.got[b2:b3]))) == 440


def test_play_dtmf_on_a_plain_call_answers_ok_and_sends_nothing(call: Call) -> None:
    a0, b0 = call.conv.mark()
    reply = call.command("play DTMF", **{"from-tag": "b", "code": "5", "duration": 200})
    assert reply == {"result": "ok"}
    a1, b1 = call.settle(30)
    assert {p.pt for p in call.a.got[a0:a1] + call.b.got[b0:b1]} == {0}
    assert {p.ssrc for p in call.a.got[a0:a1]} == {SSRC_B}


def _crypto(key: bytes) -> str:
    return f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{base64.b64encode(key).decode()}\r\n"


def test_play_media_to_an_srtp_party_is_protected(relay: Daemon, tmp_path: Path) -> None:
    """A speaks SDES-SRTP, B plain RTP: the file reaches A as SRTP under the key the relay
    gave A in the answer (the leg's outbound context), decrypted here by libsrtp."""
    key = bytes(range(30))
    a, b = Talker("A", SSRC_A, 440), Talker("B", SSRC_B, 1000)
    a.protect = pylibsrtp.Session(policy=pylibsrtp.Policy(
        key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)).protect  # fmt: skip
    call = Call.__new__(Call)
    call.relay, call.call_id, call.a, call.b = relay, call_id_for(1), a, b
    a_sdp = sdp(a.party.port).replace("RTP/AVP", "RTP/SAVP") + _crypto(key)
    base = {"call-id": call.call_id, "from-tag": "a"}
    offer = call.ng({"command": "offer", **base, "sdp": a_sdp, "transport-protocol": "RTP/AVP",
                     "DTLS": "off"})  # fmt: skip
    answer = str(call.ng({"command": "answer", **base, "to-tag": "b",
                          "sdp": sdp(b.party.port)})["sdp"])  # fmt: skip
    a.party.peer = ("127.0.0.1", media_port(answer))
    b.party.peer = ("127.0.0.1", media_port(str(offer["sdp"])))
    line = next(v for v in answer.split("\r\n") if v.startswith("a=crypto:1 "))
    theirs = base64.b64decode(line.split("inline:")[1].split()[0].split("|")[0])
    rx = pylibsrtp.Session(policy=pylibsrtp.Policy(
        key=theirs, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))  # fmt: skip
    call.conv = Conversation(a, b)
    try:
        call.wait(lambda: len(a.got) > 5 and len(b.got) > 5)
        a0, _ = call.conv.mark()
        wav = write_wav(tmp_path / "tone.wav", 2000, 0.4)
        assert call.command("play media", **{"from-tag": "a", "file": str(wav)})["duration"] == 400
        call.wait(lambda: len(played(a.got[a0:], SSRC_B)) >= 20)
        call.settle(10)
    finally:
        call.stop()
    got = played(a.got[a0:], SSRC_B)
    assert len(got) == 20
    plain = [rx.unprotect(p.raw) for p in got]  # raises unless protected with A's key
    audio = b"".join(p[12:] for p in plain[3:17])
    assert {len(p) for p in plain} == {172} and dominant_hz(ulaw_samples(audio)) == 2000


def _inject_call(relay: Daemon, a_dtmf: bool) -> Call:
    call = Call(relay, 1, {"flags": ["inject-DTMF"]}, a_dtmf)
    call.wait(lambda: any(p.ssrc != SSRC_B for p in call.a.got))  # B's audio, transcoded to A
    return call


def test_play_dtmf_with_inject_dtmf_as_rfc4733_events(relay: Daemon) -> None:
    """inject-DTMF from the offerer A: B's audio reaches A re-encoded under the relay's SSRC;
    play DTMF from B puts events into it (§9.4): 300 ms of `5` at volume 12, then `#`."""
    call = _inject_call(relay, a_dtmf=True)
    try:
        a0, _ = call.conv.mark()
        body = {"from-tag": "b", "code": "5", "duration": 300, "volume": 12}
        assert call.command("play DTMF", **body) == {"result": "ok"}
        assert call.command("play DTMF", **{"from-tag": "b", "code": "#"}) == {"result": "ok"}
        call.wait(lambda: sum(p.pt == 101 and p.event()[1] for p in call.a.got[a0:]) >= 6)
        a1, _ = call.settle(10)
    finally:
        call.stop()
    got = call.a.got[a0:a1]
    assert len({p.ssrc for p in got}) == 1 and SSRC_B not in {p.ssrc for p in got}
    events = [(p, p.event()) for p in got if p.pt == 101]
    five = [(p, e) for p, e in events if e[0] == 5]
    pound = [(p, e) for p, e in events if e[0] == 11]
    assert len({p.ts for p, _ in five}) == 1 and sum(p.marker for p, _ in five) == 1
    assert [(e[1], e[2], e[3]) for _, e in five if e[1]] == [(True, 12, 2560)] * 3
    assert [(e[1], e[2], e[3]) for _, e in pound if e[1]] == [(True, 63, 2240)] * 3  # 250 ms
    assert (pound[0][0].ts - five[0][0].ts) % 2**32 == 2400 + 800  # the first + pause
    assert any(p.pt == 0 for p in got if p.seq > max(q.seq for q, _ in pound))  # audio again


def test_play_dtmf_with_inject_dtmf_in_band(relay: Daemon) -> None:
    """A without telephone-event: the digit is in A's audio as its two tones (§9.4)."""
    call = _inject_call(relay, a_dtmf=False)
    try:
        a0, _ = call.conv.mark()
        body = {"from-tag": "b", "code": "5", "duration": 400, "volume": 12}
        assert call.command("play DTMF", **body) == {"result": "ok"}
        call.wait(lambda: len(call.a.got) >= a0 + 40)
        a1, _ = call.conv.mark()
    finally:
        call.stop()
    got = [p for p in call.a.got[a0:a1] if p.pt == 0]
    tones = [p for p in got if _is_five(ulaw_samples(p.payload))]
    assert 15 <= len(tones) <= 21  # 400 ms of 20-ms frames (one may be cut at each end)
    assert all(p.ssrc != SSRC_B for p in got)


def _is_five(samples: list[int]) -> bool:
    """The DTMF `5` pair (770 + 1336 Hz) well above B's 1000-Hz tone."""
    return all(power(samples, f) > 20 * power(samples, 1000) for f in (770, 1336))


def test_repeat_times_plays_the_file_again(call: Call, tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "tone.wav", 2000, 0.4)
    a0, _ = call.conv.mark()
    body = {"from-tag": "a", "file": str(wav), "repeat-times": 2}
    assert call.command("play media", **body) == {"duration": 400, "result": "ok"}
    call.wait(lambda: len(played(call.a.got[a0:], SSRC_B)) >= 40)
    a1, _ = call.settle(25)
    got = played(call.a.got[a0:a1], SSRC_B)
    assert len(got) == 40 and len({p.ssrc for p in got}) == 1
    assert sum(p.marker for p in got) == 1  # one playback: the repeat goes on seamlessly


def test_delete_stops_the_playback_at_once(call: Call, tmp_path: Path) -> None:
    """The call stays for the delete delay (B's media still reaches A), the file does not."""
    wav = write_wav(tmp_path / "long.wav", 2000, 5.0)
    assert call.command("play media", **{"from-tag": "a", "file": str(wav)})["result"] == "ok"
    call.wait(lambda: len(played(call.a.got, SSRC_B)) >= 10)
    assert call.command("delete", **{"from-tag": "a"})["result"] == "ok"
    a1, _ = call.settle()
    a2, _ = call.settle(40)
    assert played(call.a.got[a1:a2], SSRC_B) == []
    assert len(call.a.got[a1:a2]) >= 40  # B's own media, forwarded during the delay
