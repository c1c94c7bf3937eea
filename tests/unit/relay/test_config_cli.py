"""parse_args: rtpengine's long and short options."""

from __future__ import annotations

import pytest

from relay.config import ConfigError, parse_args, usage
from relay.config.keys import KEYS


def test_long_forms_and_flags() -> None:
    cmd = parse_args(["--port-min=1000", "--port-max", "2000", "--foreground", "--log-stderr"])
    assert dict(cmd.options) == {
        "port-min": "1000",
        "port-max": "2000",
        "foreground": "true",
        "log-stderr": "true",
    }
    assert (cmd.config_file, cmd.config_section, cmd.help, cmd.version) == (
        None,
        "rtpengine",
        False,
        False,
    )


def test_config_file_and_section_are_separate() -> None:
    cmd = parse_args(["--config-file=none", "--config-section", "alt"])
    assert (cmd.config_file, cmd.config_section, dict(cmd.options)) == ("none", "alt", {})


def test_short_options_and_clusters() -> None:
    cmd = parse_args(["-fE", "-m", "100", "-M200", "-i", "a/127.0.0.1", "-ib/127.0.0.2"])
    assert dict(cmd.options) == {
        "foreground": "true",
        "log-stderr": "true",
        "port-min": "100",
        "port-max": "200",
        "interface": ("a/127.0.0.1", "b/127.0.0.2"),
    }


def test_duplicate_short_letters_follow_rtpengines_help() -> None:
    assert dict(parse_args(["-F"]).options) == {"no-fallback": "true"}
    assert dict(parse_args(["-y", "1"]).options) == {"redis-delete-async": "1"}


def test_help_and_version() -> None:
    assert parse_args(["-h"]).help and parse_args(["--help"]).help
    assert parse_args(["-v"]).version and parse_args(["--version"]).version


def test_scalar_repeats_last_wins() -> None:
    assert parse_args(["--tos=1", "--tos=2"]).options["tos"] == "2"


def test_value_may_start_with_a_dash() -> None:
    assert parse_args(["--table", "-1"]).options["table"] == "-1"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bogus-opt"], "command line: unknown option '--bogus-opt'"),
        (["--bogus=1"], "command line: unknown option '--bogus'"),
        (["-Z"], "command line: unknown option '-Z'"),
        (["--port-min"], "command line: option '--port-min' needs a value"),
        (["-m"], "command line: option '-m' needs a value"),
        (["stray"], "command line: unexpected argument 'stray'"),
        (["--", "stray"], "command line: unexpected argument 'stray'"),
    ],
)
def test_errors_name_the_option(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_args(argv)
    assert str(e.value) == message


def test_every_key_is_an_option() -> None:
    for key in KEYS:
        assert key.name in parse_args([f"--{key.name}=1"]).options or key.name.startswith("config-")


def test_usage_lists_every_option() -> None:
    text = usage()
    assert all(f"--{k.name}" in text for k in KEYS)
    assert "-i, --interface=LIST" in text
