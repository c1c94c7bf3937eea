"""The ng commands that act on a call's media: `play media`, `stop media`, `play DTMF`,
`block`/`unblock DTMF`, `block`/`unblock media`, `silence`/`unsilence media`, with rtpengine
10.5's replies and checks in its order (docs/spec/ng-protocol.md §9).

Party selection is rtpengine's `media_block_match` (relay.ng.unimplemented.Selector). The state
lives on the call model (`Call`/`Party` flags, `Party.player`); relay.call.media_gates puts the
flags on the streams, relay.call.playback sends the files, and `play DTMF` hands its events to
the injector of the party's transcoding direction (relay.transcode.inject; only `inject-DTMF`
or real transcoding gives one, as in rtpengine).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from relay.call import Call, Party, Registry, media_gates
from relay.call.playback import Player
from relay.ng.callstats import subscribers
from relay.ng.errors import NgError
from relay.ng.unimplemented import Selector, dtmf_code, int_str, not_supported, option
from relay.transcode.audio import AudioError, Encoder
from relay.transcode.fileplay import MediaError
from relay.transcode.inject import DtmfInjector
from relay.transcode.plan import DirectionPlan

DTMF_SECURITY_KEYS = ("DTMF-security", "dtmf-security", "DTMF security", "dtmf security")
REPLACE_KEYS = (
    "DTMF-security-trigger",
    "dtmf-security-trigger",
    "DTMF security trigger",
    "dtmf security trigger",
    "DTMF-security-trigger-end",
    "dtmf-security-trigger-end",
    "DTMF security trigger end",
    "dtmf security trigger end",
    "trigger",
    "trigger-end",
    "trigger end",
    "end trigger",
    "end-trigger",
    "delay-buffer",
    "delay buffer",
)
"""Keys that make rtpengine's `block DTMF` rebuild its codec handlers (transcoding)."""

class MediaCommands:
    """Handlers over one worker's call registry."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def _selector(self) -> Selector:
        reg = self.registry
        return Selector(reg.calls, reg.live_party, lambda call: call.all_parties())

    def _set(self, body: dict[str, Any], flag: str, on: bool) -> dict[str, Any]:
        """`block`/`silence` (on) and their `un` forms (off) for one party or the whole call;
        the call-wide off with `all` clears every party's flag too (§9.5)."""
        call, party, everyone = self._selector().match(body)
        if party is not None:
            setattr(party, flag, on)
        else:
            setattr(call, flag, on)
            if not on and everyone:
                for p in call.all_parties():
                    setattr(p, flag, False)
        media_gates.refresh(call, self.registry.streams.plane)
        return {"result": "ok"}

    def block_media(self, body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        return self._set(body, "block_media", True)

    def unblock_media(self, body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        return self._set(body, "block_media", False)

    def silence_media(self, body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        return self._set(body, "silence_media", True)

    def unsilence_media(self, body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        return self._set(body, "silence_media", False)

    def block_dtmf(self, body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        self._selector().match(body)  # rtpengine's selection errors come first
        mode = option(body, *DTMF_SECURITY_KEYS)
        if (mode not in (None, "drop", "off")) or any(k in body for k in REPLACE_KEYS):
            raise not_supported(body)  # PCM replacement modes transcode (§9.7)
        if mode == "off":
            return self._set(body, "block_dtmf", False)
        return self._set(body, "block_dtmf", True)

    def unblock_dtmf(self, body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        return self._set(body, "block_dtmf", False)

    # -- play media / stop media (§9.2, §9.3) --------------------------------------------------

    def _play_parties(self, body: dict[str, Any]) -> tuple[Call, Sequence[Party]]:
        call, party, everyone = self._selector().match(body)
        if everyone:
            return call, call.all_parties()
        if party is None:
            raise NgError("No participant party specified")
        return call, [party]

    def play_media(self, body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        call, parties = self._play_parties(body)
        repeat = 0
        for key, value in body.items():
            if key == "repeat-times":
                repeat = int_str(value, repeat)
        repeat = max(repeat, 1)
        path, blob = option(body, "file"), option(body, "blob")
        db_id = 0
        for key, value in body.items():
            if key == "db-id":
                db_id = int_str(value, db_id)
        reply: dict[str, Any] = {}
        for index, party in enumerate(parties):
            if party.player is None:
                # before the file is looked at, as rtpengine; its SSRC/seq/timestamp from the
                # call's RNG, derived (`play media` is not journalled: relay.call.rng)
                party.player = Player(call.rng.derive(f"player {party.tag}"))
            if path:
                data: str | bytes = path
                failure = "Failed to start media playback from file"
            elif blob:
                data = blob.encode("utf-8", "surrogateescape")
                failure = "Failed to start media playback from blob"
            elif db_id > 0:
                raise NgError("Failed to start media playback from database")  # no database
            else:
                raise NgError("No media file specified")
            try:
                duration = party.player.play(asyncio.get_running_loop(), party, data, repeat)
            except (MediaError, RuntimeError):  # RuntimeError: no event loop to play on
                raise NgError(failure) from None
            if index == 0 and duration:
                reply["duration"] = duration
        reply["result"] = "ok"
        return reply

    def stop_media(self, body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        for party in self._play_parties(body)[1]:
            if party.player is None:
                raise NgError("Not currently playing media")
            party.player.stop()
        return {"result": "ok"}

    # -- play DTMF (§9.4) ----------------------------------------------------------------------

    def play_dtmf(self, body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        """rtpengine's checks in its order, then the event into each selected party's media
        towards its subscribers: on a direction that transcodes (`inject-DTMF`), put into
        the output by relay.transcode.inject; on a plainly forwarded one rtpengine 10.5 answers
        ok and sends nothing, and so does rtpvault (§9.4)."""
        call, party, everyone = self._selector().match(body)
        parties = call.all_parties() if everyone else [party] if party is not None else []
        if not parties:
            raise NgError("No participant party specified")
        duration = _clamped(body, "duration", 250)
        pause = _clamped(body, "pause", 100)
        code = dtmf_code(body)
        volume = None
        for key, value in body.items():
            if key == "volume":
                volume = int_str(value, volume if volume is not None else 0)
        _check_dtmf_media(call, parties)
        for p in parties:
            side = next(m for m in p.medias if m.type == "audio")
            stream = side.rtp
            tc = getattr(stream, "transcoder", None) if stream is not None else None
            if tc is not None:
                injector = tc.injector or _injector(tc.plan, tc.chain)
                if injector is not None:
                    tc.injector = injector
                    event_volume, tone_volume = _volumes(volume)
                    injector.schedule(code, event_volume, tone_volume, duration, pause)
        return {"result": "ok"}


def _clamped(body: dict[str, Any], key: str, default: int) -> int:
    """`duration`/`pause` in ms: 0 or absent → default, else clamped to 100..5000 (rtpengine)."""
    value = 0
    for k, v in body.items():
        if k == key:
            value = int_str(v, value)
    if not value:
        return default
    return min(max(value, 100), 5000)


def _volumes(volume: int | None) -> tuple[int, int]:
    """(RFC 4733 volume field, in-band tone level in dB below full scale) as rtpengine 10.5
    sends them: the given volume (either sign) for both; without one, 63 in the event and
    -15 dBm0 for the tone (its unset volume read as a 6-bit field)."""
    if not volume:
        return 63, 15
    v = abs(volume)
    return min(v, 63), v & 0x3F


def _injector(plan: DirectionPlan, chain: Any) -> DtmfInjector | None:
    """An injector for a transcoding direction's output: RFC 4733 when the receiver has
    telephone-event, else tones encoded in the output codec (its own encoder instance)."""
    encoder = getattr(chain, "encoder", None)
    if plan.encode_pt is None or encoder is None:
        return None
    out = plan.outputs.get(plan.encode_pt)
    if out is None:
        return None
    tones = None
    if plan.dtmf_out_pt is None:
        try:
            tones = Encoder(encoder.codec, encoder.ptime, out.fmtp).encode
        except AudioError:
            return None
    return DtmfInjector(plan.encode_pt, out.clock, encoder.ticks, plan.dtmf_out_pt, tones,
                        encoder.codec.sample_rate)  # fmt: skip


def _check_dtmf_media(call: Call, parties: Sequence[Party]) -> None:
    for p in parties:
        audio = [m for m in p.medias if m.type == "audio"]
        if not audio:
            raise NgError("Monologue has no media capable of DTMF injection")
        for sink in subscribers(p, call.all_parties()):
            if not any(m.type == "audio" for m in sink.medias):
                raise NgError("Sink monologue has no media capable of DTMF playback")
            first = audio[0].rtp or audio[0].rtcp
            if first is None:
                raise NgError("Media doesn't have an RTP stream")
            if first.ssrc is None:
                raise NgError("No SSRC context present for DTMF injection")
