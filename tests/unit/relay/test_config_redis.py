"""The `redis*` keys (docs/spec/config.md §2.10): rtpengine's address syntax, the numbers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.config import ConfigError
from relay.config.redis import RedisAddress, parse_redis_address
from tests.unit.relay.test_config import error, load


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:6379/2", RedisAddress("127.0.0.1", 6379, 2, None)),
        ("[::1]:6379/2", RedisAddress("::1", 6379, 2, None)),
        ("::1:6379/2", RedisAddress("::1", 6379, 2, None)),  # the last ':' splits, as rtpengine
        ("localhost:6379/1", RedisAddress("localhost", 6379, 1, None)),
        ("secret@127.0.0.1:6379/15", RedisAddress("127.0.0.1", 6379, 15, "secret")),
        ("a@b@127.0.0.1:6379/0", RedisAddress("127.0.0.1", 6379, 0, "a@b")),  # the last '@'
    ],
)
def test_addresses_rtpengine_takes(value: str, expected: RedisAddress) -> None:
    assert parse_redis_address("redis", value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("127.0.0.1:6379", "no '/DB'"),
        ("127.0.0.1:6379/", "no database number"),
        ("127.0.0.1:6379/x", "'x' is not a number"),
        ("127.0.0.1:6379/-1", "'-1' is not a number"),
        ("127.0.0.1:70000/1", "not within 1..65535"),
        ("127.0.0.1/1", "no ':PORT'"),
        ("6379/1", "no ':PORT'"),
        (":6379/1", "not an IP address or host name"),
    ],
)
def test_addresses_rtpengine_refuses(value: str, reason: str) -> None:
    message = error(f"redis = {value}\n")
    assert reason in message
    assert "Invalid Redis endpoint" in message and "key 'redis'" in message


def test_password_not_in_the_error() -> None:
    message = error("redis-write = hunter2@127.0.0.1:6379\n")
    assert "hunter2" not in message and "***@127.0.0.1:6379" in message
    assert "key 'redis-write'" in message


def test_unset_is_none_and_keys_have_effect() -> None:
    s, warnings = load("")
    assert s.redis is None
    s, warnings = load("redis = 127.0.0.1:6379/3\nredis-expires = 60\nno-redis-required = true\n"
                       "redis-num-threads = 3\nredis-allowed-errors = 2\nredis-disable-time = 5\n"
                       "redis-cmd-timeout = 250\nredis-connect-timeout = 300\n")  # fmt: skip
    assert not [w for w in warnings if "redis" in w]  # implemented: no "no effect" warning
    r = s.redis
    assert r is not None
    assert r.read == r.write == RedisAddress("127.0.0.1", 6379, 3, None)
    assert (r.expires, r.required, r.threads, r.allowed_errors, r.disable_time, r.cmd_timeout,
            r.connect_timeout) == (60, False, 3, 2, 5, 250, 300)  # fmt: skip


def test_defaults_and_separate_write_db() -> None:
    s, _ = load("redis = 127.0.0.1:6379/3\n", "--redis-write=127.0.0.1:6380/4")
    r = s.redis
    assert r is not None and r.write == RedisAddress("127.0.0.1", 6380, 4, None)
    assert (r.expires, r.required, r.threads, r.allowed_errors, r.disable_time, r.cmd_timeout,
            r.connect_timeout) == (86400, True, 1, -1, 10, 0, 1000)  # fmt: skip
    s, _ = load("redis-write = 127.0.0.1:6379/3\n")
    assert s.redis is not None and s.redis.read is None  # writes only: nothing to restore


@pytest.mark.parametrize(
    "body",
    ["redis-expires = 0\n", "redis-connect-timeout = 0\n", "redis-disable-time = -1\n",
     "redis-cmd-timeout = -5\n"],  # fmt: skip
)
def test_numbers_out_of_range(body: str) -> None:
    message = error("redis = 127.0.0.1:6379/1\n" + body)
    assert "must be >=" in message and body.split(" ")[0] in message


def test_not_a_number_is_a_config_error() -> None:
    assert "redis-expires" in error("redis = 127.0.0.1:6379/1\nredis-expires = abc\n")


_HOSTS = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
    st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9](\.[a-z]{2,6})?", fullmatch=True),
)


@given(
    password=st.none() | st.text(min_size=1, max_size=20).filter(lambda p: "\x00" not in p),
    host=_HOSTS,
    port=st.integers(1, 65535),
    db=st.integers(0, 10**6),
)
def test_round_trip(password: str | None, host: str, port: int, db: int) -> None:
    text = f"{password + '@' if password is not None else ''}{host}:{port}/{db}"
    a = parse_redis_address("redis", text)
    assert (a.port, a.db, a.password) == (port, db, password)
    assert a.host == host.strip("[]").lower() or a.host == str(host.strip("[]"))


@given(st.text(max_size=40))
def test_any_text_parses_or_is_a_config_error(text: str) -> None:
    try:
        a = parse_redis_address("redis", text)
    except ConfigError as exc:
        assert "key 'redis'" in str(exc)
    else:
        assert 1 <= a.port <= 65535 and a.db >= 0
