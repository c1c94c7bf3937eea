"""Config values quoted in warnings and errors are cut at 200 characters (issue 15, item 17):
a runaway value (a pasted file, a missing newline) gives one readable line, not a flood."""

from __future__ import annotations

import pytest

from relay.config import ConfigError, parse_args, settings_from_text
from relay.config.interfaces import Resolver
from relay.config.keyfile import MAX_SHOWN, shown

RESOLVER = Resolver({"lo": ("127.0.0.1", "::1")})
BASE = "[rtpengine]\ninterface = lo/127.0.0.1\nlisten-ng = 127.0.0.1:2223\n"
LONG = "9" * 5000
BOUND = 3 * MAX_SHOWN + 200  # at most three quoted values and the fixed words of a message


def error(text: str, *argv: str) -> str:
    with pytest.raises(ConfigError) as e:
        settings_from_text(text, parse_args(list(argv)), resolver=RESOLVER)
    return str(e.value)


def warnings(text: str) -> list[str]:
    return settings_from_text(text, parse_args([]), resolver=RESOLVER)[1]


def test_shown_cuts_and_says_how_long() -> None:
    assert shown("abc") == "abc"
    assert shown("x" * MAX_SHOWN) == "x" * MAX_SHOWN
    assert shown("x" * 5000) == "x" * MAX_SHOWN + "... (5000 characters)"


@pytest.mark.parametrize(
    ("text", "argv"),
    [
        (BASE + f"port-min = {LONG}\n", ()),
        (BASE, (f"--port-min={LONG}",)),
        (BASE + f"listen-tcp-ng = 127.0.0.1:{LONG}\n", ()),
        ("[rtpengine]\nlisten-ng = 127.0.0.1:2223\n" + f"interface = {'x' * 5000}\n", ()),
        (BASE + f"{'k' * 5000}\n", ()),
        (BASE, (f"unexpected-{'a' * 5000}",)),
    ],
    ids=["file-int", "cli-int", "listen-port", "interface", "not-a-pair", "cli-argument"],
)
def test_errors_quote_at_most_200_characters(text: str, argv: tuple[str, ...]) -> None:
    message = error(text, *argv)
    assert len(message) < BOUND, message[:300]
    assert "characters)" in message


@pytest.mark.parametrize(
    "body",
    [
        f"listen-cli = 127.0.0.1:9900 # {'c' * 5000}\n",  # trailing comment
        f"{'unknown-' * 600} = 1\n",  # unknown key
        f"timeout = 60 {'t' * 5000}\n",  # trailing text after a number
    ],
    ids=["comment", "unknown-key", "trailing-text"],
)
def test_warnings_quote_at_most_200_characters(body: str) -> None:
    found = [w for w in warnings(BASE + body) if "characters)" in w]
    assert found and all(len(w) < BOUND for w in found), found
