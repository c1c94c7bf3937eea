"""rtpengine's file names under recording-dir (docs/spec/recording.md §2.2), made safe.

    <prefix>          = <escaped call-id> "-" <16 lowercase hex digits>
    pcap              = pcaps/<prefix>.pcap        (rtpvault's pcapng: pcaps/<prefix>.pcapng)
    metadata, active  = tmp/rtpengine-meta-<prefix>.tmp
    metadata, final   = metadata/rtpengine-meta-<prefix>.txt
    sidecar           = sidecars/<prefix>.json    (rtpvault)

The escaping is GLib's `g_uri_escape_string(id, NULL, FALSE)`: every byte but A–Z a–z 0–9 - . _ ~
becomes %XX (uppercase), so no name can contain `/` or be `.`/`..`; a call-id can never reach
outside its directory. Difference from rtpengine: an escaped call-id longer than 200 bytes is cut
and suffixed with a hash, so the file can be created (rtpengine fails on names > 255 bytes).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from urllib.parse import quote_from_bytes

__all__ = ["escape_call_id", "new_prefix", "RecordingPaths", "SUBDIRS", "MAX_ESCAPED"]

SUBDIRS = ("metadata", "pcaps", "tmp", "sidecars")
MAX_ESCAPED = 200


def escape_call_id(call_id: str) -> str:
    """GLib-style URI escaping of every byte except unreserved characters (uppercase hex)."""
    raw = call_id.encode("utf-8", "surrogateescape")
    escaped = quote_from_bytes(raw, safe="")
    if len(escaped) > MAX_ESCAPED:
        digest = hashlib.sha256(raw).hexdigest()[:16]
        cut = escaped[: MAX_ESCAPED - 17]
        # never cut inside a %XX escape
        pct = cut.rfind("%", len(cut) - 2)
        if pct != -1:
            cut = cut[:pct]
        escaped = f"{cut}~{digest}"
    return escaped


def new_prefix(call_id: str, token: str | None = None) -> str:
    """<escaped call-id>-<16 hex>; `token` (16 hex digits) for tests, else 8 random bytes."""
    return f"{escape_call_id(call_id)}-{token if token is not None else secrets.token_hex(8)}"


@dataclass(frozen=True, slots=True)
class RecordingPaths:
    """Every path of one recording. `root` is recording-dir as configured (no trailing /)."""

    root: str
    prefix: str
    extension: str = "pcap"

    @property
    def pcap(self) -> str:
        return os.path.join(self.root, "pcaps", f"{self.prefix}.{self.extension}")

    @property
    def meta_tmp(self) -> str:
        return os.path.join(self.root, "tmp", f"rtpengine-meta-{self.prefix}.tmp")

    @property
    def meta_final(self) -> str:
        return os.path.join(self.root, "metadata", f"rtpengine-meta-{self.prefix}.txt")

    @property
    def sidecar(self) -> str:
        return os.path.join(self.root, "sidecars", f"{self.prefix}.json")
