"""Transcoded calls the way operators ask for them: Kamailio 5.6's route sends
`rtpengine_offer("... codec-mask-all codec-transcode-PCMA")`, sipp's caller offers PCMU (and
telephone-event) and plays a 440 Hz PCMU tone from a pcap, sipp's callee answers PCMA alone and
echoes what it gets (issue 19; docs/spec/transcoding.md §1).

tshark on `lo` sees what reaches each party: PCMA (PT 8) at the callee, PCMU (PT 0) back at the
caller, one packet out per packet in, each decoding to the tone at its pitch. With
`record-call=yes` the recording holds each leg as the relay received it (PCMU from A, PCMA from
B: docs/spec/recording.md §4.2 "As received") and the index row is complete after the BYE. The
same scenario runs through rtpengine 10.5 (the reference) and rtpvault with two workers.
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import cast

import av
import dpkt
import pytest
from av.audio.codeccontext import AudioCodecContext

from recorder.g711 import ALAW_TO_LINEAR, ULAW_TO_LINEAR
from tests.integration.recording.conftest import rtp_streams
from tests.support.tone import dominant_hz, snr_db, ulaw_tone

from .capture import UdpPacket, read_udp
from .rig import SipRig
from .sipcall import GUIDE_FLAGS, CallResult, CallSpec
from .test_recording import wait_for_files

pytestmark = pytest.mark.integration

TRANSCODE_FLAGS = f"{GUIDE_FLAGS} codec-mask-all codec-transcode-PCMA"
KINDS = ["rtpengine", "rtpvault/2"]
TONE_HZ = 440
PACKETS = 50
CALLER_SSRC = 0x5EED0001


def rtp_pcap(path: Path, packets: list[bytes], interval: float = 0.02) -> Path:
    """A pcap sipp can play (play_pcap_audio): the RTP `packets`, `interval` seconds apart."""
    with open(path, "wb") as f:
        writer = dpkt.pcap.Writer(f, snaplen=65535, linktype=dpkt.pcap.DLT_EN10MB)
        for n, rtp in enumerate(packets):
            udp = dpkt.udp.UDP(sport=6000, dport=6002, data=rtp)
            udp.ulen = len(udp)
            ip = dpkt.ip.IP(src=bytes([10, 0, 0, 1]), dst=bytes([10, 0, 0, 2]), p=17, data=udp)
            ip.len = len(ip)
            eth = dpkt.ethernet.Ethernet(type=dpkt.ethernet.ETH_TYPE_IP, data=ip)
            writer.writepkt(bytes(eth), ts=1_700_000_000 + interval * n)
    return path


def pcmu_packet(n: int, hz: float = TONE_HZ, seq0: int = 100, marker: bool = False) -> bytes:
    """The caller's n-th 20-ms PCMU packet of a sine (SSRC CALLER_SSRC)."""
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0), seq0 + n, 160 * n,
                       CALLER_SSRC) + ulaw_tone(hz, 160 * n)  # fmt: skip


def pcmu_tone_pcap(path: Path, packets: int = PACKETS, hz: float = TONE_HZ) -> Path:
    """A pcap sipp can play: `packets` 20-ms PCMU packets of a sine."""
    return rtp_pcap(path, [pcmu_packet(n, hz, marker=n == 0) for n in range(packets)])


def _rtp(p: UdpPacket) -> tuple[int, int, bytes]:
    """(payload type, SSRC, payload) of an RTP datagram."""
    return p.payload[1] & 0x7F, struct.unpack_from("!I", p.payload, 8)[0], p.payload[12:]


def _tone(payloads: list[bytes], table: tuple[int, ...] | list[int]) -> tuple[float, float]:
    """(pitch, SNR dB) of G.711 payloads decoded with `table`, past the first few packets."""
    samples = [table[b] for payload in payloads[5:] for b in payload]
    window = samples[: 8000 // 2]
    return dominant_hz(window), snr_db(window, TONE_HZ)


def _run(rig: SipRig, tmp_path: Path, record: bool) -> tuple[list[UdpPacket], CallResult]:
    tone = pcmu_tone_pcap(tmp_path / f"pcmu-{rig.runs}.pcap")
    spec = CallSpec(callee="pcmu-to-pcma", media=True, media_packets=PACKETS, pcap=tone,
                    record=record)  # fmt: skip
    result, _legs = rig.call_with_capture(spec)
    assert result.ok, result.describe() + rig.logs()
    packets = list(read_udp(result.workdir / "media.capture.pcap"))
    return packets, result


@pytest.mark.parametrize("kind", KINDS)
def test_pcmu_caller_reaches_pcma_callee_through_kamailio(
    sip_rig: Callable[..., SipRig], tmp_path: Path, kind: str
) -> None:
    rig = sip_rig(kind, offer_flags=TRANSCODE_FLAGS, relay_options={"extra": ["--delete-delay=0"]})
    packets, result = _run(rig, tmp_path, record=False)
    offer = result.offer_seen_by_callee()
    answer = result.answer_seen_by_caller()
    assert offer.audio.formats[0] == "8" and "0" not in offer.audio.formats, offer.text
    assert answer.audio.formats[0] == "0", answer.text
    caller, callee = result.uac_media, result.uas_media

    to_callee = [_rtp(p) for p in packets if p.dst == callee]
    to_caller = [_rtp(p) for p in packets if p.dst == caller]
    from_caller = [p for p in packets if p.src == caller]
    assert len(from_caller) == PACKETS
    # one PCMA packet out per PCMU packet in, under the relay's own SSRC; the echo comes back
    # as PCMU: the transcoder neither loses nor invents packets
    assert Counter(pt for pt, _, _ in to_callee) == {8: PACKETS}, Counter(to_callee)
    assert {ssrc for _, ssrc, _ in to_callee} != {CALLER_SSRC}
    assert Counter(pt for pt, _, _ in to_caller) == {0: PACKETS}, rig.logs()
    assert all(len(payload) == 160 for _, _, payload in to_callee + to_caller)

    hz, snr = _tone([payload for _, _, payload in to_callee], ALAW_TO_LINEAR)
    assert hz == TONE_HZ and snr > 30, (hz, snr)
    hz, snr = _tone([payload for _, _, payload in to_caller], ULAW_TO_LINEAR)
    assert hz == TONE_HZ and snr > 30, (hz, snr)
    assert not math.isnan(snr)
    assert "Traceback" not in rig.relay.log(), rig.logs()


@pytest.mark.parametrize("kind", KINDS)
def test_recorded_transcoded_call_holds_each_leg_as_received(
    sip_rig: Callable[..., SipRig], tmp_path: Path, kind: str
) -> None:
    spool = tmp_path / "recordings"
    spool.mkdir()
    extra = [f"--recording-dir={spool}", "--recording-method=pcap", "--delete-delay=0"]
    rig = sip_rig(kind, offer_flags=TRANSCODE_FLAGS, relay_options={"extra": extra})
    _packets, result = _run(rig, tmp_path, record=True)
    [metadata] = wait_for_files(spool / "metadata", 1, "call end time")
    [pcap] = sorted((spool / "pcaps").glob("*.pcap"))

    # the relay's receiving ports: A sent PCMU to one, B's echo (PCMA) reached the other
    to_a_port = result.answer_seen_by_caller().audio.port
    to_b_port = result.offer_seen_by_callee().audio.port
    streams = rtp_streams(pcap)
    by_port = {k[3]: v for k, v in streams.items()}
    assert by_port == {to_a_port: ("g711U", PACKETS, 0), to_b_port: ("g711A", PACKETS, 0)}, streams
    [a_ssrc] = [k[4] for k in streams if k[3] == to_a_port]
    assert a_ssrc == CALLER_SSRC  # as A sent it, not the relay's output SSRC

    if kind.startswith("rtpvault"):
        from sqlalchemy import select

        from storage.db import open_index
        from storage.models import Recording

        index = open_index(f"sqlite:///{spool}/recordings.db", create=False)
        try:
            with index.session() as s:
                row = s.scalars(select(Recording)).one()
                assert row.status == "complete", (row.status, row.reason)
                assert row.call_id == result.call_ids[0]
                assert row.sha256 and row.size == pcap.stat().st_size
                assert row.ended is not None and row.packets == 2 * PACKETS
                # each leg with the codec its party sent, the caller's under its own SSRC
                assert row.codecs == "PCMA,PCMU"
                legs = sorted((st.kind, st.codec, st.packets, st.ssrc == CALLER_SSRC)
                              for st in row.streams)  # fmt: skip
                assert legs == [("rtp", "PCMA", PACKETS, False), ("rtp", "PCMU", PACKETS, True)]
        finally:
            index.close()


LOAD_CALLS = 40
LOAD_PACKETS = 250


@pytest.mark.parametrize("kind", KINDS)
def test_concurrent_transcoded_calls_through_kamailio(
    sip_rig: Callable[..., SipRig], tmp_path: Path, kind: str
) -> None:
    """The same load through both relays: LOAD_CALLS overlapping PCMU→PCMA calls of 5 s each
    (sipp starts 10 a second), every packet transcoded each way, none lost or added."""
    options = {"extra": ["--delete-delay=0"], "ports": 8 * LOAD_CALLS}
    rig = sip_rig(kind, offer_flags=TRANSCODE_FLAGS, relay_options=options)
    tone = pcmu_tone_pcap(tmp_path / "load.pcap", LOAD_PACKETS)
    spec = CallSpec(calls=LOAD_CALLS, callee="pcmu-to-pcma", media=True,
                    media_packets=LOAD_PACKETS, pcap=tone)  # fmt: skip
    result, legs = rig.call_with_capture(spec)
    assert result.ok, result.describe() + rig.logs()
    total = LOAD_CALLS * LOAD_PACKETS
    assert (legs.caller_to_relay, legs.relay_to_callee) == (total, total), legs
    assert (legs.callee_to_relay, legs.relay_to_caller) == (total, total), legs
    packets = list(read_udp(result.workdir / "media.capture.pcap"))
    assert Counter(_rtp(p)[0] for p in packets if p.dst == result.uas_media) == {8: total}
    assert Counter(_rtp(p)[0] for p in packets if p.dst == result.uac_media) == {0: total}
    assert "Traceback" not in rig.relay.log(), rig.logs()


def _decode(codec: str, payloads: list[bytes]) -> tuple[list[int], int]:
    """PyAV-decoded mono samples of Opus or G.722 payloads, and their rate."""
    rate = {"opus": 48000, "g722": 16000}[codec]
    dec = cast(AudioCodecContext, av.CodecContext.create(codec, "r"))
    dec.sample_rate, dec.layout = rate, "mono"
    mono = av.AudioResampler(format="s16", layout="mono", rate=rate)
    out: list[int] = []
    for payload in payloads:
        for frame in dec.decode(av.Packet(payload)):
            for f in mono.resample(frame):
                out += struct.unpack(f"<{f.samples}h", bytes(f.planes[0])[: 2 * f.samples])
    return out, rate


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("codec", "pt", "flag"), [("opus", 96, "opus"), ("g722", 9, "G722")])
def test_pcmu_caller_reaches_wideband_callee_through_kamailio(
    sip_rig: Callable[..., SipRig], tmp_path: Path, kind: str, codec: str, pt: int, flag: str
) -> None:
    """`codec-mask-all codec-transcode-opus` (or G722): the callee gets and echoes Opus (G.722),
    which PyAV decodes to the tone; the caller gets it back as PCMU at its pitch."""
    flags = f"{GUIDE_FLAGS} codec-mask-all codec-transcode-{flag}"
    rig = sip_rig(kind, offer_flags=flags, relay_options={"extra": ["--delete-delay=0"]})
    tone = pcmu_tone_pcap(tmp_path / "pcmu.pcap")
    spec = CallSpec(callee=f"pcmu-to-{codec}", media=True, media_packets=PACKETS, pcap=tone)
    result, _ = rig.call_with_capture(spec)
    assert result.ok, result.describe() + rig.logs()
    packets = list(read_udp(result.workdir / "media.capture.pcap"))
    to_callee = [_rtp(p) for p in packets if p.dst == result.uas_media]
    to_caller = [_rtp(p) for p in packets if p.dst == result.uac_media]
    # the resampler and encoder hold back a little audio: the last packet stays in them (both
    # relays), and the echo's last one in the decoding chain on its way back
    assert {p for p, _, _ in to_callee} == {pt} and PACKETS - 1 <= len(to_callee) <= PACKETS
    assert {p for p, _, _ in to_caller} == {0} and PACKETS - 2 <= len(to_caller) <= PACKETS
    print(f"{kind} {codec}: {len(to_callee)} to the callee, {len(to_caller)} back")
    samples, rate = _decode(codec, [payload for _, _, payload in to_callee])
    window = samples[rate // 10 : rate // 10 + rate // 2]
    assert dominant_hz(window, rate=rate) == TONE_HZ
    hz, snr = _tone([payload for _, _, payload in to_caller], ULAW_TO_LINEAR)
    print(f"{kind} PCMU→{codec}→PCMU: {snr:.1f} dB")
    assert hz == TONE_HZ and snr > 20, (hz, snr)
    assert "Traceback" not in rig.relay.log(), rig.logs()
