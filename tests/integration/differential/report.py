"""Print which differential scenarios differ, with the first differing step of each.

    .venv/bin/python -m tests.integration.differential.report [-v] [name-substring ...]

Same environment switches as the test (relays.py); starts and stops its own relays.
"""

from __future__ import annotations

import difflib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from .harness import Scenario, expected_for_target, load_expected, load_scenarios, matches
from .relays import REFERENCE, TARGET, Relays


def first_difference(
    scenario: Scenario, expected: list[Any], got: list[Any], lines: int = 8
) -> str:
    for i, (e, g) in enumerate(zip(expected, got, strict=True), 1):
        if not matches(e, g):
            a = json.dumps(e, indent=1).splitlines()
            b = json.dumps(g, indent=1).splitlines()
            diff = [
                line
                for line in difflib.unified_diff(a, b, "reference", TARGET, n=0, lineterm="")
                if not line.startswith(("---", "+++", "@@"))
            ]
            if lines <= 0:
                return f"step {i}:\n" + "\n".join(diff)
            return f"step {i}: " + " | ".join(x.strip() for x in diff[:lines])
    return "same"


def main(argv: list[str]) -> int:
    verbose = "-v" in argv
    argv = [a for a in argv if a != "-v"]
    scenarios = [s for s in load_scenarios() if not argv or any(a in s.name for a in argv)]
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        relays = Relays(Path(tmp))
        try:
            for sc in scenarios:
                with relays.pair_for(sc) as pair:
                    if REFERENCE == "live":
                        reference = pair.player("reference").play(sc)
                    else:
                        reference = load_expected(sc)
                    got = pair.player("target").play(sc)
                expected = expected_for_target(sc, reference) if TARGET == "rtpvault" else reference
                if not matches(expected, got):
                    failed += 1
                    diff = first_difference(sc, expected, got, 0 if verbose else 8)
                    print(f"DIFF {sc.topic}/{sc.name}: {diff}")
        finally:
            relays.stop()
    print(f"{failed} of {len(scenarios)} scenarios differ")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
