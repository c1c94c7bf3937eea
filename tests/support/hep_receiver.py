"""HEP capture servers for tests (docs/spec/hep.md §3).

`KamailioCapture` is the real one: Kamailio 5.6's `sipcapture` module (Homer 5's capture
server) with `hep_capture_on`, storing into SQLite through `db_sqlite`. It stores what Homer
stores: RTCP JSON (type 5) in `rtcp_capture`, report types 32/99 in `report_capture` and logs
(100) in `logs_capture`, with the columns of §3.1. It cannot store other types (34 QoS reports,
61 ng traces: Kamailio hands them to its SIP parser, which drops them), nor HEP over TCP without a
script, which is what Homer 7's heplify-server adds.

`HepReceiver` covers those: written independently of rtpvault's hep/ package (it shares no code
with it), it listens on UDP and TCP on loopback, decodes HEPv3 with the checks Kamailio and
heplify-server make and keeps one record per packet with the columns they store (protocol type,
correlation id, capture id, addresses, ports, timestamp, payload). With `forward_to` it also
relays every datagram unchanged to another capture server (a Kamailio), as heplify-server's
HEP forwarding and captagent's duplication do, so one export reaches both.

    rx = HepReceiver(); rx.start(); ... rx.records ...; rx.stop()

The `receiver` fixture (a started HepReceiver, stopped afterwards) is imported by the conftest or
test module that wants it.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .tools import free_port, require, udp_port_free


@dataclass
class HepRecord:
    transport: str
    proto_type: int
    correlation_id: str
    capture_id: int
    src: tuple[str, int]
    dst: tuple[str, int]
    ts: float
    payload: bytes
    family: int


def parse(data: bytes, transport: str) -> HepRecord:
    if data[:4] != b"HEP3" or struct.unpack("!H", data[4:6])[0] != len(data):
        raise ValueError("not a whole HEP3 packet")
    chunks: dict[int, bytes] = {}
    i = 6
    while i < len(data):
        vendor, ctype, length = struct.unpack("!HHH", data[i:i + 6])
        if length < 6:
            raise ValueError("bad chunk length")
        if vendor == 0:
            chunks[ctype] = data[i + 6:i + length]
        i += length
    need = {1, 2, 7, 8, 9, 10, 11, 12, 15}
    if not need <= set(chunks):  # sipcapture's "Not all elements"
        raise ValueError(f"missing chunks {sorted(need - set(chunks))}")
    fam = chunks[1][0]
    if fam == socket.AF_INET:
        src_ip, dst_ip = socket.inet_ntop(fam, chunks[3]), socket.inet_ntop(fam, chunks[4])
    else:
        src_ip, dst_ip = socket.inet_ntop(fam, chunks[5]), socket.inet_ntop(fam, chunks[6])
    u16 = lambda b: struct.unpack("!H", b)[0]  # noqa: E731
    u32 = lambda b: struct.unpack("!I", b)[0]  # noqa: E731
    return HepRecord(transport, chunks[11][0], chunks.get(17, b"").decode("utf-8", "replace"),
                     u32(chunks[12]), (src_ip, u16(chunks[7])), (dst_ip, u16(chunks[8])),
                     u32(chunks[9]) + u32(chunks[10]) / 1e6, chunks[15], fam)  # fmt: skip


class HepReceiver:
    def __init__(self, port: int | None = None, forward_to: tuple[str, int] | None = None) -> None:
        self.port = port or free_port()
        self.forward_to = forward_to
        self.records: list[HepRecord] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []

    def start(self) -> None:
        self._stop.clear()
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        udp.bind(("127.0.0.1", self.port))
        udp.settimeout(0.2)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind(("127.0.0.1", self.port))
        tcp.listen(8)
        tcp.settimeout(0.2)
        self._socks = [udp, tcp]
        self._threads = [threading.Thread(target=self._udp, args=(udp,), daemon=True),
                         threading.Thread(target=self._tcp, args=(tcp,), daemon=True)]  # fmt: skip
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        for s in self._socks:
            s.close()

    def _keep(self, data: bytes, transport: str) -> None:
        try:
            self.records.append(parse(data, transport))
        except (ValueError, struct.error, OSError) as exc:
            self.errors.append(str(exc))

    def _udp(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                data = sock.recv(65535)
            except (TimeoutError, OSError):
                continue
            if self.forward_to is not None:
                sock.sendto(data, self.forward_to)
            self._keep(data, "udp")

    def _tcp(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._stream, args=(conn,), daemon=True).start()

    def _stream(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        buf = b""
        with conn:
            while not self._stop.is_set():
                try:
                    more = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not more:
                    return
                buf += more
                while len(buf) >= 6:
                    total = struct.unpack("!H", buf[4:6])[0]
                    if len(buf) < total:
                        break
                    self._keep(buf[:total], "tcp")
                    buf = buf[total:]

    def wait(self, cond, bound: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            if cond(self.records):
                return True
            time.sleep(0.05)
        return bool(cond(self.records))


_CAPTURE_CFG = """#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=1
disable_tcp=yes
auto_aliases=no
listen=udp:127.0.0.1:{port}
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "pv.so"
loadmodule "db_sqlite.so"
loadmodule "sipcapture.so"
modparam("sipcapture", "db_url", "sqlite:///{db}")  # + the absolute path
modparam("sipcapture", "capture_on", 1)
modparam("sipcapture", "hep_capture_on", 1)
modparam("sipcapture", "capture_node", "{node}")

request_route {{
    drop;
}}
"""

# Homer 5's columns of rtcp_capture / report_capture / logs_capture (docs/spec/hep.md §3.1).
_TABLE = """CREATE TABLE {name} (id INTEGER PRIMARY KEY AUTOINCREMENT,
 date TIMESTAMP NOT NULL DEFAULT '1900-01-01 00:00:01', micro_ts BIGINT NOT NULL DEFAULT 0,
 correlation_id VARCHAR(256) NOT NULL DEFAULT '', source_ip VARCHAR(60) NOT NULL DEFAULT '',
 source_port INTEGER NOT NULL DEFAULT 0, destination_ip VARCHAR(60) NOT NULL DEFAULT '',
 destination_port INTEGER NOT NULL DEFAULT 0, proto INTEGER NOT NULL DEFAULT 0, family INTEGER,
 type INTEGER NOT NULL DEFAULT 0, node VARCHAR(125) NOT NULL DEFAULT '', msg BLOB NOT NULL)"""
TABLES = ("rtcp_capture", "report_capture", "logs_capture")


class KamailioCapture:
    """Kamailio `sipcapture` listening for HEP on a loopback UDP port, storing into SQLite."""

    def __init__(self, workdir: Path, node: str = "homer01") -> None:
        self.workdir = workdir
        self.node = node
        self.port = free_port()
        self.db = workdir / "homer.sqlite"
        self.log = workdir / "capture.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = require("kamailio")
        module_dir = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")
        if not (module_dir / "db_sqlite.so").exists():
            from .tools import unavailable

            unavailable("Kamailio's db_sqlite module is missing (kamailio-sqlite-modules; "
                        "run .ci/bootstrap)")  # fmt: skip
        self.workdir.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(self.db) as db:
            for name in TABLES:
                db.execute(_TABLE.format(name=name))
        cfg = self.workdir / "capture.cfg"
        cfg.write_text(_CAPTURE_CFG.format(port=self.port, db=self.db.resolve(), node=self.node))
        (self.workdir / "run").mkdir(exist_ok=True)
        args = [binary, "-DD", "-E", "-f", str(cfg), "-Y", str(self.workdir / "run"),
                "-P", str(self.workdir / "kamailio.pid"), "-w", str(self.workdir)]  # fmt: skip
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.workdir,
                                         start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 30  # a bound on start-up, not a measured threshold
        while not self._bound():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sipcapture did not start:\n{self.logs()}")
            time.sleep(0.05)

    def _bound(self) -> bool:
        return not udp_port_free(self.port)

    def rows(self, table: str = "rtcp_capture") -> list[dict[str, Any]]:
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}")
        with sqlite3.connect(self.db) as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute(f"SELECT * FROM {table} ORDER BY id")]

    def wait_rows(self, count: int, table: str = "rtcp_capture",
                  bound: float = 15.0) -> list[dict[str, Any]]:  # fmt: skip
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            rows = self.rows(table)
            if len(rows) >= count:
                return rows
            time.sleep(0.1)
        return self.rows(table)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(10)
                return
            except subprocess.TimeoutExpired:
                continue


@pytest.fixture
def receiver() -> Iterator[HepReceiver]:
    rx = HepReceiver()
    rx.start()
    yield rx
    rx.stop()
