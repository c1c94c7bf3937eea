"""Numbers past Python's 4,300-digit int() limit in ng requests (issue 15 item 5).

rtpengine 10.5 reads integers with strtoll (clamped) and lengths with strtol/strtoul, so a
4,301-digit integer in a `ping` still gets `pong`; the expected outcomes below were measured on
rtpengine 10.5 over UDP, TCP and HTTP (the same rows run against it in
tests/integration/test_ng_wire_vs_rtpengine.py and tests/integration/ops/test_ctl_vs_rtpengine.py).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.ng.codec import (
    INVALID,
    NEED_MORE,
    TcpFramer,
    bencode_decode,
    bencode_valid,
    parse_request,
    split_tcp,
)
from relay.ng.errors import BencodeError, NgError

NINES = b"9" * 4301
ZEROS = b"0" * 4300
NO_COMMAND = 'Dictionary contains no key "command"'
BAD_BENCODE = "Could not decode bencode dictionary"

HUGE = [  # (body, what rtpengine 10.5 answers: a command name or an error reason)
    (b"d7:command4:ping1:xi" + NINES + b"ee", "ping"),
    (b"d7:command4:ping1:xi-" + NINES + b"ee", "ping"),
    (b"d7:command4:ping1:xi+" + ZEROS + b"5ee", "ping"),
    (b"d7:command4:ping1:xli" + NINES + b"eee", "ping"),
    (b"d7:command4:ping1:xi" + ZEROS + b"5ee", BAD_BENCODE),  # a leading 0 must be all
    (b"d7:command4:ping1:x" + NINES + b":abce", BAD_BENCODE),  # length past the end
    (b"d7:command4:ping1:x" + ZEROS + b"3:abce", BAD_BENCODE),
    (b"d" + NINES + b":abc7:command4:pinge", BAD_BENCODE),
    (b"d7:commandi" + NINES + b"ee", NO_COMMAND),
    (b'{"command":"ping","x":' + NINES + b"}", "ping"),
    (b'{"command":"ping","x":-' + NINES + b"}", "ping"),
    (b'{"command":"ping","x":' + NINES + b".5}", BAD_BENCODE),
    (b'{"command":' + NINES + b"}", NO_COMMAND),
]


@contextmanager
def no_digit_limit() -> Iterator[None]:
    """Python's own int() without the 4,300-digit limit, to compute expected values."""
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(before)


@pytest.mark.parametrize(("body", "outcome"), HUGE, ids=[f"huge{i}" for i in range(len(HUGE))])
def test_huge_numbers_get_rtpengines_reply(body: bytes, outcome: str) -> None:
    if outcome == "ping":
        request = parse_request(b"c " + body)
        assert request is not None and request.command == "ping"
    else:
        with pytest.raises(NgError, match=outcome):
            parse_request(b"c " + body)


def test_tcp_framing_of_huge_lengths_waits_or_cuts() -> None:
    # strtoul of a huge length: more is needed (rtpengine waits; past 1024 bytes it closes)
    assert bencode_valid(b"d1:x" + NINES + b":abce") == NEED_MORE
    assert bencode_valid(b"d1:xi" + NINES + b"ee") == len(NINES) + 7
    assert bencode_valid(b"d1:x" + ZEROS + b"3:abce") == len(ZEROS) + 10  # strtoul: 3
    framer = TcpFramer()
    assert framer.feed(b"t1 d1:x" + NINES + b":abce") == [] and framer.overflowed
    messages, rest = split_tcp(b"t2 d7:command4:ping1:xi" + NINES + b"ee")
    assert len(messages) == 1 and rest == b""
    assert bencode_valid(b"i" + ZEROS + b"5e") == INVALID


_sign = st.sampled_from(["", "-", "+"])
_digits = st.text("0123456789", min_size=1, max_size=9000)


@given(_sign, _digits)
def test_any_integer_clamps_like_strtoll(sign: str, digits: str) -> None:
    data = f"d1:ai{sign}{digits}ee".encode()
    if not sign and digits[0] == "0" and len(digits) > 1:  # `i0` must be `i0e`
        with pytest.raises(BencodeError):
            bencode_decode(data)
        return
    with no_digit_limit():
        expected = max(-(2**63), min(2**63 - 1, int(sign + digits)))
    assert bencode_decode(data) == {"a": expected}


@given(_digits)
def test_any_string_length_decodes_or_fails_cleanly(digits: str) -> None:
    data = f"d7:command4:ping1:x{digits}:abce".encode()
    try:
        parse_request(b"c " + data)
    except NgError as exc:
        assert exc.reason == BAD_BENCODE
    assert bencode_valid(data) in (NEED_MORE, INVALID) or bencode_valid(data) > 0


_token = st.one_of(
    st.sampled_from([b"d", b"l", b"e", b"i", b"-", b":", b"1:a", b"7:command4:ping"]),
    st.integers(0, 6000).map(lambda n: b"9" * n),
    st.integers(0, 6000).map(lambda n: b"0" * n),
)


@given(st.lists(_token, max_size=12).map(lambda ts: b"d" + b"".join(ts)))
def test_bodies_with_huge_digit_runs_never_raise_anything_else(body: bytes) -> None:
    try:
        parse_request(b"c " + body)
    except NgError:
        pass
    framer = TcpFramer()
    framer.feed(b"c " + body)
    json_body = b'{"command":"ping","x":' + body.replace(b"d", b"").replace(b":", b"") + b"}"
    try:
        parse_request(b"c " + json_body)
    except NgError:
        pass
