"""Run every differential scenario's ng requests and the SDP golden captures through the
request path in-process and print every reply byte (JSON lines), for
tests/unit/relay/test_compiled.py to compare the mypyc-compiled modules with their source
(`RTPVAULT_PURE=1`). Deterministic: fake sockets on fixed ports, fixed clocks and random seeds.

    python -m tests.support.compiled_probe
"""

from __future__ import annotations

import json
import logging
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relay import compiled
from relay.call import Registry
from relay.call.secure import SecureContext
from relay.control import NgControlServer
from relay.ng.commands import Commands
from relay.sdp import MediaPlan, SessionPlan, parse, render, rewrite
from tests.integration.differential.harness import (
    Expander,
    encode,
    load_scenarios,
    load_sdps,
)

REPO = Path(__file__).resolve().parents[2]


@dataclass
class _Itf:
    name: str = "lo"
    local: str = "127.0.0.1"
    advertised: str = "203.0.113.1"
    family: str = "IP4"


class _Sock:
    def __init__(self, port: int) -> None:
        self.port = port

    def close(self) -> None:
        pass

    def fileno(self) -> int:
        return -1


def _opener(address: str, port: int, family: int) -> _Sock:
    return _Sock(port)


def _clock() -> float:
    return 1_000_000.0


def ng_replies() -> list[str]:
    secure = SecureContext(fingerprint=lambda h: f"{h} AA:BB",
                           interfaces=[("F" * 16, "203.0.113.1")], rng=random.Random(1))
    registry = Registry([_Itf()], 30000, 39999, opener=_opener,  # type: ignore[arg-type, list-item]
                        rng=random.Random(2), clock=_clock, wallclock=_clock, secure=secure)
    seeds = random.Random(3)  # every call's own RNG (relay.call.rng) from a fixed seed
    registry.seed_source = lambda: seeds.randbytes(32)
    server = NgControlServer(Commands(registry).dispatch, clock=_clock)
    sdps = load_sdps()
    out: list[str] = []
    for scenario in load_scenarios():
        ex = Expander(scenario, "p", sdps, lambda name: 40000 + len(name))
        for n, step in enumerate(scenario.steps):
            if "rtp" in step:
                continue
            if "raw" in step:
                datagram = ex.text(step["raw"]).encode("utf-8", "surrogateescape")
            else:
                request = ex.request(step)
                body = (json.dumps(request, separators=(",", ":")).encode() if "json" in step
                        else encode(request))
                datagram = f"{scenario.index}_{n} ".encode() + body
            reply = server.handle(datagram, ("127.0.0.1", 5060))
            out.append(f"{scenario.name} {n} " + (reply or b"").decode("latin-1"))
    return out


def sdp_rewrites() -> list[str]:
    fixtures = REPO / "tests" / "fixtures" / "sdp"
    plans: dict[str, dict[str, Any]] = json.loads((fixtures / "plans.json").read_text())
    out = []
    for name, data in sorted(plans.items()):
        text = (fixtures / f"{name}.in.sdp").read_bytes().decode()
        fields = dict(data)
        media = tuple(MediaPlan(**m) for m in fields.pop("media"))
        desc = parse(text)
        plan = SessionPlan(media=media, **fields)
        out.append(f"{name} {render(desc) == text} {rewrite(desc, plan)}")
    return out


def main() -> None:
    logging.disable(logging.CRITICAL)
    loaded = {name: compiled.is_compiled(sys.modules[name])
              for name in compiled.MODULES if name in sys.modules}
    json.dump({"compiled": loaded, "ng": ng_replies(), "sdp": sdp_rewrites()}, sys.stdout)


if __name__ == "__main__":
    main()
