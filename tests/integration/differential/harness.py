"""Differential scenarios: load them from JSON data, play them against one relay, normalise.

A scenario file `scenarios/<topic>.json` holds `{"scenarios": [<scenario>, ...]}`. A scenario is

    {"name": "unique_name", "doc": "what it shows",
     "steps": [<step>, ...],
     "daemon": {"ports": 8, "extra": ["--delete-delay=0"]},   optional: own fresh relay pair
     "expect_differs": "why rtpvault deliberately answers differently"}          optional

and a step is one of

    {"req": {<ng request dict>}}          bencoded in the given key order, cookie added
    {"offer"|"answer"|"delete"|"query": {<keys to add/override; null removes one>}}
    {"json": {<ng request dict>}}         sent as a JSON body
    {"raw": "<whole datagram>"}           sent verbatim; its reply (or none) kept
    {"rtp": {"from": ..., "to": "{P2}", ...}}   RTP through the relay, see media.py

with optional step keys `"normalise": [options]` (see normalise.py), `"cookie": "${name}"`
(reuse a cookie: retransmission), and `"vault": <result>` (rtpvault's own expected result for
this step, only in `expect_differs` scenarios; the string "{*}" there matches any value).

Strings may contain `${name}`, which becomes `name.<scenario index>.<run token>` (unique per run;
replies map it back to `name`). A string value `"@sdp:<name>"` is an SDP from
`scenarios/sdp.json`; `{"@sdp": "<name>", "sub": [["old", "new"], ...], "eol": "\\n"}` is the same
with text substitutions and/or another line terminator; a list as `sdp` is lines joined by CRLF.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bencodepy

from tests.support.ng import to_str

from .media import Clients
from .normalise import ScenarioState, normalise_reply

HERE = Path(__file__).resolve().parent
SCENARIO_DIR = HERE / "scenarios"
EXPECTED_DIR = HERE / "expected"
SHORTHAND = ("offer", "answer", "delete", "query")
STEP_KINDS = ("req", "json", "raw", "rtp", *SHORTHAND)
STEP_KEYS = frozenset({*STEP_KINDS, "normalise", "cookie", "vault", "note"})
SCENARIO_KEYS = frozenset({"name", "doc", "steps", "daemon", "expect_differs"})


@dataclass(frozen=True)
class Scenario:
    """One scenario as read from its data file; `index` makes its identifiers unique."""

    name: str
    topic: str
    index: int
    steps: tuple[dict[str, Any], ...]
    daemon: dict[str, Any] | None
    expect_differs: str | None
    doc: str


def load_sdps(directory: Path = SCENARIO_DIR) -> dict[str, dict[str, Any]]:
    raw = json.loads((directory / "sdp.json").read_text())
    return {k: v if isinstance(v, dict) else {"lines": v} for k, v in raw.items()}


def load_scenarios(directory: Path = SCENARIO_DIR) -> list[Scenario]:
    """Every scenario of every topic file, checked for typos in the data."""
    out: list[Scenario] = []
    seen: set[str] = set()
    for path in sorted(directory.glob("*.json")):
        if path.name == "sdp.json":
            continue
        for item in json.loads(path.read_text())["scenarios"]:
            name = item["name"]
            if name in seen:
                raise ValueError(f"{path.name}: duplicate scenario name {name!r}")
            if set(item) - SCENARIO_KEYS:
                raise ValueError(f"{name}: unknown keys {sorted(set(item) - SCENARIO_KEYS)}")
            for step in item["steps"]:
                kinds = [k for k in STEP_KINDS if k in step]
                if len(kinds) != 1 or set(step) - STEP_KEYS:
                    raise ValueError(f"{name}: bad step {step}")
                if "vault" in step and "expect_differs" not in item:
                    raise ValueError(f"{name}: 'vault' needs 'expect_differs'")
            seen.add(name)
            out.append(
                Scenario(
                    name,
                    path.stem,
                    len(out),
                    tuple(item["steps"]),
                    item.get("daemon"),
                    item.get("expect_differs"),
                    item.get("doc", ""),
                )
            )
    return out


class Expander:
    """Turns step templates into concrete requests for one scenario run."""

    def __init__(
        self,
        scenario: Scenario,
        run: str,
        sdps: dict[str, dict[str, Any]],
        client_port: Callable[[str], int] | None = None,
    ) -> None:
        self.scenario = scenario
        self.run = run
        self.sdps = sdps
        self.client_port = client_port

    def ident(self, name: str) -> str:
        return f"{name}.{self.scenario.index}.{self.run}"

    def text(self, s: str) -> str:
        return re.sub(r"\$\{([^}]*)\}", lambda m: self._placeholder(m.group(1)), s)

    def _placeholder(self, name: str) -> str:
        if name.startswith("port:"):
            if self.client_port is None:
                raise ValueError(f"{self.scenario.name}: no client sockets for ${{{name}}}")
            return str(self.client_port(name[5:]))
        return self.ident(name)

    def sdp(self, ref: str | dict[str, Any]) -> str:
        spec: dict[str, Any] = {"@sdp": ref[5:]} if isinstance(ref, str) else ref
        lib = self.sdps[spec["@sdp"]]
        eol = spec.get("eol", lib.get("eol", "\r\n"))
        body = "".join(line + eol for line in lib["lines"])
        for old, new in spec.get("sub", []):
            if old not in body:
                raise ValueError(f"{self.scenario.name}: {old!r} not in sdp {spec['@sdp']}")
            body = body.replace(old, new)
        return self.text(body)

    def value(self, v: Any, key: str = "") -> Any:
        if isinstance(v, str) and v.startswith("@sdp:"):
            return self.sdp(v)
        if isinstance(v, dict) and "@sdp" in v:
            return self.sdp(v)
        if isinstance(v, dict) and "@literal" in v:
            return v["@literal"]
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, list) and key.lower() == "sdp":
            return "".join(self.text(line) + "\r\n" for line in v)
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if isinstance(v, dict):
            return {self.text(k): self.value(x, k) for k, x in v.items()}
        return v

    def request(self, step: dict[str, Any]) -> dict[str, Any]:
        for kind in SHORTHAND:
            if kind in step:
                return self.value(_shorthand(kind, step[kind]))  # type: ignore[no-any-return]
        body = step["req"] if "req" in step else step["json"]
        return self.value(body)  # type: ignore[no-any-return]


def _shorthand(kind: str, overrides: dict[str, Any]) -> dict[str, Any]:
    base: dict[str, Any] = {"command": kind, "call-id": "${call}", "from-tag": "ft"}
    if kind == "offer":
        base["sdp"] = "@sdp:alice"
    if kind == "answer":
        base["to-tag"] = "tt"
        base["sdp"] = "@sdp:bob"
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def encode(obj: Any) -> bytes:
    """Bencode keeping dict insertion order (what Kamailio sends)."""
    if isinstance(obj, dict):
        return b"d" + b"".join(encode(k) + encode(v) for k, v in obj.items()) + b"e"
    if isinstance(obj, list | tuple):
        return b"l" + b"".join(encode(v) for v in obj) + b"e"
    if isinstance(obj, bool | float) or obj is None:
        raise TypeError(f"bencode cannot carry {obj!r}")
    if isinstance(obj, int):
        return b"i%de" % obj
    data = obj.encode("utf-8", "surrogateescape") if isinstance(obj, str) else obj
    return b"%d:%s" % (len(data), data)


def decode_body(body: bytes) -> tuple[str, Any]:
    """(format, decoded value): bencode dicts keep their key order, JSON too."""
    try:
        if body.startswith(b"{"):
            return "json", json.loads(body)
        if body.startswith(b"d"):
            return "bencode", to_str(bencodepy.decode(body))
    except ValueError:
        pass
    except bencodepy.BencodeDecodeError:
        pass
    return "undecodable", body.decode("utf-8", "surrogateescape")


class Player:
    """Plays scenarios against one relay over UDP and returns normalised per-step results."""

    def __init__(self, host: str, port: int, port_min: int, port_max: int, run: str) -> None:
        self.addr = (host, port)
        self.port_min, self.port_max = port_min, port_max
        self.run = run
        self.sdps = load_sdps()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(5.0)  # a guard against a relay that never answers, not a measurement
        self.sock.bind(("127.0.0.1", 0))
        self.counter = 0

    def close(self) -> None:
        self.sock.close()

    def play(self, scenario: Scenario) -> list[dict[str, Any]]:
        st = ScenarioState(self.port_min, self.port_max, scenario.index, self.run)
        clients = Clients(st)
        ex = Expander(scenario, self.run, self.sdps, clients.port)
        try:
            return [self._step(ex, st, clients, step) for step in scenario.steps]
        finally:
            clients.close()

    def _cookie(self, ex: Expander, suffix: str = "") -> bytes:
        self.counter += 1
        return f"{ex.run}_{ex.scenario.index}_{self.counter}{suffix}".encode()

    def _step(
        self, ex: Expander, st: ScenarioState, clients: Clients, step: dict[str, Any]
    ) -> dict[str, Any]:
        opts = frozenset(step.get("normalise", []))
        if "rtp" in step:
            return {"rtp": clients.rtp(step["rtp"])}
        if "raw" in step:
            datagram = ex.text(step["raw"]).encode("utf-8", "surrogateescape")
            replies = self._exchange_raw(ex, datagram)
            return {"replies": [self._raw_reply(r, st, opts, datagram) for r in replies]}
        request = ex.request(step)
        if "json" in step:
            body = json.dumps(request, separators=(",", ":")).encode()
        else:
            body = encode(request)
        cookie = ex.text(step["cookie"]).encode() if "cookie" in step else self._cookie(ex)
        reply = self._exchange(cookie, body)
        if reply is None:
            return {"no-reply": True}
        fmt, value = decode_body(reply)
        return {"format": fmt, "reply": _normalise(value, st, opts, body)}

    def _exchange(self, cookie: bytes, body: bytes) -> bytes | None:
        self.sock.sendto(cookie + b" " + body, self.addr)
        return self._receive(cookie + b" ")

    def _receive(self, prefix: bytes) -> bytes | None:
        """The body of the next reply starting with `prefix` (others are late strays)."""
        try:
            while True:
                data, _ = self.sock.recvfrom(65535)
                if data.startswith(prefix):
                    return data[len(prefix) :]
        except TimeoutError:
            return None

    def _exchange_raw(self, ex: Expander, datagram: bytes) -> list[bytes]:
        """Send `datagram` verbatim and collect what comes back for it.

        With a cookie (bytes before a first space), the reply carrying that cookie is awaited;
        the relay may answer out of order, so a sentinel ping would not do. Without one, a
        sentinel ping follows, and anything that is not ours arriving before its pong counts.
        """
        cookie, space, _ = datagram.partition(b" ")
        self.sock.sendto(datagram, self.addr)
        if space and cookie:
            reply = self._receive(cookie + b" ")
            return [] if reply is None else [cookie + b" " + reply]
        sentinel = self._cookie(ex, "s") + b" "
        self.sock.sendto(sentinel + b"d7:command4:pinge", self.addr)
        got: list[bytes] = []
        try:
            while True:
                data, _ = self.sock.recvfrom(65535)
                if data.startswith(sentinel):
                    return got
                if self.run.encode() not in data.partition(b" ")[0]:
                    got.append(data)
        except TimeoutError:
            return [*got, b"{no sentinel reply}"]

    def _raw_reply(
        self, data: bytes, st: ScenarioState, opts: frozenset[str], request: bytes
    ) -> dict[str, Any]:
        cookie, sep, body = data.partition(b" ")
        if not sep:
            return {"undelimited": st.ident(data.decode("utf-8", "surrogateescape"))}
        fmt, value = decode_body(body)
        return {
            "cookie": st.ident(cookie.decode("utf-8", "surrogateescape")),
            "format": fmt,
            "reply": _normalise(value, st, opts, request),
        }


def _normalise(value: Any, st: ScenarioState, opts: frozenset[str], request: bytes) -> Any:
    if isinstance(value, dict):
        return normalise_reply(value, st, opts, request.decode("utf-8", "surrogateescape"))
    return value


def matches(expected: Any, got: Any) -> bool:
    """Equality where the expected string "{*}" matches anything (for rtpvault's own texts)."""
    if expected == "{*}":
        return True
    if isinstance(expected, dict) and isinstance(got, dict):
        return list(expected) == list(got) and all(matches(expected[k], got[k]) for k in expected)
    if isinstance(expected, list) and isinstance(got, list):
        return len(expected) == len(got) and all(map(matches, expected, got))
    return bool(expected == got) and type(expected) is type(got)


def expected_for_target(scenario: Scenario, reference: list[dict[str, Any]]) -> list[Any]:
    """The reference results, with rtpvault's own expectation where a step declares one."""
    return [s.get("vault", r) for s, r in zip(scenario.steps, reference, strict=True)]


def render(scenario: Scenario, results: list[Any]) -> str:
    """A readable, diffable text of all step results (key order is significant)."""
    lines = [f"# {scenario.name}"]
    for i, (step, result) in enumerate(zip(scenario.steps, results, strict=True), 1):
        what = next(k for k in STEP_KINDS if k in step)
        lines.append(f"## step {i} ({what})")
        lines.append(json.dumps(result, indent=1, ensure_ascii=True))
    return "\n".join(lines)


def expected_path(scenario: Scenario) -> Path:
    return EXPECTED_DIR / scenario.topic / f"{scenario.name}.expected.json"


def save_expected(scenario: Scenario, results: list[dict[str, Any]]) -> None:
    path = expected_path(scenario)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"scenario": scenario.name, "recorded_from": "rtpengine 10.5", "steps": results}
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=True) + "\n")


def load_expected(scenario: Scenario) -> list[dict[str, Any]]:
    return list(json.loads(expected_path(scenario).read_text())["steps"])
