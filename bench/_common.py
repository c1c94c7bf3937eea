"""Shared helpers for the bench scripts: /proc readings, port ranges, ratio tables.

Everything here reads Linux /proc and touches loopback only. A measured daemon may fork or run
threads; `cpu_seconds`, `rss_kb` and `pss_kb` cover the whole process tree rooted at the
daemon's pid (threads are already included in a process's own figures).
"""

from __future__ import annotations

import json
import os
import resource
import shlex
import socket
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def add_repo_to_path() -> None:
    """Make `tests.support` (and the rtpvault packages) importable from a bench script."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


def command_line() -> str:
    """The exact command line of this run, shell-quoted, for the top of every report."""
    return shlex.join([sys.executable, *sys.argv])


# ---------------------------------------------------------------- /proc readings


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat from field 3 (state) on; the comm may contain spaces."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()


def children_of(pid: int) -> list[int]:
    """Direct children of `pid` (all threads' children lists merged)."""
    kids: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    try:
        tasks = list(task_dir.iterdir())
    except OSError:
        return kids
    for task in tasks:
        try:
            kids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return kids


def process_tree(pid: int) -> list[int]:
    """`pid` and all its live descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children_of(p)
    return out


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads), in seconds (clock-tick resolution)."""
    f = _stat_fields(pid)
    # after "state": ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime
    return (int(f[11]) + int(f[12])) / CLK_TCK


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by `pid` and its live descendants."""
    total = 0.0
    for p in process_tree(pid):
        try:
            total += process_cpu_seconds(p)
        except (OSError, ValueError, IndexError):
            continue
    return total


def process_rss_kb(pid: int) -> int:
    """VmRSS of one process in KiB, from /proc/<pid>/status (0 for a zombie)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def smaps_rollup_kb(pid: int) -> dict[str, int]:
    """Rss, Pss, Anonymous, … of one process in KiB from /proc/<pid>/smaps_rollup."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "kB":
            out[parts[0].rstrip(":")] = int(parts[1])
    return out


def rss_kb(pid: int) -> int:
    """Summed VmRSS (KiB) of `pid` and its live descendants."""
    total = 0
    for p in process_tree(pid):
        try:
            total += process_rss_kb(p)
        except OSError:
            continue
    return total


def pss_kb(pid: int, field: str = "Pss") -> int:
    """Summed Pss (KiB) of `pid` and its live descendants: pages shared between them (forked
    workers share the parent's copy-on-write) are counted once in total, not once per process.
    `field` "Pss_Anon": anonymous memory only, which only processes of this tree can share, so
    other programs mapping the same libraries do not move the figure (Pss when the kernel has
    no Pss_Anon, before Linux 5.13)."""
    total = 0
    for p in process_tree(pid):
        try:
            rollup = smaps_rollup_kb(p)
        except OSError:
            continue
        total += rollup.get(field, rollup.get("Pss", 0))
    return total


def own_cpu_seconds() -> float:
    """CPU seconds used by this (bench client) process so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# ---------------------------------------------------------------- ports and limits


def udp_socket(host: str = "127.0.0.1") -> socket.socket:
    """A non-blocking UDP socket on `host` with buffers large enough for a pass's burst."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.setblocking(False)
    return s


def nofile_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return int(resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def wide_port_range(
    size: int, host: str = "127.0.0.1", max_busy: int = 0, chunk: int = 2000
) -> tuple[int, int]:
    """An even-aligned range of `size` UDP ports of which at most `max_busy` are taken now.

    Probes `chunk` ports at a time: `tests.support.tools.free_port_range` keeps every probe
    socket open at once, which fails with EMFILE for 20,000-port ranges. Ranges below the
    kernel's ephemeral range are tried first, so client sockets do not land inside them.
    Both relays skip a taken port when allocating, so a few busy ones only cost slack.
    """
    import random

    if size > 65536 - 1024:
        raise ValueError(f"port range of {size} does not fit")
    try:
        eph_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        eph_low = 32768
    for attempt in range(60):
        top = eph_low if attempt < 30 and size <= eph_low - 1024 else 65536
        start = random.randrange(1024, top - size + 1) & ~1
        busy = 0
        for base in range(start, start + size, chunk):
            socks: list[socket.socket] = []
            try:
                for port in range(base, min(base + chunk, start + size)):
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    try:
                        s.bind((host, port))
                    except OSError:
                        s.close()
                        busy += 1
                        continue
                    socks.append(s)
            finally:
                for s in socks:
                    s.close()
            if busy > max_busy:
                break
        if busy <= max_busy:
            return start, start + size - 1
    raise RuntimeError(f"no range of {size} UDP ports with at most {max_busy} taken")


# ---------------------------------------------------------------- reporting


@dataclass(frozen=True)
class Row:
    """One line of a comparison table: a metric for the reference and the candidate."""

    label: str
    unit: str
    reference: float | None
    candidate: float | None
    goal: str = ""
    digits: int = 1
    met: bool | None = None  # whether the candidate meets `goal` (None: no goal or no figure)


def ratio(candidate: float | None, reference: float | None) -> float | None:
    """candidate / reference, or None when either side is missing or the reference is 0."""
    if candidate is None or reference is None or reference == 0:
        return None
    return candidate / reference


def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def format_table(rows: Sequence[Row], reference: str, candidate: str) -> str:
    """A fixed-width table: metric | unit | reference | candidate | candidate/reference | goal."""
    header = ["metric", "unit", reference, candidate, f"{candidate}/{reference}", "goal"]
    body = [
        [
            r.label,
            r.unit,
            _fmt(r.reference, r.digits),
            _fmt(r.candidate, r.digits),
            _fmt(ratio(r.candidate, r.reference), 2),
            r.goal + ("" if r.met is None else " [met]" if r.met else " [NOT met]"),
        ]
        for r in rows
    ]
    return text_table(header, body, left=(0, 1, 5))


def text_table(header: list[str], body: list[list[str]], left: Collection[int] = (0, 1)) -> str:
    """Fixed-width columns two spaces apart, a dashed line under the header; the columns in
    `left` are left-aligned, the others (figures) right-aligned."""
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        parts = [
            c.ljust(widths[i]) if i in left else c.rjust(widths[i]) for i, c in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), sep, *(line(b) for b in body)])


def rows_as_json(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """The table rows as JSON-ready dicts, ratio included."""
    return [
        {
            "metric": r.label,
            "unit": r.unit,
            "reference": r.reference,
            "candidate": r.candidate,
            "ratio": ratio(r.candidate, r.reference),
            "goal": r.goal,
            "met": r.met,
        }
        for r in rows
    ]


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write `data` as indented JSON to `path`."""
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
