"""Synthetic recordings with realistic distributions for bench/search.py (and its tests).

* start times over the last 90 days, busy hours (9–18 h) on weekdays five times as likely;
* durations log-normal (median 70 s, long tail, capped at 2 h);
* callers/callees from pools of 20,000 and 50,000 E.164-style numbers with a heavy head
  (a few call centres place many calls);
* call-ids random hex `@` one of 40 hosts; 4 nodes; PCMU 60 %, PCMA 30 %, G722 10 %;
* status 97 % complete, 2 % interrupted, 1 % failed; quality mostly clean, 5 % lossy calls.

Deterministic for a seed. Yields plain dicts: the recording, and its two streams.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator
from typing import Any

DAY = 86400.0
NODES = ("relay-1", "relay-2", "relay-3", "relay-4")
CODECS = (("PCMU", 0, 0.6), ("PCMA", 8, 0.3), ("G722", 9, 0.1))
STATUSES = (("complete", 0.97), ("interrupted", 0.02), ("failed", 0.01))


def _number(rng: random.Random, pool: int, country: str) -> str:
    # Pareto-ish index: small indexes (call centres) are far more frequent
    idx = (
        min(int(rng.paretovariate(1.2)) - 1, pool - 1)
        if rng.random() < 0.3
        else rng.randrange(pool)
    )
    return f"+{country}{5550000000 + idx * 7919 % 10**9:010d}"


def _pick(rng: random.Random, table: tuple[tuple[Any, ...], ...]) -> tuple[Any, ...]:
    r = rng.random()
    for row in table:
        r -= row[-1]
        if r <= 0:
            return row
    return table[-1]


def _start(rng: random.Random, now: float) -> float:
    while True:
        t = now - rng.random() * 90 * DAY
        hour = (t % DAY) / 3600
        weekday = int(t // DAY + 3) % 7 < 5  # 1970-01-01 was a Thursday
        weight = 1.0 if (9 <= hour < 18 and weekday) else 0.2
        if rng.random() < weight:
            return t


def _mos(loss: float, jitter: float) -> float:
    r = 93.2 - 2.5 * loss - 0.1 * jitter
    return round(max(1.0, min(4.5, 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r))), 2)


def recordings(n: int, seed: int = 1, now: float = 1764028800.0) -> Iterator[dict[str, Any]]:
    """n recording dicts (with a 'streams' list of two stream dicts)."""
    rng = random.Random(seed)
    hosts = [f"pbx{h}.example.net" for h in range(40)]
    for _ in range(n):
        started = _start(rng, now)
        duration = min(math.exp(rng.gauss(math.log(70), 1.0)), 7200.0)
        status = _pick(rng, STATUSES)[0]
        codec, pt, _ = _pick(rng, CODECS)
        lossy = rng.random() < 0.05
        node = NODES[rng.randrange(len(NODES))]
        caller, callee = _number(rng, 20000, "49"), _number(rng, 50000, "44")
        rid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        streams = []
        for k, party in enumerate(("ft", "tt")):
            loss = (
                round(rng.uniform(1, 15), 2) if lossy and k == 0 else round(rng.random() * 0.3, 2)
            )
            jitter = round(rng.expovariate(1 / (25 if lossy else 2)), 2)
            packets = int(duration * 50)
            streams.append({
                "ssrc": rng.getrandbits(32), "kind": "rtp", "party": party,
                "src": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}:"
                       f"{rng.randrange(10000, 60000, 2)}",
                "dst": f"192.0.2.{NODES.index(node) + 1}:{rng.randrange(30000, 40000, 2)}",
                "payload_types": [pt], "codec": codec, "packets": packets,
                "bytes": packets * 172, "lost": int(packets * loss / 100), "out_of_order": 0,
                "duplicates": 0, "jitter_ms": jitter, "max_jitter_ms": round(jitter * 2.5, 2),
                "loss_pct": loss, "mos": _mos(loss, jitter), "first": started,
                "last": started + duration,
            })  # fmt: skip
        call_id = f"{rng.getrandbits(64):016x}@{hosts[rng.randrange(len(hosts))]}"
        dept = rng.choice(("sales", "support", "billing"))
        yield {
            "version": 1, "id": rid, "node": node, "call_id": call_id, "tags": ["ft", "tt"],
            "metadata": f"from:{caller}|to:{callee}|dept:{dept}",
            "caller": caller, "callee": callee, "format": "pcap", "link": "eth",
            "path": f"/var/spool/rtpengine/pcaps/{call_id}-{rng.getrandbits(64):016x}.pcap",
            "metadata_path": None, "started": started,
            "ended": None if status == "failed" and rng.random() < 0.5 else started + duration,
            "status": status, "reason": None if status == "complete" else "daemon restarted",
            "size": int(duration * 50 * 2 * 214), "sha256": f"{rng.getrandbits(256):064x}",
            "parties": [], "codecs": [codec], "sdp": [], "pauses": [], "streams": streams,
        }  # fmt: skip
