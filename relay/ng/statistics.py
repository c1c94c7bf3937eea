"""The ng `statistics` reply: keys, types, rtpengine 10.5's order (docs/spec/ng-protocol.md §4.3).

Gathered from neutral counters (registry totals, control counters, per-command delays) into
`Figures`, raw and mergeable: with `num-threads` workers every worker sends its own, `merge` adds
them up (sums of counts and durations, min/max of delays, the union of the port pools...) and
the reply is built once (`build`), so it reads as one process's with all the calls. The same
figures feed the Prometheus exposition and rtpengine-ctl's `list totals`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from relay.call import Registry, Totals
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


@dataclass(slots=True)
class Pool:
    """One interface's port pool as `statistics` shows it (`last_at`: when `last` was taken,
    time.monotonic(), the same clock in every worker process)."""

    name: str
    address: str
    port_min: int
    port_max: int
    used: int
    last: int
    last_at: float


@dataclass(slots=True)
class Figures:
    """The raw, mergeable inputs of one process's `statistics` (and of /metrics and the ctl
    totals): picklable, so each worker sends its own and the reply is built once from the sum
    (`merge`), as one process with all the calls would build it."""

    uptime: float
    calls: int
    foreign: int
    media_userspace: int
    rates: dict[str, int]
    totals: Totals
    relayed: tuple[int, int, int]
    delays: dict[str, tuple[int, float, float, float]]
    """command → (count, total, low, high) seconds."""
    commands: dict[str, int]
    proxies: dict[str, tuple[dict[str, int], int, float]]
    """host → (requests per command, error replies, first seen: time.monotonic())."""
    pools: list[Pool]
    transcoded: int = 0
    """Media sides being transcoded now (rtpengine's `transcodedmedia`: one per direction)."""
    chains: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    """Chain label → (transcoders now, packets, bytes, samples): relay.media.transcoder."""
    transcode_drops: dict[str, int] = field(default_factory=dict)
    """Packets into chains that produced nothing, by cause (relay.media.transcoder)."""


def transcoded_media(registry: Registry) -> int:
    """Sides whose party's audio goes through a chain that encodes (rtpengine's TRANSCODE
    media flag: a plan that only renumbers payload types does not count)."""
    return sum(
        1
        for call in registry.calls.values()
        for party in call.all_parties()
        for side in party.medias
        if side.transcoder is not None and side.transcoder.plan.transcodes
    )


def _merge_chains(parts: Sequence[Mapping[str, tuple[int, int, int, int]]]) -> dict[
    str, tuple[int, int, int, int]
]:
    out: dict[str, tuple[int, int, int, int]] = {}
    for part in parts:
        for label, (n, packets, bytes_, samples) in part.items():
            a = out.get(label, (0, 0, 0, 0))
            out[label] = (a[0] + n, a[1] + packets, a[2] + bytes_, a[3] + samples)
    return out


def figures(registry: Registry, counters: ControlCounters, delays: Mapping[str, Delays],
            uptime: float, relayed: tuple[int, int, int], rates: Mapping[str, int] | None = None,
            userspace: int | None = None) -> Figures:  # fmt: skip
    """This process's figures (`userspace`: the media count if the caller walked the calls)."""
    calls = registry.calls
    pools = []
    for itf in registry.interfaces:
        pool = registry.pools.get(itf.local)
        if pool is not None:
            pools.append(Pool(itf.name, itf.local, pool.port_min, pool.port_max, len(pool.used),
                              pool.last, pool.last_at))  # fmt: skip
    return Figures(
        uptime=uptime,
        calls=len(calls),
        foreign=sum(1 for c in calls.values() if c.foreign),
        media_userspace=_media_in_userspace(registry) if userspace is None else userspace,
        rates=dict(rates or {}),
        totals=replace(registry.totals, secure_drops=dict(registry.totals.secure_drops)),
        relayed=relayed,
        delays={k: (d.count, d.total, d.low, d.high) for k, d in delays.items() if d.count},
        commands=dict(counters.commands),
        proxies={h: (dict(pc.commands), pc.errors, pc.since) for h, pc in counters.proxies.items()},
        pools=pools,
        transcoded=transcoded_media(registry),
        chains=registry.transcoders.snapshot(),
        transcode_drops=registry.transcoders.drops(),
    )


def _add(a: dict[str, Any], b: Mapping[str, Any]) -> None:
    for key, value in b.items():
        a[key] = a.get(key, 0) + value


def _summed(parts: Sequence[Mapping[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in parts:
        _add(out, part)
    return out


def _merge_totals(parts: Sequence[Totals]) -> Totals:
    out = Totals()
    for t in parts:
        for f in fields(Totals):
            if f.name == "secure_drops":
                _add(out.secure_drops, t.secure_drops)
            else:
                setattr(out, f.name, getattr(out, f.name) + getattr(t, f.name))
    return out


def _merge_pools(parts: Sequence[list[Pool]]) -> list[Pool]:
    """Per interface: ports used add up; the range is the union of the workers' ranges (the
    same range, or slices of it); `last` is the port taken most recently by any worker."""
    out: list[Pool] = []
    for same in zip(*parts, strict=False):
        first = same[0]
        newest = max(same, key=lambda p: p.last_at)
        out.append(Pool(first.name, first.address, min(p.port_min for p in same),
                        max(p.port_max for p in same), sum(p.used for p in same), newest.last,
                        newest.last_at))  # fmt: skip
    return out


def merge(parts: Sequence[Figures]) -> Figures:
    """Several workers' figures as one process with all their calls would have them."""
    if len(parts) == 1:
        return parts[0]
    delays: dict[str, tuple[int, float, float, float]] = {}
    for part in parts:
        for name, (n, total_, low, high) in part.delays.items():
            seen = delays.get(name)
            if seen is None:
                delays[name] = (n, total_, low, high)
            else:
                delays[name] = (seen[0] + n, seen[1] + total_, min(seen[2], low),
                                max(seen[3], high))  # fmt: skip
    proxies: dict[str, tuple[dict[str, int], int, float]] = {}
    for part in parts:
        for host, (requests, errors, since) in part.proxies.items():
            seen_p = proxies.get(host)
            if seen_p is None:
                proxies[host] = (dict(requests), errors, since)
            else:
                _add(seen_p[0], requests)
                proxies[host] = (seen_p[0], seen_p[1] + errors, min(seen_p[2], since))
    commands: dict[str, int] = {}
    rates: dict[str, int] = {}
    for part in parts:
        _add(commands, part.commands)
        _add(rates, part.rates)
    relayed = tuple(sum(p.relayed[i] for p in parts) for i in range(3))
    return Figures(
        uptime=max(p.uptime for p in parts),  # the daemon's: its oldest worker's
        calls=sum(p.calls for p in parts),
        foreign=sum(p.foreign for p in parts),
        media_userspace=sum(p.media_userspace for p in parts),
        rates=rates,
        totals=_merge_totals([p.totals for p in parts]),
        relayed=(relayed[0], relayed[1], relayed[2]),
        delays=delays,
        commands=commands,
        # one process lists the proxies in the order it first heard from them
        proxies=dict(sorted(proxies.items(), key=lambda item: item[1][2])),
        pools=_merge_pools([p.pools for p in parts]),
        transcoded=sum(p.transcoded for p in parts),
        chains=_merge_chains([p.chains for p in parts]),
        transcode_drops=_summed([p.transcode_drops for p in parts]),
    )


def current(fig: Figures) -> dict[str, Any]:
    rates = fig.rates
    return {
        "sessionsown": fig.calls,
        "sessionsforeign": 0,
        "sessionstotal": fig.calls,
        "transcodedmedia": fig.transcoded,
        "packetrate_user": rates.get("packets", 0),
        "byterate_user": rates.get("bytes", 0),
        "errorrate_user": rates.get("errors", 0),
        "packetrate_kernel": 0,
        "byterate_kernel": 0,
        "errorrate_kernel": 0,
        "packetrate": rates.get("packets", 0),
        "byterate": rates.get("bytes", 0),
        "errorrate": rates.get("errors", 0),
        "media_userspace": fig.media_userspace,
        "media_kernel": 0,
        "media_mixed": 0,
    }


def total(fig: Figures) -> dict[str, Any]:
    t = fig.totals
    n = t.managed
    avg = t.call_duration / n if n else 0.0
    var = t.call_duration2 / n - avg * avg if n else 0.0
    packets, bytes_, errors = fig.relayed
    return {
        "uptime": str(int(fig.uptime)),
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


def interval(fig: Figures) -> dict[str, Any]:
    out: dict[str, Any] = {
        "totalcallsduration": _f6(0.0),
        "minmanagedsessions": 0,
        "maxmanagedsessions": 0,
    }
    for name in COMMAND_NAMES:
        n, sum_, low, high = fig.delays.get(name, (0, 0.0, 0.0, 0.0))
        out[f"min{name}delay"] = _f6(low)
        out[f"max{name}delay"] = _f6(high)
        out[f"avg{name}delay"] = _f6(sum_ / n if n else 0.0)
    for name in COMMAND_NAMES:
        out[f"min{name}requestrate"] = "0"
        out[f"max{name}requestrate"] = "0"
        out[f"avg{name}requestrate"] = "0"
    return out


def control(fig: Figures) -> dict[str, Any]:
    proxies = []
    for host, (commands, errors, _) in fig.proxies.items():
        entry: dict[str, Any] = {"proxy": host}
        for name, short in zip(COMMAND_NAMES, SHORT_NAMES, strict=True):
            entry[f"{short}count"] = commands.get(name, 0)
            entry[f"{short}duration"] = _f6(0.0)
        entry["errorcount"] = errors
        proxies.append(entry)
    out: dict[str, Any] = {"proxies": proxies}
    for name, short in zip(COMMAND_NAMES, SHORT_NAMES, strict=True):
        out[f"total{short}count"] = fig.commands.get(name, 0)
    return out


def interfaces(fig: Figures) -> list[dict[str, Any]]:
    out = []
    for pool in fig.pools:
        size = pool.port_max - pool.port_min + 1
        out.append(
            {
                "name": pool.name,
                "address": pool.address,
                "ports": {
                    "min": pool.port_min,
                    "max": pool.port_max,
                    "used": pool.used,
                    "used_pct": f"{100.0 * pool.used / size:.2f}",
                    "free": size - pool.used,
                    "totals": size,
                    "last": pool.last,
                },
            }
        )
    return out


def build(fig: Figures) -> dict[str, Any]:
    """The `statistics` dict of the ng reply."""
    return {
        "currentstatistics": current(fig),
        "totalstatistics": total(fig),
        "intervalstatistics": interval(fig),
        "mos": {
            "mos_total": _f6(0.0),
            "mos2_total": _f6(0.0),
            "mos_samples_total": 0,
            "mos_average": _f6(0.0),
            "mos_stddev": _f6(0.0),
        },
        "controlstatistics": control(fig),
        "interfaces": interfaces(fig),
        "transcoders": transcoders(fig),
    }


def transcoders(fig: Figures) -> list[dict[str, Any]]:
    """rtpengine's `transcoders` list: one entry per chain label this daemon has run (they stay
    after their calls, `num` back to 0). rtpengine adds `packetrate`/`byterate`/`samplerate`
    only when its last whole second had input; rtpvault does not keep per-second figures and
    leaves them out (docs/spec/metrics.md §1.3)."""
    return [
        {"chain": label, "num": n, "packets": packets, "bytes": bytes_, "samples": samples}
        for label, (n, packets, bytes_, samples) in fig.chains.items()
    ]


def reply(parts: Sequence[Figures]) -> dict[str, Any]:
    """The `statistics` dict from every worker's figures (one part in a single process)."""
    return build(merge(parts))


def statistics(
    registry: Registry,
    counters: ControlCounters,
    delays: Mapping[str, Delays],
    uptime: float,
    relayed: tuple[int, int, int],
    rates: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The `statistics` dict of one process."""
    return build(figures(registry, counters, delays, uptime, relayed, rates))
