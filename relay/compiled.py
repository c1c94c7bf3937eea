"""Which relay modules the package build compiles with mypyc, and the switch back to their
Python source (issue 18 item 6; measured in docs/PERFORMANCE.md).

`pip install .` / `pip install -e .` (setup.py) compiles `MODULES` into extension modules placed
beside their `.py` files; Python then imports the extension first. The source stays the
reference: the same files run unchanged when nothing was compiled, and `guard()` (run by
`relay/__init__.py` before any of them is imported) makes every one of them load from source
when

* `RTPVAULT_PURE=1` is set (tests compare both paths; an operator's escape hatch), or
* any compiled one is older than its source: an edited checkout of an editable install, where
  the stale extension would otherwise silently run the old code. No warning (stderr is part of
  what the CLI tests compare); `state()` says which, bench/ng_setup.py prints it, and
  .ci/bootstrap reinstalls (compiles again) when it finds the tree stale.

All or none: the compiled modules call each other natively, so a mix is never loaded.
Nothing here may be compiled itself, and it imports only the standard library.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

MODULES = (
    "relay.cint",
    "relay.ng.codec",
    "relay.ng.flags",
    "relay.ng.unimplemented",
    "relay.ng.cookies",
    "relay.ng.sdp_view",
    "relay.ng.callstats",
    "relay.call.plan",
    "relay.sdp.attributes",
    "relay.sdp.codecs",
    "relay.sdp.edit",
    "relay.sdp.errors",
    "relay.sdp.media",
    "relay.sdp.model",
    "relay.sdp.parse",
    "relay.sdp.plan",
    "relay.sdp.rewrite",
    "relay.sdp.text",
)
"""The pure, per-request hot path: ng codec and flags, SDP parse/summary/rewrite, call stats."""

ROOT = Path(__file__).resolve().parent.parent


def source(name: str) -> Path:
    return ROOT.joinpath(*name.split(".")).with_suffix(".py")


def extension(name: str) -> Path | None:
    """The compiled module beside the source, if the build made one."""
    py = source(name)
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = py.with_suffix(suffix)
        if candidate.exists():
            return candidate
    return None


def stale() -> list[str]:
    """Compiled modules whose source changed after they were built (in a source checkout: an
    installed copy is not edited, and wheel extraction leaves its mtimes in no useful order)."""
    if {"site-packages", "dist-packages"} & set(ROOT.parts):
        return []
    out = []
    for name in MODULES:
        ext = extension(name)
        if ext is not None and source(name).stat().st_mtime > ext.stat().st_mtime:
            out.append(name)
    return out


def is_compiled(module: ModuleType) -> bool:
    return not str(getattr(module, "__file__", "")).endswith(".py")


class SourceFirst(MetaPathFinder):
    """Loads `MODULES` from their `.py` files even where an extension module sits beside."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in MODULES:
            return None
        py = source(fullname)
        return importlib.util.spec_from_file_location(fullname, py) if py.is_file() else None


def pure() -> bool:
    """RTPVAULT_PURE=1: run from source, and relay.transcode.audio uses PyAV only."""
    return os.environ.get("RTPVAULT_PURE", "") not in ("", "0")


def state() -> str:
    """How `MODULES` run in this process: "compiled", or "source (<why>)"."""
    if pure():
        return "source (RTPVAULT_PURE=1)"
    if all(extension(name) is None for name in MODULES):
        return "source (not compiled)"
    old = stale()
    return f"source (stale: {', '.join(old)})" if old else "compiled"


def guard() -> None:
    if any(isinstance(f, SourceFirst) for f in sys.meta_path):
        return
    if pure() or stale():
        sys.meta_path.insert(0, SourceFirst())
