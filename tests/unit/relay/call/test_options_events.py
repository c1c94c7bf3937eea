"""relay.call's inputs and outputs: the frozen options it reads, the events it publishes, and
what it may import (ARCHITECTURE: relay.call never reaches back into the ng layer)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from relay.call import CallCreated, CallEvent, CallUpdated, Exchange
from relay.call.offered import OfferedMedia, OfferedSession
from tests.unit.relay.test_calls import flags, registry, render, session
from tests.unit.test_import_rules import imported_names, module_name

ROOT = Path(__file__).resolve().parents[4]


def test_the_call_model_never_imports_the_ng_layer_or_the_composition_root() -> None:
    forbidden = ("relay.ng", "relay.control", "recorder", "storage", "hep", "rtpvault")
    bad = []
    for path in sorted((ROOT / "relay" / "call").rglob("*.py")):
        module = module_name(path, ROOT)
        for line, name in imported_names(path.read_text(), module, path.name == "__init__.py"):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                bad.append(f"{module}:{line} imports {name}")
    assert bad == []


def _two_lines(ice_first: bool) -> OfferedSession:
    def m(port: int, ice: bool) -> OfferedMedia:
        return OfferedMedia(type="audio", port=port, protocol="RTP/AVP", formats=("0",),
                            address="192.0.2.10", ice=ice)  # fmt: skip

    return OfferedSession("alice", "1", "Talk", (m(49170, ice_first), m(49180, False)))


def test_an_offer_leaves_its_options_as_they_were() -> None:
    """ICE makes rtpengine trust the SDP's address from that m= line on, and mux in use makes
    `require` stick for the later lines: within the request only, never in the options."""
    reg, _ = registry()
    options = flags(flags=["SIP-source-address"], **{"received-from": ["IP4", "198.51.100.7"]})
    before = dataclasses.replace(options)
    reg.offer("c1", "a", None, _two_lines(ice_first=True), options, render)
    assert options == before and options.trust_address is False
    a = reg.calls["c1"].parties["a"]
    # the ICE line and the one after it trust the SDP, not received-from
    assert [m.rtp.peer for m in a.medias] == [("192.0.2.10", 49170), ("192.0.2.10", 49180)]  # type: ignore[union-attr]
    # the same options on another request start afresh: received-from replaces the SDP's
    reg.offer("c2", "a", None, _two_lines(ice_first=False), options, render)
    peers = [m.rtp.peer for m in reg.calls["c2"].parties["a"].medias]  # type: ignore[union-attr]
    assert peers == [("198.51.100.7", 49170), ("198.51.100.7", 49180)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.trust_address = True  # type: ignore[misc]


def test_a_new_call_is_created_before_it_is_updated_and_updates_carry_the_exchange() -> None:
    reg, _ = registry()
    events: list[CallEvent] = []
    reg.listeners.append(events.append)
    offered = session()
    out = reg.offer("c1", "a", None, offered, flags(), render)
    call = reg.calls["c1"]
    assert events == [CallCreated(call), CallUpdated(call, Exchange("offer", "a", offered, out))]
    answer = session("192.0.2.20", 50000)
    out = reg.answer("c1", "a", "b", answer, flags(), render)
    assert events[2:] == [CallUpdated(call, Exchange("answer", "b", answer, out))]


def test_a_refused_new_offer_still_announces_its_call_once() -> None:
    from relay.call import CallError

    reg, _ = registry()
    events: list[CallEvent] = []
    reg.listeners.append(events.append)
    with pytest.raises(CallError, match="Invalid dialogue association"):
        reg.offer("c1", "a", "a", session(), flags(), render)
    assert events == [CallCreated(reg.calls["c1"])]
