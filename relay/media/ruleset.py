"""The nftables table of the kernel plane (relay.media.kernel): its ruleset, its marks, and the
table-level operations of a daemon with several worker processes (issue 18).

One process (`num-threads` = 1, or a test) creates the table itself and deletes it on exit. With
worker processes, the supervisor creates ONE table for all of them before forking
(`create_shared_table`) and deletes it on exit (`delete_shared_table`). In it, worker i has its
own maps and set (`streams_i`, `daddr_i`, … `sent_i`), its own rule in `pre` and its own chain
`out_i` after routing, and sets only marks of its own range (`worker_marks`). Own maps, not one
`streams` map filtered by mark: listing a map costs libnftables ~25-50 µs per element and the
sweep lists its counters every second, so in one shared map every worker would pay for all
workers' streams (N workers: N times the single-process cost); own maps also let a worker drop
all its elements with one `flush` per map, without listing anything. Disjoint marks are still
needed: after routing a packet is dispatched to `out_i` by its mark's high bits.

A worker that died (kill -9) leaves its elements forwarding in the kernel; the supervisor removes
them at once (`purge_worker`) and the restarted worker with the same index removes any left over
when it attaches. Why the supervisor at once: the dead worker's ports are free again, and a new
call of another worker on such a port from the same peer address and port would have its
packets taken by the stale entry.
"""

from __future__ import annotations

from relay.media.nft import Nft, NftError, can_admin_network, ip_forwarding

TABLE = "rtpvault"
MARK_BASE = 0x7E000000
"""Marks the kernel plane sets are MARK_BASE + n; only packets it matched carry one."""
WORKER_BITS = 20
"""Worker i's marks are MARK_BASE + (i << WORKER_BITS) + 1 … + (1 << WORKER_BITS) - 1: about a
million streams per worker, far above the ports one worker can hold."""
MAX_WORKERS = (2**32 - MARK_BASE) >> WORKER_BITS
"""Workers whose mark ranges fit in the 32-bit mark (2080)."""

PRE_RULE = " ".join(
    (
        "meta l4proto udp",
        "meta mark set ip saddr . udp sport . ip daddr . udp dport map @streams",
        "notrack",
        "ip daddr set meta mark map @daddr udp dport set meta mark map @dport",
    )
)
RULESET = """
table ip {table} {{
    map streams {{ type ipv4_addr . inet_service . ipv4_addr . inet_service : mark; counter; }}
    map daddr {{ type mark : ipv4_addr; }}
    map dport {{ type mark : inet_service; }}
    map saddr {{ type mark : ipv4_addr; }}
    map sport {{ type mark : inet_service; }}
    set sent {{ type mark; counter; }}
    chain pre {{
        type filter hook prerouting priority raw; policy accept;
        {pre_rule}
    }}
    chain post {{
        type filter hook postrouting priority srcnat; policy accept;
        meta mark @sent ip saddr set meta mark map @saddr udp sport set meta mark map @sport
    }}
    chain local {{
        type filter hook input priority 100; policy accept;
        meta mark @sent ip saddr set meta mark map @saddr udp sport set meta mark map @sport
    }}
}}
"""
MAPS = {
    "streams": "map {n} {{ type ipv4_addr . inet_service . ipv4_addr . inet_service : mark; "
    "counter; }}",
    "daddr": "map {n} {{ type mark : ipv4_addr; }}",
    "dport": "map {n} {{ type mark : inet_service; }}",
    "saddr": "map {n} {{ type mark : ipv4_addr; }}",
    "sport": "map {n} {{ type mark : inet_service; }}",
    "sent": "set {n} {{ type mark; counter; }}",
}
"""A worker's maps and set, as in RULESET, under its own names (`streams_0`, …)."""
WORKER_PRE = (
    "meta l4proto udp meta mark set ip saddr . udp sport . ip daddr . udp dport map @streams{s} "
    "notrack ip daddr set meta mark map @daddr{s} udp dport set meta mark map @dport{s} accept"
)
WORKER_OUT = (
    "meta mark @sent{s} ip saddr set meta mark map @saddr{s} udp sport set meta mark map @sport{s}"
)
WORKER_MASK = (2**32 - 1) ^ ((1 << WORKER_BITS) - 1)
"""A mark's high bits, which name the worker whose range it is in (MARK_BASE's low bits are 0)."""


def table_name(table: int) -> str:
    """`ip rtpvault` for table 0, `ip rtpvault<N>` otherwise: like rtpengine's table numbers,
    it keeps several daemons on one host (or namespace) out of each other's entries."""
    return TABLE if table == 0 else f"{TABLE}{table}"


def single_marks() -> range:
    """The marks of a plane that owns its table alone (one process)."""
    return range(MARK_BASE + 1, 2**32)


def suffix(worker: int | None) -> str:
    """What a plane's map names end with: nothing for a single process, `_i` for worker i."""
    return "" if worker is None else f"_{worker}"


def worker_marks(index: int, count: int) -> range:
    """The marks of worker `index` of `count` sharing one table: disjoint for distinct indexes,
    all inside the 32-bit mark, none equal to MARK_BASE."""
    if not 0 < count <= MAX_WORKERS or not 0 <= index < count:
        raise ValueError(f"worker {index} of {count}: at most {MAX_WORKERS} workers share a table")
    low = MARK_BASE + (index << WORKER_BITS)
    return range(low + 1, low + (1 << WORKER_BITS))


def shared_ruleset(name: str, workers: int) -> str:
    """Table `name` for `workers` worker processes (module docstring). `pre` tries each
    worker's `streams_i` in turn (`accept` ends the chain at the first match: one lookup per
    worker for any other UDP packet); after routing, one verdict map on the mark's high bits
    jumps to the owner's `out_i`."""
    worker_marks(0, workers)  # validates the count
    lines = [f"table ip {name} {{"]
    for i in range(workers):
        lines += [f"    {spec.format(n=m + suffix(i))}" for m, spec in MAPS.items()]
        lines.append(f"    chain out{suffix(i)} {{ {WORKER_OUT.format(s=suffix(i))}; }}")
    rules = [WORKER_PRE.format(s=suffix(i)) for i in range(workers)]
    lines.append("    chain pre {")
    lines.append("        type filter hook prerouting priority raw; policy accept;")
    lines += [f"        {rule}" for rule in rules]
    lines.append("    }")
    jumps = ", ".join(
        f"{worker_marks(i, workers).start - 1:#x} : jump out{suffix(i)}" for i in range(workers)
    )
    dispatch = f"meta mark and {WORKER_MASK:#x} vmap {{ {jumps} }}"
    for chain, hook in (("post", "postrouting priority srcnat"), ("local", "input priority 100")):
        lines.append(f"    chain {chain} {{")
        lines.append(f"        type filter hook {hook}; policy accept;")
        lines.append(f"        {dispatch}")
        lines.append("    }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def create(nft: Nft, name: str, workers: int | None = None) -> None:
    """(Re)create table `name` empty in one transaction (a crashed daemon's table goes): for
    one process, or shared by `workers` worker processes."""
    if workers is None:
        ruleset = RULESET.format(table=name, pre_rule=PRE_RULE)
    else:
        ruleset = shared_ruleset(name, workers)
    nft.run(f"table ip {name}\ndelete table ip {name}\n{ruleset}")


def delete(nft: Nft, name: str) -> bool:
    """Delete table `name`; False if it was not there. Other nft errors raise."""
    try:
        nft.run(f"delete table ip {name}")
    except NftError as exc:
        if "No such file" in str(exc):
            return False
        raise
    return True


def why_not() -> str:
    """Why this process cannot forward in the kernel, or '' when it can (see open_kernel_plane)."""
    if not can_admin_network():
        return "no CAP_NET_ADMIN (run as root or grant it)"
    if not ip_forwarding():
        return "net.ipv4.ip_forward is 0 (forwarded media could not leave this host)"
    return ""


def create_shared_table(table: int, workers: int) -> str | None:
    """Supervisor, before forking the workers: create the one table its `workers` workers all
    attach to (`open_kernel_plane(..., worker=(i, workers))`). None when done (or `table` < 0:
    nothing to do), else why not, as open_kernel_plane reports it (for 'FAILED TO CREATE
    KERNEL TABLE')."""
    if table < 0:
        return None
    worker_marks(0, workers)  # a bad count is the caller's bug: ValueError
    reason = why_not()
    if reason:
        return reason
    try:
        nft = Nft()
    except NftError as exc:
        return str(exc)
    try:
        create(nft, table_name(table), workers)
    except NftError as exc:
        return str(exc)
    finally:
        nft.close()  # no libnftables context is inherited by the forked workers
    return None


def delete_shared_table(table: int) -> None:
    """Supervisor, on exit after the workers: delete the shared table. Idempotent; a missing
    table, libnftables or permission is not an error (there is then nothing to delete)."""
    if table < 0:
        return
    try:
        nft = Nft()
    except NftError:
        return
    try:
        delete(nft, table_name(table))
    except NftError:
        pass
    finally:
        nft.close()


def purge_worker(table: int, index: int) -> int:
    """Supervisor, when worker `index` died: remove its elements so its streams stop being
    forwarded at once. Returns how many streams were removed; 0 when there is no table."""
    if table < 0:
        return 0
    try:
        nft = Nft()
    except NftError:
        return 0
    try:
        stale = held(nft, table_name(table), index)
        flush(nft, table_name(table), index)
        return stale
    except NftError:
        return 0
    finally:
        nft.close()


def held(nft: Nft, name: str, index: int) -> int:
    """How many streams worker `index` has in table `name`. NftError (No such file or
    directory) when the table has no such worker."""
    items = nft.json(f"list map ip {name} streams{suffix(index)}")
    return sum(len(item.get("map", {}).get("elem", [])) for item in items)


def flush(nft: Nft, name: str, index: int) -> None:
    """Empty worker `index`'s maps and set in table `name` in one transaction (no listing)."""
    s = suffix(index)
    kinds = {m: "set" if spec.startswith("set") else "map" for m, spec in MAPS.items()}
    nft.run("\n".join(f"flush {kind} ip {name} {m}{s}" for m, kind in kinds.items()))
