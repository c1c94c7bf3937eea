"""The nftables table of the kernel plane (relay.media.kernel): its ruleset, its marks, and the
table-level operations of a daemon with several worker processes (issue 18).

One process (`num-threads` = 1, or a test) creates the table itself and deletes it on exit. With
worker processes, the supervisor creates ONE table before forking (`create_shared_table`) and
deletes it on exit (`delete_shared_table`); every worker attaches to it and writes elements under
marks of its own range (`worker_marks`), so workers never touch each other's streams. A worker
that died (kill -9) leaves its elements forwarding in the kernel; the supervisor removes them at
once (`purge_worker`) and the restarted worker with the same index removes any left over when it
attaches. Why the supervisor at once: the dead worker's ports are free again, and a new stream of
another worker on such a port with the same peer would collide with the stale key ("File
exists" refuses the whole transaction).
"""

from __future__ import annotations

from typing import Any

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
BY_MARK = ("daddr", "dport", "saddr", "sport")
"""The maps keyed by a stream's mark (`sent` is a set keyed by it, `streams` maps to it)."""


def table_name(table: int) -> str:
    """`ip rtpvault` for table 0, `ip rtpvault<N>` otherwise: like rtpengine's table numbers,
    it keeps several daemons on one host (or namespace) out of each other's entries."""
    return TABLE if table == 0 else f"{TABLE}{table}"


def single_marks() -> range:
    """The marks of a plane that owns its table alone (one process)."""
    return range(MARK_BASE + 1, 2**32)


def worker_marks(index: int, count: int) -> range:
    """The marks of worker `index` of `count` sharing one table: disjoint for distinct indexes,
    all inside the 32-bit mark, none equal to MARK_BASE."""
    if not 0 < count <= MAX_WORKERS or not 0 <= index < count:
        raise ValueError(f"worker {index} of {count}: at most {MAX_WORKERS} workers share a table")
    low = MARK_BASE + (index << WORKER_BITS)
    return range(low + 1, low + (1 << WORKER_BITS))


def create(nft: Nft, name: str) -> None:
    """(Re)create table `name` empty in one transaction (a crashed daemon's table goes)."""
    ruleset = RULESET.format(table=name, pre_rule=PRE_RULE)
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


def create_shared_table(table: int) -> str | None:
    """Supervisor, before forking the workers: create the one table they all attach to
    (`open_kernel_plane(..., worker=(i, n))`). None when done (or `table` < 0: nothing to do),
    else why not, as open_kernel_plane reports it (for 'FAILED TO CREATE KERNEL TABLE')."""
    if table < 0:
        return None
    reason = why_not()
    if reason:
        return reason
    try:
        nft = Nft()
    except NftError as exc:
        return str(exc)
    try:
        create(nft, table_name(table))
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


def purge_worker(table: int, index: int, count: int) -> int:
    """Supervisor, when worker `index` died: remove its elements so its streams stop being
    forwarded at once. Returns how many streams were removed; 0 when there is no table."""
    if table < 0:
        return 0
    try:
        nft = Nft()
    except NftError:
        return 0
    try:
        return purge(nft, table_name(table), worker_marks(index, count))
    except NftError:
        return 0
    finally:
        nft.close()


def _owns(marks: range, value: Any) -> bool:
    # isinstance first: `x in range` for a non-int walks the whole range (2**32 marks)
    return isinstance(value, int) and value in marks


def _elem_val(el: Any) -> Any:
    """An element's key: `{"elem": {"val": K, "counter": …}}` when it has a counter, else K."""
    if isinstance(el, dict) and "elem" in el:
        return el["elem"].get("val")
    return el


def owned(nft: Nft, name: str, marks: range) -> list[str]:
    """The `delete element` commands for every element of table `name` under `marks`."""
    lines: list[str] = []
    for item in nft.json(f"list map ip {name} streams"):
        for el in item.get("map", {}).get("elem", []):
            if isinstance(el, list) and len(el) == 2 and _owns(marks, el[1]):
                key = _elem_val(el[0])
                if isinstance(key, dict) and "concat" in key:
                    lines.append(
                        f"delete element ip {name} streams "
                        f"{{ {' . '.join(str(k) for k in key['concat'])} }}"
                    )
    for m in BY_MARK:
        for item in nft.json(f"list map ip {name} {m}"):
            for el in item.get("map", {}).get("elem", []):
                if isinstance(el, list) and len(el) == 2 and _owns(marks, el[0]):
                    lines.append(f"delete element ip {name} {m} {{ {el[0]} }}")
    for item in nft.json(f"list set ip {name} sent"):
        for el in item.get("set", {}).get("elem", []):
            mark = _elem_val(el)
            if _owns(marks, mark):
                lines.append(f"delete element ip {name} sent {{ {mark} }}")
    return lines


def purge(nft: Nft, name: str, marks: range) -> int:
    """Delete every element of table `name` under `marks` in one transaction; how many streams
    (elements of `streams`) that was."""
    lines = owned(nft, name, marks)
    if lines:
        nft.run("\n".join(lines))
    return sum(1 for line in lines if " streams " in line)
