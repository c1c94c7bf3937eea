"""Issue 15, security: every control path obeys `ng-allow`, and `prometheus-listen` serves
/metrics only. "Another host" is 127.0.0.2 (all of 127/8 is loopback) against
`ng-allow = 127.0.0.1`; the daemon itself and the allowed client use 127.0.0.1."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator

import pytest

from tests.integration.recording.media import Call
from tests.support import daemons
from tests.support.tools import free_port
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration

OTHER = "127.0.0.2"
NG = {"Content-Type": "application/x-rtpengine-ng"}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[daemons.Daemon]:
    http, cli, prom = free_port(), free_port(), free_port()
    d = daemons.start(
        "rtpvault",
        tmp_path_factory.mktemp("guard"),
        tcp=True,
        extra=[f"--listen-http=127.0.0.1:{http}", f"--listen-cli=127.0.0.1:{cli}",
               "--prometheus=true", f"--prometheus-listen=127.0.0.1:{prom}",
               "--ng-allow=127.0.0.1"],  # fmt: skip
    )
    d.http_port, d.cli_port, d.prom_port = http, cli, prom  # type: ignore[attr-defined]
    call = Call(d, "guarded-call")
    call.offer()
    try:
        yield d
    finally:
        call.close()
        d.stop()


def get(port: int, path: str, source: str = "127.0.0.1", body: bytes | None = None
        ) -> tuple[int, bytes]:  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request("GET" if body is None else "POST", path, body, NG if body else {})
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


def cli(port: int, line: str, source: str = "127.0.0.1") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10,
                                  source_address=(source, 0)) as sock:  # fmt: skip
        sock.sendall(line.encode() + b"\n")
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
        return got


def sessions(d: daemons.Daemon) -> bytes:
    return cli(d.cli_port, "list numsessions")  # type: ignore[attr-defined]


def test_http_cli_and_ng_from_another_host_are_refused(guarded: daemons.Daemon) -> None:
    port = guarded.http_port  # type: ignore[attr-defined]
    assert get(port, "/cli/terminate%20all", OTHER) == (403, b"forbidden\n")
    assert get(port, "/cli/set%20maxsessions%200", OTHER) == (403, b"forbidden\n")
    assert get(port, "/ng", OTHER, b"x1 d7:command4:pinge") == (403, b"forbidden\n")
    assert b"Current sessions own: 1\n" in sessions(guarded)  # the live call survived
    assert get(port, "/cli/list%20maxsessions") == (
        200, b"Maximum sessions configured on rtpengine: -1\n")  # fmt: skip
    assert get(port, "/ng", body=b"x2 d7:command4:pinge") == (200, b"x2 d6:result4:ponge")
    assert get(port, "/metrics", OTHER)[0] == 200  # monitoring stays open


def test_cli_and_ng_sockets_from_another_host_are_refused(guarded: daemons.Daemon) -> None:
    assert cli(guarded.cli_port, "terminate all", OTHER) == b""  # type: ignore[attr-defined]
    assert b"Current sessions own: 1\n" in sessions(guarded)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind((OTHER, 0))
        udp.sendto(b"u1 d7:command4:pinge", ("127.0.0.1", guarded.ng_port))
    assert guarded.tcp_ng_port is not None
    with socket.create_connection(("127.0.0.1", guarded.tcp_ng_port), timeout=10,
                                  source_address=(OTHER, 0)) as tcp:  # fmt: skip
        tcp.sendall(b"t1 d7:command4:pinge")
        tcp.shutdown(socket.SHUT_WR)
        assert tcp.recv(100) == b""
    refused = wait_for(lambda: [line for line in guarded.log().splitlines()
                                if "Refused ng request from 127.0.0.2:" in line])  # fmt: skip
    assert refused


def test_refusals_are_logged_with_the_source(guarded: daemons.Daemon) -> None:
    get(guarded.http_port, "/cli/list%20totals", OTHER)  # type: ignore[attr-defined]
    cli(guarded.cli_port, "list totals", OTHER)  # type: ignore[attr-defined]
    log = guarded.log()
    for via in ("HTTP /cli", "CLI"):
        assert f"Refused {via} request from 127.0.0.2:" in log, via
    assert "source not in ng-allow" in log


def test_prometheus_listen_serves_metrics_only(guarded: daemons.Daemon) -> None:
    port = guarded.prom_port  # type: ignore[attr-defined]
    status, body = get(port, "/metrics")
    assert status == 200 and b"rtpengine_sessions" in body
    for path in ("/cli/terminate%20all", "/cli/set%20maxsessions%200", "/ping"):
        assert get(port, path) == (404, b"not found\n"), path
    assert get(port, "/ng", body=b"x3 d7:command4:pinge") == (404, b"not found\n")
    assert b"Current sessions own: 1\n" in sessions(guarded)
    assert b"Maximum sessions configured on rtpengine: -1\n" == cli(
        guarded.cli_port, "list maxsessions")  # type: ignore[attr-defined]  # fmt: skip
