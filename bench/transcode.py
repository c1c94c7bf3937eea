#!/usr/bin/env python3
"""Issue 19 benchmark: transcoding in rtpvault and rtpengine 10.5, side by side in one run.

Each call is PCMU party A ↔ relay ↔ party B in Opus (or G.722). A offers PCMU and the relay is
told what Kamailio's `codec-mask-all codec-transcode-opus` tells rtpengine (`codec` dictionary
`mask [all] transcode [opus]`), so B is offered Opus only, answers it, and the relay transcodes
both ways: A's PCMU is decoded and encoded to Opus for B, B's Opus decoded and encoded to PCMU
for A. A sends a 1 kHz tone, B a 440 Hz tone (Opus/G.722 frames encoded once before the run
with PyAV, cycled), one 20-ms packet per call and direction every 20 ms, the calls' phases
spread over the 20 ms.

Part 1, CPU: --calls calls (20: well below one core's capacity for both relays, so neither
queues) for --seconds (8) after two seconds of warm-up. The figure is the daemon's CPU (utime +
stime of its process tree, /proc) over the measured seconds divided by calls × seconds: ms of
CPU per transcoded call-second, a call being both directions.

Part 2, capacity: the most concurrent transcoded calls per core with < 0.1 % late packets.
Both daemons run with `--num-threads=1` (one worker: one core's worth of media work), calls
step through --ladder (10, 20, 30, …) for --cap-seconds (5) each after the warm-up, stopping at
the first step that fails --tries (2) times. A packet is late when it reaches its party more
than one ptime (20 ms) after it was due: output packet k of a stream (k ptimes after the
stream's first by its RTP timestamp) is due when input packet k was sent plus the smallest
transit of the stream's previous second (a receiver's adaptive jitter buffer), so a constant
codec delay is not lateness and queueing is (see `lateness`). Arrival is the
kernel's receive time (SO_TIMESTAMPNS), send time the generator's clock just before sending.
A packet missing from a stream (by sequence number) counts as late. Late % = (late + missing)
/ expected over both directions of all calls, for inputs sent in the measured seconds. Inputs
the generator sent more than 5 ms behind its schedule (or within a ptime after such a slot)
are not measured: that burst would queue in any relay; their share is printed ("burst").

Each pass also reads how long the daemon's threads were runnable but waiting for a CPU
(/proc/<pid>/task/*/schedstat): on this shared machine that wait, not the relay, is what most
late packets come from, and it is printed next to the CPU figure.

Every pass checks a sample call: A must hear 440 Hz and B (its output decoded with PyAV) 1 kHz,
or the pass is marked wrong. The generator is Python on the same two shared cores: its CPU is
printed; a step where it used more than 80 % of a core is marked "generator-bound".

    .venv/bin/python bench/transcode.py                       # both relays, both codecs (~6 min)
    .venv/bin/python bench/transcode.py --codecs opus --only rtpengine --no-capacity
    .venv/bin/python bench/transcode.py --repeat 3 --json /tmp/transcode.json

Both relays are started once, with the same options (`--table=-1`, `--num-threads=1`, plus
what tests/support/daemons.py always adds); passes are interleaved (which relay goes first
alternates) and part 1 shows the median of --repeat. Loopback only; every pass is bounded in
calls and time.
"""

from __future__ import annotations

import argparse
import array
import fractions
import math
import os
import socket
import statistics
import struct
import sys
import tempfile
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

sys.path.insert(0, str(common.REPO))  # before bench/, whose relay.py is not the package

import av  # noqa: E402

from tests.support import daemons  # noqa: E402
from tests.support.ng import NgClient  # noqa: E402
from tests.support.tone import dominant_hz, ulaw_samples, ulaw_tone  # noqa: E402

KINDS = ("rtpengine", "rtpvault")
HOST = "127.0.0.1"
PTIME = 0.02
A_HZ, B_HZ = 1000, 440
CPU_GOAL = 1.2
LATE_GOAL = 0.1  # %
WARMUP = 2.0
"""Seconds sent before the measured ones: every chain is made on its first packet (1-7 ms each
here, PyAV codec contexts), and for a whole ladder step at once that start-up backlog takes
about a second to drain on this machine; steady state is what is measured."""
SSRC_A, SSRC_B = 0x0A000000, 0x0B000000


@dataclass(frozen=True)
class Codec:
    """B's codec: name in SDP/ng, rtpmap, RTP clock, RTP PT, PyAV encoder, its sample rate."""

    name: str
    rtpmap: str
    clock: int
    pt: int
    av_name: str
    rate: int

    @property
    def ts_step(self) -> int:
        return round(self.clock * PTIME)


CODECS = {
    "opus": Codec("opus", "opus/48000/2", 48000, 96, "libopus", 48000),
    "G722": Codec("G722", "G722/8000", 8000, 9, "g722", 16000),
}
PCMU = Codec("PCMU", "PCMU/8000", 8000, 0, "pcm_mulaw", 8000)


def sdp(port: int, codec: Codec) -> str:
    return (
        f"v=0\r\no=x 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP {codec.pt}\r\na=rtpmap:{codec.pt} {codec.rtpmap}\r\n"
        "a=sendrecv\r\n"
    )


def media_port(reply: dict[str, Any], expect: Codec) -> int:
    if reply.get("result") != "ok":
        raise RuntimeError(f"ng error: {reply}")
    text = str(reply["sdp"])
    if f" {expect.rtpmap}" not in text:
        raise RuntimeError(f"expected {expect.rtpmap} in:\n{text}")
    return int(text.split("m=audio ")[1].split()[0])


def encode_tone(codec: Codec, hz: float, frames: int = 50) -> list[bytes]:
    """`frames` 20-ms frames of a sine at `hz` in `codec`, encoded with PyAV (1 s: the tone is
    periodic over it, so cycling the list keeps it continuous)."""
    ctx: Any = av.CodecContext.create(codec.av_name, "w")
    ctx.sample_rate, ctx.layout, ctx.format = codec.rate, "mono", "s16"
    ctx.time_base = fractions.Fraction(1, codec.rate)
    if codec.name == "opus":
        ctx.bit_rate = 32000
    ctx.open()
    n = round(codec.rate * PTIME)
    out: list[bytes] = []
    for k in range(frames + 4):  # a few more: the encoder's look-ahead
        frame = av.AudioFrame(format="s16", layout="mono", samples=n)
        pcm = [round(8000 * math.sin(2 * math.pi * hz * (k * n + i) / codec.rate))
               for i in range(n)]  # fmt: skip
        frame.planes[0].update(array.array("h", pcm).tobytes())
        frame.sample_rate, frame.pts = codec.rate, k * n
        frame.time_base = fractions.Fraction(1, codec.rate)
        out += [bytes(p) for p in ctx.encode(frame)]
    return out[-frames:]


def decode(codec: Codec, payloads: list[bytes]) -> list[int]:
    """8-kHz mono samples of `payloads` decoded with PyAV (for the pitch check)."""
    name = "libopus" if codec.name == "opus" else codec.av_name
    ctx: Any = av.CodecContext.create(name, "r")
    ctx.sample_rate, ctx.layout = codec.rate, "mono"
    resampler = av.AudioResampler(format="s16", layout="mono", rate=8000)
    got: list[int] = []
    for p in payloads:
        for frame in ctx.decode(av.Packet(p)):
            for out in resampler.resample(frame):
                got += array.array("h", bytes(out.planes[0]))[: out.samples]
    return got


# ---------------------------------------------------------------- calls


@dataclass
class Call:
    call_id: str
    to_a: int = 0  # relay port A sends to (A's received packets come from it)
    to_b: int = 0


def set_up(ng: NgClient, n: int, codec: Codec, a_port: int, b_port: int, tag: str
           ) -> list[Call]:  # fmt: skip
    calls = []
    for i in range(n):
        c = Call(f"tc-{tag}-{i}")
        base = {"call-id": c.call_id, "from-tag": "a", "flags": ["trust-address"]}
        c.to_b = media_port(ng.call({**base, "command": "offer", "sdp": sdp(a_port, PCMU),
                                     "codec": {"mask": ["all"], "transcode": [codec.name]}}),
                            codec)  # fmt: skip
        c.to_a = media_port(ng.call({**base, "command": "answer", "to-tag": "b",
                                     "sdp": sdp(b_port, codec)}), PCMU)  # fmt: skip
        calls.append(c)
    return calls


def delete(ng: NgClient, calls: list[Call]) -> None:
    for c in calls:
        ng.call({"command": "delete", "call-id": c.call_id, "from-tag": "a",
                 "delete delay": 0, "delete-delay": "0"})  # fmt: skip


# ---------------------------------------------------------------- one pass


@dataclass
class Lateness:
    expected: int = 0  # measured output packets plus missing ones
    late: int = 0
    missing: int = 0
    extra: int = 0  # output packets beyond one per input packet (same RTP timestamp slot)
    unsteady: int = 0  # output packets not measured: their input went out in a burst


@dataclass
class PassResult:
    kind: str
    codec: str
    calls: int
    seconds: float = 0.0
    daemon_cpu: float = 0.0
    daemon_wait: float = 0.0  # run-queue wait over the measured seconds
    gen_cpu: float = 0.0
    lat: Lateness = field(default_factory=Lateness)
    out_bytes: int = 0  # payload bytes B received (the encoder's bit rate)
    out_packets: int = 0
    pitch_a: float = 0.0
    pitch_b: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ms_per_call_second(self) -> float | None:
        if not self.seconds or not self.calls:
            return None
        return self.daemon_cpu * 1e3 / (self.calls * self.seconds)

    @property
    def late_pct(self) -> float:
        lat = self.lat
        return 100 * (lat.late + lat.missing) / lat.expected if lat.expected else 100.0

    @property
    def unsteady_pct(self) -> float:
        lat = self.lat
        total = lat.expected + lat.unsteady
        return 100 * lat.unsteady / total if total else 0.0

    @property
    def pitch_ok(self) -> bool:
        return self.pitch_a == B_HZ and self.pitch_b == A_HZ

    @property
    def generator_bound(self) -> bool:
        return self.gen_cpu > 0.8 * self.seconds


Arrival = tuple[int, float, bytes]  # (relay source port, kernel arrival time, datagram)
SLOTS = 20
"""1-ms phases within a ptime: call i sends in slot i % SLOTS."""
_STAMP = struct.Struct("@qq")  # struct timespec of SO_TIMESTAMPNS
STEADY = 0.005
"""Seconds behind schedule from which a generator slot counts as a burst (not measured)."""
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux's value; Python lacks the name


@dataclass
class Pumped:
    at_a: list[Arrival]
    at_b: list[Arrival]
    sent_at: list[float]
    """time.time() when slot `n * SLOTS + slot` was sent (packet n of the calls in `slot`)."""
    measured_from: int
    """Index of the first packet (n) sent in the measured seconds."""
    steady: list[bool]
    """Per slot index as `sent_at`: the generator sent that slot and the ptime before it on
    schedule (less than STEADY behind); a slot after a generator stall went out in a burst."""
    daemon_cpu: float
    own_cpu: float
    seconds: float
    daemon_wait: float
    """Seconds the daemon's threads were runnable but waiting for a CPU (run queue)."""


def runqueue_wait(pid: int) -> float:
    """Seconds the threads of `pid`'s process tree spent runnable, waiting for a CPU (the
    second field of /proc/<pid>/task/<tid>/schedstat): on a shared machine, the share of
    the relay's delay that other programs caused."""
    total = 0
    for proc in common.process_tree(pid):
        try:
            tasks = list(Path(f"/proc/{proc}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                total += int((task / "schedstat").read_text().split()[1])
            except (OSError, ValueError, IndexError):
                continue
    return total / 1e9


def pump(calls: list[Call], codec: Codec, a: socket.socket, b: socket.socket, seconds: float,
         pid: int) -> Pumped:  # fmt: skip
    """Send WARMUP + `seconds` of both tones on every call, paced on the monotonic clock;
    keep every arrival with the kernel's receive time (SO_TIMESTAMPNS, wall clock), so a
    generator busy elsewhere does not make the relay look late."""
    a_frames = [ulaw_tone(A_HZ, k * 160) for k in range(50)]
    b_frames = encode_tone(codec, B_HZ)
    n_calls = len(calls)
    warm = round(WARMUP / PTIME)
    total = warm + round(seconds / PTIME)
    at_a: list[Arrival] = []
    at_b: list[Arrival] = []
    sent_at: list[float] = []
    lags: list[float] = []
    for s in (a, b):
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    a_send, b_send = a.sendto, b.sendto
    space = socket.CMSG_SPACE(_STAMP.size)
    now, wall = time.monotonic, time.time

    def drain() -> None:
        for sock, kept in ((a, at_a), (b, at_b)):
            try:
                while True:
                    data, anc, _, src = sock.recvmsg(2048, space)
                    stamp = wall()
                    for level, kind, raw in anc:
                        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                            sec, ns = _STAMP.unpack(raw[: _STAMP.size])
                            stamp = sec + ns * 1e-9
                    kept.append((src[1], stamp, data))
            except BlockingIOError:
                pass

    t0 = now() + 0.05
    cpu0 = own0 = wait0 = 0.0
    t_measured = t0
    for n in range(total):
        seq, ts_a, ts_b = n & 0xFFFF, (n * 160) & 0xFFFFFFFF, (n * codec.ts_step) & 0xFFFFFFFF
        marker = 0x80 if n == 0 else 0
        pa = a_frames[n % 50]
        pb = b_frames[n % 50]
        if n == warm:
            cpu0, own0, t_measured = common.cpu_seconds(pid), common.own_cpu_seconds(), now()
            wait0 = runqueue_wait(pid)
        for slot in range(SLOTS):
            due = t0 + n * PTIME + slot * PTIME / SLOTS
            while (left := due - now()) > 0:
                drain()
                if left > 0.0005:
                    time.sleep(min(left, 0.0005))
            lags.append(now() - due)
            sent_at.append(wall())
            for i in range(slot, n_calls, SLOTS):
                c = calls[i]
                try:
                    a_send(struct.pack("!BBHII", 0x80, marker | PCMU.pt, seq, ts_a, SSRC_A + i)
                           + pa, (HOST, c.to_a))  # fmt: skip
                    b_send(struct.pack("!BBHII", 0x80, marker | codec.pt, seq, ts_b, SSRC_B + i)
                           + pb, (HOST, c.to_b))  # fmt: skip
                except BlockingIOError:
                    pass
        drain()
    took = now() - t_measured
    cpu1, own1 = common.cpu_seconds(pid), common.own_cpu_seconds()
    wait = runqueue_wait(pid) - wait0
    until = now() + 0.3  # what is still in flight
    while now() < until:
        drain()
        time.sleep(0.002)
    drain()
    worst = deque[tuple[int, float]]()  # sliding maximum of the lag over the last ptime
    steady = []
    for j, lag in enumerate(lags):
        while worst and worst[-1][1] <= lag:
            worst.pop()
        worst.append((j, lag))
        while worst[0][0] < j - SLOTS:
            worst.popleft()
        steady.append(worst[0][1] < STEADY)
    return Pumped(at_a, at_b, sent_at, warm, steady, cpu1 - cpu0, own1 - own0, took, wait)


def lateness(arrivals: list[Arrival], slot_of: dict[int, int], clock: int, p: Pumped,
             into: Lateness) -> None:  # fmt: skip
    """Adds to `into` the counts over the streams in `arrivals` (by relay port; `slot_of`
    gives each port's call slot), for output packets whose input was sent in the measured
    seconds.

    Output packet k of a stream (by its RTP timestamp: k ptimes after the stream's first)
    belongs to input packet k; its transit is arrival − that input's send time. It is late when
    its transit exceeds the smallest transit of the stream's previous second (packets k − 50 …
    k) by more than a ptime: a receiver's jitter buffer follows a lasting change of delay
    within about a second (rtpengine 10.5 paces its transcoded output by RTP timestamp and keeps
    the delay a stall added), but a packet a ptime behind its neighbours is a gap in playout.
    A sequence number missing between the first and last measured ones is a missing packet.
    Packets whose input went out in a generator burst (`Pumped.steady`) are not measured: a
    burst queues in any relay, and a network would not have sent it."""
    sent_at, measured_from = p.sent_at, p.measured_from
    streams: dict[int, list[tuple[float, int, int]]] = {}
    for port, t, data in arrivals:
        if len(data) < 12 or port not in slot_of:
            continue
        seq, ts = struct.unpack_from("!HI", data, 2)
        streams.setdefault(port, []).append((t, seq, ts))
    step = clock * PTIME
    window = round(1 / PTIME)
    for port, pkts in streams.items():
        slot = slot_of[port]
        first_seq, first_ts = pkts[0][1], pkts[0][2]
        by_k: dict[int, tuple[int, float]] = {}  # k → (unwrapped seq, transit)
        for t, s, ts in pkts:
            k = round((((ts - first_ts + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)) / step)
            if not 0 <= k < len(sent_at) // SLOTS or k in by_k:
                into.extra += k >= measured_from
                continue
            by_k[k] = ((s - first_seq) & 0xFFFF, t - sent_at[k * SLOTS + slot])
        recent: deque[tuple[int, float]] = deque()  # (k, transit), transits increasing
        seqs: set[int] = set()
        for k in sorted(by_k):
            s, d = by_k[k]
            while recent and recent[-1][1] >= d:
                recent.pop()
            recent.append((k, d))
            while recent[0][0] < k - window:
                recent.popleft()
            if k >= measured_from:
                seqs.add(s)
                if not p.steady[k * SLOTS + slot]:
                    into.unsteady += 1
                    continue
                into.expected += 1
                into.late += d - recent[0][1] > PTIME
        if seqs:
            gaps = max(seqs) - min(seqs) + 1 - len(seqs)
            into.expected += gaps
            into.missing += gaps


def run_pass(d: daemons.Daemon, codec: Codec, n_calls: int, seconds: float, tag: str
             ) -> PassResult:  # fmt: skip
    res = PassResult(d.name, codec.name, n_calls)
    a, b = common.udp_socket(HOST), common.udp_socket(HOST)
    ng = d.client(timeout=10)
    calls: list[Call] = []
    try:
        calls = set_up(ng, n_calls, codec, a.getsockname()[1], b.getsockname()[1], tag)
        p = pump(calls, codec, a, b, seconds, d.proc.pid)
        at_a, at_b = p.at_a, p.at_b
        res.daemon_cpu, res.gen_cpu, res.seconds = p.daemon_cpu, p.own_cpu, p.seconds
        res.daemon_wait = p.daemon_wait
        for arrivals, clock, slots in (
            (at_a, PCMU.clock, {c.to_a: i % SLOTS for i, c in enumerate(calls)}),
            (at_b, codec.clock, {c.to_b: i % SLOTS for i, c in enumerate(calls)}),
        ):
            lateness(arrivals, slots, clock, p, res.lat)
        since = p.sent_at[p.measured_from * SLOTS]
        from_b = [pkt for _, t, pkt in at_b if t >= since]
        res.out_packets = len(from_b)
        res.out_bytes = sum(len(p) - 12 for p in from_b)
        sample = calls[0]
        heard_a = [p[12:] for port, _, p in at_a if port == sample.to_a and p[1] & 0x7F == 0]
        heard_b = [p[12:] for port, _, p in at_b
                   if port == sample.to_b and p[1] & 0x7F == codec.pt]  # fmt: skip
        if len(heard_a) > 60 and len(heard_b) > 60:
            res.pitch_a = dominant_hz(ulaw_samples(b"".join(heard_a[50:75])))
            res.pitch_b = dominant_hz(decode(codec, heard_b)[8000:12000])
        if not res.pitch_ok:
            res.notes.append(f"sample call: A heard {res.pitch_a:g} Hz ({len(heard_a)} pkts), "
                             f"B heard {res.pitch_b:g} Hz ({len(heard_b)} pkts)")  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - a relay that fails is reported, not fatal
        res.notes.append(f"failed: {exc}")
    finally:
        try:
            delete(ng, calls)
        except Exception as exc:  # noqa: BLE001
            res.notes.append(f"delete failed: {exc}")
        ng.close()
        a.close()
        b.close()
    ms = res.ms_per_call_second
    print(f"  {res.kind:9s} {res.codec:5s} {n_calls:4d} calls {res.seconds:4.1f} s: daemon "
          f"{res.daemon_cpu:.2f} s CPU (waited {res.daemon_wait:.2f} s for one) = "
          f"{'n/a' if ms is None else f'{ms:.2f}'} ms/call-s; "
          f"late {res.lat.late} missing {res.lat.missing} of {res.lat.expected} = "
          f"{res.late_pct:.3f} % (extra {res.lat.extra}, burst {res.unsteady_pct:.1f} %); "
          f"generator {res.gen_cpu:.2f} s CPU; B got {res.out_packets} pkts "
          f"{res.out_bytes / max(res.out_packets, 1):.0f} B avg; pitch A {res.pitch_a:g} "
          f"B {res.pitch_b:g}{'; ' + '; '.join(res.notes) if res.notes else ''}",
          file=sys.stderr, flush=True)  # fmt: skip
    return res


# ---------------------------------------------------------------- the run


def start(kind: str, work: Path, max_calls: int) -> daemons.Daemon:
    extra = ["--log-level=5", "--timeout=3600", "--num-threads=1"]
    return daemons.start(kind, work / kind, interface=f"lo/{HOST}", ports=4 * max_calls + 200,
                         extra=extra)  # fmt: skip


def median(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return statistics.median(got) if got else None


def capacity(d: daemons.Daemon, codec: Codec, ladder: list[int], seconds: float, tries: int
             ) -> tuple[int, list[PassResult]]:  # fmt: skip
    """The largest step of `ladder` with < LATE_GOAL % late and the right pitch (0: none).
    A step passes when one of `tries` attempts does: on a shared machine another program's
    burst stalls a relay for a few hundred ms now and then, which is not the relay's limit."""
    best, passes = 0, []
    for n in ladder:
        ok = False
        for attempt in range(tries):
            r = run_pass(d, codec, n, seconds, f"cap-{n}-{attempt}")
            passes.append(r)
            ok = r.late_pct < LATE_GOAL and r.pitch_ok and not r.notes
            if ok:
                break
        if not ok:
            break
        best = n
    return best, passes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--codecs", default="opus,G722", help="comma-separated: opus, G722")
    ap.add_argument("--calls", type=int, default=20, help="calls in the CPU passes")
    ap.add_argument("--seconds", type=float, default=8.0, help="per CPU pass")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ladder", default="10,20,30,40,60,80,100,150,200,300",
                    help="capacity steps (calls)")  # fmt: skip
    ap.add_argument("--cap-seconds", type=float, default=5.0, help="per capacity step")
    ap.add_argument("--tries", type=int, default=2, help="attempts per capacity step")
    ap.add_argument("--only", choices=KINDS)
    ap.add_argument("--no-capacity", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    common.nofile_limit()
    kinds = [args.only] if args.only else list(KINDS)
    codecs = [CODECS[c] for c in args.codecs.split(",")]
    ladder = [int(x) for x in args.ladder.split(",")]
    load_before = os.getloadavg()
    cpu_passes: list[PassResult] = []
    caps: dict[tuple[str, str], tuple[int, list[PassResult]]] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="transcode-bench-") as tmp:
        running: dict[str, daemons.Daemon] = {}
        try:
            for k in kinds:
                try:
                    running[k] = start(k, Path(tmp), max(ladder + [args.calls]))
                except RuntimeError as exc:
                    notes.append(f"{k} NOT MEASURED: did not start: {str(exc)[-400:]}")
            for rep in range(args.repeat):
                order = kinds if rep % 2 == 0 else kinds[::-1]
                for codec in codecs:
                    for kind in order:
                        if kind in running:
                            cpu_passes.append(run_pass(running[kind], codec, args.calls,
                                                       args.seconds, f"cpu-{rep}"))  # fmt: skip
            if not args.no_capacity:
                for codec in codecs:
                    for kind in kinds:
                        if kind in running:
                            caps[kind, codec.name] = capacity(
                                running[kind], codec, ladder, args.cap_seconds, args.tries
                            )
        finally:
            for d in running.values():
                if d.proc.poll() is not None:
                    notes.append(f"{d.name} exited during the run ({d.proc.returncode})")
                d.stop()
    load_after = os.getloadavg()
    print(f"# {common.command_line()}")
    print(f"# CPU: {args.calls} calls, {args.seconds:g} s measured per pass after {WARMUP:g} s "
          f"warm-up, median of {args.repeat}; capacity: ladder {args.ladder}, "
          f"{args.cap_seconds:g} s per step")  # fmt: skip
    print(
        "# --table=-1 (userspace) and --num-threads=1 for both; a shared 2-core machine; "
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}"
    )
    rows: list[common.Row] = []
    for codec in codecs:
        per = {k: [r for r in cpu_passes if r.kind == k and r.codec == codec.name] for k in KINDS}
        ms = {k: median([r.ms_per_call_second for r in per[k] if not r.notes]) for k in KINDS}
        late = {k: median([r.late_pct for r in per[k]]) for k in KINDS}
        size = {k: median([r.out_bytes / r.out_packets for r in per[k] if r.out_packets])
                for k in KINDS}  # fmt: skip
        r_ms = common.ratio(ms["rtpvault"], ms["rtpengine"])
        wait = {k: median([r.daemon_wait / r.seconds for r in per[k] if r.seconds]) for k in KINDS}
        cap = {k: caps[k, codec.name][0] if (k, codec.name) in caps else None for k in KINDS}
        rows += [
            common.Row(f"PCMU↔{codec.name}: daemon CPU", "ms/call-s", ms["rtpengine"],
                       ms["rtpvault"], f"≤ {CPU_GOAL}× rtpengine", 2,
                       None if r_ms is None else r_ms <= CPU_GOAL),
            common.Row(f"PCMU↔{codec.name}: daemon runnable, waiting for a CPU", "s/s",
                       wait["rtpengine"], wait["rtpvault"], "", 2),
            common.Row(f"PCMU↔{codec.name}: late+missing ({args.calls} calls)", "%",
                       late["rtpengine"], late["rtpvault"], "", 3),
            common.Row(f"PCMU↔{codec.name}: {codec.name} payload to B", "bytes/pkt",
                       size["rtpengine"], size["rtpvault"], "", 0),
        ]  # fmt: skip
        bound = {k: None if not (v := ms[k]) else 1000 / v for k in KINDS}
        rows.append(common.Row(f"PCMU↔{codec.name}: calls per core by CPU (1000 / ms per call-s)",
                               "calls", bound["rtpengine"], bound["rtpvault"], "", 0))  # fmt: skip
        if caps:
            rows.append(common.Row(f"PCMU↔{codec.name}: calls per core, < {LATE_GOAL} % late",
                                   "calls", cap["rtpengine"], cap["rtpvault"], "", 0))  # fmt: skip
    for r in [*cpu_passes, *(x for _, ps in caps.values() for x in ps)]:
        if r.lat.extra:
            notes.append(f"{r.kind} {r.codec} {r.calls} calls: {r.lat.extra} packets more than "
                         "one per input packet")  # fmt: skip
    for r in cpu_passes:
        notes += [f"{r.kind} {r.codec} CPU pass: {n}" for n in r.notes]
        if r.generator_bound:
            notes.append(f"{r.kind} {r.codec} CPU pass: generator-bound")
    for (kind, codec_name), (best, passes) in caps.items():
        last = passes[-1] if passes else None
        if last is not None and best != last.calls:
            why = "; ".join(last.notes) or f"{last.late_pct:.3f} % late"
            notes.append(f"{kind} {codec_name}: {last.calls} calls failed ({why})"
                         + (" [generator-bound]" if last.generator_bound else ""))  # fmt: skip
        elif last is not None:
            notes.append(f"{kind} {codec_name}: the ladder's top ({best}) passed")
    print(common.format_table(rows, "rtpengine", "rtpvault"))
    for n in notes:
        print(f"note: {n}")
    if args.json:
        common.write_json(args.json, {
            "command": common.command_line(), "load": [load_before, load_after],
            "rows": common.rows_as_json(rows),
            "cpu_passes": [asdict(r) for r in cpu_passes],
            "capacity": {f"{k} {c}": [asdict(r) for r in p] for (k, c), (_, p) in caps.items()},
            "notes": notes})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
