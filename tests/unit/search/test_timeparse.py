"""storage.timeparse: ISO, relative and named times; durations; clear errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.timeparse import TimeParseError, parse_duration, parse_time

NOW = datetime(2026, 11, 25, 15, 30, 0, tzinfo=UTC)
T = NOW.timestamp()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", T),
        ("2h", T - 7200),
        ("3d", T - 3 * 86400),
        ("90s", T - 90),
        ("15m", T - 900),
        ("1w", T - 604800),
        ("1h30m", T - 5400),
        ("2h ago", T - 7200),
        ("today", datetime(2026, 11, 25, tzinfo=UTC).timestamp()),
        ("yesterday", datetime(2026, 11, 24, tzinfo=UTC).timestamp()),
        ("2026-11-24", datetime(2026, 11, 24, tzinfo=UTC).timestamp()),
        ("2026-11-24T10:00", datetime(2026, 11, 24, 10, tzinfo=UTC).timestamp()),
        ("2026-11-24 10:00:05Z", datetime(2026, 11, 24, 10, 0, 5, tzinfo=UTC).timestamp()),
        ("2026-11-24T10:00:00+01:00", datetime(2026, 11, 24, 9, tzinfo=UTC).timestamp()),
        ("@1764028800.5", 1764028800.5),
    ],
)
def test_forms(text: str, expected: float) -> None:
    assert parse_time(text, NOW, UTC) == pytest.approx(expected)


def test_naive_times_use_the_given_zone() -> None:
    plus2 = timezone(timedelta(hours=2))
    assert (
        parse_time("2026-11-24T10:00", NOW, plus2)
        == datetime(2026, 11, 24, 8, tzinfo=UTC).timestamp()
    )
    # yesterday is midnight in that zone, not in UTC
    assert parse_time("yesterday", NOW, plus2) == datetime(2026, 11, 23, 22, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("text", ["", "soon", "2x", "-3d", "2026-13-01", "@abc", "h2", "d"])
def test_bad_times_name_the_accepted_forms(text: str) -> None:
    with pytest.raises(TimeParseError, match="bad time|empty time") as err:
        parse_time(text, NOW, UTC)
    assert "ISO 8601" in str(err.value) or "Unix seconds" in str(err.value)


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_time("2h", datetime(2026, 1, 1), UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90d", 90 * 86400), ("2h", 7200), ("1h30m", 5400), ("45", 45), ("2.5", 2.5), ("1.5m", 90)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "-5", "3 days", "d90", "1y"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(TimeParseError, match="bad duration"):
        parse_duration(text)


@given(st.text(max_size=30))
def test_any_text_is_a_time_or_our_error(text: str) -> None:
    try:
        value = parse_time(text, NOW, UTC)
    except TimeParseError:
        return
    assert isinstance(value, float)


@given(st.text(max_size=20))
def test_any_text_is_a_duration_or_our_error(text: str) -> None:
    try:
        value = parse_duration(text)
    except TimeParseError:
        return
    assert value >= 0


@given(st.integers(0, 10**6), st.sampled_from("smhdw"))
def test_relative_is_now_minus_duration(n: int, unit: str) -> None:
    assert parse_time(f"{n}{unit}", NOW, UTC) == pytest.approx(T - parse_duration(f"{n}{unit}"))
