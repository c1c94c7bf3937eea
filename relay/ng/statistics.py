"""The ng `statistics` reply: keys, types, rtpengine 10.5's order (docs/spec/ng-protocol.md §4.3).

Gathered from neutral counters (registry totals, control counters, per-command delays); the
same figures feed the Prometheus exposition.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from relay.call import Registry
from relay.control import ControlCounters
from relay.ng.commands import COMMAND_NAMES, SHORT_NAMES, Delays


def _f6(x: float) -> str:
    return f"{x:.6f}"


def _media_in_userspace(registry: Registry) -> int:
    """Media sections that have received packets (all forwarding is in userspace)."""
    return sum(
        1
        for call in registry.calls.values()
        for party in call.all_parties()
        for side in party.medias
        if side.rtp is not None and side.rtp.packets
    )


def current(registry: Registry, rates: Mapping[str, int]) -> dict[str, Any]:
    own = len(registry.calls)
    userspace = _media_in_userspace(registry)
    return {
        "sessionsown": own,
        "sessionsforeign": 0,
        "sessionstotal": own,
        "transcodedmedia": 0,
        "packetrate_user": rates.get("packets", 0),
        "byterate_user": rates.get("bytes", 0),
        "errorrate_user": rates.get("errors", 0),
        "packetrate_kernel": 0,
        "byterate_kernel": 0,
        "errorrate_kernel": 0,
        "packetrate": rates.get("packets", 0),
        "byterate": rates.get("bytes", 0),
        "errorrate": rates.get("errors", 0),
        "media_userspace": userspace,
        "media_kernel": 0,
        "media_mixed": 0,
    }


def total(registry: Registry, uptime: float, relayed: tuple[int, int, int]) -> dict[str, Any]:
    t = registry.totals
    n = t.managed
    avg = t.call_duration / n if n else 0.0
    var = t.call_duration2 / n - avg * avg if n else 0.0
    packets, bytes_, errors = relayed
    return {
        "uptime": str(int(uptime)),
        "managedsessions": t.managed,
        "rejectedsessions": t.rejected,
        "timeoutsessions": t.timeout,
        "silenttimeoutsessions": t.silent_timeout,
        "finaltimeoutsessions": t.final_timeout,
        "offertimeoutsessions": t.offer_timeout,
        "regularterminatedsessions": t.regular,
        "forcedterminatedsessions": t.forced,
        "relayedpackets_user": packets,
        "relayedpacketerrors_user": errors,
        "relayedbytes_user": bytes_,
        "relayedpackets_kernel": 0,
        "relayedpacketerrors_kernel": 0,
        "relayedbytes_kernel": 0,
        "relayedpackets": packets,
        "relayedpacketerrors": errors,
        "relayedbytes": bytes_,
        "zerowaystreams": t.zeroway,
        "onewaystreams": t.oneway,
        "avgcallduration": _f6(avg),
        "totalcallsduration": _f6(t.call_duration),
        "totalcallsduration2": _f6(t.call_duration2),
        "totalcallsduration_stddev": _f6(math.sqrt(max(var, 0.0))),
    }


def interval(registry: Registry, delays: Mapping[str, Delays]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "totalcallsduration": _f6(0.0),
        "minmanagedsessions": 0,
        "maxmanagedsessions": 0,
    }
    for name in COMMAND_NAMES:
        d = delays.get(name)
        out[f"min{name}delay"] = _f6(d.low if d else 0.0)
        out[f"max{name}delay"] = _f6(d.high if d else 0.0)
        out[f"avg{name}delay"] = _f6(d.average if d else 0.0)
    for name in COMMAND_NAMES:
        out[f"min{name}requestrate"] = "0"
        out[f"max{name}requestrate"] = "0"
        out[f"avg{name}requestrate"] = "0"
    return out


def control(counters: ControlCounters) -> dict[str, Any]:
    proxies = []
    for host, pc in counters.proxies.items():
        entry: dict[str, Any] = {"proxy": host}
        for name, short in zip(COMMAND_NAMES, SHORT_NAMES, strict=True):
            entry[f"{short}count"] = pc.commands.get(name, 0)
            entry[f"{short}duration"] = _f6(0.0)
        entry["errorcount"] = pc.errors
        proxies.append(entry)
    out: dict[str, Any] = {"proxies": proxies}
    for name, short in zip(COMMAND_NAMES, SHORT_NAMES, strict=True):
        out[f"total{short}count"] = counters.commands.get(name, 0)
    return out


def interfaces(registry: Registry) -> list[dict[str, Any]]:
    out = []
    for itf in registry.interfaces:
        pool = registry.pools[itf.local]
        used = len(pool.used)
        out.append(
            {
                "name": itf.name,
                "address": itf.local,
                "ports": {
                    "min": pool.port_min,
                    "max": pool.port_max,
                    "used": used,
                    "used_pct": f"{100.0 * used / pool.total:.2f}",
                    "free": pool.free,
                    "totals": pool.total,
                    "last": pool.last,
                },
            }
        )
    return out


def statistics(
    registry: Registry,
    counters: ControlCounters,
    delays: Mapping[str, Delays],
    uptime: float,
    relayed: tuple[int, int, int],
    rates: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The `statistics` dict of the ng reply."""
    return {
        "currentstatistics": current(registry, rates or {}),
        "totalstatistics": total(registry, uptime, relayed),
        "intervalstatistics": interval(registry, delays),
        "mos": {
            "mos_total": _f6(0.0),
            "mos2_total": _f6(0.0),
            "mos_samples_total": 0,
            "mos_average": _f6(0.0),
            "mos_stddev": _f6(0.0),
        },
        "controlstatistics": control(counters),
        "interfaces": interfaces(registry),
        "transcoders": [],
    }


def _sum(values: list[Any]) -> Any:
    first = values[0]
    if isinstance(first, bool) or not isinstance(first, (int, float)):
        return first
    return sum(values)


def merge(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Several workers' `statistics` dicts as one process with all their calls would give."""
    # provisional: counts add up; text figures are the first worker's
    out: dict[str, Any] = {}
    for section, value in parts[0].items():
        if isinstance(value, dict):
            out[section] = {k: _sum([p[section].get(k, 0) for p in parts]) for k in value}
        else:
            out[section] = value
    return out
