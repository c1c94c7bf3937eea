"""The text of rtpengine-ctl's `list ...` replies, byte for byte as rtpengine 10.5 prints them
(docs/spec/metrics.md §3.3, compared side by side in tests/integration/ops/test_ctl_vs_rtpengine.py)
and rtpvault's `forwarding` table. Each function takes the daemon (and the CtlState) and returns
the whole reply; all run on the loop thread, so they read the call state without locks. With
`num-threads` workers the daemon-wide replies are rendered from every worker's part
(`session_counts`, `session_rows`, `figures`, `forwarding_rows`; merged in rtpvault.ctl.commands).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from relay.ng import statistics as ngstats
from relay.ng.callstats import media_codec
from relay.ng.commands import COMMAND_NAMES, SHORT_NAMES
from relay.ng.statistics import Figures
from rtpvault.component import DaemonContext
from rtpvault.ctl.state import CtlState

__all__ = ["figures", "forwarding", "forwarding_rows", "interfaces", "jsonstats", "numsessions",
           "session", "session_counts", "session_rows", "sessions", "totals"]  # fmt: skip


def figures(daemon: DaemonContext, state: CtlState) -> Figures:
    """This process's raw figures for `list totals|counters|jsonstats|interfaces` (the
    workers' are merged by relay.ng.statistics before rendering)."""
    return ngstats.figures(daemon.registry, daemon.control.counters, daemon.commands.delays,
                           time.monotonic() - daemon.started, daemon.registry.relayed(),
                           state.rates)  # fmt: skip


Counts = tuple[int, int, int, int, int, int]
"""(own calls, all calls, IPv4-only, IPv6-only, mixed, transcoded media sides): `list
numsessions` of one process."""


def session_counts(daemon: DaemonContext) -> Counts:
    calls = daemon.registry.calls.values()
    own = sum(1 for c in calls if not c.foreign)
    v4 = v6 = mixed = 0
    for call in calls:
        if not call.answered:
            continue  # rtpengine counts a call's family once its answer has been seen
        fams = {side.family for p in call.all_parties() for side in p.medias}
        if fams == {"IP4"}:
            v4 += 1
        elif fams == {"IP6"}:
            v6 += 1
        elif fams:
            mixed += 1
    return own, len(calls), v4, v6, mixed, ngstats.transcoded_media(daemon.registry)


def numsessions(counts: Counts) -> str:
    own, total, v4, v6, mixed, transcoded = counts
    return (f"Current sessions own: {own}\nCurrent sessions foreign: {total - own}\n"
            f"Current sessions total: {total}\nCurrent transcoded media: {transcoded}\n"
            f"Current sessions ipv4 only media: {v4}\nCurrent sessions ipv6 only media: {v6}\n"
            f"Current sessions ip mixed  media: {mixed}\n")  # fmt: skip


def session_rows(daemon: DaemonContext, state: CtlState, which: str) -> list[tuple[float, str]]:
    """(created, line) of the calls `list sessions all|own|foreign` shows, newest first."""
    calls = [c for c in daemon.registry.calls.values()
             if which == "all" or c.foreign == (which == "foreign")]  # fmt: skip
    out = []
    for call in reversed(calls):  # newest first, as rtpengine's hash walk happens to print
        mark = "yes" if call.deleted_at is not None else " no"
        out.append((call.created,
                    f"callid: {call.call_id:>60} | deletionmark: {mark} | created: "
                    f"{int(call.created):11d} | proxy:{state.proxy.get(call.call_id, '')} | "
                    f"redis_keyspace:0 | foreign:{'yes' if call.foreign else 'no'}\n"))  # fmt: skip
    return out


def sessions(rows: list[tuple[float, str]], which: str) -> str:
    if not rows:
        if which == "foreign":
            return "No foreign sessions on this media relay.\n"
        return "No sessions on this media relay.\n"
    return "".join(line for _, line in rows)


def _codec(party: Any, side: Any) -> str:
    """` using PCMU/8000` once media arrived, else ` using unknown codec` (rtpengine's
    cli_list_tag_info prints query's codec, docs/spec/ng-protocol.md §4.4)."""
    return f" using {media_codec(party, side) or 'unknown codec'}"


def session(daemon: DaemonContext, state: CtlState, call_id: str) -> str:
    call = daemon.registry.calls.get(call_id)
    if call is None:
        return f"\nCall ID not found ({call_id}).\n\n"
    out = [f"\ncallid: {call.call_id}\n",
           f"deletionmark: {'yes' if call.deleted_at is not None else 'no'}\n",
           f"created: {int(call.created)}\nproxy: {state.proxy.get(call.call_id, '')}\n",
           f"tos: {daemon.settings.tos}\nlast_signal: {int(call.last_signal)}\n",
           f"redis_keyspace: 0\nforeign: {'yes' if call.foreign else 'no'}\n\n"]  # fmt: skip
    now = time.time()
    first = next(iter(call.parties.values()), None)
    for party in call.all_parties():
        kind = "FROM_TAG" if party is first else "TO_TAG" if party.tag else "UNKNOWN"
        out.append(f"--- Tag '{party.tag}', type: {kind}, label '{party.label or ''}', branch "
                   f"'{party.via_branch or ''}', callduration "
                   f"{now - party.created:.6f}\n")  # fmt: skip
        if party.other is not None:
            out.append(f"---     subscribed to '{party.other.tag}'\n")
            out.append(f"---     subscription of '{party.other.tag}'\n")
        for side in party.medias:
            out.append(f"------ Media #{side.index} ({side.type} over {side.protocol})"
                       f"{_codec(party, side)}\n")  # fmt: skip
            for st in side.streams():
                peer = _peer(st)
                rtcp = " (RTCP)" if st.is_rtcp else ""
                # rtpengine's "%15s:%-5u" for both ends
                out.append(f"-------- Port {st.local_address:>15}:{st.local_port:<5} <> "
                           f"{peer[0]:>15}:{peer[1]:<5}{rtcp}, SSRC {st.ssrc or 0:x}, "
                           f"{st.packets} p, {st.bytes} b, {st.errors} e, "
                           f"{int(st.last_packet or call.created)} ts\n")  # fmt: skip
    out.append("\n")
    return "".join(out)


def _peer(stream: Any) -> tuple[str, int]:
    """The endpoint rtpengine prints: learned, else the SDP's; none (an untagged party not
    answered yet) prints as an empty address and port 0 (measured)."""
    peer = stream.peer or stream.sdp_peer
    return (peer[0], peer[1]) if peer else ("", 0)


def _line(label: str, value: Any) -> str:
    return f" {label:<48}:{value}\n"


def totals(st: dict[str, Any]) -> str:
    """`list totals` from the `statistics` dict (relay.ng.statistics.build)."""
    cur, tot, ivl, mos = (st["currentstatistics"], st["totalstatistics"],
                          st["intervalstatistics"], st["mos"])  # fmt: skip
    out = [
        "\nStatistics over currently running sessions:\n\n",
        _line("Owned sessions", cur["sessionsown"]),
        _line("Foreign sessions", cur["sessionsforeign"]),
        _line("Total sessions", cur["sessionstotal"]),
        _line("Transcoded media", cur["transcodedmedia"]),
        counters_lines(cur),
        _line("Userspace-only media streams", cur["media_userspace"]),
        _line("Kernel-only media streams", cur["media_kernel"]),
        _line("Mixed kernel/userspace media streams", cur["media_mixed"]),
        "\nTotal statistics (does not include current running sessions):\n\n",
        _line("Uptime of rtpengine", f"{tot['uptime']} seconds"),
    ]
    for label, key in (
        ("Total managed sessions", "managedsessions"),
        ("Total rejected sessions", "rejectedsessions"),
        ("Total timed-out sessions via TIMEOUT", "timeoutsessions"),
        ("Total timed-out sessions via SILENT_TIMEOUT", "silenttimeoutsessions"),
        ("Total timed-out sessions via FINAL_TIMEOUT", "finaltimeoutsessions"),
        ("Total timed-out sessions via OFFER_TIMEOUT", "offertimeoutsessions"),
        ("Total regular terminated sessions", "regularterminatedsessions"),
        ("Total forced terminated sessions", "forcedterminatedsessions"),
        ("Total relayed packets (userspace)", "relayedpackets_user"),
        ("Total relayed packet errors (userspace)", "relayedpacketerrors_user"),
        ("Total relayed bytes (userspace)", "relayedbytes_user"),
        ("Total relayed packets (kernel)", "relayedpackets_kernel"),
        ("Total relayed packet errors (kernel)", "relayedpacketerrors_kernel"),
        ("Total relayed bytes (kernel)", "relayedbytes_kernel"),
        ("Total relayed packets", "relayedpackets"),
        ("Total relayed packet errors", "relayedpacketerrors"),
        ("Total relayed bytes", "relayedbytes"),
        ("Total number of streams with no relayed packets", "zerowaystreams"),
        ("Total number of 1-way streams", "onewaystreams"),
    ):
        out.append(_line(label, tot[key]))
    out += [_line("Average call duration", f"{tot['avgcallduration']} seconds"),
            _line("Total calls duration", f"{tot['totalcallsduration']} seconds"),
            _line("Total calls duration squared", f"{tot['totalcallsduration2']} seconds squared"),
            _line("Total calls duration standard deviation",
                  f"{tot['totalcallsduration_stddev']} seconds"),
            "\n\nGraphite interval statistics (last reported values to graphite):\n",
            _line("Total calls duration", f"{ivl['totalcallsduration']} seconds"), "\n",
            _line("Min managed sessions", ivl["minmanagedsessions"]),
            _line("Max managed sessions", ivl["maxmanagedsessions"])]  # fmt: skip
    for name in COMMAND_NAMES:
        out.append(_line(f"Min/Max/Avg {name} processing delay",
                         f"{ivl[f'min{name}delay']}/{ivl[f'max{name}delay']}/"
                         f"{ivl[f'avg{name}delay']} sec"))  # fmt: skip
    for name in COMMAND_NAMES:
        out.append(_line(f"Min/Max/Avg {name} requests per second",
                         f"{ivl[f'min{name}requestrate']}/{ivl[f'max{name}requestrate']}/"
                         f"{ivl[f'avg{name}requestrate']} per sec"))  # fmt: skip
    out += ["\n\nMOS statistics:\n\n",
            _line("Sum of all MOS values sampled", mos["mos_total"]),
            _line("Sum of all MOS square values sampled", mos["mos2_total"]),
            _line("Total number of MOS samples", mos["mos_samples_total"]),
            _line("Average MOS", mos["mos_average"]),
            _line("MOS standard deviation", mos["mos_stddev"]),
            "\n\nControl statistics:\n\n", _control(st["controlstatistics"]),
            "\n\n\n\n"]  # fmt: skip
    return "".join(out)


_SHORT_HEADERS = ("Ping", "Offer", "Answer", "Delete", "Query", "List", "StartRec", "StopRec",
                  "StartFwd", "StopFwd", "BlkDTMF", "UnblkDTMF", "BlkMedia", "UnblkMedia",
                  "PlayMedia", "StopMedia", "PlayDTMF", "Stats", "SlnMedia", "UnslnMedia", "Pub",
                  "SubReq", "SubAns", "Unsub")  # fmt: skip


def _control(control: dict[str, Any]) -> str:
    rows = [f"{'Proxy':>21}" + "".join(f" | {h:>10}" for h in _SHORT_HEADERS) + " \n"]
    for proxy in control["proxies"]:
        cells = "".join(f" | {proxy[f'{short}count']:>10}" for short in SHORT_NAMES)
        rows.append(f"{proxy['proxy']:>21}{cells} \n")
    return "".join(rows)


def counters_lines(cur: dict[str, Any]) -> str:
    return "".join(_line(label, cur[key]) for label, key in (
        ("Packets per second (userspace)", "packetrate_user"),
        ("Bytes per second (userspace)", "byterate_user"),
        ("Errors per second (userspace)", "errorrate_user"),
        ("Packets per second (kernel)", "packetrate_kernel"),
        ("Bytes per second (kernel)", "byterate_kernel"),
        ("Errors per second (kernel)", "errorrate_kernel"),
        ("Packets per second (total)", "packetrate"),
        ("Bytes per second (total)", "byterate"),
        ("Errors per second (total)", "errorrate"),
    ))  # fmt: skip


def counters(st: dict[str, Any]) -> str:
    return "\nCurrent per-second counters:\n\n" + counters_lines(st["currentstatistics"])


def interfaces(fig: Figures) -> str:
    out = []
    for pool in fig.pools:
        used, size = pool.used, pool.port_max - pool.port_min + 1
        fam = "IPv6" if ":" in pool.address else "IPv4"
        out.append(f"Interface '{pool.name}' address '{pool.address}' ({fam})\n"
                   f" Port range: {pool.port_min} - {pool.port_max}\n"
                   f" Ports used: {used:5d} / {size:5d} ({100.0 * used / size:5.1f}%)\n"
                   f" Last port used: {pool.last}\n")  # fmt: skip
    return "".join(out)


def _numbers(value: Any) -> Any:
    """ng's `statistics` carries figures as strings ("0.000000"); `list jsonstats` as numbers."""
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        return float(value) if "." in value else int(value)
    return value


_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def jsonstats(st: dict[str, Any]) -> str:
    return json.dumps(_numbers(st), separators=(",", ":")) + "\n"


def forwarding_rows(daemon: DaemonContext) -> list[tuple[float, str]]:
    """One line per stream: where packets come from, the local port, where they go, and the
    path that forwards them — rtpvault's answer to the kernel module's /proc/rtpengine/0/list."""
    rows = []
    for call in daemon.registry.calls.values():
        for party in call.all_parties():
            for side in party.medias:
                for st in side.streams():
                    sink = st.sink
                    out = dst = "-"
                    if sink is not None:
                        out = f"{sink.local_address}:{sink.local_port}"
                        dst = f"{sink.peer[0]}:{sink.peer[1]}" if sink.peer else "-"
                    src = f"{st.peer[0]}:{st.peer[1]}" if st.peer else "-"
                    kind = "rtcp" if st.is_rtcp else "rtp"
                    rows.append((call.created, f"{call.call_id} {party.tag} {kind} "
                                f"{src} -> {st.local_address}:{st.local_port} => {out} -> {dst} "
                                f"path=userspace packets={st.packets} bytes={st.bytes} "
                                f"errors={st.errors} dropped={st.dropped} "
                                f"recorded={'yes' if st.tap else 'no'}\n"))  # fmt: skip
    return rows


def forwarding(rows: list[tuple[float, str]]) -> str:
    """The table from (call created, row), oldest call first as one process lists them."""
    return "".join(row for _, row in rows) if rows else "No streams.\n"


def transcoders(fig: Figures) -> str:
    """`list transcoders` as rtpengine 10.5 prints it: one line per chain label (its per-second
    rates, printed when its last whole second had input, are not kept by rtpvault)."""
    if not fig.chains:
        return "No stats entries\n"
    return "".join(f"{label}: {n} transcoders\n" for label, (n, *_) in fig.chains.items())
