"""relay.cint: C strtoll/strtoull on digit runs of any length (Python's int() stops at 4,300)."""

from __future__ import annotations

import sys

from hypothesis import given
from hypothesis import strategies as st

from relay.cint import INT64_MAX, INT64_MIN, UINT64_MAX, strtoll, strtoull

_digits = st.text("0123456789", min_size=1, max_size=6000)


def _exact(text: str) -> int:
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        return int(text)
    finally:
        sys.set_int_max_str_digits(before)


@given(st.sampled_from(["", "+", "-"]), _digits)
def test_strtoll_clamps_like_c(sign: str, digits: str) -> None:
    expected = max(INT64_MIN, min(INT64_MAX, _exact(sign + digits)))
    assert strtoll(sign + digits) == expected
    assert strtoll((sign + digits).encode()) == expected


@given(_digits)
def test_strtoull_clamps_like_c(digits: str) -> None:
    assert strtoull(digits) == min(UINT64_MAX, _exact(digits))


def test_edges() -> None:
    assert strtoll("9223372036854775807") == INT64_MAX
    assert strtoll("9223372036854775808") == INT64_MAX
    assert strtoll("-9223372036854775808") == INT64_MIN
    assert strtoll("-" + "0" * 5000 + "12") == -12
    assert strtoull("18446744073709551616") == UINT64_MAX
