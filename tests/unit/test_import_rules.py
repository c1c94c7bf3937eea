"""The import rules of docs/ARCHITECTURE.md ("Packages and what each owns"), checked by AST over
every module of the product, lazy imports inside functions and `importlib.import_module("...")`
with a literal name included.

relay never imports recorder, storage, hep or rtpvault; recorder and hep never import relay;
storage never imports relay, recorder or hep; only the composition root `rtpvault` imports
`rtpvault`; `rtp` is a leaf that imports the standard library only.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("rtp", "relay", "recorder", "hep", "storage", "migrations", "rtpvault")
"""Every top-level package of the product (pyproject's packages.find)."""

FORBIDDEN: dict[str, frozenset[str]] = {
    "relay": frozenset({"recorder", "storage", "hep", "rtpvault"}),
    "recorder": frozenset({"relay", "rtpvault"}),
    "hep": frozenset({"relay", "rtpvault"}),
    "storage": frozenset({"relay", "recorder", "hep", "rtpvault"}),
    "migrations": frozenset({"rtpvault"}),
}
"""Part → the parts of ours it must not import. `rtp` is stricter: see STDLIB_ONLY."""

STDLIB_ONLY = frozenset({"rtp"})
"""Parts that may import the standard library and nothing else (no third party, none of ours)."""


def module_name(path: Path, root: Path) -> str:
    """`relay/media/latch.py` → `relay.media.latch`; a package's `__init__.py` → the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_names(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`, wherever it stands."""
    found: list[tuple[int, str]] = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
        elif isinstance(node, ast.Call) and _is_dynamic_import(node):
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((node.lineno, arg.value))
            elif isinstance(arg, ast.JoinedStr) and arg.values:
                head = arg.values[0]  # f"rtpvault.cli.{name}": the literal prefix decides
                if isinstance(head, ast.Constant) and isinstance(head.value, str):
                    found.append((node.lineno, head.value.rstrip(".")))
    return found


def _is_dynamic_import(node: ast.Call) -> bool:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return name in ("import_module", "__import__") and bool(node.args)


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """Every forbidden import of `module` (given as its source text), as readable lines."""
    part = module.split(".")[0]
    out: list[str] = []
    for line, name in imported_names(source, module, is_package):
        top = name.split(".")[0]
        if part in STDLIB_ONLY:
            if top != part and top not in sys.stdlib_module_names and top != "__future__":
                out.append(f"{module}:{line} imports {name} ({part} is stdlib only)")
        elif top in FORBIDDEN.get(part, ()):
            out.append(f"{module}:{line} imports {name} ({part} must not import {top})")
    return out


def product_modules(root: Path) -> list[Path]:
    dirs = [root / part for part in PARTS if (root / part).is_dir()]
    return sorted(p for d in dirs for p in d.rglob("*.py"))


def test_every_product_module_keeps_the_import_rules() -> None:
    modules = product_modules(ROOT)
    assert {p.relative_to(ROOT).parts[0] for p in modules} >= {"relay", "recorder", "hep",
                                                                "storage", "rtpvault", "rtp"}
    found = [v for p in modules
             for v in violations(p.read_text(), module_name(p, ROOT), p.name == "__init__.py")]
    assert found == []


# The checker itself, on synthetic modules: each rule fires on a forbidden edge and stays quiet
# on an allowed one, so a silent checker cannot pass the test above.


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("relay.calls", "import recorder.recording\n"),
        ("relay.media.userspace", "from storage.models import Recording\n"),
        ("relay.control", "def f() -> None:\n    from hep.codec import encode\n"),
        ("relay.sdp.parse", "from rtpvault import daemon\n"),
        ("recorder.spool", "from relay.media.stream import Stream\n"),
        ("hep.qos", "import relay\n"),
        ("storage.search", "from recorder.names import escape\n"),
        ("storage.db", "from hep import codec\n"),
        ("storage.s3", "from relay.calls import Registry\n"),
        ("migrations.env", "import rtpvault.daemon\n"),
        ("hep.sender", "import importlib\nimportlib.import_module('rtpvault.homer')\n"),
        ("relay.ng.commands", "import importlib\nimportlib.import_module(f'recorder.{x}')\n"),
        ("rtp.header", "import dpkt\n"),
        ("rtp.rtcp", "from relay.media.latch import decide\n"),
        ("rtp.demux", "from hep.rtcp import rtcp_json\n"),
    ],
)
def test_checker_flags_a_forbidden_import(module: str, source: str) -> None:
    assert len(violations(source, module)) == 1


@pytest.mark.parametrize(
    ("module", "source", "is_package"),
    [
        ("relay.calls", "from relay.media.stream import Stream\nimport rtp.demux\n", False),
        ("relay.config.settings", "from .keys import KEYS\n", False),
        ("recorder.recording", "from rtp.demux import is_rtcp\nimport dpkt\n", False),
        ("hep.rtcp", "from rtp.rtcp import parse_leading\n", False),
        ("storage.db", "import sqlalchemy\nfrom storage.models import Base\n", False),
        ("migrations.env", "from storage import models\n", False),
        ("rtpvault.daemon", "import relay.calls, recorder.spool, hep.sender, storage.db\n", False),
        ("rtp.rtcp", "from __future__ import annotations\nimport struct\nfrom rtp import demux\n",
         False),
        ("rtp", "from .payload_types import STATIC\n", True),
    ],
)
def test_checker_allows_permitted_imports(module: str, source: str, is_package: bool) -> None:
    assert violations(source, module, is_package) == []


def test_checker_resolves_relative_imports() -> None:
    assert imported_names("from ..calls import Registry\n", "relay.media.kernel", False) == [
        (1, "relay.calls")]
    assert imported_names("from . import codec\n", "hep", True) == [(1, "hep")]
    assert imported_names("from .codec import x\n", "hep.rtcp", False) == [(1, "hep.codec")]
