"""rtpengine 10.5's option reading and DTMF code rules for the commands rtpvault does not do."""

from __future__ import annotations

import pytest

from relay.ng.errors import NgError
from relay.ng.unimplemented import dtmf_code, option


def test_option_last_spelling_wins_and_wrong_types_clear() -> None:
    assert option({"call-id": "a", "call ID": "b"}, "call-id", "call ID") == "b"
    assert option({"call-id": "a", "call ID": 5}, "call-id", "call ID") is None
    assert option({}, "label") is None


@pytest.mark.parametrize(
    ("value", "code"),
    [(0, 0), (15, 15), (49, 1), ("1", 1), ("A", 12), ("#", 11), ("*", 10), ("12", 12), (65, 12)],
)
def test_dtmf_code(value: object, code: int) -> None:
    assert dtmf_code({"code": value}) == code


@pytest.mark.parametrize("body", [{}, {"code": 16}, {"code": "x"}, {"digit": 300}, {"code": "a"}])
def test_dtmf_code_out_of_range(body: dict[str, object]) -> None:
    with pytest.raises(NgError, match="Out of range 'code' specified"):
        dtmf_code(body)
