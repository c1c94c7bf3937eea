"""The layout rules of docs/ARCHITECTURE.md that a reader of the tree sees (issue 16): small
modules, and packages instead of prefix families (`config_keys.py`, `ctlcommands.py`, …) at
any package's root."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("rtp", "relay", "recorder", "hep", "storage", "migrations", "rtpvault")
MAX_LINES = 600

# Pairs whose names only look like a family: each is a noun of its own.
NOT_A_FAMILY = {
    ("pcap", "pcapng"),  # two capture formats, named as Wireshark and dpkt name them
}


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


def prefix_families(names: list[str]) -> list[tuple[str, str]]:
    """Pairs (a, b) of module names in one package where b starts with a: a family of modules
    that wants to be a package."""
    stems = sorted(n for n in names if n != "__init__" and n != "__main__")
    return [
        (a, b)
        for a in stems
        for b in stems
        if a != b and b.startswith(a.rstrip("_")) and (a, b) not in NOT_A_FAMILY
    ]


def test_no_product_module_is_over_the_size_cap() -> None:
    big = {
        str(p.relative_to(REPO)): n
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert big == {}


def test_no_prefix_families_at_any_package_root() -> None:
    found = {}
    for d in sorted({p.parent for p in _modules()}):
        pairs = prefix_families([p.stem for p in d.glob("*.py")])
        if pairs:
            found[str(d.relative_to(REPO))] = pairs
    assert found == {}


def test_the_family_check_finds_a_family() -> None:
    assert prefix_families(["config", "config_keys", "ports"]) == [("config", "config_keys")]
    assert prefix_families(["ctl", "ctlcommands", "ctltext"]) == [
        ("ctl", "ctlcommands"),
        ("ctl", "ctltext"),
    ]
    assert prefix_families(["pcap", "pcapng", "wav"]) == []
