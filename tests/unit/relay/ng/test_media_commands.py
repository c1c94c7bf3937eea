"""The media commands' replies and the state they leave (docs/spec/ng-protocol.md §9): who a
command selects, which flags `block`/`silence` and their `un` forms set and clear (party and
call-wide, `all`), the gates that puts on the streams, `play media`/`stop media` errors and
players, `play DTMF` on a plainly forwarded call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from relay.call import Call
from relay.ng.commands import Commands
from relay.ng.errors import NgError
from tests.unit.relay.test_calls import registry
from tests.unit.relay.transcode.test_fileplay import write_wav

SOURCE = ("127.0.0.1", 5060)


def sdp(port: int) -> str:
    return ("v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\n")  # fmt: skip


@pytest.fixture
def commands() -> Commands:
    reg, _ = registry()
    c = Commands(reg)
    base = {"call-id": "c1", "from-tag": "a"}
    c.dispatch({"command": "offer", **base, "sdp": sdp(49170)}, SOURCE)
    c.dispatch({"command": "answer", **base, "to-tag": "b", "sdp": sdp(49180)}, SOURCE)
    return c


def send(c: Commands, command: str, **body: Any) -> dict[str, Any]:
    return c.dispatch({"command": command, "call-id": "c1", **body}, SOURCE)


def call(c: Commands) -> Call:
    return c.registry.calls["c1"]


def gate_of(c: Commands, tag: str) -> Any:
    stream = call(c).parties[tag].medias[0].rtp
    assert stream is not None
    return stream.gate


def test_block_media_from_one_party_gates_only_its_stream(commands: Commands) -> None:
    assert send(commands, "block media", **{"from-tag": "a"}) == {"result": "ok"}
    assert gate_of(commands, "a").block and gate_of(commands, "b") is None
    assert send(commands, "unblock media", **{"from-tag": "a"}) == {"result": "ok"}
    assert gate_of(commands, "a") is None


def test_call_wide_unblock_keeps_a_party_flag_unless_all(commands: Commands) -> None:
    send(commands, "block media", **{"from-tag": "a"})
    send(commands, "block media")
    assert gate_of(commands, "a").block and gate_of(commands, "b").block
    send(commands, "unblock media")
    assert gate_of(commands, "a").block and gate_of(commands, "b") is None
    send(commands, "unblock media", flags=["all"])
    assert gate_of(commands, "a") is None and not call(commands).parties["a"].block_media


def test_silence_and_block_dtmf_know_the_partys_payload_types(commands: Commands) -> None:
    send(commands, "silence media", **{"from-tag": "b"})
    send(commands, "block DTMF", **{"from-tag": "b"})
    g = gate_of(commands, "b")
    assert g.silence and g.block_dtmf and not g.block
    assert g.dtmf_pts == {101} and g.silence_bytes == {0: 0xFF}
    send(commands, "unsilence media", **{"from-tag": "b"})
    send(commands, "unblock DTMF", **{"from-tag": "b"})
    assert gate_of(commands, "b") is None


def test_block_dtmf_replace_modes_are_refused(commands: Commands) -> None:
    with pytest.raises(NgError, match="not supported"):
        send(commands, "block DTMF", **{"from-tag": "a", "DTMF-security": "tone"})
    with pytest.raises(NgError, match="not supported"):
        send(commands, "block DTMF", trigger="#")
    assert send(commands, "block DTMF", **{"DTMF-security": "drop"}) == {"result": "ok"}
    assert gate_of(commands, "a").block_dtmf and gate_of(commands, "b").block_dtmf


def test_selection_errors_are_rtpengines(commands: Commands) -> None:
    with pytest.raises(NgError, match="^Unknown call-ID$"):
        commands.dispatch({"command": "block media", "call-id": "nope"}, SOURCE)
    with pytest.raises(NgError, match="^From-tag given, but no such tag exists$"):
        send(commands, "silence media", **{"from-tag": "zz"})
    for command in ("play media", "stop media", "play DTMF"):
        with pytest.raises(NgError, match="^No participant party specified$"):
            send(commands, command, **{"to-tag": "b", "file": "/x.wav", "code": "1"})


def test_play_media_replies(commands: Commands, tmp_path: Path) -> None:
    with pytest.raises(NgError, match="^Not currently playing media$"):
        send(commands, "stop media", **{"from-tag": "a"})
    with pytest.raises(NgError, match="^Failed to start media playback from file$"):
        send(commands, "play media", **{"from-tag": "a", "file": str(tmp_path / "none.wav")})
    assert send(commands, "stop media", **{"from-tag": "a"}) == {"result": "ok"}  # has a player
    with pytest.raises(NgError, match="^Failed to start media playback from blob$"):
        send(commands, "play media", **{"from-tag": "a", "blob": "xxxx"})
    with pytest.raises(NgError, match="^Failed to start media playback from database$"):
        send(commands, "play media", **{"from-tag": "a", "db-id": 5})
    with pytest.raises(NgError, match="^No media file specified$"):
        send(commands, "play media", **{"from-tag": "a", "db-id": 0})
    with pytest.raises(NgError, match="^Not currently playing media$"):
        send(commands, "stop media", flags=["all"])  # b never had a player


def test_play_media_reply_has_the_files_duration(commands: Commands, tmp_path: Path) -> None:
    import asyncio

    wav = write_wav(tmp_path / "t.wav", 1000, 0.5)

    async def run() -> dict[str, Any]:
        return send(commands, "play media", flags=["all"], file=str(wav), **{"repeat-times": 3})

    assert asyncio.run(run()) == {"duration": 500, "result": "ok"}
    players = [p.player for p in call(commands).all_parties()]
    assert all(p is not None for p in players) and players[0].ssrc != players[1].ssrc


def test_play_dtmf_on_a_plain_call(commands: Commands) -> None:
    with pytest.raises(NgError, match="^No SSRC context present for DTMF injection$"):
        send(commands, "play DTMF", **{"from-tag": "b", "code": "5"})
    stream = call(commands).parties["b"].medias[0].rtp
    assert stream is not None
    stream.ssrc = 0xBBBB0002  # media from b seen
    assert send(commands, "play DTMF", **{"from-tag": "b", "code": "5"}) == {"result": "ok"}
    with pytest.raises(NgError, match="^Out of range 'code' specified$"):
        send(commands, "play DTMF", **{"from-tag": "b", "code": "X"})


def test_a_reoffer_keeps_the_gates_and_learns_new_payload_types(commands: Commands) -> None:
    send(commands, "block DTMF", **{"from-tag": "a"})
    reoffer = sdp(49190).replace(" 0 101\r\n", " 0 96\r\n").replace(
        "a=rtpmap:101 telephone-event", "a=rtpmap:96 telephone-event")
    commands.dispatch({"command": "offer", "call-id": "c1", "from-tag": "a", "sdp": reoffer},
                      SOURCE)  # fmt: skip
    g = gate_of(commands, "a")
    assert g is not None and g.block_dtmf and g.dtmf_pts == {96}
