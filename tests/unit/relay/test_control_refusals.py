"""ng-allow refusals (issue 15 item 3): counted, logged with the source, at most once a second."""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

import pytest

from relay.control import NgControlServer


def pong(body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
    return {"result": "pong"}


def test_refused_requests_are_counted_and_logged_once_a_second(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [50.0]
    server = NgControlServer(pong, allow=[ipaddress.ip_network("10.0.0.0/8")],
                             clock=lambda: now[0])  # fmt: skip
    caplog.set_level(logging.WARNING, logger="relay.control")
    for port in range(1000, 1100):
        assert server.handle(b"c1 d7:command4:pinge", ("192.0.2.7", port)) is None
    assert not server.admit(("::ffff:192.0.2.8", 5000, 0, 0), "CLI")
    now[0] += 1.5
    assert server.handle(b"c2 d7:command4:pinge", ("2001:db8::1", 7)) is None
    assert server.handle(b"c3 d7:command4:pinge", ("10.1.2.3", 9)) == b"c3 d6:result4:ponge"
    assert server.counters.denied == 102
    assert [r.getMessage() for r in caplog.records] == [
        "Refused ng request from 192.0.2.7:1000: source not in ng-allow",
        "Refused CLI request from 192.0.2.8:5000: source not in ng-allow",
        "Refused ng request from [2001:db8::1]:7: source not in ng-allow"
        " (99 more like this in the last 1 s not logged)",
    ]
