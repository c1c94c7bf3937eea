"""Counting media on loopback: a tshark capture of the relay's port range, read back with dpkt.

Capturing on `lo` needs root (or dumpcap capabilities); the tests run as root. Each packet on
`lo` is captured once. Counts are split into the four legs of a relayed two-party call.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import dpkt

from tests.support.tools import require

Endpoint = tuple[str, int]


@dataclass(frozen=True, slots=True)
class UdpPacket:
    src: Endpoint
    dst: Endpoint
    payload: bytes


@dataclass(frozen=True, slots=True)
class LegCounts:
    """Packets on each leg: caller → relay → callee and callee → relay → caller."""

    caller_to_relay: int
    relay_to_callee: int
    callee_to_relay: int
    relay_to_caller: int

    @property
    def both_ways(self) -> bool:
        return min(self.caller_to_relay, self.relay_to_callee) > 0 and (
            min(self.callee_to_relay, self.relay_to_caller) > 0
        )


def read_udp(path: Path) -> Iterator[UdpPacket]:
    """UDP/IPv4 packets of a pcap file (Ethernet, Linux cooked or raw IP link types)."""
    with open(path, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        link = reader.datalink()
        for _ts, buf in reader:
            if link == dpkt.pcap.DLT_EN10MB:
                ip = dpkt.ethernet.Ethernet(buf).data
            elif link == dpkt.pcap.DLT_LINUX_SLL:
                ip = dpkt.sll.SLL(buf).data
            else:
                ip = dpkt.ip.IP(buf)
            if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.udp.UDP):
                continue
            udp = ip.data
            yield UdpPacket(
                (socket.inet_ntoa(ip.src), udp.sport),
                (socket.inet_ntoa(ip.dst), udp.dport),
                bytes(udp.data),
            )


def count_legs(
    packets: list[UdpPacket], relay_ports: tuple[int, int], caller: Endpoint, callee: Endpoint
) -> LegCounts:
    """Split packets between the relay's port range and the two parties' media endpoints."""
    lo, hi = relay_ports

    def relay(e: Endpoint) -> bool:
        return lo <= e[1] <= hi

    return LegCounts(
        caller_to_relay=sum(1 for p in packets if p.src == caller and relay(p.dst)),
        relay_to_callee=sum(1 for p in packets if relay(p.src) and p.dst == callee),
        callee_to_relay=sum(1 for p in packets if p.src == callee and relay(p.dst)),
        relay_to_caller=sum(1 for p in packets if relay(p.src) and p.dst == caller),
    )


class LoopbackCapture:
    """`with LoopbackCapture(path, "udp portrange 30000-30099") as cap: ...; cap.packets()`.

    Starts tshark on `lo`, waits until it reports that capture has begun, and on exit stops it
    with SIGINT so that the file is complete.
    """

    def __init__(self, path: Path, capture_filter: str, interface: str = "lo") -> None:
        self.path = path
        self.filter = capture_filter
        self.interface = interface
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr_path = path.with_suffix(".tshark.log")

    def start(self) -> None:
        tshark = require("tshark")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        err = open(self.stderr_path, "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [tshark, "-n", "-q", "-i", self.interface, "-f", self.filter]
            + ["-F", "pcap", "-w", str(self.path)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        err.close()
        deadline = time.monotonic() + 30  # a bound on start-up, not a measured threshold
        while "Capturing on" not in self.stderr_path.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"tshark did not start: {self.log()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def packets(self) -> list[UdpPacket]:
        return list(read_udp(self.path)) if self.path.exists() else []

    def __enter__(self) -> LoopbackCapture:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
