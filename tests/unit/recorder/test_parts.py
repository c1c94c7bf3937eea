"""recorder.parts: the journal state of a recording and what a restored call makes of it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recorder.parts import JOURNAL_KEY, Prior, continuation, journal_state
from recorder.sidecar import Sidecar

PARTY = {"tag": "ft", "label": None, "role": "offerer", "user": "alice",
         "media": [{"type": "audio", "address": "192.0.2.1", "port": 4000,
                    "codecs": [{"pt": 0, "name": "PCMU", "rate": 8000}]}]}  # fmt: skip


def test_state_round_trip_gives_the_next_part() -> None:
    doc: Sidecar = {"id": "b" * 36, "series": "a" * 36, "part": 2, "codecs": ["PCMU"],
                    "path": "/spool/pcaps/c%40h-0123456789abcdef.pcap",
                    "parties": [PARTY]}  # type: ignore[list-item]  # fmt: skip
    state = json.loads(json.dumps(journal_state(doc)))  # through the Redis document's JSON
    prior = continuation({JOURNAL_KEY: state, "other": 1})
    assert prior == Prior("a" * 36, 2, "b" * 36, doc["path"], [PARTY], ["PCMU"])  # type: ignore[list-item]
    assert prior.prefix == "c%40h-0123456789abcdef"
    seeded: Sidecar = {}
    prior.seed(seeded)
    assert seeded["parties"] == [PARTY] and seeded["codecs"] == ["PCMU"]
    seeded["parties"][0]["tag"] = "changed"
    assert PARTY["tag"] == "ft"  # a copy: part n+1's document never edits the state


def test_a_first_part_is_its_own_series() -> None:
    state = journal_state({"id": "x" * 36, "path": None})
    assert (state["id"], state["part"], state["part_id"]) == ("x" * 36, 1, "x" * 36)


@pytest.mark.parametrize("restored", [
    None, {}, {"recording": None}, {"recording": "x"}, {"recording": {"part": 1}},
    {"recording": {"id": "", "part": 1}}, {"recording": {"id": "a" * 37, "part": 1}},
    {"recording": {"id": "a", "part": 0}}, {"recording": {"id": "a", "part": True}},
    {"recording": {"id": "a", "part": "2"}},
])  # fmt: skip
def test_no_continuation_without_a_usable_state(restored: Any) -> None:
    assert continuation(restored) is None


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner)))
def test_any_json_state_gives_a_prior_or_none(state: Any) -> None:
    for restored in ({JOURNAL_KEY: state}, state):
        prior = continuation(restored if isinstance(restored, dict) else None)
        assert prior is None or (prior.part >= 1 and 0 < len(prior.series) <= 36)
        if prior is not None:
            prior.seed({})
            _ = prior.prefix
