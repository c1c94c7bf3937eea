"""GLib key-file spelling rules (docs/spec/config.md §1), each with its own test."""

from __future__ import annotations

import pytest

from relay.config import ConfigError, Settings, parse_args, settings_from_text
from relay.config.interfaces import Resolver

RESOLVER = Resolver({"lo": ("127.0.0.1", "::1"), "eth0": ("192.0.2.2", "fd00::2")})
BASE = "interface = lo/127.0.0.1\nlisten-ng = 127.0.0.1:2223\n"


def load(body: str, *argv: str, section: str = "[rtpengine]") -> tuple[Settings, list[str]]:
    text = f"{section}\n{BASE}{body}"
    return settings_from_text(text, parse_args(list(argv)), resolver=RESOLVER, source="t.conf")


# --- 1.1 parser and sections -----------------------------------------------------------------


def test_only_the_chosen_section_is_read() -> None:
    text = f"[rtpengine]\n{BASE}timeout = 10\n[other]\ntimeout = 20\n"
    s, _ = settings_from_text(text, parse_args([]), resolver=RESOLVER)
    assert s.timeout == 10


def test_config_section_picks_another_section() -> None:
    text = f"[rtpengine]\n{BASE}timeout = 10\n[alt]\n{BASE}timeout = 20\n"
    s, _ = settings_from_text(text, parse_args(["--config-section=alt"]), resolver=RESOLVER)
    assert s.timeout == 20


def test_missing_section_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"config: file 't.conf' has no section \[nosuch\]"):
        load("", "--config-section=nosuch")


def test_a_section_given_twice_is_merged() -> None:
    text = f"[rtpengine]\n{BASE}timeout = 10\n[x]\n[rtpengine]\ndelete-delay = 5\n"
    s, _ = settings_from_text(text, parse_args([]), resolver=RESOLVER)
    assert (s.timeout, s.delete_delay) == (10, 5)


def test_key_names_are_case_sensitive() -> None:
    s, warnings = load("Timeout = 10\n")
    assert s.timeout == 60
    assert any("unknown key 'Timeout'" in w for w in warnings)


def test_key_before_any_section_is_an_error() -> None:
    with pytest.raises(ConfigError, match="line 1: key 'timeout' comes before any"):
        settings_from_text("timeout = 1\n[rtpengine]\n", parse_args([]), resolver=RESOLVER)


def test_whitespace_around_group_header_and_crlf() -> None:
    text = f"  [rtpengine]  \n{BASE}timeout = 9\n".replace("\n", "\r\n")
    s, _ = settings_from_text(text, parse_args([]), resolver=RESOLVER)
    assert s.timeout == 9


# --- 1.2 comments and whitespace -------------------------------------------------------------


def test_hash_comments_and_blank_lines() -> None:
    s, warnings = load("# a comment\n\n   # indented comment\n   \ntimeout = 11\n")
    assert s.timeout == 11
    assert warnings == []


def test_semicolon_line_is_not_a_comment() -> None:
    with pytest.raises(ConfigError, match=r"line 4: '; comment' is not a key-value pair.*use '#'"):
        load("; comment\n")


def test_trailing_comment_on_integer_is_dropped_quietly_by_glib_and_loudly_by_us() -> None:
    s, warnings = load("timeout = 77 # seconds\n")
    assert s.timeout == 77
    assert any("key 'timeout'" in w and "trailing comment '# seconds'" in w for w in warnings)


def test_integer_with_glued_hash_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"key 'timeout' value '60#x': not an integer"):
        load("timeout = 60#x\n")


def test_integer_whitespace_separated_tail_is_ignored_with_warning() -> None:
    s, warnings = load("timeout = 77 seconds\n")
    assert s.timeout == 77
    assert any("trailing text 'seconds'" in w for w in warnings)


def test_trailing_comment_on_string_is_stripped_with_warning() -> None:
    s, warnings = load("listen-cli = 127.0.0.1:2224 # cli\n")
    assert s.listen_cli == ("127.0.0.1", 2224)
    assert any("key 'listen-cli'" in w and "trailing comment" in w for w in warnings)


def test_trailing_comment_on_boolean_is_stripped_with_warning() -> None:
    s, warnings = load("foreground = true # yes\n")
    assert s.foreground is True
    assert any("key 'foreground'" in w for w in warnings)


def test_hash_inside_a_string_without_blank_is_kept() -> None:
    s, _ = load("homer-password = abc#def\n")
    assert s.homer_password == "abc#def"


def test_trailing_blanks_of_string_values_are_trimmed() -> None:
    s, _ = load("pidfile = /run/x.pid   \t\n")
    assert s.pidfile == "/run/x.pid"


def test_quotes_are_literal() -> None:
    s, _ = load('pidfile = "/run/x.pid"\n')
    assert s.pidfile == '"/run/x.pid"'


def test_glib_escapes_in_strings() -> None:
    s, _ = load("homer-password = a\\sb\\\\c\\td\n")
    assert s.homer_password == "a b\\c\td"


def test_invalid_escape_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"key 'pidfile' value '/x\\q': invalid escape"):
        load("pidfile = /x\\q\n")


def test_escape_at_end_of_line_is_an_error() -> None:
    with pytest.raises(ConfigError, match="escape character"):
        load("pidfile = /x\\\n")


# --- 1.3 value types -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("1", True), ("false", False), ("0", False), ("true  ", True)],
)
def test_glib_booleans_are_quiet(text: str, value: bool) -> None:
    s, warnings = load(f"foreground = {text}\n")
    assert s.foreground is value
    assert warnings == []


@pytest.mark.parametrize(
    ("text", "value"),
    [("yes", True), ("no", False), ("on", True), ("off", False), ("True", True), ("FALSE", False)],
)
def test_non_glib_booleans_are_accepted_with_a_warning(text: str, value: bool) -> None:
    s, warnings = load(f"sip-source = {text}\n")
    assert s.sip_source is value
    spelled = "true" if value else "false"
    assert warnings == [
        f"config: key 'sip-source' value '{text}': read as {spelled}, but rtpengine (GLib) "
        f"accepts only true/false/1/0 and refuses to start - write 'sip-source = {spelled}'"
    ]


def test_bad_boolean_is_an_error() -> None:
    with pytest.raises(ConfigError) as e:
        load("foreground = maybe\n")
    assert (
        str(e.value)
        == "config: key 'foreground' value 'maybe': not a boolean (write true or false)"
    )


@pytest.mark.parametrize("text", ["0xb8", "1e2", "", "abc", "+", "12.5"])
def test_integers_are_decimal_only(text: str) -> None:
    with pytest.raises(ConfigError) as e:
        load(f"tos = {text}\n")
    assert str(e.value) == f"config: key 'tos' value '{text}': not an integer"


def test_integer_sign_is_allowed() -> None:
    s, _ = load("table = -1\nmax-sessions = +5\n")
    assert (s.table, s.max_sessions) == (-1, 5)


def test_integer_out_of_32_bit_range() -> None:
    with pytest.raises(ConfigError, match="value '2147483648': integer out of range"):
        load("timeout = 2147483648\n")


def test_uint64_key() -> None:
    s, _ = load("max-bandwidth = 18446744073709551615\n")
    assert s.max_bandwidth == 2**64 - 1
    with pytest.raises(ConfigError, match="key 'max-bandwidth' value '-1': not an unsigned"):
        load("max-bandwidth = -1\n")


def test_double_key() -> None:
    s, _ = load("max-load = 0.75\nmax-cpu = 1e1\n")
    assert (s.max_load, s.max_cpu) == (0.75, 10.0)
    with pytest.raises(ConfigError, match="key 'max-load' value '0,5': not a number"):
        load("max-load = 0,5\n")


# --- 1.4 lists and repeated keys -------------------------------------------------------------


def test_list_with_semicolons() -> None:
    s, _ = load("interface = a/127.0.0.1;b/192.0.2.2\n")
    assert [(i.name, i.local) for i in s.interfaces] == [("a", "127.0.0.1"), ("b", "192.0.2.2")]


def test_trailing_semicolon_is_harmless() -> None:
    s, warnings = load("interface = 127.0.0.1;\n")
    assert [i.local for i in s.interfaces] == ["127.0.0.1"]
    assert warnings == []


def test_blank_after_semicolon_is_forgiven_loudly() -> None:
    s, warnings = load("interface = lo/127.0.0.1; pub/192.0.2.2\n")
    assert [i.name for i in s.interfaces] == ["lo", "pub"]
    assert any("blank after ';'" in w and "(' pub/192.0.2.2')" in w for w in warnings)


def test_escaped_semicolon_in_list_is_literal() -> None:
    s, _ = load("ng-allow = 127.0.0.1\\;x\n", "--ng-allow=10.0.0.0/8")
    assert [str(n) for n in s.ng_allow] == ["10.0.0.0/8"]
    assert s.raw["ng-allow"] == "10.0.0.0/8"


def test_repeated_key_last_one_wins() -> None:
    s, _ = load("interface = a/192.0.2.2\ntimeout = 5\ntimeout = 6\n")
    assert [i.name for i in s.interfaces] == ["a"]
    assert s.timeout == 6


# --- 1.5 precedence --------------------------------------------------------------------------


def test_command_line_overrides_file_per_option() -> None:
    s, _ = load("port-min = 44600\nport-max = 44610\n", "--port-max=44620")
    assert (s.port_min, s.port_max) == (44600, 44620)


def test_command_line_list_replaces_file_list() -> None:
    s, _ = load("", "--interface=pub/192.0.2.2")
    assert [(i.name, i.local) for i in s.interfaces] == [("pub", "192.0.2.2")]


def test_command_line_list_accumulates_repeats() -> None:
    s, _ = load("", "-i", "a/127.0.0.1", "--interface", "b/192.0.2.2")
    assert [i.name for i in s.interfaces] == ["a", "b"]


def test_command_line_flag_can_switch_off_a_file_flag() -> None:
    s, _ = load("foreground = true\n", "--foreground=false")
    assert s.foreground is False


def test_command_line_integers_follow_strtol_base_zero() -> None:
    s, _ = load("", "--tos=0xb8", "--timeout=010")
    assert (s.tos, s.timeout) == (184, 8)


def test_command_line_bad_value_names_the_option() -> None:
    with pytest.raises(ConfigError) as e:
        load("", "--port-min=abc")
    assert str(e.value) == "command line: option '--port-min' value 'abc': not an integer"


@pytest.mark.parametrize(
    ("key", "default", "value"),
    [("timeout", 60, "0"), ("silent-timeout", 3600, "-5"), ("offer-timeout", 3600, "0")],
)
def test_zero_or_less_means_default(key: str, default: int, value: str) -> None:
    s, _ = load(f"{key} = {value}\n")
    assert getattr(s, key.replace("-", "_")) == default


def test_final_timeout_zero_or_less_is_off() -> None:
    s, _ = load("final-timeout = -3\n")
    assert s.final_timeout == 0
