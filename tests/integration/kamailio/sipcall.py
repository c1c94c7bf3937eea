"""Real SIP calls through Kamailio 5.6 and a relay (rtpengine or rtpvault), driven by sipp.

    relay = daemons.start("rtpengine", tmp / "relay", interface=RELAY_INTERFACE, ports=100)
    kam = start_kamailio(tmp / "kamailio", relay.ng_port)
    result = run_calls(kam, CallSpec(calls=2, record=True), tmp / "sipp")
    sdp = result.answer_seen_by_caller()     # what the UAC got in its 200 OK

Kamailio runs `examples/kamailio.cfg` unchanged; everything that varies (listen address, ng
socket, offer/answer/delete flags) is a `-A` preprocessor define. sipp plays both parties from
the XML scenarios in `scenarios/`, logging every SIP message (`-trace_msg`), which `sipmsg`
parses. Everything listens on loopback only: Kamailio and the relay on 127.0.0.1, the two sipp
parties on 127.0.0.2.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dpkt

from tests.support.daemons import Daemon
from tests.support.tools import free_port, free_port_range, require, unavailable

from .sipmsg import Sdp, SipMessage, parse_message_log

REPO = Path(__file__).resolve().parents[3]
EXAMPLE_CFG = REPO / "examples" / "kamailio.cfg"
SCENARIOS = Path(__file__).with_name("scenarios")
HOST = "127.0.0.1"  # Kamailio and the relay's ng socket
# The relay binds and advertises 127.0.0.1; the sipp parties use 127.0.0.2 (loopback too), so
# the relay's c=/o= addresses cannot be mistaken for a party's.
RELAY_ADDRESS = "127.0.0.1"
RELAY_INTERFACE = f"lo/{RELAY_ADDRESS}"
PARTY_ADDRESS = "127.0.0.2"
GUIDE_FLAGS = "trust-address replace-origin replace-session-connection"
SIPP_PCAP_DIRS = ("/usr/share/sip-tester", "/usr/share/sipp", "/usr/local/share/sipp")

Endpoint = tuple[str, int]
# CallSpec.callee → the caller's and the callee's scenario
UAC_SCENARIOS = {
    "answer": "uac.xml",
    "busy": "uac_rejected.xml",
    "early": "uac.xml",
    "hold": "uac_hold.xml",
    "cancel": "uac_cancel.xml",
    "one-codec": "uac_codecs.xml",
    "callee-hold": "uac_callee_hold.xml",
    "pcmu-to-pcma": "uac_pcmu.xml",
    "pcmu-to-opus": "uac_pcmu.xml",
    "pcmu-to-g722": "uac_pcmu.xml",
    "pcmu-hold": "uac_hold_pcmu.xml",
}
UAS_SCENARIOS = {
    "answer": "uas.xml",
    "busy": "uas_busy.xml",
    "early": "uas_early.xml",
    "hold": "uas_hold.xml",
    "cancel": "uas_cancel.xml",
    "one-codec": "uas_codecs.xml",
    "callee-hold": "uas_callee_hold.xml",
    "pcmu-to-pcma": "uas_codecs.xml",
    "pcmu-to-opus": "uas_opus.xml",
    "pcmu-to-g722": "uas_g722.xml",
    "pcmu-hold": "uas_hold.xml",
}


def _missing(message: str) -> None:
    unavailable(message)


def sipp_pcap(name: str = "g711a.pcap") -> Path:
    """One of the RTP captures shipped with sipp (skip locally / fail in CI when absent)."""
    for d in SIPP_PCAP_DIRS:
        p = Path(d) / name
        if p.exists():
            return p
    _missing(f"sipp's {name} not found in {SIPP_PCAP_DIRS}")
    raise AssertionError("unreachable")


def truncate_pcap(src: Path, dst: Path, packets: int) -> tuple[int, float]:
    """Copy the first `packets` records of `src` to `dst`; return (count, seconds spanned)."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        reader = dpkt.pcap.Reader(fin)
        writer = dpkt.pcap.Writer(fout, snaplen=65535, linktype=reader.datalink())
        first = last = None
        count = 0
        for ts, buf in reader:
            if count == packets:
                break
            first = ts if first is None else first
            last = ts
            writer.writepkt(buf, ts=ts)
            count += 1
    return count, float((last or 0) - (first or 0))


def udp_bound(port: int, host: str = HOST) -> bool:
    """Whether some socket is bound to UDP `port` on `host` or 0.0.0.0 (/proc/net/udp)."""
    little_endian = "".join(f"{int(b):02X}" for b in reversed(host.split(".")))
    want = {f"{little_endian}:{port:04X}", f"00000000:{port:04X}"}
    with open("/proc/net/udp") as f:
        return any(line.split()[1] in want for line in f.readlines()[1:])


def wait_bound(
    port: int, proc: subprocess.Popen[bytes], what: str, log: Path, host: str = HOST
) -> None:
    """Wait until `proc` has bound `port` on `host`; raise with its log if it dies first."""
    deadline = time.monotonic() + 30  # a bound on start-up, not a measured threshold
    while not udp_bound(port, host):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(
                f"{what} did not bind UDP {port}:\n{log.read_text(errors='replace')}"
            )
        time.sleep(0.02)


def _stop_group(proc: subprocess.Popen[bytes]) -> int:
    """Stop a process started with start_new_session=True, and all its children."""
    if proc.poll() is None:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
    else:
        try:  # the leader is gone; make sure no forked child lingers
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return int(proc.returncode) if proc.returncode is not None else -9


@dataclass
class Kamailio:
    """A running Kamailio: SIP on 127.0.0.1:`port`, talking ng to the relay."""

    proc: subprocess.Popen[bytes]
    port: int
    workdir: Path
    log_path: Path
    args: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        return _stop_group(self.proc)


def start_kamailio(
    workdir: Path,
    relay_ng_port: int,
    *,
    offer_flags: str = GUIDE_FLAGS,
    answer_flags: str = GUIDE_FLAGS,
    delete_flags: str = "",
    cfg: Path = EXAMPLE_CFG,
    children: int = 2,
    debug: int = 2,
    defines: dict[str, str] | None = None,
) -> Kamailio:
    """Start Kamailio in the foreground (-DD -E) with its own runtime dir under `workdir`."""
    binary = require("kamailio")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "run").mkdir(exist_ok=True)
    port = free_port()
    values = {
        "LISTEN": f"udp:{HOST}:{port}",
        "RTPENGINE_SOCK": f'"udp:{HOST}:{relay_ng_port}"',
        "OFFER_FLAGS": f'"{offer_flags}"',
        "ANSWER_FLAGS": f'"{answer_flags}"',
        "DELETE_FLAGS": f'"{delete_flags}"',
        "CHILDREN": str(children),
        "DEBUG_LEVEL": str(debug),
        **(defines or {}),
    }
    args = ["-DD", "-E", "-f", str(cfg), "-Y", str(workdir / "run")]
    args += ["-P", str(workdir / "kamailio.pid"), "-w", str(workdir)]
    for name, value in values.items():
        args += ["-A", f"{name}={value}"]
    log_path = workdir / f"kamailio-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [binary, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            start_new_session=True,
        )
    k = Kamailio(proc, port, workdir, log_path, args)
    try:
        wait_bound(port, proc, "kamailio", log_path)
    except RuntimeError:
        k.stop()
        raise
    return k


@dataclass(frozen=True, slots=True)
class CallSpec:
    """What the UAC does. `record`/`metadata` become X-Record/X-Metadata headers, which the
    example config maps to `record-call=yes` and `metadata=...` in the offer."""

    calls: int = 1
    duration_ms: int = 300
    record: bool = False
    metadata: str | None = None
    extra_headers: tuple[str, ...] = ()
    media: bool = False
    pcap: Path | None = None  # None: sipp's g711a.pcap (PCMA, 20 ms)
    media_packets: int | None = 50  # play only the first N packets; None: the whole file
    media_tail_ms: int = 1000  # call keeps going this long after the last packet is sent
    rate: int = 10  # new calls per second
    concurrency: int | None = None  # sipp -l; None: all calls may overlap
    # the call flow, a key of UAC_SCENARIOS/UAS_SCENARIOS: "answer"; "busy" (the UAS rejects
    # with 486, no media then); "early" (183 with SDP, then 200 with the same SDP); "hold"
    # (re-INVITEs: a=sendonly, c=0.0.0.0, a=sendrecv; media plays in the first and the last);
    # "cancel" (the UAC cancels while ringing; no media); "one-codec" (five codecs offered,
    # PCMA alone answered); "pcmu-to-pcma" (PCMU and telephone-event offered, PCMA alone
    # answered: the relay transcodes when Kamailio's flags ask it to); "pcmu-to-opus" and
    # "pcmu-to-g722" (the same caller, the callee answers Opus or G.722 alone); "pcmu-hold"
    # ("hold" with a PCMU-only caller)
    callee: str = "answer"
    call_id: str | None = None  # sipp -cid_str ("%u": the call's number): chosen call-ids


@dataclass
class CallResult:
    """Both sipp parties' exit codes and every SIP message each of them sent or received."""

    spec: CallSpec
    uac_rc: int
    uas_rc: int
    uac_messages: list[SipMessage]
    uas_messages: list[SipMessage]
    uac_media: Endpoint  # where the caller sends from and receives RTP
    uas_media: Endpoint
    workdir: Path
    media_packets_sent: int = 0

    @property
    def ok(self) -> bool:
        return self.uac_rc == 0 and self.uas_rc == 0

    @property
    def call_ids(self) -> list[str]:
        return list(dict.fromkeys(m.call_id for m in self.uac_messages if m.call_id))

    def _find(
        self, messages: list[SipMessage], call_id: str | None, received: bool, request: bool
    ) -> SipMessage:
        call_id = call_id or self.call_ids[0]
        for m in messages:
            if m.call_id != call_id or m.received != received or m.method != "INVITE":
                continue
            if request and m.is_request:
                return m
            if not request and m.status is not None and 200 <= m.status < 300:
                return m
        raise AssertionError(f"no such INVITE message for {call_id}\n{self.describe()}")

    def invite_seen_by_callee(self, call_id: str | None = None) -> SipMessage:
        return self._find(self.uas_messages, call_id, received=True, request=True)

    def ok_seen_by_caller(self, call_id: str | None = None) -> SipMessage:
        return self._find(self.uac_messages, call_id, received=True, request=False)

    def final_statuses_seen_by_caller(self) -> list[int]:
        """Final INVITE response codes the UAC received (retransmissions included)."""
        return [
            m.status
            for m in self.uac_messages
            if m.received and m.method == "INVITE" and m.status is not None and m.status >= 200
        ]

    def offer_seen_by_callee(self, call_id: str | None = None) -> Sdp:
        """The SDP in the INVITE the UAS received (the relay's rewritten offer)."""
        sdp = self.invite_seen_by_callee(call_id).sdp
        assert sdp is not None, self.describe()
        return sdp

    def answer_seen_by_caller(self, call_id: str | None = None) -> Sdp:
        """The SDP in the 200 OK the UAC received (the relay's rewritten answer)."""
        sdp = self.ok_seen_by_caller(call_id).sdp
        assert sdp is not None, self.describe()
        return sdp

    def describe(self) -> str:
        """Exit codes and the tail of each sipp log, for assertion messages."""
        parts = [f"uac rc={self.uac_rc} uas rc={self.uas_rc} in {self.workdir}"]
        for name in ("uac.out", "uas.out", "uac_errors.log", "uas_errors.log"):
            p = self.workdir / name
            if p.exists():
                parts.append(f"--- {name}\n" + p.read_text(errors="replace")[-3000:])
        return "\n".join(parts)


def _scenario(spec: CallSpec, workdir: Path, pcap: Path | None) -> Path:
    headers = []
    if spec.record:
        headers.append("X-Record: yes")
    if spec.metadata is not None:
        headers.append(f"X-Metadata: {spec.metadata}")
    headers += spec.extra_headers
    media = ""
    if pcap is not None:
        media = f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'
    text = (SCENARIOS / UAC_SCENARIOS[spec.callee]).read_text()
    text = text.replace("@EXTRA_HEADERS@", "".join(f"      {h}\n" for h in headers))
    text = text.replace("@MEDIA_ACTION@\n", media)
    path = workdir / "uac.xml"
    path.write_text(text)
    return path


def _sipp(args: list[str], out: Path) -> subprocess.Popen[bytes]:
    with open(out, "wb") as f:
        return subprocess.Popen(
            [require("sipp"), *args],
            stdout=f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=out.parent,
            start_new_session=True,
        )


def _wait(proc: subprocess.Popen[bytes], seconds: float) -> int:
    try:
        return int(proc.wait(seconds))
    except subprocess.TimeoutExpired:
        return _stop_group(proc)


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return not (a[1] < b[0] or a[0] > b[1])


def _party_ports(avoid: tuple[int, int] | None) -> tuple[int, int, int, int]:
    """Media ports for the UAS and the UAC, then their SIP ports: four different ports.

    Each media port is the start of an aligned-to-two block of four (sipp also binds port+2
    for video echo). The blocks are drawn one after the other while none is bound yet, so two
    draws can land on overlapping blocks; the second sipp then cannot bind, exits at start
    and sends nothing (the full suite once lost a call that way). So the blocks and the SIP
    ports are checked against each other here, not only against what is bound now."""
    taken: list[tuple[int, int]] = [avoid] if avoid is not None else []
    media: list[int] = []
    while len(media) < 2:
        block = free_port_range(4, PARTY_ADDRESS, below_ephemeral=True)
        if not any(_overlaps(block, t) for t in taken):
            taken.append(block)
            media.append(block[0])
    sip: list[int] = []
    while len(sip) < 2:
        port = free_port(host=PARTY_ADDRESS)
        if not any(_overlaps((port, port), t) for t in taken):
            taken.append((port, port))
            sip.append(port)
    return media[0], media[1], sip[0], sip[1]


def run_calls(
    kamailio: Kamailio,
    spec: CallSpec,
    workdir: Path,
    *,
    avoid_ports: tuple[int, int] | None = None,
) -> CallResult:
    """Run `spec.calls` calls from a sipp UAC through `kamailio` to a sipp UAS; wait for both.

    `avoid_ports` (the relay's range) keeps the parties' media ports out of it.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    pcap: Path | None = None
    sent = 0
    duration_ms = spec.duration_ms
    if spec.media:
        source = spec.pcap or sipp_pcap()
        pcap = workdir / "media.pcap"
        sent, seconds = truncate_pcap(source, pcap, spec.media_packets or 10**9)
        duration_ms = max(duration_ms, int(seconds * 1000) + spec.media_tail_ms)
    uac_xml = _scenario(spec, workdir, pcap)
    (workdir / "uas.xml").write_text((SCENARIOS / UAS_SCENARIOS[spec.callee]).read_text())
    # media ports: sipp also uses port+2 (video echo), so take an aligned block of four
    uas_mp, uac_mp, uas_port, uac_port = _party_ports(avoid_ports)
    # a safety bound for a stuck run, not a measured threshold
    budget = spec.calls / spec.rate + spec.calls * duration_ms / 1000 + 20
    common = [
        "-i",
        PARTY_ADDRESS,
        "-mi",
        PARTY_ADDRESS,
        "-bind_local",
        "-nostdin",
        "-m",
        str(spec.calls),
    ]
    common += ["-timeout", f"{int(budget)}s", "-timeout_error", "-trace_msg", "-trace_err"]
    uas_args = ["-sf", str(workdir / "uas.xml"), "-p", str(uas_port), "-mp", str(uas_mp)]
    uas_args += ["-message_file", str(workdir / "uas_messages.log")]
    uas_args += ["-error_file", str(workdir / "uas_errors.log")]
    if spec.media:
        uas_args.append("-rtp_echo")
    uas = _sipp(uas_args + common, workdir / "uas.out")
    uac: subprocess.Popen[bytes] | None = None
    try:
        wait_bound(uas_port, uas, "sipp uas", workdir / "uas.out", PARTY_ADDRESS)
        uac_args = [f"{PARTY_ADDRESS}:{uas_port}", "-sf", str(uac_xml), "-s", "bob"]
        uac_args += ["-p", str(uac_port), "-mp", str(uac_mp), "-rsa", kamailio.address]
        uac_args += ["-d", str(duration_ms), "-r", str(spec.rate)]
        uac_args += ["-l", str(spec.concurrency or spec.calls)]
        if spec.call_id is not None:
            uac_args += ["-cid_str", spec.call_id]
        uac_args += ["-message_file", str(workdir / "uac_messages.log")]
        uac_args += ["-error_file", str(workdir / "uac_errors.log")]
        uac = _sipp(uac_args + common, workdir / "uac.out")
        uac_rc = _wait(uac, budget + 10)
        # the UAS is done once it answered the last BYE; bound the wait if a call failed
        uas_rc = _wait(uas, 15)
    finally:
        for proc in (uac, uas):
            if proc is not None:
                _stop_group(proc)

    def messages(name: str) -> list[SipMessage]:
        p = workdir / name
        return parse_message_log(p.read_text(errors="replace")) if p.exists() else []

    return CallResult(
        spec,
        uac_rc,
        uas_rc,
        messages("uac_messages.log"),
        messages("uas_messages.log"),
        (PARTY_ADDRESS, uac_mp),
        (PARTY_ADDRESS, uas_mp),
        workdir,
        sent,
    )


def relay_command_counts(relay: Daemon) -> dict[str, int]:
    """ng commands the relay has handled, from `statistics` → controlstatistics totals."""
    client = relay.client()
    try:
        reply: dict[str, Any] = client.call({"command": "statistics"})
    finally:
        client.close()
    control = reply["statistics"]["controlstatistics"]
    return {
        name: int(control.get(f"total{name}count", 0))
        for name in ("ping", "offer", "answer", "delete", "query", "list")
    }
