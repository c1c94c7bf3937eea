"""Sidecar documents the index must survive: over-long values, wrong types, missing ids — on
SQLite and PostgreSQL (which, unlike SQLite, refuses a value longer than its column)."""

from __future__ import annotations

import json
import tempfile
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from storage.db import Index, open_index
from storage.ingest import upsert_sidecar
from storage.models import RecordingMeta
from storage.s3.keys import TemplateError, check_template, escape, object_key
from tests.support.db import recording

RID = "22222222-2222-4222-8222-222222222222"


def test_over_long_values_are_cut_to_their_columns(index: Index) -> None:
    doc: dict[str, Any] = {
        "id": RID,
        "call_id": "c" * 1000,
        "caller": "a" * 300,
        "node": "n" * 100,
        "format": "pcapng-but-longer",
        "status": "complete",
        "started": 1.0,
        "ended": 2.0,
        "path": "/x",
        "codecs": ["X" * 40, "X" * 41],
        "meta": {"k" * 70: "v", "k" * 71: "w"},
        "streams": [
            {
                "ssrc": 1,
                "src": "[" + "f" * 80 + "]:1",
                "codec": "Y" * 50,
                "party": "p" * 300,
                "packets": 3,
            }
        ],
    }
    with index.session() as s:
        upsert_sidecar(s, doc)
    with index.session() as s:
        rec = recording(s, RID)
        assert (len(rec.call_id), len(rec.caller or ""), len(rec.node)) == (255, 255, 64)
        assert rec.sidecar["call_id"] == "c" * 1000  # the whole document is kept
        assert len(s.scalars(select(RecordingMeta)).all()) == 1  # both keys cut to the same one


@pytest.mark.parametrize(
    ("doc", "message"),
    [({"call_id": "x"}, "without an `id`"), ({"id": "z" * 40}, "longer than a UUID")],
)
def test_documents_that_cannot_be_a_recording_are_refused(
    index: Index, doc: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message), index.session() as s:
        upsert_sidecar(s, doc)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
FIELDS = [
    "call_id",
    "tags",
    "metadata",
    "meta",
    "caller",
    "callee",
    "node",
    "format",
    "link",
    "path",
    "started",
    "ended",
    "status",
    "reason",
    "size",
    "sha256",
    "parties",
    "codecs",
    "streams",
]

_DB = tempfile.mkdtemp(prefix="rtpvault-ingest-")
_INDEX = None


def sqlite_index() -> Index:
    global _INDEX
    if _INDEX is None:
        _INDEX = open_index(f"sqlite:///{_DB}/fuzz.db", create=True)
    return _INDEX


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(FIELDS), JSONISH))
def test_any_document_is_indexed_or_refused_with_our_error(fields: dict[str, Any]) -> None:
    doc = {"id": RID, **fields}
    ix = sqlite_index()
    try:
        with ix.session() as s:
            upsert_sidecar(s, doc)
    except (ValueError, TypeError):
        return  # refused, loudly; nothing else may escape
    with ix.session() as s:
        assert recording(s, RID) is not None


@given(st.text())
def test_escaped_call_id_is_one_safe_segment_and_reversible(call_id: str) -> None:
    out = escape(call_id)
    assert set(out) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-%")
    assert not out.startswith(".")
    assert unquote(out) == call_id


@given(st.text(min_size=1), st.floats(min_value=0, max_value=4e9))
def test_object_key_never_gains_segments_from_the_call_id(call_id: str, started: float) -> None:
    class Rec:
        id = RID
        node = "relay/1"
        path = "/spool/pcaps/x/../y.pcap"

    rec = Rec()
    rec.call_id = call_id  # type: ignore[attr-defined]
    rec.started = started  # type: ignore[attr-defined]
    key = object_key("rec/{yyyy}/{mm}/{dd}/{node}/{call_id}/", rec)
    parts = key.split("/")
    assert len(parts) == 7 and parts[0] == "rec" and parts[-1] == "y.pcap"
    assert not {".", ".."} & set(parts)


@pytest.mark.parametrize("template", ["{yyyy", "x/{bogus}/", "{call_id!r}", "{dd:>4}"])
def test_bad_prefix_templates_are_refused(template: str) -> None:
    with pytest.raises(TemplateError):
        check_template(template)


def test_the_index_keeps_no_key_of_an_unredacted_sidecar(index: Index) -> None:
    """A sidecar written before redaction (or by hand): the stored document has its SDES keys
    and ICE passwords redacted (rtp.redact, docs/recording.md), and so has `show`'s view of a
    row stored before redaction existed."""
    from rtpvault.cli.search.rows import details

    key, pwd = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR", "x9cml/YzichV2+XlhiMu8g"
    sdp = f"v=0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\na=ice-pwd:{pwd}\r\n"
    entry = {"direction": "offer", "party": "ft", "in": sdp, "out": sdp, "time": 1.0}
    doc: dict[str, Any] = {"id": RID, "call_id": "c", "status": "complete", "started": 1.0,
                           "path": "/x", "sdp": [entry]}  # fmt: skip
    with index.session() as s:
        upsert_sidecar(s, doc)
        s.commit()
    with index.session() as s:
        stored = json.dumps(recording(s, RID).sidecar)
        assert key not in stored and pwd not in stored and "a=ice-pwd:REDACTED" in stored
        assert doc["sdp"][0]["in"] == sdp  # the caller's document is not changed
        recording(s, RID).sidecar = doc  # as a row indexed before redaction holds it
        s.commit()
    with index.session() as s:
        assert key in json.dumps(recording(s, RID).sidecar)
        shown = json.dumps(details(s, recording(s, RID)), default=str)
        assert key not in shown and pwd not in shown and "a=ice-pwd:REDACTED" in shown
