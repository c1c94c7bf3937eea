"""Normalise ng replies so that two relays' answers to the same scenario compare equal.

Pure functions over decoded replies (ordered dicts, str keys). What varies between runs or
between daemons is replaced by placeholders; everything else is kept exactly, key order
included:

* allocated media ports (inside the daemon's port range) in SDP `m=`, `a=rtcp`, ICE candidates
  and `local port` of query/delete stats → `{P1}`, `{P2}`, … numbered in order of first
  appearance per scenario; an odd port right after a known even one is `{Pn+1}` so an
  RTP/RTCP pair stays recognisable;
* clock values (`created`, `created_us`, `last signal`, `last packet`) → `{clock}`;
* `a=rtpengine:` ids, ICE ufrag/pwd, candidate foundations, DTLS fingerprints, SDES keys that
  the request did not contain, `a=tls-id` → placeholders (foundations numbered per scenario);
* with `ice-address-ports`, candidate ports on every address but the section's `c=` address
  → `{<address>:P1}`, `{<address>:P1+1}`, … numbered per address: rtpengine scans
  each address's port range on its own (docs/spec/sdp.md §1.9a), rtpvault takes the first
  address's number where free, so only each address's own pairs are compared;
* the `o=` version when the step asks for it (`o-version`: rtpengine invents a random one);
* run-unique identifiers (`name.<scenario>.<run>`) → `name`;
* `statistics`: only the key structure and value types, unless `stats-counters` is asked for,
  which keeps the deterministic counters too;
* `list`: `calls` compared as a sorted set (`list-anonymous` keeps only how many there are).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

CLOCK_KEYS = frozenset({"created", "created_us", "last signal", "last packet", "last user packet"})
STATS_VOLATILE_WORDS = ("uptime", "rate", "duration", "delay", "pingcount", "mos")
STATS_KEPT_STRINGS = frozenset({"name", "address", "proxy"})
STATS_SAMPLED_KEYS = frozenset({"media_userspace", "media_kernel", "media_mixed"})
"""Gauges rtpengine 10.5 refreshes from its once-a-second call timer, not when asked: right after
media, one run shows both media of a call and the next only the first (seen in CI,
media_counters_in_statistics). Compared by type only, even with `stats-counters`."""
TRANSIENT_FLAGS = frozenset({"loop check"})
"""Media flags rtpengine shows only while a timing-dependent check runs: 10.5 sets "loop check"
on a media while it compares its first packets against its own addresses, so the same scenario
shows it in one run and not in the next (seen in CI, media_relayed_both_ways)."""

Options = frozenset[str]
KNOWN_OPTIONS = frozenset({"o-version", "stats-counters", "list-anonymous", "ice-address-ports"})


@dataclass
class ScenarioState:
    """What one scenario's normalisation remembers across its steps, for one daemon."""

    port_min: int
    port_max: int
    scenario: int
    run: str
    ports: dict[int, str] = field(default_factory=dict)
    foundations: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    clients: dict[int, str] = field(default_factory=dict)
    port_count: int = 0
    connection: str | None = None
    """The address of the last `c=` line normalised (the section's own address)."""
    address_ports: dict[str, dict[int, str]] = field(default_factory=dict)

    def candidate_port(self, address: str, text: str, opts: Options) -> str:
        """A candidate's port: as `port_text`, or numbered per address (`ice-address-ports`)."""
        if "ice-address-ports" not in opts or address == self.connection:
            return self.port_text(text)
        if not text.isdigit() or not self.port_min <= int(text) <= self.port_max:
            return text
        value, seen = int(text), self.address_ports.setdefault(address, {})
        if value not in seen:
            below = seen.get(value - 1)
            if value % 2 == 1 and below is not None and "+" not in below:
                seen[value] = below[:-1] + "+1}"
            else:
                seen[value] = f"{{{address}:P{sum('+' not in v for v in seen.values()) + 1}}}"
        return seen[value]

    def port(self, value: int) -> str | int:
        """The placeholder of an allocated port; numbers outside the range stay as they are."""
        if not self.port_min <= value <= self.port_max:
            return value
        if value not in self.ports:
            below = self.ports.get(value - 1)
            if value % 2 == 1 and below is not None and "+" not in below:
                self.ports[value] = below[:-1] + "+1}"
            else:
                self.port_count += 1
                self.ports[value] = f"{{P{self.port_count}}}"
        return self.ports[value]

    def port_number(self, placeholder: str) -> int | None:
        """The relay port a placeholder stands for in this run (for sending media to it)."""
        return next((p for p, name in self.ports.items() if name == placeholder), None)

    def client_port(self, value: int) -> str | int:
        """A client socket's port as `{port:NAME}` (`+1` for its RTCP); others unchanged."""
        if value in self.clients:
            return self.clients[value]
        if value - 1 in self.clients:
            return self.clients[value - 1][:-1] + "+1}"
        return value

    def port_text(self, text: str) -> str:
        return str(self.port(int(text))) if text.isdigit() else text

    def foundation(self, value: str) -> str:
        if value not in self.foundations:
            self.foundations[value] = f"{{F{len(self.foundations) + 1}}}"
        return self.foundations[value]

    def numbered(self, kind: str, value: str) -> str:
        """`{<kind><n>}`: the n-th distinct random value of that kind in this scenario, so a
        value kept across steps (SDES key, ICE ufrag/pwd, fingerprint) stays visibly the same."""
        seen = self.secrets.setdefault(kind, {})
        if value not in seen:
            seen[value] = f"{{{kind}{len(seen) + 1}}}"
        return seen[value]

    def ident(self, text: str) -> str:
        """Undo run-unique identifiers: `x.<scenario>.<run>` → `x`; other scenarios' → `{other}`."""

        def repl(m: re.Match[str]) -> str:
            return m.group(1) if m.group(2) == str(self.scenario) else "{other}"

        return re.sub(r"([^\s.]*)\.(\d+)\." + re.escape(self.run), repl, text)


_LINE = re.compile(r"[^\n]*\n|[^\n]+$")


def sdp_lines(sdp: str) -> list[str]:
    """Split keeping each line's own terminator (CRLF vs LF matters)."""
    return _LINE.findall(sdp)


def normalise_sdp(sdp: str, st: ScenarioState, opts: Options, request_text: str = "") -> list[str]:
    """Normalise one SDP body; returns its lines with their terminators."""
    return [_sdp_line(line, st, opts, request_text) for line in sdp_lines(sdp)]


def _sdp_line(line: str, st: ScenarioState, opts: Options, request_text: str) -> str:
    body = line.rstrip("\r\n")
    eol = line[len(body) :]
    return _sdp_value(body, st, opts, request_text) + eol


def _sdp_value(body: str, st: ScenarioState, opts: Options, request_text: str) -> str:
    if body.startswith("c="):
        st.connection = body.rsplit(" ", 1)[-1]
    if body.startswith("m="):
        parts = body.split(" ")
        if len(parts) > 1:
            port, slash, count = parts[1].partition("/")
            parts[1] = st.port_text(port) + slash + count
        return " ".join(parts)
    if body.startswith("a=rtcp:"):
        port, sep, rest = body[7:].partition(" ")
        return "a=rtcp:" + st.port_text(port) + sep + rest
    if body.startswith("a=candidate:"):
        parts = body[12:].split(" ")
        if parts[0] not in request_text:
            parts[0] = st.foundation(parts[0])
        if len(parts) > 5:
            parts[5] = st.candidate_port(parts[4], parts[5], opts)
        for i, word in enumerate(parts[:-1]):
            if word == "rport":
                parts[i + 1] = st.port_text(parts[i + 1])
        return "a=candidate:" + " ".join(parts)
    for prefix, kind in (("a=ice-ufrag:", "ufrag"), ("a=ice-pwd:", "pwd")):
        if body.startswith(prefix):
            value = body[len(prefix) :]
            return body if value in request_text else prefix + st.numbered(kind, value)
    for prefix, placeholder in (("a=rtpengine:", "{rtpengine-id}"), ("a=tls-id:", "{tls-id}")):
        if body.startswith(prefix):
            value = body[len(prefix) :]
            return body if value in request_text else prefix + placeholder
    if body.startswith("a=fingerprint:"):
        algo, _, value = body[14:].partition(" ")
        if value in request_text:
            return body
        return f"a=fingerprint:{algo} {st.numbered('fingerprint', value)}"
    if body.startswith("a=crypto:"):
        return re.sub(
            r"inline:([^|\s]+)",
            lambda m: m.group(0) if m.group(1) in request_text else _key(m.group(1), st),
            body,
        )
    if body.startswith("o=") and "o-version" in opts:
        parts = body.split(" ")
        if len(parts) > 2:
            parts[2] = "{o-version}"
        return " ".join(parts)
    return body


def _key(value: str, st: ScenarioState) -> str:
    """An SDES key numbered per scenario; its base64 padding is kept (SDES-pad is structure)."""
    core = value.rstrip("=")
    return "inline:" + st.numbered("key", core) + value[len(core) :]


def _typename(value: Any) -> str:
    if isinstance(value, bool):
        return "{bool}"
    if isinstance(value, int):
        return "{int}"
    if isinstance(value, str):
        return "{str}"
    if isinstance(value, float):
        return "{float}"
    return "{" + type(value).__name__ + "}"


def _stats_value(key: str, value: Any, st: ScenarioState, opts: Options) -> Any:
    if isinstance(value, dict):
        return {k: _stats_value(k, v, st, opts) for k, v in value.items()}
    if isinstance(value, list):
        return [_stats_value(key, v, st, opts) for v in value]
    if key in STATS_KEPT_STRINGS and isinstance(value, str):
        return value
    if "stats-counters" not in opts:
        return _typename(value)
    if key in ("min", "max") and value == st.port_min:
        return "{port-min}"
    if key in ("min", "max") and value == st.port_max:
        return "{port-max}"
    if key == "last" or key in STATS_SAMPLED_KEYS:
        return _typename(value)
    if any(w in key.lower() for w in STATS_VOLATILE_WORDS):
        return _typename(value)
    return value


def normalise_statistics(stats: Any, st: ScenarioState, opts: Options) -> Any:
    """Key structure and value types; with `stats-counters` also the deterministic counters."""
    return _stats_value("statistics", stats, st, opts)


def _call_stats(key: str, value: Any, st: ScenarioState) -> Any:
    if isinstance(value, dict):
        return {st.ident(k): _call_stats(k, v, st) for k, v in value.items()}
    if isinstance(value, list):
        if key == "flags":
            value = [v for v in value if v not in TRANSIENT_FLAGS]
        return [_call_stats(key, v, st) for v in value]
    if key in CLOCK_KEYS and isinstance(value, int):
        return "{clock}"
    if key == "local port" and isinstance(value, int):
        return st.port(value)
    if key == "port" and isinstance(value, int):
        return st.client_port(value)
    if isinstance(value, str):
        return st.ident(value)
    return value


def normalise_reply(
    reply: dict[str, Any], st: ScenarioState, opts: Options = frozenset(), request_text: str = ""
) -> dict[str, Any]:
    """Normalise one decoded reply dict (any command), keeping its key order."""
    unknown = opts - KNOWN_OPTIONS
    if unknown:
        raise ValueError(f"unknown normalisation options {sorted(unknown)}")
    out: dict[str, Any] = {}
    for key, value in reply.items():
        if key == "sdp" and isinstance(value, str):
            out[key] = normalise_sdp(value, st, opts, request_text)
        elif key == "statistics":
            out[key] = normalise_statistics(value, st, opts)
        elif key == "calls" and isinstance(value, list):
            names = sorted(st.ident(v) if isinstance(v, str) else _typename(v) for v in value)
            if "list-anonymous" in opts:
                names = ["{call}" for _ in names]
            out[key] = names
        else:
            out[key] = _call_stats(key, value, st)
    return out
