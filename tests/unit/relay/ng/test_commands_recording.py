"""The `recordings` and `warning` keys of offer/answer replies: asked of the recorder
(Commands.recording_state), never stored on the call model."""

from __future__ import annotations

from typing import Any

from relay.ng.commands import Commands
from tests.unit.relay.test_calls import registry

SDP = ("v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
       "m=audio 49170 RTP/AVP 0\r\n")  # fmt: skip
SOURCE = ("127.0.0.1", 5060)


def _offer(commands: Commands, **extra: Any) -> dict[str, Any]:
    body = {"command": "offer", "call-id": "c1", "from-tag": "a", "sdp": SDP, **extra}
    return commands.dispatch(body, SOURCE)


def test_reply_names_the_recorders_path_while_recording_is_on() -> None:
    reg, _ = registry()
    commands = Commands(reg)
    asked: list[str] = []

    def state(call_id: str) -> tuple[str | None, str | None]:
        asked.append(call_id)
        return f"/spool/pcaps/{call_id}.pcap", None

    commands.recording_state = state
    assert list(_offer(commands)) == ["sdp", "result"]  # not recording: not even asked
    assert asked == []
    reply = _offer(commands, **{"record-call": "yes"})
    assert list(reply) == ["recordings", "sdp", "result"]
    assert reply["recordings"] == ["/spool/pcaps/c1.pcap"] and asked == ["c1"]
    assert not hasattr(reg.calls["c1"], "recordings")


def test_a_recording_that_could_not_be_created_gives_a_warning() -> None:
    reg, _ = registry()
    commands = Commands(reg)
    commands.recording_state = lambda call_id: (None, "Recording not created: no space")
    reply = _offer(commands, **{"record-call": "yes"})
    assert reply == {"sdp": reply["sdp"], "warning": "Recording not created: no space",
                     "result": "ok"}  # fmt: skip
    assert list(reply) == ["sdp", "warning", "result"]


def test_no_recorder_no_recordings_key() -> None:
    reg, _ = registry()
    reply = _offer(Commands(reg), **{"record-call": "yes"})
    assert list(reply) == ["sdp", "result"]
