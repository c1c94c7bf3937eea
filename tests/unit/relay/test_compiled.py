"""The mypyc-compiled modules (relay/compiled.py, built by setup.py) against their source
(issue 18 item 6): same bytes out, and the source is what runs when asked or when stale."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from relay import compiled

REPO = Path(__file__).resolve().parents[3]


def _probe(pure: bool) -> dict[str, Any]:
    env = dict(os.environ, RTPVAULT_PURE="1" if pure else "0")
    out = subprocess.run(
        [sys.executable, "-m", "tests.support.compiled_probe"],
        cwd=REPO, env=env, capture_output=True, check=True, timeout=240,
    ).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def test_compiled_and_source_modules_give_the_same_bytes() -> None:
    source, built = _probe(pure=True), _probe(pure=False)
    assert not any(source["compiled"].values())
    assert len(source["ng"]) > 1000 and len(source["sdp"]) > 50  # every differential request
    if not any(built["compiled"].values()):
        # a source-only install (RTPVAULT_PURE=1 at build time), or an edited checkout whose
        # extensions are older than their sources: the comparison is moot
        assert compiled.extension("relay.ng.codec") is None or compiled.stale()
    else:
        assert all(built["compiled"].values()), built["compiled"]
    assert built["ng"] == source["ng"]
    assert built["sdp"] == source["sdp"]


def _fake_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A package whose module has a (broken) extension beside its source, older than it."""
    pkg = tmp_path / "probe_pkg_issue18"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    src = pkg / "mod.py"
    src.write_text("WHERE = 'source'\n")
    import importlib.machinery

    ext = pkg / f"mod{importlib.machinery.EXTENSION_SUFFIXES[0]}"
    ext.write_bytes(b"not an ELF file")
    os.utime(ext, (1_000_000, 1_000_000))
    monkeypatch.setattr(compiled, "ROOT", tmp_path)
    monkeypatch.setattr(compiled, "MODULES", ("probe_pkg_issue18.mod",))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "probe_pkg_issue18.mod"


def test_a_stale_extension_is_skipped_for_the_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _fake_tree(tmp_path, monkeypatch)
    assert compiled.stale() == [name]
    finders = [f for f in sys.meta_path if isinstance(f, compiled.SourceFirst)]
    for f in finders:  # this process may run from source already (RTPVAULT_PURE)
        monkeypatch.setattr(sys, "meta_path", [m for m in sys.meta_path if m is not f])
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(ImportError):  # what would happen without the guard
        __import__(name)
    assert compiled.state() == f"source (stale: {name})"
    compiled.guard()
    module = __import__(name, fromlist=["WHERE"])
    assert module.WHERE == "source"
    monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.delitem(sys.modules, "probe_pkg_issue18", raising=False)


def test_the_build_list_names_existing_relay_modules() -> None:
    for name in compiled.MODULES:
        assert compiled.source(name).is_file(), name
    assert "relay.compiled" not in compiled.MODULES  # the guard itself must stay Python


def test_an_installed_copy_is_never_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pip extracts a wheel in archive order with fresh mtimes: an extension may come out before
    its source, which must not send an installed (non-editable) rtpvault to the source path."""
    site = tmp_path / "lib" / "site-packages"
    site.mkdir(parents=True)
    _fake_tree(site, monkeypatch)
    assert compiled.stale() == []
