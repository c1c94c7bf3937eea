"""relay.call.playback: what a player sends to its party (docs/spec/ng-protocol.md §9.2): the
file's audio in the party's first codec, 20-ms packets, its own SSRC, sequence and timestamps
going on across playbacks, the marker on each playback's first packet. Real UDP sockets and a
real event loop; no timing is asserted."""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path

from relay.call.model import MediaSide, Party
from relay.call.offered import OfferedMedia
from relay.call.playback import Player, output_codec
from relay.media.stream import Stream
from tests.support.tone import dominant_hz, ulaw_samples
from tests.unit.relay.transcode.test_fileplay import write_wav


def side(formats: tuple[str, ...], names: dict[str, str]) -> MediaSide:
    sdp = OfferedMedia("audio", 4000, "RTP/AVP", formats, "127.0.0.1", codec_names=names)
    return MediaSide(0, "audio", "RTP/AVP", sdp=sdp)


def test_output_codec_is_the_first_encodable_non_supplemental_one() -> None:
    names = {"101": "telephone-event/8000", "18": "G729/8000", "8": "PCMA/8000", "0": "PCMU/8000"}
    chosen = output_codec(side(("101", "18", "8", "0"), names))
    assert chosen is not None and chosen[0] == 8 and chosen[1].name == "PCMA"
    assert output_codec(side(("101",), {"101": "telephone-event/8000"})) is None


def _party(tmp: Path) -> tuple[Party, socket.socket]:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    relay_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    relay_sock.bind(("127.0.0.1", 0))
    stream = Stream(relay_sock, "127.0.0.1", relay_sock.getsockname()[1])
    stream.peer = receiver.getsockname()
    s = side(("0", "101"), {"0": "PCMU/8000", "101": "telephone-event/8000"})
    s.rtp = stream
    return Party("a", 0.0, medias=[s]), receiver


async def _play(player: Player, party: Party, path: Path, receiver: socket.socket,
                repeat: int = 1) -> list[bytes]:  # fmt: skip
    loop = asyncio.get_running_loop()
    duration = player.play(loop, party, str(path), repeat)
    assert duration == 200
    got: list[bytes] = []
    for _ in range(500):  # bounded: 5 s
        await asyncio.sleep(0.01)
        while True:
            try:
                got.append(receiver.recv(2048))
            except BlockingIOError:
                break
        if not player.playing:
            break
    return got


def test_a_file_arrives_as_rtp_with_the_players_own_ssrc(tmp_path: Path) -> None:
    party, receiver = _party(tmp_path)
    wav = write_wav(tmp_path / "t.wav", 2000, 0.2)
    player = Player()

    async def run() -> tuple[list[bytes], list[bytes]]:
        first = await _play(player, party, wav, receiver)
        second = await _play(player, party, wav, receiver)
        return first, second

    first, second = asyncio.run(run())
    for got in (first, second):
        assert len(got) == 10
        headers = [struct.unpack("!BBHII", p[:12]) for p in got]
        assert [h[1] for h in headers] == [0x80] + [0] * 9  # PCMU, marker on the first only
        assert {h[4] for h in headers} == {player.ssrc}
        assert all((b[2] - a[2]) % 65536 == 1 for a, b in zip(headers, headers[1:], strict=False))
        assert all(b[3] - a[3] == 160 for a, b in zip(headers, headers[1:], strict=False))
        assert dominant_hz(ulaw_samples(b"".join(p[12:] for p in got[2:8]))) == 2000
    last, again = struct.unpack("!HI", first[-1][2:8]), struct.unpack("!HI", second[0][2:8])
    assert again[0] == (last[0] + 1) % 65536  # the sequence goes on across playbacks
    assert again[1] > last[1]  # and the timestamp moves on with the clock


def test_stop_ends_the_playback_and_a_closed_socket_ends_it_too(tmp_path: Path) -> None:
    party, receiver = _party(tmp_path)
    wav = write_wav(tmp_path / "t.wav", 1000, 2.0)
    player = Player()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        player.play(loop, party, str(wav), 1)
        await asyncio.sleep(0.1)
        player.stop()
        assert not player.playing
        sent = player.sent
        await asyncio.sleep(0.1)
        assert player.sent == sent
        player.play(loop, party, str(wav), 1)
        assert party.medias[0].rtp is not None
        party.medias[0].rtp.sock.close()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if not player.playing:
                break
        assert not player.playing

    asyncio.run(run())
