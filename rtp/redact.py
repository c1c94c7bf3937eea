"""Secrets out of an SDP text before it is written or shipped anywhere (issue 17 item 5).

`redact_sdp(text)` replaces the key material an SDP carries by the fixed marker `REDACTED`
(docs/recording.md "Secrets in recorded SDP"):

* `a=crypto:<tag> <suite> inline:<key||salt>[|<lifetime>][|<mki>:<len>][;inline:…] [params]`
  (RFC 4568 §9.1, docs/spec/sdp.md §1.12): every key-salt becomes `REDACTED` repeated to the
  key's own length (at least once; `=` padding kept), e.g. 40 characters
  `REDACTEDREDACTEDREDACTEDREDACTEDREDACTED` for the 30-byte key-salt of
  AES_CM_128_HMAC_SHA1_80, also in a `FEC_KEY=` session parameter (RFC 4568 §6.3.6); tag,
  suite, lifetime, MKI and the other session parameters stay. The
  marker is in the base64 alphabet and decodes to as many bytes as the key did, so a reader
  that checks the suite's key length still parses the line: with a bare 8-character
  `inline:REDACTED` Wireshark's SDP dissector reports a malformed packet and dissects nothing
  after that line. A key parameter of another method (none is defined) keeps its method name.
* `a=ice-pwd:<pwd>` (RFC 8839 §5.4) → `a=ice-pwd:REDACTED`.
* `a=key-mgmt:<prot-id> <data>` (RFC 4567 §3, MIKEY carries the keys) → `a=key-mgmt:REDACTED`,
  the protocol id with it: Wireshark dissects the data of a `mikey` line as MIKEY, and any
  stand-in that is not a whole MIKEY message makes it report the SDP malformed and stop there.

`redact_sidecar(doc)` applies it to the `in`/`out` SDPs of a recording sidecar document.

Everything else stays byte for byte: other lines, the order, and each line's ending (CRLF, LF
or a lone CR, all of which SDP readers accept as a line end, so all three end a line here).
Attribute names match without regard to case and after leading blanks: a reader more lenient
than RFC 8866 must not see a secret this function missed. The result is a fixed point
(`redact_sdp(redact_sdp(x)) == redact_sdp(x)`). Pure: no I/O, no logging.

Hand-written: no SDP library in our dependencies rewrites attributes while keeping the text
byte for byte, and relay.sdp (which does) is not importable by recorder, hep or storage.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MARKER", "redact_sdp", "has_secrets", "redact_sidecar"]

MARKER = "REDACTED"
"""What stands where an ICE password or a key-mgmt value was; repeated to their length where a
key-salt was."""

_LINE_END = re.compile(r"(\r\n|\r|\n)")
_ATTRIBUTE = re.compile(r"([ \t]*a=)(crypto|ice-pwd|key-mgmt)(:)(.*)\Z", re.IGNORECASE | re.DOTALL)
_WORDS = re.compile(r"([ \t]+)")
_LIFETIME_OR_MKI = re.compile(r"(2\^)?[0-9]+\Z|[0-9]+:[0-9]+\Z")


def redact_sdp(text: str) -> str:
    """`text` with every SDES key, MIKEY message and ICE password replaced by MARKER."""
    if not _may_hold_secrets(text):
        return text
    parts = _LINE_END.split(text)  # line, end, line, end, …, line
    for i in range(0, len(parts), 2):
        parts[i] = _redact_line(parts[i])
    return "".join(parts)


def has_secrets(text: str) -> bool:
    """Whether `redact_sdp` would change `text` (for checks; writers just call redact_sdp)."""
    return redact_sdp(text) != text


def redact_sidecar(doc: dict[str, Any]) -> dict[str, Any]:
    """A recording sidecar document (docs/recording-sidecar.md) whose `sdp` entries' `in` and
    `out` texts are redacted: `doc` itself when none holds a secret, else a copy (the entries
    copied, the rest shared). For every reader of a sidecar that may predate redaction
    (crash recovery, the index, the search CLI); anything that is not a list of dicts stays."""
    entries = doc.get("sdp")
    if not isinstance(entries, list):
        return doc
    clean: list[Any] = []
    changed = False
    for entry in entries:
        if isinstance(entry, dict):
            fixed = {k: redact_sdp(v) if k in ("in", "out") and isinstance(v, str) else v
                     for k, v in entry.items()}  # fmt: skip
            changed = changed or fixed != entry
            entry = fixed
        clean.append(entry)
    return {**doc, "sdp": clean} if changed else doc


def _may_hold_secrets(text: str) -> bool:
    low = text.lower()
    return "crypto" in low or "ice-pwd" in low or "key-mgmt" in low


def _redact_line(line: str) -> str:
    m = _ATTRIBUTE.match(line)
    if m is None:
        return line
    head = m.group(1) + m.group(2) + m.group(3)
    name, value = m.group(2).lower(), m.group(4)
    if name in ("ice-pwd", "key-mgmt"):
        return head + MARKER
    return head + _crypto(value)


def _crypto(value: str) -> str:
    """`<tag> <suite> <key-params> [params]`: the third word is the key-params field, whatever
    its method; any other word that holds an `inline:` (a malformed line) is treated as one."""
    words = _WORDS.split(value)  # word, blanks, word, …
    nth = 0
    for i in range(0, len(words), 2):
        word = words[i]
        if not word:
            continue
        nth += 1
        if nth == 3 or "inline:" in word.lower():
            words[i] = ";".join(_key_param(p) for p in word.split(";"))
    return "".join(words)


def _key_param(param: str) -> str:
    """`<method>:<key>[|lifetime][|mki:len]` → the key (and any field that is neither a
    lifetime nor an MKI) replaced; no `:` at all → wholly replaced."""
    method, sep, info = param.partition(":")
    if not sep:
        return _key_marker(param)
    key, *extras = info.split("|")
    kept = [x if _LIFETIME_OR_MKI.match(x) else MARKER for x in extras]
    return method + sep + "|".join([_key_marker(key), *kept])


def _key_marker(key: str) -> str:
    """MARKER repeated to the length of the base64 text (at least once), its padding kept."""
    body = key.rstrip("=")
    size = max(len(body), len(MARKER))
    return (MARKER * (size // len(MARKER) + 1))[:size] + key[len(body) :]
