"""pyproject's runtime dependencies say the truth: each one is imported by the product.

A dependency only the tests use belongs in the `test` extra. A database driver is loaded by
SQLAlchemy from the `recording-db` URL rather than imported: DRIVERS names the URL form that
loads it, and that form must be the one docs/storage.md documents.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("rtp", "relay", "recorder", "hep", "storage", "migrations", "rtpvault")

IMPORT_NAMES = {
    "click": "click",
    "sqlalchemy": "sqlalchemy",
    "alembic": "alembic",
    "dpkt": "dpkt",
    "boto3": "boto3",
    "prometheus-client": "prometheus_client",
    "psycopg": "psycopg",
    "pylibsrtp": "pylibsrtp",
    "cryptography": "cryptography",
    "bencode.py": "bencode",
    "scapy": "scapy",
    "uvloop": "uvloop",
    "pyopenssl": "OpenSSL",
    "aioice": "aioice",
}
"""Distribution name → the top-level module it installs."""

DRIVERS = {"psycopg": "postgresql+psycopg://"}
"""Distributions SQLAlchemy imports for a URL scheme; the product only names the scheme."""


def runtime_dependencies(pyproject: str) -> list[str]:
    """Distribution names of [project].dependencies, extras and versions stripped."""
    deps = tomllib.loads(pyproject)["project"]["dependencies"]
    return [re.split(r"[\[<>=!~; ]", d, maxsplit=1)[0].lower() for d in deps]


def imported_tops(root: Path) -> set[str]:
    """Top-level names of every module the product imports, lazy imports included."""
    tops: set[str] = set()
    for part in PARTS:
        for path in (root / part).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    tops |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    tops.add(node.module.split(".")[0])
    return tops


def unused(deps: list[str], tops: set[str], documented: str) -> list[str]:
    """The dependencies the product neither imports nor loads through a documented URL."""
    out = []
    for dist in deps:
        if dist in DRIVERS:
            if DRIVERS[dist] not in documented:
                out.append(dist)
        elif IMPORT_NAMES.get(dist, dist.replace("-", "_")) not in tops:
            out.append(dist)
    return out


def test_every_runtime_dependency_is_used_by_the_product() -> None:
    deps = runtime_dependencies((ROOT / "pyproject.toml").read_text())
    documented = (ROOT / "docs" / "storage.md").read_text()
    assert unused(deps, imported_tops(ROOT), documented) == []


def test_a_dependency_only_tests_use_is_reported() -> None:
    pyproject = '[project]\ndependencies = ["click>=8.1", "bencode.py>=4.0", "scapy>=2.5",' \
                ' "psycopg[binary]>=3.1"]\n'
    deps = runtime_dependencies(pyproject)
    assert deps == ["click", "bencode.py", "scapy", "psycopg"]
    assert unused(deps, {"click"}, "postgresql+psycopg://x") == ["bencode.py", "scapy"]
    assert unused(deps, {"click", "bencode", "scapy"}, "sqlite only") == ["psycopg"]
