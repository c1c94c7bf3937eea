"""Fixtures for SIP calls through Kamailio + a relay; see sipcall.py for the pieces.

`sip_rig(kind_or_daemon, **kamailio_options)` is the one most tests want: it starts the relay
(unless given a running Daemon) and Kamailio in front of it, and stops both after the test.
Other test packages reuse them with `from tests.integration.kamailio.rig import sip_rig, ...`
in their conftest.py (pytest finds fixtures imported into a conftest).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support import daemons
from tests.support.daemons import Daemon

from .capture import LegCounts, LoopbackCapture, count_legs
from .sipcall import (
    RELAY_INTERFACE,
    CallResult,
    CallSpec,
    Kamailio,
    relay_command_counts,
    run_calls,
    start_kamailio,
)

RELAY_KINDS = ["rtpengine", "rtpvault"]
ONE_WORKER = "rtpvault/1"
"""A relay kind: rtpvault with `num-threads = 1`. The plain kinds use the daemons' default (one
worker per CPU, tests.support.daemons), so tests parametrized with this one also cover the
single-process daemon (issue 18)."""


@dataclass
class SipRig:
    """A relay with Kamailio in front of it; `call()` runs sipp calls through both."""

    relay: Daemon
    kamailio: Kamailio
    workdir: Path
    runs: int = field(default=0)

    def _next_dir(self, name: str) -> Path:
        self.runs += 1
        return self.workdir / f"{name}-{self.runs}"

    def call(self, spec: CallSpec | None = None) -> CallResult:
        """Run the calls of `spec` (default: one short call without media)."""
        return run_calls(
            self.kamailio,
            spec or CallSpec(),
            self._next_dir("sipp"),
            avoid_ports=(self.relay.port_min, self.relay.port_max),
        )

    def call_with_capture(self, spec: CallSpec) -> tuple[CallResult, LegCounts]:
        """Run the calls while tshark captures the relay's ports; count packets per leg."""
        workdir = self._next_dir("sipp")
        ports = (self.relay.port_min, self.relay.port_max)
        capture_filter = f"udp portrange {ports[0]}-{ports[1]}"
        with LoopbackCapture(workdir / "media.capture.pcap", capture_filter) as cap:
            result = run_calls(self.kamailio, spec, workdir, avoid_ports=ports)
        legs = count_legs(cap.packets(), ports, result.uac_media, result.uas_media)
        return result, legs

    def commands(self) -> dict[str, int]:
        """The relay's ng command totals (statistics → controlstatistics)."""
        return relay_command_counts(self.relay)

    def sent_since(self, before: dict[str, int]) -> tuple[int, int, int]:
        """How many offers, answers and deletes the relay got since `before = commands()`."""
        after = self.commands()
        offers, answers, deletes = (after[c] - before[c] for c in ("offer", "answer", "delete"))
        return offers, answers, deletes

    def logs(self) -> str:
        """Relay and Kamailio logs, for assertion messages."""
        return (
            f"--- {self.relay.name} log\n{self.relay.log()[-6000:]}\n"
            f"--- kamailio log\n{self.kamailio.log()[-6000:]}"
        )


@pytest.fixture
def relay_factory(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """`relay_factory("rtpengine", ports=100, extra=[...])`: a loopback relay, stopped after.
    A kind "rtpvault/N" starts rtpvault with `num-threads = N`."""
    started: list[Daemon] = []

    def make(kind: str, **options: Any) -> Daemon:
        kind, _, workers = kind.partition("/")  # "rtpvault/1": ONE_WORKER
        if workers:
            options.setdefault("num_threads", int(workers))
        options.setdefault("interface", RELAY_INTERFACE)
        options.setdefault("ports", 100)
        d = daemons.start(kind, tmp_path / f"{kind}-{len(started)}", **options)
        started.append(d)
        return d

    yield make
    for d in reversed(started):
        d.stop()


@pytest.fixture
def kamailio_factory(tmp_path: Path) -> Iterator[Callable[..., Kamailio]]:
    """`kamailio_factory(relay, offer_flags=..., answer_flags=...)`: Kamailio, stopped after."""
    started: list[Kamailio] = []

    def make(relay: Daemon, **options: Any) -> Kamailio:
        k = start_kamailio(tmp_path / f"kamailio-{len(started)}", relay.ng_port, **options)
        started.append(k)
        return k

    yield make
    for k in reversed(started):
        k.stop()


@pytest.fixture
def sip_rig(
    tmp_path: Path,
    relay_factory: Callable[..., Daemon],
    kamailio_factory: Callable[..., Kamailio],
) -> Callable[..., SipRig]:
    """`sip_rig("rtpvault")` or `sip_rig(daemon, offer_flags=...)`: relay + Kamailio.

    `relay_options` go to `tests.support.daemons.start` (e.g. `{"extra": ["--delete-delay=0"]}`);
    other keyword arguments go to `start_kamailio` (offer_flags, answer_flags, delete_flags, ...).
    Each rig gets its own work folder, so one test may compare two rigs.
    """
    rigs = 0

    def make(
        relay: str | Daemon, relay_options: dict[str, Any] | None = None, **kamailio: Any
    ) -> SipRig:
        daemon = (
            relay if isinstance(relay, Daemon) else relay_factory(relay, **(relay_options or {}))
        )
        nonlocal rigs
        rigs += 1
        k = kamailio_factory(daemon, **kamailio)
        return SipRig(daemon, k, tmp_path / f"rig-{rigs}")

    return make
