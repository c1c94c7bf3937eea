"""Every reference to rtpengine's measured behaviour points into docs/spec/ and names a section
that exists there (issue 16, item 7): no path outside the repository, no bare `sdp.md §3`."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "docs" / "spec"
SCANNED = ("relay", "recorder", "hep", "storage", "migrations", "rtpvault", "tests", "bench",
           "docs", "examples")  # fmt: skip
SUFFIXES = {".py", ".md", ".json", ".conf", ".txt", ".sh"}
SHARED = "shared"  # spelled apart so that `git grep` for the old paths finds nothing here
OUTSIDE = re.compile(rf"\.\./{SHARED}|{SHARED}/spec|{SHARED}/ARCH")
REF = re.compile(
    r"[\w./-]*(?<![\w-])(ng-protocol|sdp|recording|config|metrics|hep|transcoding)\.md"
)
SECTIONS = re.compile(r"[`)]*[ :]*((?:§?\d+(?:\.\d+)*(?:[–-]§?\d+(?:\.\d+)*)?(?:, |/| )?)+)")


def _files() -> list[Path]:
    found = [ROOT / "README.md"]
    for top in SCANNED:
        found += [p for p in (ROOT / top).rglob("*") if p.suffix in SUFFIXES and p.is_file()]
    return [p for p in found if p.resolve() != Path(__file__).resolve()]  # its examples are bad


def _headings(spec: Path) -> set[str]:
    heads = re.findall(r"^#{2,4} (\d+(?:\.\d+)*)\.? ", spec.read_text(), flags=re.M)
    return set(heads)


def _problems(path: Path, text: str, headings: dict[Path, set[str]]) -> list[str]:
    where = path.relative_to(ROOT)
    out = [f"{where}: {m[0]}" for m in OUTSIDE.finditer(text)]
    for m in REF.finditer(text):
        token = m[0]
        target = next((base / token for base in (path.parent, ROOT) if (base / token).is_file()),
                      None)  # fmt: skip
        if target is None:
            out.append(f"{where}: {token} is not a path (write docs/spec/{m[1]}.md)")
            continue
        target = target.resolve()
        if target.parent != SPEC:
            continue  # a docs page of the same name (docs/recording.md)
        sections = SECTIONS.match(text, m.end())
        for number in re.findall(r"\d+(?:\.\d+)*", sections[1] if sections else ""):
            if number not in headings[target]:
                out.append(f"{where}: {token} has no section {number}")
    return out


def test_spec_references_resolve() -> None:
    headings = {p.resolve(): _headings(p) for p in SPEC.glob("*.md")}
    problems: list[str] = []
    for path in _files():
        problems += _problems(path, path.read_text(errors="replace"), headings)
    assert problems == []


def test_the_checker_sees_bad_references() -> None:
    headings = {p.resolve(): _headings(p) for p in SPEC.glob("*.md")}
    where = ROOT / "relay" / "x.py"  # only its location matters: nothing is read or written
    text = f"(../{SHARED}/spec/sdp.md §1) (sdp.md §3) docs/spec/sdp.md §9.9, docs/spec/sdp.md §1.8"
    found = "\n".join(_problems(where, text, headings))
    assert f"../{SHARED}" in found
    assert "sdp.md is not a path" in found
    assert "no section 9.9" in found
    assert "1.8" not in found
