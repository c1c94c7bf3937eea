"""rewrite(parse(in), plan) == out, byte for byte, for the 10.5 captures of docs/spec/sdp.md §6.

The fixture files come from the spec's appendix (tests/fixtures/sdp/extract.py); each plan in
plans.json states what the call model decided for that capture (ports from the captured output,
advertised address 203.0.113.1, the replace/loop-protect/rtcp flags of the request).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from relay.sdp import MediaPlan, SessionPlan, parse, render, rewrite

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "sdp"
PLANS: dict[str, dict[str, Any]] = json.loads((FIXTURES / "plans.json").read_text())

NOT_COVERED = {
    "I1.offer": "rtpengine generates its own ICE candidates (rtpvault rejects ICE offers)",
    "I3.offer": "ICE=force generation",
    "I4.offer": "ICE=force generation",
    "P1.offer": "SDES/DTLS generation",
    "P2.answer": "SDES generation",
    "P3.offer": "SDES/DTLS generation",
}


def _plan(data: dict[str, Any]) -> SessionPlan:
    fields = dict(data)
    media = tuple(MediaPlan(**m) for m in fields.pop("media"))
    return SessionPlan(media=media, **fields)


def _read(name: str) -> str:
    # Bytes → str without newline translation: the CR LF / LF difference is the point.
    return (FIXTURES / name).read_bytes().decode()


def test_every_capture_is_covered_or_excused() -> None:
    captured = {p.name.removesuffix(".out.sdp") for p in FIXTURES.glob("*.out.sdp")}
    assert captured == set(PLANS) | set(NOT_COVERED)
    assert len(PLANS) >= 70


@pytest.mark.parametrize("case", sorted(PLANS))
def test_rewrite_matches_rtpengine(case: str) -> None:
    source = _read(f"{case}.in.sdp")
    desc = parse(source)
    assert render(desc) == source
    assert rewrite(desc, _plan(PLANS[case])) == _read(f"{case}.out.sdp")
