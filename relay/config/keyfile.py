"""GLib key-file reading and GLib's value spellings, as rtpengine 10.5 sees them.

Pure: text in, values out. The rules are GLib 2.74's (`gkeyfile.c`, see
docs/spec/config.md §1); where rtpengine's behaviour is a trap (yes/no booleans, trailing
`# comments`, spaces after `;`) rtpvault accepts the value and returns a warning saying what
rtpengine would do. Anything that cannot be read raises ConfigError naming key, value and reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# g_ascii_isspace: GLib strips exactly these around keys and values.
ASCII_WS = " \t\n\r\x0b\x0c"
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
UINT64_MAX = 2**64 - 1


class ConfigError(ValueError):
    """A configuration problem that stops start-up; the message names key, value and reason."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One `key = value` line: value exactly as written after `=` (leading blanks dropped)."""

    value: str
    line: int


@dataclass(frozen=True, slots=True)
class KeyFile:
    """Groups in file order; duplicate groups merged and duplicate keys last-wins, as GLib."""

    groups: dict[str, dict[str, Entry]] = field(default_factory=dict)


MAX_SHOWN = 200
"""Characters of a config value (or key, path, argument) quoted in a warning or error."""


def shown(value: object) -> str:
    """`value` for a log line or error: cut at MAX_SHOWN characters, saying how long it was, so a
    runaway value (a pasted file, a missing newline) cannot flood the log."""
    text = str(value)
    if len(text) <= MAX_SHOWN:
        return text
    return f"{text[:MAX_SHOWN]}... ({len(text)} characters)"


def quoted(key: str, value: object, *, cli: bool = False) -> str:
    """`config: key 'K' value 'V'` (`command line: option '--K' value 'V'`), both cut by shown."""
    if cli:
        return f"command line: option '--{shown(key)}' value '{shown(value)}'"
    return f"config: key '{shown(key)}' value '{shown(value)}'"


def bad_value(key: str, value: str, reason: str, *, cli: bool = False) -> ConfigError:
    """The one shape of a value error: `config: key 'K' value 'V': reason`."""
    return ConfigError(f"{quoted(key, value, cli=cli)}: {reason}")


def _is_group_line(line: str) -> bool:
    # GLib: '[' ... first ']' then only spaces/tabs.
    if not line.startswith("["):
        return False
    close = line.find("]")
    return close > 0 and line[close + 1 :].strip(" \t") == ""


def _valid_key_name(key: str) -> bool:
    base, bracket, locale = key.partition("[")
    if not base or base[0] == " " or base[-1] == " " or "]" in base:
        return False
    if not bracket:
        return True
    # `key[locale]`: GLib allows alphanumerics and -_.@ inside the brackets.
    return re.fullmatch(r"[\w\-.@]+\]", locale) is not None


def parse_key_file(text: str) -> KeyFile:
    """Parse a GLib key file (`g_key_file_load_from_data`, no flags)."""
    kf = KeyFile()
    current: dict[str, Entry] | None = None
    text = text.removeprefix("\ufeff")  # a UTF-8 BOM is an editor artefact, not content
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        body = line.lstrip(ASCII_WS)
        if body == "" or body.startswith("#"):
            continue
        if _is_group_line(body):
            name = body[1 : body.find("]")]
            if name == "" or "[" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
                raise ConfigError(f"config: line {number}: invalid group name '{shown(name)}'")
            current = kf.groups.setdefault(name, {})
            continue
        eq = body.find("=")
        if eq <= 0:
            hint = " (';' does not start a comment in a GLib key file; use '#')" * body.startswith(
                ";"
            )
            raise ConfigError(
                f"config: line {number}: '{shown(line)}' is not a key-value pair, group, or "
                f"comment{hint}"
            )
        key = body[:eq].rstrip(ASCII_WS)
        if not _valid_key_name(key):
            raise ConfigError(f"config: line {number}: invalid key name '{shown(key)}'")
        if current is None:
            raise ConfigError(
                f"config: line {number}: key '{shown(key)}' comes before any [section]"
            )
        current.pop(key, None)  # re-insert so the dict's order is the effective order
        current[key] = Entry(body[eq + 1 :].lstrip(ASCII_WS), number)
    return kf


# --- value spellings -------------------------------------------------------------------------

_TRAILING_COMMENT = re.compile(r"[ \t]+#")


def strip_trailing_comment(key: str, value: str, warnings: list[str]) -> str:
    """Drop ` # comment` (GLib has no trailing comments; rtpengine keeps the text)."""
    m = _TRAILING_COMMENT.search(value)
    if m is None:
        return value
    warnings.append(
        f"{quoted(key, value)}: trailing comment '{shown(value[m.end() - 1 :])}' "
        f"ignored; GLib has no trailing comments and rtpengine reads it as part of the value "
        f"(fatal for strings, booleans and addresses) - put comments on their own line"
    )
    return value[: m.start()]


_ESCAPES = {"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}


def _unescape(key: str, value: str, *, split: bool) -> list[str]:
    """GLib's string unescaping; with split, unescaped ';' separates list elements."""
    pieces: list[str] = []
    out: list[str] = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == "\\":
            if i + 1 >= len(value):
                raise bad_value(key, value, "escape character '\\' at end of line")
            nxt = value[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
            elif split and nxt == ";":
                out.append(";")
            else:
                raise bad_value(key, value, f"invalid escape sequence '\\{nxt}'")
            i += 2
            continue
        if split and c == ";":
            pieces.append("".join(out))
            out = []
        else:
            out.append(c)
        i += 1
    if not split or out:  # GLib drops the empty piece after a trailing ';'
        pieces.append("".join(out))
    return pieces


def file_string(key: str, value: str, warnings: list[str]) -> str:
    """A string key: escapes resolved, trailing blanks trimmed (rtpengine trims them)."""
    value = strip_trailing_comment(key, value, warnings)
    return _unescape(key, value, split=False)[0].rstrip(ASCII_WS)


def file_list(key: str, value: str, warnings: list[str]) -> tuple[str, ...]:
    """A `;`-separated list; rtpvault also forgives blanks after ';' and empty elements."""
    value = strip_trailing_comment(key, value, warnings)
    items: list[str] = []
    for piece in _unescape(key, value, split=True):
        trimmed = piece.rstrip(ASCII_WS)
        if trimmed != trimmed.lstrip(ASCII_WS):
            warnings.append(
                f"{quoted(key, value)}: blank after ';' ignored; rtpengine keeps "
                f"it as part of the element ('{shown(trimmed)}') - write the list without spaces"
            )
            trimmed = trimmed.lstrip(ASCII_WS)
        if trimmed == "":
            if value.strip(ASCII_WS):
                warnings.append(f"{quoted(key, value)}: empty list element ignored")
            continue
        items.append(trimmed)
    return tuple(items)


_BOOL_EXACT = {"true": True, "false": False, "1": True, "0": False}
_BOOL_LENIENT = {"yes": True, "on": True, "no": False, "off": False, "true": True, "false": False}


def parse_bool(key: str, value: str, warnings: list[str], *, cli: bool = False) -> bool:
    """GLib booleans: exactly true/false/1/0 (trailing blanks allowed); yes/no/on/off warn."""
    if not cli:
        value = strip_trailing_comment(key, value, warnings)
    text = value.rstrip(ASCII_WS)
    if text in _BOOL_EXACT:
        return _BOOL_EXACT[text]
    lenient = _BOOL_LENIENT.get(text.strip(ASCII_WS).lower())
    if lenient is None:
        raise bad_value(key, value, "not a boolean (write true or false)", cli=cli)
    spelled = "true" if lenient else "false"
    warnings.append(
        f"{quoted(key, value, cli=cli)}: read as {spelled}, "
        f"but rtpengine (GLib) accepts only true/false/1/0 and refuses to start - "
        f"write '{key} = {spelled}'"
    )
    return lenient


_FILE_INT = re.compile(r"[ \t\n\r\x0b\x0c]*([+-]?[0-9]+)(.*)", re.DOTALL)
# strtol(..., 0) on the command line: hex with 0x, octal with a leading 0.
_CLI_INT = re.compile(r"[ \t\n\r\x0b\x0c]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


def too_long(digits: str) -> bool:
    """More digits than any value in range has: refused before int(), which raises ValueError
    beyond 4,300 digits instead of giving our "integer out of range"."""
    return len(digits.lstrip("0")) > 32


def parse_int(key: str, value: str, warnings: list[str], *, cli: bool = False) -> int:
    """A 32-bit integer as GLib reads it (file: decimal, whitespace-separated tail ignored)."""
    if cli:
        m = _CLI_INT.fullmatch(value)
        if m is None:
            raise bad_value(key, value, "not an integer", cli=True)
        sign, digits = m.groups()
        if too_long(digits[2:] if digits[:2].lower() == "0x" else digits):
            raise bad_value(key, value, "integer out of range", cli=True)
        if digits[:2].lower() == "0x":
            number = int(digits, 16)
        else:
            number = int(digits, 8 if digits.startswith("0") else 10)
        number = -number if sign == "-" else number
    else:
        value = strip_trailing_comment(key, value, warnings)
        m = _FILE_INT.fullmatch(value)
        if m is None or (m.group(2) and m.group(2)[0] not in ASCII_WS):
            raise bad_value(key, value, "not an integer")
        tail = m.group(2).strip(ASCII_WS)
        if tail:
            warnings.append(f"{quoted(key, value)}: trailing text '{shown(tail)}' ignored")
        if too_long(m.group(1).lstrip(" \t+-")):
            raise bad_value(key, value, "integer out of range")
        number = int(m.group(1))
    if not INT32_MIN <= number <= INT32_MAX:
        raise bad_value(key, value, "integer out of range", cli=cli)
    return number


def parse_uint64(key: str, value: str, warnings: list[str], *, cli: bool = False) -> int:
    """An unsigned 64-bit integer (g_key_file_get_uint64: decimal, nothing after it)."""
    if not cli:
        value = strip_trailing_comment(key, value, warnings)
    m = re.fullmatch(r"[ \t]*\+?([0-9]+)([ \t\r]*)", value)
    if m is None:
        raise bad_value(key, value, "not an unsigned integer", cli=cli)
    if m.group(2) and not cli:
        warnings.append(
            f"{quoted(key, value)}: trailing blanks ignored (rtpengine refuses them)"
        )
    if too_long(m.group(1)):
        raise bad_value(key, value, "integer out of range", cli=cli)
    number = int(m.group(1))
    if number > UINT64_MAX:
        raise bad_value(key, value, "integer out of range", cli=cli)
    return number


_DOUBLE = re.compile(
    r"[ \t]*[+-]?(?:[0-9]+\.?[0-9]*(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?"
    r"|inf|infinity|nan)",
    re.IGNORECASE,
)


def parse_double(key: str, value: str, warnings: list[str], *, cli: bool = False) -> float:
    """A double as g_ascii_strtod reads it (no trailing text)."""
    if not cli:
        value = strip_trailing_comment(key, value, warnings)
    text = value.rstrip(ASCII_WS)
    if _DOUBLE.fullmatch(text) is None:
        raise bad_value(key, value, "not a number", cli=cli)
    if text != value and not cli:
        warnings.append(
            f"{quoted(key, value)}: trailing blanks ignored (rtpengine refuses them)"
        )
    return float(text)
