"""Property tests: any text gives Settings or ConfigError, never another exception."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.config import ConfigError, Settings, parse_args, settings_from_text
from relay.config.interfaces import Resolver
from relay.config.keyfile import parse_key_file
from relay.config.keys import KEYS

R = Resolver(
    {"lo": ("127.0.0.1", "::1"), "eth0": ("192.0.2.2", "fd00::2")},
    lambda h: ("127.0.0.1",) if h == "localhost" else (),
)
BASE = "[rtpengine]\ninterface = lo/127.0.0.1\nlisten-ng = 127.0.0.1:2223\n"

names = st.sampled_from([k.name for k in KEYS] + ["bogus", "Timeout", "a[de]", "[x", "=v"])
values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "true",
            "yes",
            "0",
            "-1",
            "65536",
            "184 # c",
            "127.0.0.1:2223",
            "[::1]:9",
            "eth0/203.0.113.10",
            "a;b; c;",
            "\\s\\q",
            "0x10",
            "1e2",
            "pcapng",
            "17",
        ]
    ),
)
lines = st.one_of(
    st.builds(lambda k, v: f"{k} = {v}", names, values),
    st.text(max_size=40),
    st.sampled_from(["[rtpengine]", "[other]", "# c", "; c", "", "  [ x ]  "]),
)


def outcome(text: str, argv: list[str]) -> Settings | ConfigError:
    try:
        return settings_from_text(text, parse_args(argv), resolver=R)[0]
    except ConfigError as e:
        return e


@settings(max_examples=400, deadline=None)
@given(st.lists(lines, max_size=12))
def test_random_key_files_give_settings_or_config_error(body: list[str]) -> None:
    result = outcome(BASE + "\n".join(body), [])
    assert isinstance(result, (Settings, ConfigError))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_gives_settings_or_config_error(text: str) -> None:
    assert isinstance(outcome(text, []), (Settings, ConfigError))
    assert isinstance(outcome(BASE + text, []), (Settings, ConfigError))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(st.builds(lambda k, v: f"--{k}={v}", names, values), st.text(max_size=15)),
        max_size=6,
    )
)
def test_random_command_lines_give_settings_or_config_error(argv: list[str]) -> None:
    result = outcome(BASE, argv)
    assert isinstance(result, (Settings, ConfigError))


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=2**31 - 1), st.sampled_from(["", "  ", " # note"]))
def test_integers_round_trip(number: int, tail: str) -> None:
    result = outcome(f"{BASE}timeout = {number}{tail}\n", [])
    assert isinstance(result, Settings) and result.timeout == number


def _glib_escape(text: str) -> str:
    # As g_key_file_set_string writes it (GLib itself cannot keep a leading \v or \f).
    out = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    return "\\s" + out[1:] if out.startswith(" ") else out


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=30).filter(
        lambda t: (
            t == t.rstrip(" \t\n\r\x0b\x0c")
            and t[0] not in "\x0b\x0c"
            and " #" not in t
            and "\t#" not in t
        )
    )
)
def test_escaped_strings_read_back(text: str) -> None:
    result = outcome(f"{BASE}homer-password = {_glib_escape(text)}\n", [])
    assert isinstance(result, Settings) and result.homer_password == text


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.from_regex(r"[a-z][a-z-]{0,10}", fullmatch=True),
        st.from_regex(r"[a-z0-9]{0,8}", fullmatch=True),
        max_size=8,
    )
)
def test_last_duplicate_wins(entries: dict[str, str]) -> None:
    body = "".join(f"{k} = old\n" for k in entries) + "".join(
        f"{k} = {v}\n" for k, v in entries.items()
    )
    group = parse_key_file("[g]\n" + body).groups["g"]
    assert {k: e.value for k, e in group.items()} == entries
