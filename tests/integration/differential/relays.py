"""Relays for the differential suite: the reference (rtpengine 10.5) and the target.

Environment switches:

* `RTPVAULT_DIFF_TARGET=rtpvault` (default) or `rtpengine`: what is compared with the
  reference. `rtpengine` against a second rtpengine proves the normalisation is right.
* `RTPVAULT_DIFF_REFERENCE=live` (default) or `recorded`: run rtpengine, or use the results
  recorded under `expected/` (then rtpengine need not be installed).
* `RTPVAULT_DIFF_RECORD=1`: write the live reference results to `expected/`.
* `RTPVAULT_NUM_THREADS=N`: both relays' `num-threads` (tests.support.daemons); by default each
  uses its own default (the CPU count). `Relays(..., num_threads=1)` pins it for a subset.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.daemons import Daemon, start

from .harness import Player, Scenario

TARGET = os.environ.get("RTPVAULT_DIFF_TARGET", "rtpvault")
REFERENCE = os.environ.get("RTPVAULT_DIFF_REFERENCE", "live")
RECORD = os.environ.get("RTPVAULT_DIFF_RECORD", "") not in ("", "0")
INTERFACE = "lo/127.0.0.1!203.0.113.1"
SHARED_PORTS = 2000


@dataclass
class Pair:
    """A reference and a target relay (reference None when it comes from recordings)."""

    reference: Daemon | None
    target: Daemon
    run: str
    players: dict[str, Player] = field(default_factory=dict)

    def player(self, which: str) -> Player:
        if which not in self.players:
            d = self.reference if which == "reference" else self.target
            assert d is not None
            self.players[which] = Player("127.0.0.1", d.ng_port, d.port_min, d.port_max, self.run)
        return self.players[which]

    def stop(self) -> None:
        for p in self.players.values():
            p.close()
        for d in (self.reference, self.target):
            if d is not None:
                d.stop()


def _start_pair(
    workdir: Path, run: str, ports: int, extra: list[str], num_threads: int | None = None
) -> Pair:
    reference = None
    options: dict[str, Any] = {"interface": INTERFACE, "ports": ports, "extra": extra,
                               "num_threads": num_threads}  # fmt: skip
    if REFERENCE == "live":
        reference = start("rtpengine", workdir / "reference", **options)
    try:
        target = start(TARGET, workdir / "target", **options)
    except BaseException:
        if reference is not None:
            reference.stop()
        raise
    return Pair(reference, target, run)


class Relays:
    """The module's shared pair plus fresh pairs for scenarios that ask for their own."""

    def __init__(self, workdir: Path, num_threads: int | None = None) -> None:
        self.workdir = workdir
        self.num_threads = num_threads
        self.run = secrets.token_hex(4)
        self.shared = _start_pair(workdir / "shared", self.run, SHARED_PORTS, [], num_threads)

    @contextmanager
    def pair_for(self, scenario: Scenario) -> Iterator[Pair]:
        if scenario.daemon is None:
            yield self.shared
            return
        spec: dict[str, Any] = scenario.daemon
        pair = _start_pair(
            self.workdir / scenario.name,
            self.run,
            int(spec.get("ports", 100)),
            list(spec.get("extra", [])),
            self.num_threads,
        )
        try:
            yield pair
        finally:
            pair.stop()

    def stop(self) -> None:
        self.shared.stop()
