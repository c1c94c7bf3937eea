"""relay.ng.codec against the bytes of docs/spec/ng-protocol.md §1 and probes of rtpengine 10.5."""

from __future__ import annotations

from typing import Any

import bencodepy
import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.ng.codec import (
    NgRequest,
    TcpFramer,
    bencode_decode,
    bencode_encode,
    bencode_valid,
    encode_reply,
    error_reply,
    json_encode,
    parse_request,
    split_tcp,
)
from relay.ng.errors import BencodeError, NgError

NO_COMMAND = 'Dictionary contains no key "command"'
BAD_FORMAT = "Invalid NG data format"
BAD_BENCODE = "Could not decode bencode dictionary"


# --- §1.1 / §1.5: whole datagrams ----------------------------------------------------------


@pytest.mark.parametrize(
    "datagram",
    [b"d7:command4:pinge", b" d7:command4:pinge", b"ck17\td7:command4:pinge", b"", b"abc"],
)
def test_no_cookie_means_no_reply(datagram: bytes) -> None:
    assert parse_request(datagram) is None


@pytest.mark.parametrize(
    ("datagram", "cookie", "body"),
    [
        (b"5323_1 d7:command4:pinge", b"5323_1", {"command": "ping"}),
        (b"ck15 d7:command4:pinge trailing", b"ck15", {"command": "ping"}),
        (b"ck3 d7:command4:ping", b"ck3", {"command": "ping"}),
        (b"25:t7 d7:command4:pinge", b"25:t7", {"command": "ping"}),
        (b"ck10 d7:command4:PINGe", b"ck10", {"command": "PING"}),
        (b"ck8 d7:command5:boguse", b"ck8", {"command": "bogus"}),
    ],
)
def test_well_formed_bencode(datagram: bytes, cookie: bytes, body: dict[str, Any]) -> None:
    assert parse_request(datagram) == NgRequest(cookie, body, False)


@pytest.mark.parametrize(
    ("datagram", "reason", "is_json"),
    [
        (b"ck1 ", "Invalid data (no payload)", False),
        (b"ck2 garbage", BAD_FORMAT, False),
        (b"ck16  d7:command4:pinge", BAD_FORMAT, False),
        (b"ck4 l4:pinge", BAD_FORMAT, False),
        (b"ck5 4:ping", BAD_FORMAT, False),
        (b"ck14 [1,2]", BAD_FORMAT, False),
        (b"ck6 de", NO_COMMAND, False),
        (b"ck9 d7:commandi5ee", NO_COMMAND, False),
        (b'ck13 {"command":', "Failed to parse JSON document", True),
        (b'ck7 {"command":5}', NO_COMMAND, True),
    ],
)
def test_malformed_rows(datagram: bytes, reason: str, is_json: bool) -> None:
    with pytest.raises(NgError) as caught:
        parse_request(datagram)
    assert (caught.value.reason, caught.value.is_json) == (reason, is_json)
    assert caught.value.cookie == datagram.split(b" ", 1)[0]


# Each of these was sent to rtpengine 10.5.3.5; "ping" means it answered pong.
LENIENCY = [
    (b"d7:command4:ping7:command5:boguse", "ping"),  # first of repeated keys wins
    (b"d7:command5:bogus7:command4:pinge", "bogus"),
    (b"d7:command4:ping1:ai-0ee", "ping"),
    (b"d7:command4:ping1:ai 5ee", "ping"),
    (b"d7:command4:ping1:ai+5ee", "ping"),
    (b"d7:command4:ping1:ai99999999999999999999999ee", "ping"),
    (b"d7:command4:ping1:al1:x", "ping"),
    (b"d7:command4:ping1:ad1:b1:c", "ping"),
    (b"d", NO_COMMAND),
    (b"d1:ad1:b1:c7:command4:ping", NO_COMMAND),
    (b"d1:al1:x7:command4:ping", NO_COMMAND),
    (b"d7:command4:ping1:ai03ee", BAD_BENCODE),
    (b"d7:command4:ping1:a03:abce", BAD_BENCODE),
    (b"d7:command4:ping1:ae", BAD_BENCODE),
    (b"d7:command4:ping1:a", BAD_BENCODE),
    (b"d7:command4:pingi1e1:ae", BAD_BENCODE),
    (b"d7:command4:ping1:a5:abc", BAD_BENCODE),
    (b"d7:command4:pi", BAD_BENCODE),
    (b"d7:command4:ping1:aie", BAD_BENCODE),
    (b"d7:command4:ping1:ai-e", BAD_BENCODE),
    (b"d7:command4:ping1:ai5", BAD_BENCODE),
    (b"d1:a1:b7:command4:pingx", BAD_BENCODE),
]


@pytest.mark.parametrize(("body", "outcome"), LENIENCY)
def test_bencode_leniency_matches_rtpengine(body: bytes, outcome: str) -> None:
    if outcome in (NO_COMMAND, BAD_BENCODE):
        with pytest.raises(NgError, match=outcome):
            parse_request(b"b " + body)
    else:
        request = parse_request(b"b " + body)
        assert request is not None and request.command == outcome


def test_integers_clamp_like_strtoll() -> None:
    assert bencode_decode(b"li99999999999999999999ei-99999999999999999999ee") == [
        2**63 - 1,
        -(2**63),
    ]


def test_decoded_strings_keep_any_bytes() -> None:
    body = bencode_decode(b"d7:call-id6:bad\xff\xfex3:nul3:a\x00be")
    assert bencode_encode(body) == b"d7:call-id6:bad\xff\xfex3:nul3:a\x00be"


def test_deep_nesting_decodes_like_rtpengine() -> None:
    # rtpengine 10.5 has no nesting limit (measured: 20000 levels inside a ping → pong).
    depth = 30000
    body = bencode_decode(b"d3:foo" + b"l" * depth + b"e" * depth + b"7:command4:pinge")
    assert body["command"] == "ping"
    # unclosed: the lists swallow the rest, so there is no command
    body = bencode_decode(b"d3:foo" + b"l" * depth + b"7:command4:pinge")
    assert list(body) == ["foo"]
    value = bencode_decode(b"d3:foo" + b"d1:a" * depth + b"i1e" + b"e" * depth + b"e")
    for _ in range(depth):
        value = value["foo" if "foo" in value else "a"]
    assert value == {"a": 1}


def test_lenient_decoder_edge_cases() -> None:
    assert bencode_decode(b"d1:ai1e1:ai2e1:bl1:xe") == {"a": 1, "b": ["x"]}
    assert bencode_decode(b"d1:ad1:bi1eee") == {"a": {"b": 1}}
    assert bencode_decode(b"i5e") == 5
    for bad in (b"d1:a", b"d1:ae", b"di1ei2ee", b"dl1:aei1ee", b"d1:ai5xe", b"e", b"d1:a5:abe"):
        with pytest.raises(BencodeError):
            bencode_decode(bad)


# --- JSON (§1.2 and probes) ---------------------------------------------------------------

JSON_CASES = [
    (b'{"command":"ping"}', "ping"),
    (b'{"command":"ping"}\n', "ping"),
    (b'{ "command" : "ping" }', "ping"),
    (b'{"command":"pi\\u006eg"}', "ping"),
    (b'{"command":"ping\\u0000x"}', "ping"),  # C string: ends at NUL
    (b'{"command":"ping","a":true}', "ping"),
    (b'{"command":"ping","a":99999999999999999999999}', "ping"),
    (b'{"command":"ping","command":"bogus"}', "bogus"),  # last repeated member wins
    (b'{"command":"ping",}', "Failed to parse JSON document"),
    (b'{"command":"ping"} x', "Failed to parse JSON document"),
    (b'{"command":"ping","a":NaN}', "Failed to parse JSON document"),
    (b'{"command":"ping","x":"\xff"}', "Failed to parse JSON document"),
    (b'{"command":"ping","a":1.5}', BAD_BENCODE),
    (b'{"command":"ping","a":1e3}', BAD_BENCODE),
    (b'{"command":"ping","a":null}', BAD_BENCODE),
    (b'{"command":"ping","a":[1,{"b":null}]}', BAD_BENCODE),
]


@pytest.mark.parametrize(("body", "outcome"), JSON_CASES)
def test_json_bodies_match_rtpengine(body: bytes, outcome: str) -> None:
    if outcome in ("ping", "bogus"):
        request = parse_request(b"j " + body)
        assert request is not None and request.is_json and request.command == outcome
    else:
        with pytest.raises(NgError, match=outcome) as caught:
            parse_request(b"j " + body)
        assert caught.value.is_json


def test_json_values_become_the_bencode_tree() -> None:
    request = parse_request(b'j {"command":"offer","flags":["a"],"n":-3,"t":true,"f":false}')
    assert request is not None
    assert request.body == {"command": "offer", "flags": ["a"], "n": -3, "t": 1, "f": 0}


def test_json_reply_escapes_like_json_glib() -> None:
    # Captured: a call-id with these bytes listed by rtpengine over JSON.
    call_id = "é\x01\x1f\"\\/\x7f\t\n\r\b\f😀"
    assert json_encode({"calls": [call_id, "nul\x00x", b"bad\xff\xfex"], "result": "ok"}) == (
        b'{"calls":["\xc3\xa9\\u0001\x1f\\"\\\\/\\u007f\\t\\n\\r\\b\\f\xf0\x9f\x98\x80",'
        b'"nul","bad\xff\xfex"],"result":"ok"}'
    )


def test_json_reply_shapes() -> None:
    assert encode_reply(b"ck11", {"result": "pong"}, True) == b'ck11 {"result":"pong"}'
    assert encode_reply(b"ck13", error_reply("Failed to parse JSON document"), True) == (
        b'ck13 {"result":"error","error-reason":"Failed to parse JSON document"}'
    )
    assert json_encode({"n": -5, "l": [], "d": {}}) == b'{"n":-5,"l":[],"d":{}}'


# --- replies ------------------------------------------------------------------------------


def test_reply_keeps_insertion_order() -> None:
    reply = {"sdp": "v=0\r\n", "result": "ok"}
    assert encode_reply(b"1_100_1", reply, False) == b"1_100_1 d3:sdp5:v=0\r\n6:result2:oke"


def test_error_reply_bytes() -> None:
    assert encode_reply(b"ck8", error_reply("Unrecognized command"), False) == (
        b"ck8 d6:result5:error12:error-reason20:Unrecognized commande"
    )
    assert error_reply("x") == {"result": "error", "error-reason": "x"}


def test_encoder_rejects_what_bencode_cannot_carry() -> None:
    with pytest.raises(BencodeError, match="float"):
        bencode_encode({"a": 1.5})
    with pytest.raises(BencodeError, match="key 5"):
        bencode_encode({5: "x"})


# --- §1.3 TCP framing ---------------------------------------------------------------------


def test_tcp_two_messages_in_one_write() -> None:
    messages, rest = split_tcp(b"t1 d7:command4:pinget2 d7:command4:pinge")
    assert messages == [b"t1 d7:command4:pinge", b"t2 d7:command4:pinge"]
    assert rest == b""


def test_tcp_message_split_over_two_writes() -> None:
    framer = TcpFramer()
    assert framer.feed(b"t3 d7:comm") == []
    assert framer.feed(b"and4:pinge") == [b"t3 d7:command4:pinge"]
    assert framer.pending == b""


def test_tcp_bytes_between_messages_join_the_next_cookie() -> None:
    framer = TcpFramer()
    assert framer.feed(b"t4 d7:command4:pinge\n") == [b"t4 d7:command4:pinge"]
    assert framer.feed(b"t5 d7:command4:pinge") == [b"\nt5 d7:command4:pinge"]


def test_tcp_json_never_completes() -> None:
    assert split_tcp(b't6 {"command":"ping"}') == ([], b't6 {"command":"ping"}')


def test_tcp_non_dict_value_is_a_message() -> None:
    assert split_tcp(b"t8 l4:pinge") == ([b"t8 l4:pinge"], b"")


def test_tcp_overflow_after_1024_unfinished_bytes() -> None:
    framer = TcpFramer()
    body = b"d7:command4:ping3:pad" + b"2000:" + b"x" * 2000 + b"e"
    assert framer.feed(b"big " + body[:1500]) == []
    assert framer.overflowed
    whole = TcpFramer()
    assert whole.feed(b"big " + body) == [b"big " + body]
    assert not whole.overflowed


@pytest.mark.parametrize(
    ("data", "size"),
    [
        (b"i5e", 3), (b"i0e", 3), (b"i-0e", -2), (b"ie", -2), (b"i05e", -2), (b"i5", -1),
        (b"4:ping", 6), (b"4:pin", -1), (b"03:abc", 6), (b"d1:a", -1), (b"de", 2),
        (b"di1e1:ae", -2), (b"l", -1), (b"le", 2), (b"x", -2), (b"", -1),
    ],
)  # fmt: skip
def test_bencode_valid_ports_rtpengine(data: bytes, size: int) -> None:
    assert bencode_valid(data) == size


# --- properties ---------------------------------------------------------------------------

_leaf = st.one_of(st.binary(max_size=20), st.integers(min_value=-(2**63), max_value=2**63 - 1))
_values = st.recursive(
    _leaf,
    lambda kids: st.lists(kids, max_size=4)
    | st.dictionaries(st.binary(max_size=8), kids, max_size=4),
    max_leaves=20,
)


def _as_str(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, dict):
        return {_as_str(k): _as_str(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_str(v) for v in value]
    return value


@given(_values)
def test_decoder_agrees_with_bencode_py(value: Any) -> None:
    encoded = bencodepy.encode(value)
    assert bencode_decode(encoded) == _as_str(bencodepy.decode(encoded))


@given(_values)
def test_encoder_agrees_with_bencode_py_on_sorted_keys(value: Any) -> None:
    # bencode.py sorts keys; decoding its output gives sorted dicts, which we must re-encode
    # to exactly its bytes.
    encoded = bencodepy.encode(value)
    assert bencode_encode(bencode_decode(encoded)) == encoded


@given(_values, st.binary(max_size=10))
def test_framing_finds_the_end_of_a_value(value: Any, tail: bytes) -> None:
    encoded = bencodepy.encode(value)
    messages, rest = split_tcp(b"ck " + encoded + b" " + tail)
    assert messages[0] == b"ck " + encoded


@given(st.binary(max_size=200))
def test_parse_request_only_returns_or_raises_ng_error(datagram: bytes) -> None:
    try:
        result = parse_request(datagram)
    except NgError:
        return
    assert result is None or isinstance(result, NgRequest)


@given(st.binary(max_size=100).map(lambda b: b"c d" + b))
def test_parse_request_on_dict_like_bodies(datagram: bytes) -> None:
    try:
        parse_request(datagram)
    except NgError as exc:
        assert exc.reason in (NO_COMMAND, BAD_BENCODE)


@given(st.lists(st.binary(max_size=30), max_size=8))
def test_framer_chunking_does_not_change_messages(chunks: list[bytes]) -> None:
    stream = b"".join(chunks)
    framer = TcpFramer()
    got: list[bytes] = []
    for chunk in chunks:
        got.extend(framer.feed(chunk))
    whole, rest = split_tcp(stream)
    assert got == whole and framer.pending == rest


# --- the ASCII fast path of the decoder must agree with the general (lenient) decoder ---------


def _general(data: bytes) -> Any:
    """The general decoder alone, or the BencodeError text it raises."""
    from relay.ng.codec import _decode

    try:
        value, _ = _decode(data, 0, 0)
    except BencodeError as exc:
        return ("error", str(exc))
    return value


def _either(data: bytes) -> Any:
    try:
        return bencode_decode(data)
    except BencodeError as exc:
        return ("error", str(exc))


_ng_alphabet = st.sampled_from(list(b"dlie0123456789:-+ ax"))


@given(st.lists(_ng_alphabet, max_size=60).map(lambda xs: b"d" + bytes(xs)))
def test_fast_path_agrees_with_general_decoder_on_arbitrary_bytes(data: bytes) -> None:
    assert _either(data) == _general(data)


@given(_values, st.integers(min_value=0, max_value=60), st.binary(max_size=4))
def test_fast_path_agrees_on_cut_and_mutated_requests(value: Any, cut: int, junk: bytes) -> None:
    encoded = bencodepy.encode({"command": "offer", "x": value})
    for data in (encoded[:cut] + junk, encoded + junk, encoded[: len(encoded) // 2]):
        if data[:1] == b"d":
            assert _either(data) == _general(data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"d1:ai-0ee", {"a": 0}),  # strtoll accepts what the fast path leaves to it
        (b"d1:ai 5ee", {"a": 5}),
        (b"d1:ai99999999999999999999ee", {"a": 2**63 - 1}),
        (b"d1:a1:b1:a1:ce", {"a": "b"}),  # first of a repeated key
        (b"d1:ad1:bi1ee1:ad1:bi2eee", {"a": {"b": 1}}),
        (b"d1:al1:b", {"a": ["b"]}),  # runs into the end: accepted
        (b"d1:a1:bextra", {"a": "b"}),  # trailing bytes ignored
    ],
)
def test_lenient_cases_through_the_public_decoder(data: bytes, expected: Any) -> None:
    assert bencode_decode(data) == expected


@pytest.mark.parametrize("data", [b"d1:ai05ee", b"d1:ae", b"di1e1:ae", b"d01:ae", b"d1:a4:bce"])
def test_errors_through_the_public_decoder(data: bytes) -> None:
    with pytest.raises(BencodeError):
        bencode_decode(data)


@given(st.text(max_size=20), st.binary(max_size=10))
def test_encoder_lengths_are_byte_lengths(text: str, raw: bytes) -> None:
    text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    encoded = bencode_encode({text: [raw, text, True, -3]})
    assert bencodepy.decode(encoded) == {
        text.encode(): [raw, text.encode(), 1, -3]
    }
