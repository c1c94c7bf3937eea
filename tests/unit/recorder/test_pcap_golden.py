"""recorder.pcap / recorder.pcapng: golden bytes (docs/spec/recording.md §1.2–1.4), dpkt, tshark."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder import pcap, pcapng
from tests.support.tools import require

RTP = struct.pack("!BBHII", 0x80, 0, 100, 0, 0xAAAA0001) + b"\xff" * 160
TS = 0x6B066DE4 + 0x05795F / 1e6  # ts_sec e46d066b, ts_usec 5f790500 of the spec's hexdump

# docs/spec/recording.md §1.4, first 112 bytes of an `eth` file (RTP .1:44400 -> :44040, seq 100)
GOLDEN_ETH = bytes.fromhex(
    "d4c3b2a1020004000000000000000000"
    "ffff000001000000e46d066b5f790500"
    "d6000000d60000000000000000000000"
    "0000000008004500 00c8000000004011".replace(" ", "")
    + "00007f0000017f000001ad70ac0800b4"
    "00008000006400000000aaaa0001ffff"
    "ffffffffffffffffffffffffffffffff"
)
GOLDEN_RAW_REC = bytes.fromhex(
    "0c6e066b9da50000c8000000c8000000450000c8000000004011 00007f0000017f000001ad7aabe0"
    "00b400008000003200000000bbbb0002".replace(" ", "")
)


def test_eth_bytes_match_rtpengine() -> None:
    data = pcap.global_header("eth") + pcap.record(
        "eth", TS, ("127.0.0.1", 44400), ("127.0.0.1", 44040), RTP
    )
    assert data[:112] == GOLDEN_ETH
    assert len(data) == 24 + 16 + 214


def test_raw_bytes_match_rtpengine() -> None:
    rtp = struct.pack("!BBHII", 0x80, 0, 50, 0, 0xBBBB0002) + b"\xff" * 160
    ts = 0x6B066E0C + 0x00A59D / 1e6
    assert pcap.global_header("raw")[20:] == struct.pack("<I", 101)
    rec = pcap.record("raw", ts, ("127.0.0.1", 44410), ("127.0.0.1", 44000), rtp)
    assert rec[: len(GOLDEN_RAW_REC)] == GOLDEN_RAW_REC
    assert len(rec) == 16 + 200


def test_ipv6_eth_header() -> None:
    frame = pcap.frame("eth", ("::1", 5000), ("::1", 6000), RTP)
    assert frame[12:14] == b"\x86\xdd"
    assert frame[14:22] == bytes.fromhex("60000000 00b4 11 40".replace(" ", ""))
    assert len(frame) == 62 + 172
    assert frame[14 + 40 + 6 : 14 + 48] == b"\0\0"  # UDP checksum 0, as rtpengine


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _records(link: str) -> bytes:
    out = pcap.global_header(link)
    for i in range(5):
        body = struct.pack("!BBHII", 0x80, 8, i, 160 * i, 0x1234) + b"\xd5" * 160
        out += pcap.record(link, 1000.0 + i * 0.02, ("10.0.0.1", 4000), ("10.0.0.2", 30000), body)
        out += pcap.record(
            link, 1000.01 + i * 0.02, ("::ffff:10.0.0.3", 4002), ("10.0.0.2", 30002), body
        )
    return out


@pytest.mark.parametrize("link", ["eth", "raw"])
def test_dpkt_reads_records(link: str, tmp_path: Path) -> None:
    path = _write(tmp_path, f"{link}.pcap", _records(link))
    with open(path, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        assert reader.datalink() == (1 if link == "eth" else 101)
        pkts = list(reader)
    assert len(pkts) == 10
    ts, buf = pkts[0]
    assert ts == pytest.approx(1000.0)
    ip = dpkt.ethernet.Ethernet(buf).data if link == "eth" else dpkt.ip.IP(buf)
    assert (ip.id, ip.ttl, ip.sum, ip.data.sum) == (0, 64, 0, 0)
    assert (ip.data.sport, ip.data.dport) == (4000, 30000)
    assert dpkt.rtp.RTP(ip.data.data).pt == 8
    ip2 = dpkt.ethernet.Ethernet(pkts[1][1]).data if link == "eth" else dpkt.ip.IP(pkts[1][1])
    assert ip2.src == bytes([10, 0, 0, 3])  # IPv4-mapped source written as IPv4


@pytest.mark.parametrize("link", ["eth", "raw"])
def test_tshark_reads_records(link: str, tmp_path: Path) -> None:
    path = _write(tmp_path, f"{link}.pcap", _records(link))
    out = subprocess.run(
        [require("tshark"), "-r", str(path), "-o", "rtp.heuristic_rtp:TRUE", "-q",
         "-z", "rtp,streams"], capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "0x00001234" in out.stdout and "g711A" in out.stdout
    assert out.stdout.count(" 5 ") >= 2, out.stdout


def _ng_file() -> bytes:
    sdp = (
        "v=0\r\no=alice 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
    out = pcapng.file_header("call-id: c1@x\nmetadata: from:alice")
    out += pcapng.sdp_packet(999.0, sdp, "offer from tag ft")
    for i in range(4):
        body = struct.pack("!BBHII", 0x80, 0, i, 160 * i, 0xAB) + b"\xff" * 160
        out += pcapng.media_packet(1000 + i * 0.02, ("10.0.0.1", 4000), ("10.0.0.2", 30000), body)
    out += pcapng.note_packet(1001.0, "rtpvault: recording paused")
    return out


def test_pcapng_dpkt(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.pcapng", _ng_file())
    with open(path, "rb") as f:
        pkts = list(dpkt.pcapng.Reader(f))
    assert len(pkts) == 6
    eth = dpkt.ethernet.Ethernet(pkts[1][1])
    assert eth.data.data.dport == 30000 and pkts[1][0] == pytest.approx(1000.0)


def test_pcapng_tshark_shows_sdp_and_comments(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.pcapng", _ng_file())
    tshark = require("tshark")
    out = subprocess.run(
        [tshark, "-r", str(path), "-T", "fields", "-e", "frame.number", "-e", "sdp.owner.username",
         "-e", "sdp.media.port", "-e", "frame.comment", "-e", "udp.dstport"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert out[0].split("\t") == ["1", "alice", "4000", "offer from tag ft", ""]
    assert out[1].split("\t")[4] == "30000"
    assert out[5].split("\t")[3] == "rtpvault: recording paused"
    info = subprocess.run([require("capinfos"), str(path)], capture_output=True, text=True).stdout
    assert "call-id: c1@x" in info and "rtpvault" in info


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["eth", "raw", "pcapng"]))
def test_valid_prefix_cuts_at_record_boundary(cut: int, fmt: str) -> None:
    data = _ng_file() if fmt == "pcapng" else _records(fmt)
    scan = pcapng.valid_prefix if fmt == "pcapng" else pcap.valid_prefix
    assert scan(data) == len(data)
    cut = min(cut, len(data))
    prefix = scan(data[:cut])
    assert prefix <= cut
    assert scan(data[:prefix]) == prefix  # a trimmed file is whole
    # boundaries are exactly the points where the scan of the full file would stop
    if prefix:
        assert scan(data[:prefix]) == prefix and prefix <= len(data)
    assert cut - prefix < 16 + 300 or prefix == 0
