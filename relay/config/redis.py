"""Call state in Redis: rtpengine's `redis*` keys → RedisSettings. Pure.

Address syntax as rtpengine 10.5's `redis_ep_parse` (docs/spec/config.md §2.10):
`[PASSWORD@]HOST:PORT/DB`. The password is what comes before the *last* `@`; the DB number
after the first `/` (decimal, >= 0, nothing after it); the port after the last `:` of the rest,
so `[::1]:6379/2` and `::1:6379/2` both name ::1 port 6379. HOST is an IP address or a host
name (rtpengine resolves it at start-up with getaddrinfo; so does redis-py).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import NamedTuple

from .keyfile import ConfigError, bad_value, shown

__all__ = ["REDIS_KEYS", "RedisAddress", "RedisSettings", "parse_redis_address", "redis_settings"]

_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?"
)
REDIS_KEYS = ("redis", "redis-write", "redis-expires", "no-redis-required", "redis-num-threads",
              "redis-allowed-errors", "redis-disable-time", "redis-cmd-timeout",
              "redis-connect-timeout")  # fmt: skip
"""The keys `redis_settings` reads."""
_SYNTAX = " (rtpengine: 'Invalid Redis endpoint [IP:PORT/INT]')"


class RedisAddress(NamedTuple):
    host: str  # IP literal (IPv6 without brackets) or host name
    port: int
    db: int
    password: str | None  # None: none given (the daemon may take it from the environment)

    def __str__(self) -> str:
        """`HOST:PORT` as rtpengine's log lines print it (`[::1]:6379`), no password."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_redis_address(key: str, value: str, *, cli: bool = False) -> RedisAddress:
    """`[PASSWORD@]HOST:PORT/DB` → RedisAddress; ConfigError naming key, value and reason."""

    def bad(reason: str) -> ConfigError:  # the password is not printed
        at = value.rfind("@")
        masked = value if at < 0 else "***" + value[at:]
        return bad_value(key, masked, reason + _SYNTAX, cli=cli)

    password: str | None = None
    rest = value
    at = rest.rfind("@")
    if at >= 0:
        password, rest = rest[:at], rest[at + 1 :]
    slash = rest.find("/")
    if slash < 0:
        raise bad("no '/DB' after the address")
    endpoint, db_text = rest[:slash], rest[slash + 1 :]
    if not db_text:
        raise bad("no database number after '/'")
    if not db_text.isascii() or not db_text.isdigit():
        raise bad(f"database '{shown(db_text)}' is not a number >= 0")
    db = int(db_text) if len(db_text) < 10 else -1
    if db < 0:
        raise bad(f"database {shown(db_text)} is too large")
    colon = endpoint.rfind(":")
    if colon < 0:
        raise bad("no ':PORT' in the address")
    host, port_text = endpoint[:colon], endpoint[colon + 1 :]
    if not port_text.isascii() or not port_text.isdigit():
        raise bad(f"port '{shown(port_text)}' is not a number")
    port = int(port_text) if len(port_text) < 10 else 0
    if not 1 <= port <= 65535:
        raise bad(f"port {shown(port_text)} is not within 1..65535")
    if len(host) > 2 and host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        if _HOSTNAME.fullmatch(host) is None:
            raise bad(f"'{shown(host)}' is not an IP address or host name") from None
    return RedisAddress(host, port, db, password)


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """What rtpvault.redis_state needs (docs/spec/config.md §2.7, §2.10)."""

    read: RedisAddress | None  # `redis`: restore from here (and write, without redis-write)
    write: RedisAddress | None  # `redis-write`, else `redis`
    expires: int  # s, SET … EX
    required: bool  # not no-redis-required
    threads: int  # writer threads
    allowed_errors: int  # -1: never paused
    disable_time: int  # s
    cmd_timeout: int  # ms, 0: none
    connect_timeout: int  # ms


def redis_settings(
    text: dict[str, object], cli: frozenset[str] = frozenset()
) -> RedisSettings | None:
    """The `redis*` keys' typed values (name → value as the key file typed it) → settings;
    None when neither `redis` nor `redis-write` is set."""
    read_text = str(text.get("redis") or "")
    write_text = str(text.get("redis-write") or "")
    if not read_text and not write_text:
        return None
    read = parse_redis_address("redis", read_text, cli="redis" in cli) if read_text else None
    write = (
        parse_redis_address("redis-write", write_text, cli="redis-write" in cli)
        if write_text
        else read
    )

    def number(name: str, low: int, default: int) -> int:
        raw = text.get(name)
        value = default if raw is None else int(str(raw))
        if value < low:
            raise bad_value(name, str(value), f"must be >= {low}", cli=name in cli)
        return value

    threads_raw = text.get("redis-num-threads")
    threads = int(str(threads_raw)) if threads_raw is not None else 0
    return RedisSettings(
        read=read,
        write=write,
        expires=number("redis-expires", 1, 86400),
        required=not bool(text.get("no-redis-required")),
        threads=threads if threads > 0 else 1,  # rtpengine: < 1 means its default
        allowed_errors=max(-1, int(str(text.get("redis-allowed-errors", -1)))),
        disable_time=number("redis-disable-time", 0, 10),
        cmd_timeout=number("redis-cmd-timeout", 0, 0),
        connect_timeout=number("redis-connect-timeout", 1, 1000),
    )
