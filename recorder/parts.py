"""A recording in several parts: what a call's Redis document keeps of its recording, and what
a daemon that restored the call makes of it (docs/recording.md "Parts"). Pure: dicts in, dicts
out; the composition root (rtpvault.recording) writes and reads them through the journal.

The state (the document's `extra["recording"]`, docs/design/redis-state.md):

    {"id": <series: the first part's recording id>, "part": n, "part_id": <this part's id>,
     "path": <this part's media file>, "parties": [...], "codecs": [...]}

`parties` and `codecs` are the sidecar's (docs/recording-sidecar.md): a restore replays the ng
requests without their replies, so the recorder of part n+1 never sees them again and starts
from these. SDP texts stay out (the journal keeps the requests themselves).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from recorder.sidecar import Sidecar, SidecarParty

__all__ = ["JOURNAL_KEY", "Prior", "continuation", "journal_state"]

JOURNAL_KEY = "recording"
MAX_ID = 36  # the index's recording id column (a UUID)


@dataclass(frozen=True, slots=True)
class Prior:
    """The part a killed daemon was writing, as its journal state named it."""

    series: str
    part: int
    part_id: str | None = None
    path: str | None = None
    parties: list[SidecarParty] = field(default_factory=list)
    codecs: list[str] = field(default_factory=list)

    @property
    def prefix(self) -> str | None:
        """Its file names' common part (recorder.names), which the next part must not reuse."""
        if not self.path:
            return None
        return os.path.splitext(os.path.basename(self.path))[0]

    def seed(self, doc: Sidecar) -> None:
        """Start part n+1's sidecar with what part n knew of the parties."""
        doc["parties"] = [dict(p) for p in self.parties]  # type: ignore[misc]
        doc["codecs"] = list(self.codecs)


def journal_state(doc: Sidecar) -> dict[str, Any]:
    """What the call's Redis document keeps of the recording `doc` describes (JSON-able)."""
    return {
        "id": doc.get("series") or doc.get("id"),
        "part": doc.get("part", 1),
        "part_id": doc.get("id"),
        "path": doc.get("path"),
        "parties": [dict(p) for p in doc.get("parties", [])],
        "codecs": list(doc.get("codecs", [])),
    }


def continuation(restored: dict[str, Any] | None) -> Prior | None:
    """The part to continue for a call rebuilt from Redis (`Call.restored`), None when the
    call was not restored, was not recording, or its state is unusable (then a new series
    starts, as a new recording always did)."""
    if not isinstance(restored, dict):
        return None
    state = restored.get(JOURNAL_KEY)
    if not isinstance(state, dict):
        return None
    series, part = state.get("id"), state.get("part")
    if not isinstance(series, str) or not series or len(series) > MAX_ID:
        return None
    if not isinstance(part, int) or isinstance(part, bool) or part < 1:
        return None
    part_id = state.get("part_id")
    path = state.get("path")
    parties = [p for p in state.get("parties") or [] if isinstance(p, dict)]
    codecs = [c for c in state.get("codecs") or [] if isinstance(c, str)]
    return Prior(series, part, part_id if isinstance(part_id, str) else None,
                 path if isinstance(path, str) else None, parties, codecs)  # type: ignore[arg-type]
