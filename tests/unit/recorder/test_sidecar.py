"""recorder.sidecar's types name exactly the fields docs/recording-sidecar.md documents."""

from __future__ import annotations

import re
from pathlib import Path

from recorder.sidecar import Sidecar, SidecarStream

DOC = Path(__file__).resolve().parents[3] / "docs" / "recording-sidecar.md"


def _example() -> str:
    return DOC.read_text().split("```json\n", 1)[1].split("```", 1)[0]


def test_top_level_fields_match_the_documented_example() -> None:
    documented = re.findall(r'^  "([a-z_0-9]+)":', _example(), re.M)
    assert documented == list(Sidecar.__annotations__)


def test_stream_fields_match_the_documented_example() -> None:
    streams = _example().split('"streams": [', 1)[1]
    documented = re.findall(r'"([a-z_]+)":', streams)
    assert sorted(documented) == sorted(SidecarStream.__annotations__)
