"""The recording-search commands (docs/search.md), one module per concern.

`commands` holds `search | show | audit` and `register`; `files` (`fetch | export`), `verify`
and `gov` (`hold | release | purge`) add their own commands; `ctx` is the shared context
(config, database, S3, audit), `opts` the shared options, `rows` the query results as rows and
`out` their rendering (table, JSON, CSV, vertical).
"""

from __future__ import annotations

from rtpvault.cli.search.commands import register

__all__ = ["register"]
