#!/usr/bin/env python3
"""Issue 17 benchmark: SRTP through rtpvault and rtpengine 10.5, side by side in one run.

Part 1, media: --calls calls (200), each a plain party A and a party B, with --rate packets/s in
total (20,000: both directions, paced every millisecond, spread evenly over the calls), for
--seconds per pass. Scenarios: `plain` (A and B plain, the baseline) and `sdes` (B's leg is
SRTP, SDES keyed: the relay offers a=crypto lines towards B, B answers the line of --suite,
AES_CM_128_HMAC_SHA1_80, with its own key); `--gcm` adds AEAD_AES_128_GCM. B is its own SRTP
stack (pylibsrtp), keyed only from the SDP. The figure is the daemon's CPU (utime + stime of its
process tree, /proc) over the pass divided by the packets it relayed (received at A and B), in
µs per packet; also the loss each way. Every pass sets up fresh calls over ng, then deletes them.

The generator is kept cheap and measured apart: all packets are built (and B's protected with
pylibsrtp) before the pass; during the pass it only sends from two sockets (A and B, one each:
every call's SDP names the same two ports, and the relay's source port names the call) and
drains them. Its CPU per packet (build and protect before, send/receive during) is printed, so
it is visible whether the generator was the limit. Correctness on a sample: all packets of the
first --verify calls are kept; B must decrypt (with the relay's key from the SDP) exactly what A
sent, and A must get exactly what B protected, in plaintext.

Part 2, DTLS+ICE call setup (bench/webrtc_peer.py): --setup-calls calls (100), one after the
other; each is an offer from plain A with `ICE=force`, `DTLS=passive` and transport protocol
UDP/TLS/RTP/SAVPF; B answers with its ICE credentials and candidate, `a=setup:active` and its
certificate fingerprint, runs ICE (relay/ice, sans-IO) and a DTLS client (relay/dtls, sans-IO)
on one socket, while A sends RTP every --setup-interval ms from the answer on. The figure is the
time from sending the offer to B's first decrypted packet from A, per call (median, p90, max)
and the daemon's CPU per call. rtpvault runs this part only when its DTLS/ICE media exists:
otherwise the report says "rtpvault: DTLS/ICE media not available".

    .venv/bin/python bench/srtp.py                        # both parts, both relays (~3 min)
    .venv/bin/python bench/srtp.py --gcm --repeat 5 --json /tmp/srtp.json
    .venv/bin/python bench/srtp.py --only rtpengine --no-setup

Both relays are started once, with the same options (`--table=-1`, userspace forwarding, plus
what tests/support/daemons.py always adds). Passes are
interleaved (which relay goes first alternates) and the table shows the median of --repeat.
Loopback only; every pass is bounded in calls, packets and time.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import socket
import statistics
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

sys.path.insert(0, str(common.REPO))  # before bench/, whose relay.py is not the package

import pylibsrtp  # noqa: E402

from relay.srtp.libsrtp import PROFILES  # noqa: E402
from relay.srtp.suites import suite as suite_named  # noqa: E402
from tests.support import daemons  # noqa: E402
from tests.support.ng import NgClient  # noqa: E402

KINDS = ("rtpengine", "rtpvault")
HOST = "127.0.0.1"
PAYLOAD = 160  # 20 ms of PCMU
TICK = 0.001  # one burst per millisecond
CPU_GOAL = 1.2
SSRC_A, SSRC_B = 0x0A000000, 0x0B000000


def sdp(port: int, protocol: str = "RTP/AVP", extra: str = "", version: int = 1) -> str:
    return (
        f"v=0\r\no=x 1 {version} IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
        f"m=audio {port} {protocol} 0\r\na=rtpmap:0 PCMU/8000\r\n{extra}a=sendrecv\r\n"
    )


def media_port(reply: dict[str, Any]) -> int:
    if reply.get("result") != "ok":
        raise RuntimeError(f"ng error: {reply}")
    return int(str(reply["sdp"]).split("m=audio ")[1].split()[0])


def crypto_line(reply: dict[str, Any], suite: str) -> tuple[int, bytes]:
    """(tag, key||salt) of the relay's a=crypto line for `suite`."""
    m = re.search(rf"a=crypto:(\d+) {suite} inline:([A-Za-z0-9+/=]+)", str(reply["sdp"]))
    if m is None:
        raise RuntimeError(f"no a=crypto line for {suite} in the offer")
    key = m.group(2)  # base64 padding stripped (docs/spec/sdp.md §1.12)
    return int(m.group(1)), base64.b64decode(key + "=" * (-len(key) % 4))


def srtp_session(suite: str, key_salt: bytes, inbound: bool) -> pylibsrtp.Session:
    ssrc = pylibsrtp.Policy.SSRC_ANY_INBOUND if inbound else pylibsrtp.Policy.SSRC_ANY_OUTBOUND
    return pylibsrtp.Session(pylibsrtp.Policy(key=key_salt, ssrc_type=ssrc,
                                              srtp_profile=PROFILES[suite]))  # fmt: skip


def delete(ng: NgClient, call_id: str) -> None:
    ng.call({"command": "delete", "call-id": call_id, "from-tag": "a",
             "delete delay": 0, "delete-delay": "0"})  # fmt: skip


# ---------------------------------------------------------------- part 1: media


@dataclass
class Call:
    call_id: str
    to_a: int = 0  # relay port A sends to (and B's packets come from)
    to_b: int = 0  # relay port B sends to (and A's packets come from)
    relay_key: bytes = b""  # the relay's key towards B (SDES): B decrypts with it
    b_key: bytes = b""  # B's key: the relay decrypts B's packets with it


def set_up(ng: NgClient, n: int, scenario: str, suite: str, a_port: int, b_port: int,
           tag: str) -> list[Call]:  # fmt: skip
    """`n` calls plain A ↔ B (plain or SDES `suite`) over ng; their relay ports and keys."""
    calls = []
    for i in range(n):
        c = Call(f"srtp-{tag}-{i}")
        base = {"call-id": c.call_id, "from-tag": "a", "flags": ["trust-address"]}
        offer: dict[str, Any] = {**base, "command": "offer", "sdp": sdp(a_port)}
        if scenario == "sdes":
            offer["transport-protocol"] = "RTP/SAVP"
        r = ng.call(offer)
        c.to_b = media_port(r)
        b_sdp = sdp(b_port)
        if scenario == "sdes":
            number, c.relay_key = crypto_line(r, suite)
            c.b_key = os.urandom(suite_named(suite).inline_len)
            line = f"a=crypto:{number} {suite} inline:{base64.b64encode(c.b_key).decode()}\r\n"
            b_sdp = sdp(b_port, "RTP/SAVP", line)
        c.to_a = media_port(ng.call({**base, "command": "answer", "to-tag": "b", "sdp": b_sdp}))
        calls.append(c)
    return calls


@dataclass
class Load:
    """Every packet of one pass, built before it: A's plain RTP, B's (protected) RTP."""

    a_out: list[tuple[bytes, tuple[str, int]]]
    b_out: list[tuple[bytes, tuple[str, int]]]
    a_plain: dict[tuple[int, int], bytes]  # (call, seq) → A's RTP, sampled calls only
    b_plain: dict[tuple[int, int], bytes]
    build_cpu: float  # generator CPU s to build and protect it


def build_load(calls: list[Call], per_call: int, scenario: str, suite: str,
               verify: int) -> Load:  # fmt: skip
    cpu0 = common.own_cpu_seconds()
    out_b = [srtp_session(suite, c.b_key, inbound=False) if scenario == "sdes" else None
             for c in calls]  # fmt: skip
    a_out, b_out = [], []
    a_plain, b_plain = {}, {}
    noise = os.urandom(PAYLOAD * 64)
    for seq in range(1, per_call + 1):
        for i, c in enumerate(calls):
            off = (seq * 7 + i) % 63 * PAYLOAD
            body = struct.pack("!II", i, seq) + noise[off + 8 : off + PAYLOAD]
            pa = struct.pack("!BBHII", 0x80, 0, seq, seq * 160, SSRC_A + i) + body
            pb = struct.pack("!BBHII", 0x80, 0, seq, seq * 160, SSRC_B + i) + body
            if i < verify:
                a_plain[i, seq], b_plain[i, seq] = pa, pb
            sess = out_b[i]
            a_out.append((pa, (HOST, c.to_a)))
            b_out.append((pb if sess is None else sess.protect(pb), (HOST, c.to_b)))
    return Load(a_out, b_out, a_plain, b_plain, common.own_cpu_seconds() - cpu0)


@dataclass
class PassResult:
    kind: str
    scenario: str
    sent: int = 0
    got_a: int = 0
    got_b: int = 0
    daemon_cpu: float = 0.0
    gen_cpu: float = 0.0  # during the pass: send, receive
    build_cpu: float = 0.0
    seconds: float = 0.0
    verified: int = 0
    mismatched: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def relayed(self) -> int:
        return self.got_a + self.got_b

    @property
    def us_per_packet(self) -> float | None:
        return self.daemon_cpu * 1e6 / self.relayed if self.relayed else None

    @property
    def loss(self) -> float:
        return 1 - self.relayed / self.sent if self.sent else 1.0


def pump(load: Load, a: socket.socket, b: socket.socket, rate: int, pid: int,
         sample_a: set[int], sample_b: set[int]) -> tuple[Any, ...]:  # fmt: skip
    """Send the load paced at `rate`, draining both sockets between bursts; keep what the
    sampled relay ports send. (got at A, got at B, kept at A, kept at B, daemon CPU, own CPU,
    seconds)."""
    per_tick = max(1, round(rate * TICK / 2))  # per direction
    a_send, b_send = a.sendto, b.sendto
    a_recv, b_recv = a.recvfrom, b.recvfrom
    kept_a: list[tuple[int, bytes]] = []
    kept_b: list[tuple[int, bytes]] = []
    got = [0, 0]

    def drain() -> None:
        for idx, recv, sample, kept in ((0, a_recv, sample_a, kept_a),
                                        (1, b_recv, sample_b, kept_b)):  # fmt: skip
            n = 0
            try:
                while True:
                    data, src = recv(2048)
                    n += 1
                    if src[1] in sample:
                        kept.append((src[1], data))
            except BlockingIOError:
                pass
            got[idx] += n

    total = len(load.a_out)
    cpu0, own0, t0 = common.cpu_seconds(pid), common.own_cpu_seconds(), time.monotonic()
    due = t0
    for start in range(0, total, per_tick):
        for i in range(start, min(start + per_tick, total)):
            pa, da = load.a_out[i]
            pb, db = load.b_out[i]
            try:
                a_send(pa, da)
            except BlockingIOError:
                pass
            try:
                b_send(pb, db)
            except BlockingIOError:
                pass
        drain()
        due += TICK
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    end = time.monotonic() + 0.5  # what is still in flight
    while time.monotonic() < end:
        drain()
        time.sleep(0.005)
    drain()
    cpu1, own1 = common.cpu_seconds(pid), common.own_cpu_seconds()
    return got[0], got[1], kept_a, kept_b, cpu1 - cpu0, own1 - own0, time.monotonic() - t0


def verify(res: PassResult, calls: list[Call], load: Load, kept_a: list[tuple[int, bytes]],
           kept_b: list[tuple[int, bytes]], scenario: str, suite: str) -> None:  # fmt: skip
    """B decrypts (SDES) what A sent; A gets in plaintext what B sent."""
    by_port_b = {c.to_b: i for i, c in enumerate(calls)}
    by_port_a = {c.to_a: i for i, c in enumerate(calls)}
    inbound = {i: srtp_session(suite, calls[i].relay_key, inbound=True)
               for i in set(by_port_b.values()) if scenario == "sdes"}  # fmt: skip
    for port, data in kept_b:
        i = by_port_b[port]
        try:
            plain = inbound[i].unprotect(data) if scenario == "sdes" else data
        except pylibsrtp.Error:
            res.mismatched += 1
            continue
        seq = struct.unpack_from("!H", plain, 2)[0]
        ok = load.a_plain.get((i, seq)) == plain
        res.verified += ok
        res.mismatched += not ok
    for port, data in kept_a:
        i = by_port_a[port]
        seq = struct.unpack_from("!H", data, 2)[0]
        ok = load.b_plain.get((i, seq)) == data
        res.verified += ok
        res.mismatched += not ok


def media_pass(d: daemons.Daemon, args: argparse.Namespace, scenario: str, suite: str,
               rep: int) -> PassResult:  # fmt: skip
    res = PassResult(d.name, f"{scenario} {suite}" if scenario == "sdes" else scenario)
    a, b = common.udp_socket(HOST), common.udp_socket(HOST)
    ng = d.client(timeout=10)
    tag = f"{scenario}-{suite}-{rep}"
    calls: list[Call] = []
    try:
        calls = set_up(ng, args.calls, scenario, suite, a.getsockname()[1], b.getsockname()[1],
                       tag)  # fmt: skip
        per_call = max(1, round(args.rate / 2 * args.seconds / args.calls))
        load = build_load(calls, per_call, scenario, suite, args.verify)
        res.build_cpu = load.build_cpu
        res.sent = 2 * len(load.a_out)
        sample_a = {c.to_a for c in calls[: args.verify]}
        sample_b = {c.to_b for c in calls[: args.verify]}
        got_a, got_b, kept_a, kept_b, cpu, own, took = pump(
            load, a, b, args.rate, d.proc.pid, sample_a, sample_b
        )
        res.got_a, res.got_b, res.daemon_cpu, res.gen_cpu, res.seconds = (
            got_a, got_b, cpu, own, took)  # fmt: skip
        verify(res, calls, load, kept_a, kept_b, scenario, suite)
        if res.mismatched:
            res.notes.append(f"{res.mismatched} sampled packets did not match what was sent")
    finally:
        for c in calls:
            delete(ng, c.call_id)
        ng.close()
        a.close()
        b.close()
    us = res.us_per_packet
    print(f"  {res.kind:9s} {res.scenario:30s} {res.relayed}/{res.sent} relayed in "
          f"{res.seconds:.1f} s, daemon {res.daemon_cpu:.2f} s CPU = "
          f"{'n/a' if us is None else f'{us:.2f}'} µs/pkt; generator "
          f"{res.gen_cpu * 1e6 / max(res.sent, 1):.2f} µs/pkt sending, "
          f"{res.build_cpu * 1e6 / max(res.sent // 2, 1):.2f} µs/pkt building B's; "
          f"sample {res.verified} ok {res.mismatched} bad", file=sys.stderr)  # fmt: skip
    return res


# ---------------------------------------------------------------- the run


def start(kind: str, work: Path, calls: int) -> daemons.Daemon:
    extra = ["--log-level=5", "--timeout=3600"]
    return daemons.start(kind, work / kind, interface=f"lo/{HOST}", ports=8 * calls + 200,
                         extra=extra)  # fmt: skip


def median(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return statistics.median(got) if got else None


def media_rows(results: list[PassResult], scenarios: list[str]) -> list[common.Row]:
    rows = []
    for sc in scenarios:
        per = {k: [r for r in results if r.kind == k and r.scenario == sc] for k in KINDS}
        us = {k: median([r.us_per_packet for r in per[k]]) for k in KINDS}
        loss = {k: median([100 * r.loss for r in per[k]]) for k in KINDS}
        gen = {k: median([r.gen_cpu * 1e6 / max(r.sent, 1) for r in per[k]]) for k in KINDS}
        r_us = common.ratio(us["rtpvault"], us["rtpengine"])
        secure = sc != "plain"
        rows += [
            common.Row(f"{sc}: daemon CPU", "µs/pkt", us["rtpengine"], us["rtpvault"],
                       f"≤ {CPU_GOAL}× rtpengine" if secure else "", 2,
                       None if r_us is None or not secure else r_us <= CPU_GOAL),
            common.Row(f"{sc}: loss", "%", loss["rtpengine"], loss["rtpvault"], "", 3),
            common.Row(f"{sc}: generator send+recv", "µs/pkt", gen["rtpengine"],
                       gen["rtpvault"], "", 2),
        ]  # fmt: skip
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--rate", type=int, default=20_000, help="packets/s, both directions")
    ap.add_argument("--seconds", type=float, default=8.0, help="per media pass")
    ap.add_argument("--suite", default="AES_CM_128_HMAC_SHA1_80", choices=sorted(PROFILES))
    ap.add_argument("--gcm", action="store_true", help="also an AEAD_AES_128_GCM pass")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--verify", type=int, default=5, help="calls whose packets are checked")
    ap.add_argument("--only", choices=KINDS)
    ap.add_argument("--no-media", action="store_true")
    ap.add_argument("--no-setup", action="store_true")
    ap.add_argument("--setup-calls", type=int, default=100)
    ap.add_argument("--setup-interval", type=float, default=5.0, help="ms between A's packets")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    common.nofile_limit()
    kinds = [args.only] if args.only else list(KINDS)
    scenarios = [("plain", ""), ("sdes", args.suite)]
    if args.gcm and args.suite != "AEAD_AES_128_GCM":
        scenarios.append(("sdes", "AEAD_AES_128_GCM"))
    results: list[PassResult] = []
    setups: dict[str, Any] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="srtp-bench-") as tmp:
        running = {k: start(k, Path(tmp), args.calls) for k in kinds}
        try:
            for rep in range(0 if args.no_media else args.repeat):
                order = kinds if rep % 2 == 0 else kinds[::-1]
                for scenario, suite in scenarios:
                    for kind in order:
                        results.append(media_pass(running[kind], args, scenario, suite, rep))
            if not args.no_setup:
                import webrtc_peer

                for kind in kinds:
                    setups[kind] = webrtc_peer.setup_pass(running[kind], args)
        finally:
            for d in running.values():
                if d.proc.poll() is not None:
                    notes.append(f"{d.name} exited during the run ({d.proc.returncode})")
                d.stop()
    print(f"# {common.command_line()}")
    if results:
        print(f"# media: {args.calls} calls, {args.rate} pkt/s in total (both directions), "
              f"{args.seconds:g} s per pass, median of {args.repeat}")  # fmt: skip
    if setups:
        print(f"# DTLS+ICE setup: {args.setup_calls} calls one after the other, A sends every "
              f"{args.setup_interval:g} ms from the answer on")  # fmt: skip
    print("# --table=-1 (userspace) for both; a shared 2-core machine")
    rows = media_rows(results, [r.scenario for r in results[: len(scenarios) * len(kinds)]][
        :: len(kinds)]) if results else []  # fmt: skip
    for r in results:
        notes += [f"{r.kind} {r.scenario}: {n}" for n in r.notes]
    if results:
        checked = sum(r.verified for r in results)
        bad = sum(r.mismatched for r in results)
        notes.append(f"correctness sample: {checked} packets matched, {bad} did not")
    if setups:
        import webrtc_peer

        rows += webrtc_peer.rows(setups)
        notes += webrtc_peer.notes(setups)
    print(common.format_table(rows, "rtpengine", "rtpvault"))
    for n in notes:
        print(f"note: {n}")
    if args.json:
        common.write_json(args.json, {
            "command": common.command_line(), "rows": common.rows_as_json(rows),
            "passes": [vars(r) for r in results], "setup": setups, "notes": notes})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
