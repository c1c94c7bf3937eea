"""The scenario data itself: loads, is big enough, and every scenario has a recorded reference."""

from __future__ import annotations

from .harness import EXPECTED_DIR, Expander, expected_path, load_scenarios, load_sdps


def test_scenarios_load_and_are_many() -> None:
    scenarios = load_scenarios()
    assert len(scenarios) >= 60


def test_deliberate_differences_are_few_and_explicit() -> None:
    differs = [s for s in load_scenarios() if s.expect_differs]
    assert len(differs) <= 10
    for s in differs:
        assert any("vault" in step for step in s.steps), s.name


def test_every_request_expands() -> None:
    sdps = load_sdps()
    for s in load_scenarios():
        ex = Expander(s, "run", sdps, lambda name: 5000)
        for step in s.steps:
            if "rtp" in step:
                continue
            if "raw" in step:
                ex.text(step["raw"])
            else:
                ex.request(step)


def test_every_scenario_has_a_recording_and_no_recording_is_orphaned() -> None:
    """Record with RTPVAULT_DIFF_RECORD=1 after adding or changing a scenario (see README)."""
    scenarios = load_scenarios()
    missing = [s.name for s in scenarios if not expected_path(s).exists()]
    assert not missing, f"no recorded rtpengine reference for {missing}"
    wanted = {expected_path(s) for s in scenarios}
    orphans = [p for p in EXPECTED_DIR.rglob("*.expected.json") if p not in wanted]
    assert not orphans, f"recordings without a scenario: {orphans}"
