"""relay.state.document: the stored form round-trips and bad input gives DocumentError."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.state.document import (
    CallDocument,
    DocumentError,
    Entry,
    decode,
    encode,
    split_media_key,
)

json_leaf = st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=8)
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                          max_leaves=10)  # fmt: skip
times = st.floats(0, 4e9, allow_nan=False, allow_infinity=False)
ports = st.integers(0, 65535)
addresses = st.sampled_from(["127.0.0.1", "::1", "203.0.113.7", "fe80::1%eth0"])
entries = st.builds(Entry, times, st.tuples(addresses, ports), st.binary(max_size=64),
                    st.lists(st.tuples(addresses, st.integers(1, 65535)), max_size=4)
                    .map(tuple), st.lists(times, max_size=4).map(tuple),
                    st.none() | st.text(max_size=10))  # fmt: skip
media = st.dictionaries(
    st.tuples(addresses, st.integers(1, 65535)).map(lambda a: f"{a[0]}:{a[1]}"),
    st.fixed_dictionaries({"peer": st.tuples(addresses, ports).map(list)}), max_size=3)
documents = st.builds(
    CallDocument, st.text(min_size=1, max_size=20), st.text(max_size=10),
    st.binary(min_size=32, max_size=32), times, st.lists(entries, max_size=4), media,
    st.dictionaries(st.text(max_size=8), json_value, max_size=3))


@given(documents)
def test_round_trip(doc: CallDocument) -> None:
    assert decode(encode(doc)) == doc


def test_a_call_id_that_is_not_utf8_survives() -> None:
    doc = CallDocument("ab\udcff", "n", bytes(32), 1.5)  # ng strings keep bytes as surrogates
    assert decode(encode(doc)).call_id == "ab\udcff"


@given(st.binary(max_size=200))
def test_garbage_gives_document_error(data: bytes) -> None:
    try:
        decode(data)
    except DocumentError:
        pass


GOOD = {"v": 1, "call_id": "c", "node": "n", "seed": "00" * 32, "created": 1.0,
        "ng": [{"t": 1.0, "src": ["127.0.0.1", 5060], "body": "ZGU=", "ports": []}],
        "media": {}, "extra": {}}  # fmt: skip


@pytest.mark.parametrize("change, message", [
    ({"v": 2}, "document version 2, this daemon reads 1"),
    ({"seed": "00"}, "seed has 1 bytes, not 32"),
    ({"seed": "zz" * 32}, "seed is not hex"),
    ({"created": -1}, "'created' is not a time"),
    ({"ng": [{"t": 1, "src": ["x"], "body": "", "ports": []}]}, "ng[0] src: not an"),
    ({"ng": [{"t": 1, "src": ["x", 1], "body": "!!", "ports": []}]}, "body is not base64"),
    ({"media": {"nocolon": {}}}, "is not <address>:<port>"),
    ({"media": {"1.2.3.4:5": {"peer": [1, 2]}}}, "peer: not an [address, port] pair"),
    ({"extra": []}, "'extra' has the wrong type"),
    ({"ng": [{"t": 1, "src": ["x", 1], "body": "", "ports": [], "error": 1}]},
     "ng[0]: 'error' has the wrong type"),
    ({"ng": [{"t": 1, "src": ["x", 1], "body": "", "ports": [], "clock": [-1]}]},
     "ng[0]: 'clock' is not a time"),
    ({"call_id": None}, "'call_id' has the wrong type"),
])  # fmt: skip
def test_bad_fields_are_named(change: dict[str, object], message: str) -> None:
    decode(json.dumps(GOOD).encode())
    with pytest.raises(DocumentError, match=message.replace("[", r"\[").replace("(", r"\(")):
        decode(json.dumps({**GOOD, **change}).encode())


def test_not_json_and_not_an_object() -> None:
    with pytest.raises(DocumentError, match="not JSON"):
        decode(b"\xff{")
    with pytest.raises(DocumentError, match="not a JSON object"):
        decode(b"[]")


def test_media_keys_with_ipv6() -> None:
    assert split_media_key("::1:30000") == ("::1", 30000)
    with pytest.raises(DocumentError):
        split_media_key("::1:0")
