"""Prometheus collector: rtpengine 10.5's families (docs/spec/metrics.md §1.3), rtpvault's own (§4).

A prometheus-client custom collector reads the live counters at scrape time (no per-packet work):
the call registry and its totals, the port pools, the ng control counters, and each composed
part's `stats()` (recording, archive, homer — see rtpvault.component; a missing part or key
reads as 0). The collector runs on the event loop thread (the HTTP listener in rtpvault.http is
an asyncio server), so it reads the loop-owned dicts without locks. What it reads is first taken
as a `Snapshot` (raw figures, picklable): with `num-threads` workers, rtpvault.http gathers every
worker's and the families show their merge: the daemon's totals, under the same names and labels,
whichever worker the scrape lands on (counters and gauges of calls add up; uptime is the daemon's;
ports in use add up within the shared range; lags are the oldest).

Deliberate differences from rtpengine 10.5's exposition (§1.2 lists its quirks): every family has
`# HELP`, each family's samples are contiguous (prometheus-client writes them that way), and the
HELP of `closed_sessions_total` says what it counts. The deployment guide's
`rtpengine_total_traffic_bytes` is written by hand after the collector's output (`exposition`):
prometheus-client always appends `_total` to a counter's name, and the guide's dashboards query
the name without it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from relay.media.secure import DROP_CAUSES, drop_counts
from relay.media.transcoder import DROP_CAUSES as DROP_CAUSES_TC
from relay.ng import statistics as ngstats
from relay.ng.commands import COMMAND_NAMES
from relay.ng.statistics import Figures
from rtpvault.component import DaemonContext

__all__ = ["DaemonCollector", "NgObserver", "Snapshot", "Walk", "exposition", "make_registry"]

RECORDING_STATUSES = ("complete", "interrupted", "failed")
"""Final statuses always shown (0 until seen); any other status a recorder reports is added."""
UPLOAD_RESULTS = ("done", "retry", "failed")
CLOSE_REASONS = (  # rtpengine's label → registry Totals field
    ("rejected", "rejected"), ("timeout", "timeout"), ("silent_timeout", "silent_timeout"),
    ("final_timeout", "final_timeout"), ("offer_timeout", "offer_timeout"),
    ("terminated", "regular"), ("force_terminated", "forced"),
)  # fmt: skip
PORT_LABELS = ["name", "address"]


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


Values = dict[str, float] | list[tuple[str, float]]


def _labelled(kind: type[GaugeMetricFamily] | type[CounterMetricFamily], name: str, doc: str,
              label: str, values: Values) -> Metric:  # fmt: skip
    family = kind(name, doc, labels=[label])
    for key, value in values.items() if isinstance(values, dict) else values:
        family.add_metric([key], value)
    return family


class NgObserver:
    """Per (proxy, command) processing seconds and rtpvault's per-(command, result) counts,
    fed by relay.ng.commands observers (called right after each command's handler)."""

    def __init__(self) -> None:
        self.seconds: dict[tuple[str, str], float] = {}
        self.results: dict[tuple[str, str], int] = {}

    def __call__(self, command: str, request: dict[str, Any], reply: dict[str, Any],
                 source: tuple[str, int], received: float) -> None:  # fmt: skip
        key = (str(source[0]), command)
        self.seconds[key] = self.seconds.get(key, 0.0) + max(0.0, time.time() - received)
        rkey = (command, "error" if reply.get("result") == "error" else "ok")
        self.results[rkey] = self.results.get(rkey, 0) + 1


@dataclass(slots=True)
class Walk:
    """What one pass over the running calls finds, plus the totals of ended calls: the same
    sums as Registry.relayed(), gathered once per scrape instead of once per family."""

    calls: int = 0
    foreign: int = 0
    receiving: int = 0  # media sections whose RTP stream has received packets
    packets: int = 0
    bytes: int = 0
    errors: int = 0
    dropped: int = 0
    secure: dict[str, int] = field(default_factory=dict)
    """SRTP/DTLS/ICE drops by cause, ended calls (registry totals) and running ones."""

    @classmethod
    def of(cls, registry: Any) -> Walk:
        t = registry.totals
        w = cls(len(registry.calls), 0, 0, t.packets, t.bytes, t.errors, getattr(t, "dropped", 0))
        w.secure = dict.fromkeys(DROP_CAUSES, 0)
        for cause, n in getattr(t, "secure_drops", {}).items():
            w.secure[cause] = w.secure.get(cause, 0) + n
        for call in registry.calls.values():
            w.foreign += call.foreign
            for party in call.all_parties():
                for media in party.medias:
                    if media.rtp is not None and media.rtp.packets:
                        w.receiving += 1
                    for s in (media.rtp, media.rtcp):
                        if s is not None:
                            w.packets += s.packets
                            w.bytes += s.bytes
                            w.errors += s.errors
                            w.dropped += s.dropped
                            if s.transport is not None or s.retired_drops is not None:
                                for cause, n in drop_counts(s):
                                    w.secure[cause] += n
        return w

    def add(self, other: Walk) -> None:
        for f in ("calls", "foreign", "receiving", "packets", "bytes", "errors", "dropped"):
            setattr(self, f, getattr(self, f) + getattr(other, f))
        for cause, n in other.secure.items():
            self.secure[cause] = self.secure.get(cause, 0) + n


LATEST = ("flush_lag_seconds", "upload_queue_depth", "upload_oldest_age_seconds")
"""Parts' figures that are not added up over the workers: the oldest lag, and the upload queue
(this node's jobs in the index every worker shares: each counts the same rows)."""
LOWEST = ("spool_free_bytes", "redis_up")
"""... one file system for every worker: the latest (lowest) reading; Redis is up for the
daemon when it is for every worker."""


def _merge_stats(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Several workers' stats() of one part: numbers and dicts of numbers add up."""
    out: dict[str, Any] = {}
    for stats in parts:
        for key, value in stats.items():
            if value is None:
                continue
            seen = out.get(key)
            if seen is None:
                out[key] = dict(value) if isinstance(value, dict) else value
            elif isinstance(value, dict) and isinstance(seen, dict):
                for k, v in value.items():
                    seen[k] = seen.get(k, 0) + v
            elif key in LATEST:
                out[key] = max(seen, value)
            elif key in LOWEST:
                out[key] = min(seen, value)
            elif isinstance(value, (int, float)) and isinstance(seen, (int, float)):
                out[key] = seen + value
    return out


@dataclass(slots=True)
class Snapshot:
    """What one scrape shows of one process, raw and mergeable (picklable): with `num-threads`
    workers the worker a scrape lands on gathers every worker's and shows the sum (`merge`),
    so any of them gives the same totals. Read on the loop, once per scrape."""

    walk: Walk
    figures: Figures
    """Ended calls' totals, per-proxy requests and errors, port pools, uptime."""
    seconds: dict[tuple[str, str], float]
    results: dict[tuple[str, str], int]
    denied: int
    parts: dict[str, dict[str, Any]]
    """Each composed part's stats() (rtpvault.component)."""

    @classmethod
    def of(cls, daemon: DaemonContext, ng: NgObserver) -> Snapshot:
        walk = Walk.of(daemon.registry)
        figures = ngstats.figures(daemon.registry, daemon.control.counters,
                                  daemon.commands.delays, time.monotonic() - daemon.started,
                                  (walk.packets, walk.bytes, walk.errors),
                                  userspace=walk.receiving)  # fmt: skip
        parts = {n: _stats(daemon.components.get(n))
                 for n in ("recording", "archive", "homer", "redis_state")}  # fmt: skip
        return cls(walk, figures, dict(ng.seconds), dict(ng.results),
                   daemon.control.counters.denied, parts)  # fmt: skip

    @classmethod
    def merge(cls, snaps: list[Snapshot]) -> Snapshot:
        if len(snaps) == 1:
            return snaps[0]
        walk = Walk(secure=dict.fromkeys(DROP_CAUSES, 0))
        seconds: dict[tuple[str, str], float] = {}
        results: dict[tuple[str, str], int] = {}
        for snap in snaps:
            walk.add(snap.walk)
            for key, secs in snap.seconds.items():
                seconds[key] = seconds.get(key, 0.0) + secs
            for rkey, n in snap.results.items():
                results[rkey] = results.get(rkey, 0) + n
        names = {name for snap in snaps for name in snap.parts}
        return cls(walk, ngstats.merge([s.figures for s in snaps]), seconds, results,
                   sum(s.denied for s in snaps),
                   {n: _merge_stats([s.parts.get(n, {}) for s in snaps]) for n in names})


class DaemonCollector(Collector):
    def __init__(self, daemon: DaemonContext, ng: NgObserver) -> None:
        self.daemon = daemon
        self.ng = ng
        self.snap: Snapshot | None = None
        """What the next collect() shows (`exposition` sets it; None: this process now)."""
        self.walk = Walk()
        """The last scrape's pass over the calls (exposition reads the traffic bytes from it)."""

    def snapshot(self) -> Snapshot:
        return Snapshot.of(self.daemon, self.ng)

    def describe(self) -> list[Metric]:
        return []  # no up-front description: values are read at collect time

    def collect(self) -> Iterator[Metric]:
        snap = self.snap or self.snapshot()
        self.walk = snap.walk
        yield from _sessions(snap)
        yield from _traffic(snap)
        yield from _requests(snap)
        yield from _ports(snap)
        yield from _rtpvault(snap)


def _sessions(snap: Snapshot) -> Iterator[Metric]:
    w, t = snap.walk, snap.figures.totals
    yield _labelled(GaugeMetricFamily, "rtpengine_sessions", "Owned sessions", "type",
                    {"own": w.calls - w.foreign, "foreign": w.foreign})  # fmt: skip
    yield _gauge("rtpengine_transcoded_media", "Transcoded media", snap.figures.transcoded)
    yield _labelled(GaugeMetricFamily, "rtpengine_mediastreams",
                    "Media sections that have received packets, by forwarding path", "type",
                    {"userspace": w.receiving, "kernel": 0, "mixed": 0})  # fmt: skip
    yield _gauge("rtpengine_uptime_seconds", "Uptime of rtpvault", snap.figures.uptime)
    yield _counter("rtpengine_sessions_total", "Total managed sessions (ended)", t.managed)
    yield _labelled(CounterMetricFamily, "rtpengine_closed_sessions_total",
                    "Total closed sessions by reason", "reason",
                    [(label, getattr(t, field)) for label, field in CLOSE_REASONS])  # fmt: skip


def _traffic(snap: Snapshot) -> Iterator[Metric]:
    t, w = snap.figures.totals, snap.walk
    packets, bytes_, errors = w.packets, w.bytes, w.errors
    for name, doc, value in (("rtpengine_packets", "Total relayed packets", packets),
                             ("rtpengine_packet_errors", "Total relayed packet errors", errors),
                             ("rtpengine_bytes", "Total relayed bytes", bytes_)):  # fmt: skip
        yield _labelled(CounterMetricFamily, name, doc, "type",
                        {"userspace": value, "kernel": 0})  # fmt: skip
    yield _counter("rtpengine_zero_packet_streams",
                   "Total number of streams with no relayed packets", t.zeroway)  # fmt: skip
    yield _counter("rtpengine_one_way_sessions", "Total number of 1-way streams", t.oneway)
    avg = t.call_duration / t.managed if t.managed else 0.0
    yield _gauge("rtpengine_call_duration_avg", "Average call duration", avg)
    yield _counter("rtpengine_call_duration", "Total calls duration", t.call_duration)
    yield _counter("rtpengine_call_duration2", "Total calls duration squared",
                   t.call_duration2)  # fmt: skip
    yield _counter("rtpengine_mos", "Sum of all MOS values sampled", 0.0)
    yield _counter("rtpengine_mos2", "Sum of all MOS square values sampled", 0.0)
    yield _counter("rtpengine_mos_samples", "Total number of MOS samples", 0)


def _requests(snap: Snapshot) -> Iterator[Metric]:
    labels = ["proxy", "request"]
    req = CounterMetricFamily("rtpengine_requests", "ng requests received", labels=labels)
    secs = CounterMetricFamily("rtpengine_request_seconds", "ng request processing time",
                               labels=labels)  # fmt: skip
    err = CounterMetricFamily("rtpengine_errors", "ng requests answered with an error",
                              labels=["proxy"])  # fmt: skip
    for proxy, (commands, errors, _) in snap.figures.proxies.items():
        for name in COMMAND_NAMES:
            req.add_metric([proxy, name], commands.get(name, 0))
            secs.add_metric([proxy, name], snap.seconds.get((proxy, name), 0.0))
        err.add_metric([proxy], errors)
    yield from (req, secs, err)


def _ports(snap: Snapshot) -> Iterator[Metric]:
    used = GaugeMetricFamily("rtpengine_ports_used", "Media ports in use", labels=PORT_LABELS)
    free = GaugeMetricFamily("rtpengine_ports_free", "Free media ports", labels=PORT_LABELS)
    size = GaugeMetricFamily("rtpengine_ports", "Media port range size", labels=PORT_LABELS)
    for pool in snap.figures.pools:
        total = pool.port_max - pool.port_min + 1
        used.add_metric([pool.name, pool.address], pool.used)
        free.add_metric([pool.name, pool.address], total - pool.used)
        size.add_metric([pool.name, pool.address], total)
    yield from (used, free, size)
    yield from _transcoders(snap)


def _transcoders(snap: Snapshot) -> Iterator[Metric]:
    """The four chain families, once a chain has run (docs/spec/metrics.md §1.3)."""
    chains = snap.figures.chains
    if not chains:
        return
    label = ["chain"]
    now = GaugeMetricFamily("rtpengine_transcoders", "Active transcoders", labels=label)
    fams = [CounterMetricFamily(f"rtpengine_transcode_{what}",
                                f"{what.capitalize()} into the transcoding chain", labels=label)
            for what in ("packets", "bytes", "samples")]  # fmt: skip
    for chain, (n, *counts) in chains.items():
        now.add_metric([chain], n)
        for fam, value in zip(fams, counts, strict=True):
            fam.add_metric([chain], value)
    yield now
    yield from fams


def _rtpvault(snap: Snapshot) -> Iterator[Metric]:
    """rtpvault's own families (docs/spec/metrics.md §4, plus flush lag, uploads by result, HEP
    drops and DB errors)."""
    walk = snap.walk
    c = CounterMetricFamily("rtpvault_ng_commands", "ng commands handled, by command and result",
                            labels=["command", "result"])  # fmt: skip
    for (command, result), n in sorted(snap.results.items()):
        c.add_metric([command, result], n)
    if snap.denied:
        c.add_metric(["*", "rejected"], snap.denied)
    yield c
    yield _counter("rtpvault_injected_packets_dropped",
                   "Media packets dropped: not from the learned/allowed peer",
                   walk.dropped)  # fmt: skip
    yield _labelled(CounterMetricFamily, "rtpvault_transcode_packets_dropped",
                    "Packets into transcoding chains that produced nothing, by cause", "cause",
                    [(cause, snap.figures.transcode_drops.get(cause, 0))
                     for cause in DROP_CAUSES_TC])  # fmt: skip
    yield _labelled(CounterMetricFamily, "rtpvault_secure_packets_dropped",
                    "SRTP, DTLS and STUN datagrams dropped, by cause (docs/spec/metrics.md §4.1)",
                    "cause", list(walk.secure.items()))  # fmt: skip

    rec, arc, hep = (snap.parts.get(n, {}) for n in ("recording", "archive", "homer"))
    by_status = rec.get("recordings") or {}
    yield _gauge("rtpvault_recordings_active", "Recordings currently being written",
                 by_status.get("recording", 0))  # fmt: skip
    others = sorted(k for k in by_status if k not in RECORDING_STATUSES and k != "recording")
    yield _labelled(CounterMetricFamily, "rtpvault_recordings",
                    "Recordings finished, by final status", "status",
                    [(s, by_status.get(s, 0)) for s in (*RECORDING_STATUSES, *others)])  # fmt: skip
    yield _counter("rtpvault_recording_bytes", "Bytes written to recording files",
                   rec.get("recorded_bytes", 0))  # fmt: skip
    yield _labelled(CounterMetricFamily, "rtpvault_recording_errors",
                    "Recording write/open failures and index failures", "reason",
                    {"io_error": rec.get("recording_errors", 0),
                     "db_error": arc.get("db_errors", 0)})  # fmt: skip
    if rec.get("spool_free_bytes") is not None:
        yield _gauge("rtpvault_spool_free_bytes",
                     "Bytes free on the recording-dir file system (recordings stop at "
                     "recording-min-free)", rec["spool_free_bytes"])  # fmt: skip
    yield _gauge("rtpvault_recording_flush_lag_seconds",
                 "Age of the oldest recorded data not yet written to disk",
                 rec.get("flush_lag_seconds", 0.0))  # fmt: skip
    yield _gauge("rtpvault_upload_queue_length", "Finished recordings waiting for S3 upload",
                 arc.get("upload_queue_depth", 0))  # fmt: skip
    yield _gauge("rtpvault_upload_lag_seconds", "Age of the oldest recording still pending upload",
                 arc.get("upload_oldest_age_seconds", 0.0))  # fmt: skip
    uploads = arc.get("uploads") or {}
    results = (*UPLOAD_RESULTS, *sorted(k for k in uploads if k not in UPLOAD_RESULTS))
    yield _labelled(CounterMetricFamily, "rtpvault_uploads", "Upload attempts by result",
                    "result", [(r, uploads.get(r, 0)) for r in results])  # fmt: skip
    if "uploaded_bytes" in arc:  # only once the archive counts them
        yield _counter("rtpvault_upload_bytes", "Bytes uploaded to S3", arc["uploaded_bytes"])
    yield _counter("rtpvault_upload_failures", "Failed upload attempts (each retry counts)",
                   uploads.get("retry", 0) + uploads.get("failed", 0))  # fmt: skip
    yield _counter("rtpvault_db_errors", "Index database errors", arc.get("db_errors", 0))
    yield _gauge("rtpvault_index_pending",
                 "Recording documents waiting for an index write (retried after a fault)",
                 arc.get("index_pending", 0))  # fmt: skip
    sent = hep.get("hep_sent", 0)
    yield _labelled(CounterMetricFamily, "rtpvault_hep_packets_sent", "HEP packets sent", "type",
                    {str(k): v for k, v in sorted(sent.items())} if isinstance(sent, dict)
                    else {"all": sent})  # fmt: skip
    yield _counter("rtpvault_hep_dropped", "HEP packets dropped (queue full or receiver down)",
                   hep.get("hep_dropped", 0))  # fmt: skip
    yield _counter("rtpvault_hep_send_errors", "HEP sends that failed", hep.get("hep_errors", 0))
    yield _gauge("rtpvault_hep_queue_length", "HEP packets waiting to be sent",
                 hep.get("hep_queue", 0))  # fmt: skip
    yield from _redis(snap.parts.get("redis_state") or {})


def _redis(red: dict[str, Any]) -> Iterator[Metric]:
    """Call state in Redis (docs/spec/metrics.md §4.3): only when `redis`/`redis-write` is set."""
    if not red:
        return
    yield _gauge("rtpvault_redis_up", "1 while the Redis write server answers (0: writes are "
                 "kept and retried)", red.get("redis_up", 0))  # fmt: skip
    yield _labelled(CounterMetricFamily, "rtpvault_redis_writes",
                    "Call states written to Redis, by operation", "op",
                    {"set": red.get("redis_writes", 0),
                     "delete": red.get("redis_deletes", 0)})  # fmt: skip
    yield _counter("rtpvault_redis_write_errors", "Failed Redis write attempts (each retry counts)",
                   red.get("redis_write_errors", 0))  # fmt: skip
    yield _counter("rtpvault_redis_retried_writes",
                   "Call states written after at least one failed attempt",
                   red.get("redis_retried", 0))  # fmt: skip
    yield _counter("rtpvault_redis_disabled", "Pauses after redis-allowed-errors failures",
                   red.get("redis_disabled", 0))  # fmt: skip
    yield _gauge("rtpvault_redis_pending", "Call states waiting to be written to Redis",
                 red.get("redis_pending", 0))  # fmt: skip
    yield _labelled(CounterMetricFamily, "rtpvault_redis_restored_calls",
                    "Calls read from Redis at start-up, by result", "result",
                    {"restored": red.get("redis_restored", 0),
                     "skipped": red.get("redis_restore_skipped", 0)})  # fmt: skip


def _stats(component: Any) -> dict[str, Any]:
    """A part's stats(); a missing or failing part reads as empty (its families show 0)."""
    if component is None:
        return {}
    try:
        return dict(component.stats())
    except Exception:
        return {}


def exposition(registry: CollectorRegistry, collector: DaemonCollector,
               snap: Snapshot | None = None) -> bytes:  # fmt: skip
    """The /metrics body (of `snap`: the workers' merged snapshots; None: this process): the
    collector's families, then the deployment guide's `rtpengine_total_traffic_bytes` (a
    counter without the `_total` suffix, which prometheus-client would add; Prometheus stores
    the sample under the name as written)."""
    collector.snap = snap
    try:
        body = generate_latest(registry)
    finally:
        collector.snap = None
    bytes_ = collector.walk.bytes  # from the pass generate_latest just made
    guide = ("# HELP rtpengine_total_traffic_bytes Total relayed bytes, all forwarding paths "
             "(the deployment guide's name)\n"
             "# TYPE rtpengine_total_traffic_bytes counter\n"
             f"rtpengine_total_traffic_bytes {bytes_}\n")  # fmt: skip
    return body + guide.encode()


def make_registry(daemon: DaemonContext) -> tuple[CollectorRegistry, DaemonCollector]:
    ng = NgObserver()
    daemon.commands.observers.append(ng)
    registry = CollectorRegistry(auto_describe=False)
    collector = DaemonCollector(daemon, ng)
    registry.register(collector)
    return registry, collector
