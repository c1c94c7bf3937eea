"""S3 object keys for recordings: `s3-prefix` (a template) + the recording's file name.

Template fields: {yyyy} {mm} {dd} {hh} (UTC of the recording start), {node}, {call_id} (escaped),
{id} (the recording UUID). Example: `recordings/{yyyy}/{mm}/{dd}/{call_id}/` →
`recordings/2026/11/25/a84b4c76e66710%40pc33/a84b...-1a2b.pcap`. A call-id can hold any byte, so
it is percent-escaped to characters that are safe in every S3-compatible store and cannot form
`..` path segments.
"""

from __future__ import annotations

import datetime as dt
import os
import string
from typing import Any
from urllib.parse import quote

__all__ = ["object_key", "escape", "TemplateError", "check_template"]

FIELDS = frozenset({"yyyy", "mm", "dd", "hh", "node", "call_id", "id"})


class TemplateError(ValueError):
    pass


def escape(text: str) -> str:
    """Percent-escape all but [A-Za-z0-9._~-]; a leading dot too (no `.`/`..` segments)."""
    out = quote(text, safe="-_.~")
    return "%2E" + out[1:] if out.startswith(".") else out


def check_template(template: str) -> None:
    """Raise TemplateError unless `template` uses only FIELDS, without format specs."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:  # unbalanced braces
        raise TemplateError(f"{exc} (write a literal brace as {{{{ or }}}})") from None
    for _, name, spec, conv in parsed:
        if name is not None and (name not in FIELDS or spec or conv):
            raise TemplateError(f"unknown field {{{name}}} in s3-prefix (use {sorted(FIELDS)})")


def object_key(template: str, rec: Any) -> str:
    check_template(template)
    t = dt.datetime.fromtimestamp(float(rec.started or 0), dt.UTC)
    prefix = template.format(yyyy=f"{t.year:04d}", mm=f"{t.month:02d}", dd=f"{t.day:02d}",
                             hh=f"{t.hour:02d}", node=escape(rec.node or ""),
                             call_id=escape(rec.call_id or ""), id=rec.id)  # fmt: skip
    name = os.path.basename(rec.path or f"{rec.id}.pcap")
    return prefix + escape(name)
