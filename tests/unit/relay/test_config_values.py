"""`parse_listen`, the one reader of rtpengine's endpoint syntax (`listen-ng`, `listen-tcp-ng`,
`listen-cli`, `listen-http`, `prometheus-listen`, `homer`)."""

from __future__ import annotations

import pytest

from relay.config import ConfigError, Listen
from relay.config.values import parse_hep_target, parse_listen


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("2223", Listen("", 2223)),
        ("127.0.0.1:2223", Listen("127.0.0.1", 2223)),
        ("0.0.0.0:22222", Listen("0.0.0.0", 22222)),
        ("[::1]:2223", Listen("::1", 2223)),
        ("[2001:db8::5]:65535", Listen("2001:db8::5", 65535)),
        ("localhost:2223", Listen("localhost", 2223)),
        (" 127.0.0.1:42335 ", Listen("127.0.0.1", 42335)),
    ],
)
def test_parse_listen(spec: str, expected: Listen) -> None:
    assert parse_listen("listen-ng", spec) == expected


def test_a_bare_port_binds_both_wildcards() -> None:
    assert parse_listen("listen-ng", "2223").hosts == ("0.0.0.0", "::")


@pytest.mark.parametrize("spec", ["", "abc", "1.2.3.4", "1.2.3.4:", "1.2.3.4:0", ":2223",
                                  "1.2.3.4:70000", "[::1]2223", "[::1", "[zz]:5", "1.2.3.4:x",
                                  "::1:2223"])
def test_parse_listen_rejects(spec: str) -> None:
    with pytest.raises(ConfigError, match="listen-ng"):
        parse_listen("listen-ng", spec)


def test_need_host_rejects_a_bare_port() -> None:
    with pytest.raises(ConfigError, match="needs ADDRESS:PORT"):
        parse_listen("homer", "9060", need_host=True)


def test_hep_target_reads_the_protocol_prefix() -> None:
    assert parse_hep_target("homer", "tcp:127.0.0.1:9060", "udp") == ("tcp", "127.0.0.1", 9060)
    assert parse_hep_target("homer", "[::1]:9060", "udp") == ("udp", "::1", 9060)
