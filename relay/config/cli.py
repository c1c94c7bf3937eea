"""rtpengine-style command line: GLib long options (and the short ones `--help` lists).

Values stay text here; relay.config converts them with the key file's rules so both sources
give the same types and the same error messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .keyfile import ConfigError, shown
from .keys import BY_NAME, BY_SHORT, Key, Kind

OptionValue = str | tuple[str, ...]


@dataclass(frozen=True)
class CommandLine:
    """What the command line said: file choice, help/version, and per-key text values.

    A flag given without a value is stored as "true"; a repeated list option accumulates.
    """

    config_file: str | None = None  # None: rtpengine's default file, if it exists
    config_section: str = "rtpengine"
    options: Mapping[str, OptionValue] = field(default_factory=lambda: MappingProxyType({}))
    help: bool = False
    version: bool = False


def _store(opts: dict[str, OptionValue], key: Key, value: str) -> None:
    if key.kind is Kind.LIST:
        prev = opts.get(key.name, ())
        opts[key.name] = (*prev, value) if isinstance(prev, tuple) else (value,)
    else:
        opts[key.name] = value  # scalars: the last one wins, as in GLib


def _long(arg: str, rest: list[str], opts: dict[str, OptionValue]) -> None:
    name, eq, value = arg[2:].partition("=")
    key = BY_NAME.get(name)
    if key is None:
        raise ConfigError(f"command line: unknown option '--{name}'")
    if key.kind is Kind.BOOL:
        # rtpvault extension: `--flag=false` lets the command line switch a file's flag off.
        _store(opts, key, value if eq else "true")
        return
    if not eq:
        if not rest:
            raise ConfigError(f"command line: option '--{name}' needs a value")
        value = rest.pop(0)
    _store(opts, key, value)


def _short(arg: str, rest: list[str], opts: dict[str, OptionValue], flags: set[str]) -> None:
    i = 1
    while i < len(arg):
        letter = arg[i]
        if letter in "hv":
            flags.add(letter)
            i += 1
            continue
        key = BY_SHORT.get(letter)
        if key is None:
            raise ConfigError(f"command line: unknown option '-{letter}'")
        if key.kind is Kind.BOOL:
            _store(opts, key, "true")
            i += 1
            continue
        value = arg[i + 1 :]
        if value == "":
            if not rest:
                raise ConfigError(f"command line: option '-{letter}' needs a value")
            value = rest.pop(0)
        _store(opts, key, value)
        return


def parse_args(argv: list[str]) -> CommandLine:
    """Parse options (without the program name). Unknown options raise ConfigError."""
    rest = list(argv)
    opts: dict[str, OptionValue] = {}
    flags: set[str] = set()
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            if rest:
                raise ConfigError(f"command line: unexpected argument '{shown(rest[0])}'")
            break
        if arg in ("--help", "-h"):
            flags.add("h")
        elif arg == "--version":
            flags.add("v")
        elif arg.startswith("--"):
            _long(arg, rest, opts)
        elif arg.startswith("-") and len(arg) > 1:
            _short(arg, rest, opts, flags)
        else:
            raise ConfigError(f"command line: unexpected argument '{shown(arg)}'")
    config_file = opts.pop("config-file", None)
    section = opts.pop("config-section", "rtpengine")
    return CommandLine(
        config_file=config_file if isinstance(config_file, str) else None,
        config_section=section if isinstance(section, str) else "rtpengine",
        options=MappingProxyType(opts),
        help="h" in flags,
        version="v" in flags,
    )


def usage() -> str:
    """`--help` text: every option with its short name and type, as rtpengine lists them."""
    lines = ["Usage:", "  rtpvault run [OPTION...]  - rtpengine-compatible media relay", ""]
    for key in BY_NAME.values():
        short = f"-{key.short}, " if key.short else ""
        arg = "" if key.kind is Kind.BOOL else f"={key.kind.value.upper()}"
        lines.append(f"  {short}--{key.name}{arg}".ljust(50) + f" {key.doc}")
    return "\n".join(lines) + "\n"
