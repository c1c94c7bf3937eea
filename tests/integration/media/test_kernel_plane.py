"""`table = 0`: established streams are forwarded by nftables in the kernel (relay.media.kernel).

The relay namespace routes (ip_forward = 1, as kernel forwarding needs); hosts a, b and c are
around it as in test_daemon_media. The tests read the kernel's own view (`nft list`) next to
what arrives on the hosts and what `query` reports.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pylibsrtp
import pytest

from tests.support import daemons
from tests.support.tools import free_port, require, unavailable
from tests.support.wait import wait_for

from .daemon_rig import HOST_PORT, Host, Relay, media_port, rtp, rtp_stream, sdp, wait_until_gone
from .netns import Topology

pytestmark = pytest.mark.integration


def nft(topo: Topology, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", topo.hosts["relay"].name, require("nft"), *args],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip


def kernel_entries(topo: Topology) -> list[tuple[list[object], int]]:
    """(key, packets) of every stream in the `streams` map (one process) or the `streams_N`
    maps (one per worker process, relay.media.ruleset); [] when the table is gone."""
    out = nft(topo, "-j", "list", "table", "ip", "rtpvault")
    if out.returncode != 0:
        return []
    entries = []
    for item in json.loads(out.stdout)["nftables"]:
        found = item.get("map", {})
        if found.get("name", "").split("_")[0] != "streams":
            continue
        for el in found.get("elem", []):
            entries.append((el[0]["elem"]["val"]["concat"], el[0]["elem"]["counter"]["packets"]))
    return entries


def establish(topo: Topology, a: Host, b: Host, to_a: int, to_b: int) -> None:
    """Media both ways until both directions are in the kernel: delayed learning confirms a
    peer with the first packet after its 3 s window, the next sweep (1 s) offloads it."""
    seq = 1000
    end = time.monotonic() + 20
    while len(kernel_entries(topo)) < 2:
        assert time.monotonic() < end, "streams never moved into the kernel"
        seq += 1
        a.send(to_a, rtp(seq, ssrc=0xA))
        b.send(to_b, rtp(seq, ssrc=0xB))
        time.sleep(0.2)
    a.drain(0.3)
    b.drain(0.3)


@pytest.fixture
def topo() -> Iterator[Topology]:
    require("ip")
    require("nft")
    if os.geteuid() != 0:
        unavailable("network namespaces and nftables need root (CI=true fails here)")
    t = Topology(f"rvk{os.getpid() % 100000}")
    try:
        t.build()
        with t.hosts["relay"].entered():
            Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
        yield t
    finally:
        t.destroy()


@pytest.fixture
def relay(topo: Topology, tmp_path: Path) -> Iterator[Relay]:
    r = Relay("rtpvault", topo, tmp_path, ["--log-level=7", "--table=0"])
    yield r
    r.stop()


@pytest.fixture
def hosts(topo: Topology) -> Iterator[dict[str, Host]]:
    hs = {name: Host(topo, name) for name in ("a", "b", "c")}
    yield hs
    for h in hs.values():
        h.close()


def test_established_streams_move_into_the_kernel_both_ways(
    relay: Relay, topo: Topology, hosts: dict[str, Host]
) -> None:
    a, b, c = hosts["a"], hosts["b"], hosts["c"]
    to_a, to_b = relay.call("k-1")
    assert "kernel forwarding: nftables table 'ip rtpvault'" in relay.d.log()
    # userspace first: learning confirms both peers, then the sweep offloads both directions
    a.send(to_a, rtp(1, b"\x01" * 160, ssrc=0xA))
    assert b.recv()[1] == (relay.address, to_b)
    assert kernel_entries(topo) == []
    establish(topo, a, b, to_a, to_b)
    before = {tuple(k[:2]): p for k, p in kernel_entries(topo)}
    userspace = rtp_stream(relay.query("k-1"), "ta")["stats"]["packets"]
    keys = sorted(k for k, _ in kernel_entries(topo))
    assert keys == sorted(
        [
            [topo.host_address("a"), 40000, relay.address, to_a],
            [topo.host_address("b"), 40000, relay.address, to_b],
        ]
    )
    for seq in range(2, 52):
        a.send(to_a, rtp(seq, bytes([seq]) * 160, ssrc=0xA))
        b.send(to_b, rtp(seq, bytes([seq + 100]) * 160, ssrc=0xB))
    got_b = [b.recv() for _ in range(50)]
    got_a = [a.recv() for _ in range(50)]
    assert [d for d, _, _ in got_b] == [rtp(s, bytes([s]) * 160, ssrc=0xA) for s in range(2, 52)]
    assert [d for d, _, _ in got_a] == [
        rtp(s, bytes([s + 100]) * 160, ssrc=0xB) for s in range(2, 52)
    ]
    assert {src for _, src, _ in got_b} == {(relay.address, to_b)}
    assert {src for _, src, _ in got_a} == {(relay.address, to_a)}
    # the kernel forwarded them, and query counts them (read once per second)
    after = {tuple(k[:2]): p for k, p in kernel_entries(topo)}
    assert {k: after[k] - before[k] for k in after} == {
        (topo.host_address("a"), 40000): 50,
        (topo.host_address("b"), 40000): 50,
    }
    total = userspace + after[(topo.host_address("a"), 40000)]
    assert wait_for(lambda: rtp_stream(relay.query("k-1"), "ta")["stats"]["packets"] == total, 10)
    stream = rtp_stream(relay.query("k-1"), "ta")
    assert stream["stats"]["bytes"] == total * 172
    # a foreign source does not match the kernel entry: userspace drops and counts it
    c.send(to_a, rtp(99, b"\x66" * 160, ssrc=0xC))
    assert b.drain(0.5) == []
    assert wait_for(lambda: rtp_stream(relay.query("k-1"), "ta")["stats"]["errors"] == 1, 10)
    # delete takes the entries out before the ports are free again
    relay.ng({"command": "delete", "call-id": "k-1", "delete-delay": 0})
    wait_until_gone(relay, "k-1")
    assert kernel_entries(topo) == []
    a.send(to_a, rtp(60, ssrc=0xA))
    assert b.drain(0.5) == []


def test_hold_takes_effect_at_once(relay: Relay, topo: Topology, hosts: dict[str, Host]) -> None:
    """A re-offer that puts a on hold (zero address) stops b's packets towards a before the
    next packet, though b's stream was forwarded in the kernel."""
    a, b = hosts["a"], hosts["b"]
    to_a, to_b = relay.call("k-2")
    establish(topo, a, b, to_a, to_b)
    b.send(to_b, rtp(1, ssrc=0xB))
    assert a.recv()[1] == (relay.address, to_a)
    r = relay.ng(
        {"command": "offer", "call-id": "k-2", "from-tag": "ta",
         "sdp": sdp("0.0.0.0", 40000, "sendrecv", ver=2)}
    )  # fmt: skip
    assert media_port(r) == to_b  # a re-offer keeps the ports
    # a's zero address also resets a's learned peer (as in userspace): both leave the kernel
    assert kernel_entries(topo) == []
    b.send(to_b, rtp(2, ssrc=0xB))
    assert a.drain(0.5) == []
    a.send(to_a, rtp(3, ssrc=0xA))
    assert b.recv()[0] == rtp(3, ssrc=0xA)
    relay.ng({"command": "delete", "call-id": "k-2", "delete-delay": 0})


def test_without_forwarding_the_kernel_table_is_refused(topo: Topology, tmp_path: Path) -> None:
    """ip_forward off: rtpengine's message and userspace; with no-fallback, exit 255."""
    with topo.hosts["relay"].entered():
        Path("/proc/sys/net/ipv4/ip_forward").write_text("0\n")
        port = free_port()
        proc = subprocess.run(
            [*daemons.rtpvault_command(), "run", "--config-file=none", "--foreground",
             "--log-stderr", "--table=0", "--no-fallback", "--interface=lo/127.0.0.1",
             f"--listen-ng=127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert proc.returncode == 255
    assert "Userspace fallback disallowed - exiting" in proc.stderr
    assert "net.ipv4.ip_forward is 0" in proc.stderr
    r = Relay("rtpvault", topo, tmp_path, ["--table=0"])
    try:
        assert r.ng({"command": "ping"})["result"] == "pong"
        assert "FAILED TO CREATE KERNEL TABLE 0" in r.d.log()
        assert nft(topo, "list", "table", "ip", "rtpvault").returncode != 0
    finally:
        r.stop()


def test_sigterm_gives_every_stream_back_at_once_and_removes_the_table(
    relay: Relay, topo: Topology, hosts: dict[str, Host]
) -> None:
    """Shutdown does not withdraw stream by stream (one counter read of the whole map per
    stream: quadratic, seconds with a few hundred calls): it reads the counters once, deletes
    the table in one command, and only then ends the calls."""
    a, b = hosts["a"], hosts["b"]
    to_a, to_b = relay.call("k-stop")
    establish(topo, a, b, to_a, to_b)
    assert relay.d.stop() == 0
    log = relay.d.log()
    # one process deletes the table itself; a worker removes its own part and the supervisor
    # deletes the table after the last worker (checked below either way)
    stopped = (r"kernel forwarding stopped: 2 stream\(s\) back in userspace, (table ip rtpvault "
               r"deleted|worker \d's elements removed from table ip rtpvault)")  # fmt: skip
    assert re.search(stopped, log), log
    assert log.index("kernel forwarding stopped") < log.index("Call closed (forced)")
    assert nft(topo, "list", "table", "ip", "rtpvault").returncode != 0


def test_a_part_that_refuses_to_start_leaves_no_table(topo: Topology, tmp_path: Path) -> None:
    """The plane exists before the parts; a part's start-up error must not leave `ip rtpvault`
    behind (here recording-dir is a file: rtpengine's exit 255)."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with topo.hosts["relay"].entered():
        proc = subprocess.run(
            [*daemons.rtpvault_command(), "run", "--config-file=none", "--foreground",
             "--log-stderr", "--table=0", "--interface=lo/127.0.0.1",
             f"--listen-ng=127.0.0.1:{free_port()}", f"--recording-dir={blocker}"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert proc.returncode == 255, proc.stderr
    assert "kernel forwarding: nftables table 'ip rtpvault'" in proc.stderr
    assert "is not a directory" in proc.stderr
    assert nft(topo, "list", "table", "ip", "rtpvault").returncode != 0


def _sdes_answer(offer_sdp: str, addr: str, port: int) -> tuple[str, bytes, bytes]:
    """The SDES party's answer picking the relay's AES_CM_128_HMAC_SHA1_80 line: (SDP, the
    relay's key||salt, ours)."""
    m = re.search(r"a=crypto:(\d+) AES_CM_128_HMAC_SHA1_80 inline:([A-Za-z0-9+/=]+)", offer_sdp)
    assert m is not None, offer_sdp
    ours = bytes(range(30))
    line = f"a=crypto:{m.group(1)} AES_CM_128_HMAC_SHA1_80 inline:{base64.b64encode(ours).decode()}"
    body = (f"v=0\r\no=- 2 1 IN IP4 {addr}\r\ns=-\r\nc=IN IP4 {addr}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n{line}\r\na=sendrecv\r\n")
    return body, base64.b64decode(m.group(2)), ours


def _srtp(key_salt: bytes, outbound: bool) -> pylibsrtp.Session:
    ssrc = pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND
    return pylibsrtp.Session(pylibsrtp.Policy(
        key=key_salt, ssrc_type=ssrc, srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
    ))  # fmt: skip


def test_an_srtp_pair_stays_in_userspace_while_plain_pairs_move_to_the_kernel(
    relay: Relay, topo: Topology, hosts: dict[str, Host]
) -> None:
    """Issue 17 item 6: with `table = 0`, the SDES leg and the plain leg of its pair are never
    offloaded (the kernel cannot encrypt), media crosses them decrypted one way and encrypted
    the other; a plain call in the same daemon still moves into the kernel."""
    a, b, c = hosts["a"], hosts["b"], hosts["c"]
    sdes = Host(topo, "a", port=HOST_PORT + 10)  # the SDES phone
    try:
        offer = relay.ng({"command": "offer", "call-id": "k-srtp", "from-tag": "tc",
                          "sdp": sdp(topo.host_address("c"), HOST_PORT),
                          "transport-protocol": "RTP/SAVP"})  # fmt: skip
        to_sdes = media_port(offer)
        body, relay_key, our_key = _sdes_answer(offer["sdp"], topo.host_address("a"),
                                                HOST_PORT + 10)  # fmt: skip
        to_plain = media_port(relay.ng({"command": "answer", "call-id": "k-srtp",
                                        "from-tag": "tc", "to-tag": "ts", "sdp": body}))
        protect, unprotect = _srtp(our_key, True).protect, _srtp(relay_key, False).unprotect
        secure_ports = {to_sdes, to_plain}
        plain_to_a, plain_to_b = relay.call("k-plain")
        establish(topo, a, b, plain_to_a, plain_to_b)  # > 4 s of learning and sweeps
        for seq in range(1, 31):
            c.send(to_plain, rtp(seq, bytes([seq]) * 160, ssrc=0xC))
            sdes.send(to_sdes, protect(rtp(seq, bytes([seq + 50]) * 160, ssrc=0x5)))
            time.sleep(0.05)
            if seq % 10 == 0:  # still nothing of this call in the kernel, sweeps included
                assert {k[3] for k, _ in kernel_entries(topo)} == {plain_to_a, plain_to_b}
        got_sdes = [unprotect(d) for d in sdes.drain(0.5)]
        got_c = c.drain(0.5)
        assert got_sdes == [rtp(s, bytes([s]) * 160, ssrc=0xC) for s in range(1, 31)]
        assert got_c == [rtp(s, bytes([s + 50]) * 160, ssrc=0x5) for s in range(1, 31)]
        assert secure_ports.isdisjoint({k[3] for k, _ in kernel_entries(topo)})
    finally:
        sdes.close()
