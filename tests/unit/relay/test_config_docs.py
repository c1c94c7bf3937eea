"""docs/configuration.md lists every key of the table."""

from __future__ import annotations

from pathlib import Path

from relay.config.keys import KEYS

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def test_every_key_is_documented() -> None:
    text = DOC.read_text()
    missing = [k.name for k in KEYS if f"| `{k.name}` |" not in text]
    assert missing == []
