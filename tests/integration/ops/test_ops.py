"""Issue 10 against running daemons: /metrics (parsed with prometheus-client's parser, compared
with the real rtpengine's families), the listen-cli protocol (our client and the real
rtpengine-ctl), HTTP /ping /cli /ng, logging, and the systemd unit."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.recording.media import Call
from tests.support import daemons
from tests.support.tools import free_port, require, unavailable

REPO = Path(__file__).resolve().parents[3]


Metrics = dict[str, dict[tuple[tuple[str, str], ...], float]]


def scrape(port: int) -> Metrics:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(body):
        for sample in fam.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def types(port: int) -> dict[str, str]:
    """`# TYPE` lines as written (rtpengine's samples are not contiguous, so a parser would split
    its families; the declared names and types are what dashboards depend on)."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {line.split()[2]: line.split()[3] for line in body.splitlines()
            if line.startswith("# TYPE ")}  # fmt: skip


def one(metrics: Metrics, metric: str, /, **labels: str) -> float:
    return metrics[metric][tuple(sorted(labels.items()))]


def ctl(port: int, *words: str) -> str:
    command = [*daemons.rtpvault_command(), "ctl", "-ip", "127.0.0.1", "-port", str(port), *words]
    out = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture
def ops_relay(tmp_path: Path):  # type: ignore[no-untyped-def]
    http, cli = free_port(), free_port()
    d = daemons.start(
        "rtpvault",
        tmp_path / "run",
        extra=[
            f"--listen-http=127.0.0.1:{http}",
            f"--listen-cli=127.0.0.1:{cli}",
            "--delete-delay=0",
        ],
    )
    d.http_port, d.cli_port = http, cli  # type: ignore[attr-defined]
    yield d
    d.stop()


def test_metrics_move_with_a_call(ops_relay) -> None:  # type: ignore[no-untyped-def]
    port = ops_relay.http_port
    before = scrape(port)
    assert one(before, "rtpengine_sessions", type="own") == 0
    call = Call(ops_relay, "metrics-call")
    call.offer()
    call.answer()
    call.media(10)
    assert call.received(call.callee, 10) == 10
    during = scrape(port)
    assert one(during, "rtpengine_sessions", type="own") == 1
    assert one(during, "rtpengine_packets_total", type="userspace") >= 20
    assert one(during, "rtpengine_bytes_total", type="userspace") >= 20 * 172
    assert one(during, "rtpengine_requests_total", proxy="127.0.0.1", request="offer") == 1
    assert one(during, "rtpengine_ports_used", name="lo", address="127.0.0.1") == 4  # 2 pairs
    call.delete()
    call.close()
    after = scrape(port)
    assert one(after, "rtpengine_sessions", type="own") == 0
    assert one(after, "rtpengine_sessions_total") == 1
    assert one(after, "rtpengine_closed_sessions_total", reason="terminated") == 1
    assert one(after, "rtpengine_ports_used", name="lo", address="127.0.0.1") == 0
    assert one(after, "rtpvault_ng_commands_total", command="offer", result="ok") == 1
    assert one(after, "rtpengine_total_traffic_bytes_total") >= 20 * 172  # parser adds _total


def test_metric_families_match_rtpengine(tmp_path: Path) -> None:
    http_a, http_b = free_port(), free_port()
    ref = daemons.start("rtpengine", tmp_path / "ref", extra=[f"--listen-http=127.0.0.1:{http_a}"])
    ours = daemons.start("rtpvault", tmp_path / "ours", extra=[f"--listen-http=127.0.0.1:{http_b}"])
    try:
        for d in (ref, ours):
            d.client().call({"command": "ping"})  # requests_total appears after a first command
        theirs, mine = types(http_a), types(http_b)
    finally:
        ref.stop()
        ours.stop()
    shared = {n: t for n, t in theirs.items() if not n.startswith("rtpengine_transcode")}
    assert {n: mine.get(n) for n in shared} == shared
    assert any(n.startswith("rtpvault_") for n in mine)


def test_prometheus_listen_of_the_deployment_guide(tmp_path: Path) -> None:
    port = free_port()
    d = daemons.start(
        "rtpvault", tmp_path, extra=["--prometheus=true", f"--prometheus-listen=127.0.0.1:{port}"]
    )
    try:
        declared = types(port)
        assert declared["rtpengine_sessions"] == "gauge"
        assert declared["rtpengine_total_traffic_bytes"] == "counter"  # the guide's name
        assert declared["rtpvault_upload_lag_seconds"] == "gauge"
    finally:
        d.stop()


def test_http_ping_cli_ng_and_404(ops_relay) -> None:  # type: ignore[no-untyped-def]
    base = f"http://127.0.0.1:{ops_relay.http_port}"
    assert urllib.request.urlopen(base + "/ping").read() == b"pong\n"
    body = urllib.request.urlopen(base + "/cli/list%20maxsessions").read()
    assert body == b"Maximum sessions configured on rtpengine: -1\n"
    ng = {"Content-Type": "application/x-rtpengine-ng"}
    req = urllib.request.Request(base + "/ng", data=b"abcd d7:command4:pinge", headers=ng)
    assert urllib.request.urlopen(req).read() == b"abcd d6:result4:ponge"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(base + "/nothing")
    assert err.value.code == 404


def test_ctl_commands(ops_relay) -> None:  # type: ignore[no-untyped-def]
    port = ops_relay.cli_port
    assert ctl(port, "list", "sessions", "all") == "No sessions on this media relay.\n"
    call = Call(ops_relay, "ctl-call")
    call.offer()
    call.answer()
    call.media(5)
    call.received(call.callee, 5)
    assert "Current sessions own: 1" in ctl(port, "list", "numsessions")
    assert "ctl-call" in ctl(port, "list", "sessions", "all")
    detail = ctl(port, "list", "sessions", "ctl-call")
    assert "--- Tag 'ft'" in detail and "--- Tag 'tt'" in detail and " 5 p," in detail
    assert "Total relayed packets (userspace)" in ctl(port, "list", "totals")
    forwarding = ctl(port, "forwarding")
    assert forwarding.count("path=userspace") == 4 and "ctl-call ft rtp" in forwarding
    assert ctl(port, "set", "timeout", "90") == "Success setting timeout to 90\n"
    assert ctl(port, "get", "timeout") == "TIMEOUT=90\n"
    assert ctl(port, "set", "silenttimeout", "200") == "Success setting timeout to 200\n"
    assert ctl(port, "list", "silenttimeout") == "SILENT_TIMEOUT=200\n"
    assert ctl(port, "set", "loglevel", "7") == "Success setting loglevel to 7\n"
    assert ctl(port, "get", "loglevel", "core") == "7\n"
    assert ctl(port, "set", "maxsessions", "0") == "Success setting maxsessions to 0\n"
    refused = Call(ops_relay, "over-limit")
    r = refused.ng.call({"command": "offer", "call-id": "over-limit", "from-tag": "x",
                         "sdp": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                                "t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"})  # fmt: skip
    assert r == {"result": "error", "error-reason": "Parallel session limit reached"}
    refused.close()
    assert ctl(port, "terminate", "nosuch") == "\nCall Id not found (nosuch).\n\n"
    assert ctl(port, "terminate", "ctl-call") == \
        "\nCall Id (ctl-call) successfully terminated by operator.\n\n"  # fmt: skip
    assert ctl(port, "bogus") == "Unknown or incomplete command::bogus\n"
    assert "Redis is not configured" in ctl(port, "ksadd", "1")  # rtpengine 10.5 segfaults here
    call.close()
    m = scrape(ops_relay.http_port)
    assert one(m, "rtpengine_closed_sessions_total", reason="force_terminated") == 1


def test_real_rtpengine_ctl_drives_rtpvault(ops_relay) -> None:  # type: ignore[no-untyped-def]
    exe = require("rtpengine-ctl")
    out = subprocess.run([exe, "-ip", "127.0.0.1", "-port", str(ops_relay.cli_port), "list",
                          "numsessions"], capture_output=True, text=True, timeout=30)  # fmt: skip
    assert out.returncode == 0 and "Current sessions own: 0" in out.stdout
    out = subprocess.run([exe, "-ip", "127.0.0.1", "-port", str(ops_relay.cli_port), "terminate",
                          "all"], capture_output=True, text=True, timeout=30)  # fmt: skip
    assert "All calls terminated by operator." in out.stdout


def test_ctl_without_a_listener_exits_111() -> None:
    command = [*daemons.rtpvault_command(), "ctl", "-ip", "127.0.0.1", "-port", str(free_port()),
               "list", "totals"]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True)
    assert out.returncode == 111 and "Cannot connect" in out.stderr


def test_log_lines_carry_the_call_id_and_syslog_falls_back(tmp_path: Path) -> None:
    d = daemons.start("rtpvault", tmp_path)
    call = Call(d, "log-call-42")
    call.offer()
    call.answer()
    call.delete()
    call.close()
    d.stop()
    assert "[log-call-42]" in d.log_path.read_text()
    if Path("/dev/log").exists():
        return  # the fallback below only happens without a syslog socket
    port = free_port()
    proc = subprocess.Popen([*daemons.rtpvault_command(), "run", "--config-file=none",
                             "--interface=lo/127.0.0.1", f"--listen-ng=127.0.0.1:{port}",
                             "--table=-1", "--foreground"],
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stderr is not None
    first = proc.stderr.readline()
    proc.terminate()
    proc.wait(10)
    assert "no syslog socket at /dev/log: logging to stderr instead" in first


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        unavailable("systemd-analyze (package systemd)")
        return
    exe = daemons.rtpvault_command()[0]
    text = (REPO / "examples" / "rtpvault.service").read_text().replace("/usr/bin/rtpvault", exe)
    unit = tmp_path / "rtpvault.service"
    unit.write_text(text)
    out = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert out.returncode == 0 and out.stderr.strip() == "", out.stderr
    # systemd's own hardening score of the unit (0 = locked down, 10 = none): "OK" is < 4.5
    sec = subprocess.run([analyze, "security", "--offline=yes", str(unit)],
                         capture_output=True, text=True)  # fmt: skip
    level = re.search(r"Overall exposure level for rtpvault.service: ([0-9.]+)", sec.stdout)
    assert level is not None and float(level.group(1)) < 2.0, sec.stdout
    for line in ("NoNewPrivileges=yes", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
                 "ProtectSystem=strict", "SystemCallFilter=@system-service"):  # fmt: skip
        assert line in text


def _poll(port: int, done: Callable[[Metrics], bool]) -> Metrics:
    """Scrape until `done` holds (bounded so a stuck relay fails; not a timing assertion)."""
    deadline = time.monotonic() + 20
    while True:
        m = scrape(port)
        if done(m) or time.monotonic() > deadline:
            return m
        time.sleep(0.05)


def test_scrape_during_kamailio_call(sip_rig, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Kamailio + sipp drive rtpvault; /metrics is scraped before, while media flows (sessions,
    ports, packets growing), and after the BYE (ended, terminated, ports back)."""
    from tests.integration.kamailio.sipcall import CallSpec

    port = free_port()
    rig = sip_rig("rtpvault", relay_options={"extra": [f"--listen-http=127.0.0.1:{port}",
                                                       "--delete-delay=0"]})  # fmt: skip
    before = scrape(port)
    spec = CallSpec(media=True, media_packets=20, media_tail_ms=3000)
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(rig.call, spec)
        during = _poll(port, lambda m: one(m, "rtpengine_sessions", type="own") == 1
                       and one(m, "rtpengine_packets_total", type="userspace") > 0)  # fmt: skip
        result = running.result(timeout=120)
    assert result.ok, result.describe() + rig.logs()
    after = _poll(port, lambda m: one(m, "rtpengine_sessions_total") >= 1)
    assert one(before, "rtpengine_sessions", type="own") == 0
    assert one(before, "rtpengine_sessions_total") == 0
    assert one(during, "rtpengine_sessions", type="own") == 1
    assert one(during, "rtpengine_sessions_total") == 0  # counted when it ends, as rtpengine
    assert one(during, "rtpengine_ports_used", name="lo", address="127.0.0.1") == 4
    assert one(during, "rtpengine_requests_total", proxy="127.0.0.1", request="offer") == 1
    assert one(during, "rtpengine_requests_total", proxy="127.0.0.1", request="answer") == 1
    assert one(during, "rtpengine_mediastreams", type="userspace") >= 1
    moving = one(during, "rtpengine_packets_total", type="userspace")
    assert 0 < moving <= one(after, "rtpengine_packets_total", type="userspace")
    assert one(after, "rtpengine_packets_total", type="userspace") >= 40  # 20 each way
    assert one(after, "rtpengine_bytes_total", type="userspace") >= 40 * 172
    assert one(after, "rtpengine_sessions", type="own") == 0
    assert one(after, "rtpengine_sessions_total") == 1
    assert one(after, "rtpengine_closed_sessions_total", reason="terminated") == 1
    assert one(after, "rtpengine_ports_used", name="lo", address="127.0.0.1") == 0
    assert one(after, "rtpengine_requests_total", proxy="127.0.0.1", request="delete") >= 1
    assert one(after, "rtpvault_ng_commands_total", command="offer", result="ok") == 1
