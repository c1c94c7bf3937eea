"""The /metrics body from a real Daemon, parsed with prometheus-client's parser: rtpengine's
families with their types and labels, the guide's unsuffixed total-traffic counter, counters
that move with real packets through the userspace plane and never go back when calls end, and
rtpvault's families from the parts' stats() — tolerating parts that are absent, partial or
failing."""

from __future__ import annotations

import socket
import time
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from rtpvault.daemon import Daemon
from rtpvault.prometheus import exposition, make_registry
from tests.integration.recording.media import rtp
from tests.unit.ops.conftest import answer, offer

RTPENGINE_TYPES = {  # `# TYPE` lines of rtpengine 10.5 (docs/spec/metrics.md §1.3), as written
    "rtpengine_sessions": "gauge", "rtpengine_transcoded_media": "gauge",
    "rtpengine_mediastreams": "gauge", "rtpengine_uptime_seconds": "gauge",
    "rtpengine_sessions_total": "counter", "rtpengine_closed_sessions_total": "counter",
    "rtpengine_packets_total": "counter", "rtpengine_packet_errors_total": "counter",
    "rtpengine_bytes_total": "counter", "rtpengine_zero_packet_streams_total": "counter",
    "rtpengine_one_way_sessions_total": "counter", "rtpengine_call_duration_avg": "gauge",
    "rtpengine_call_duration_total": "counter", "rtpengine_call_duration2_total": "counter",
    "rtpengine_mos_total": "counter", "rtpengine_mos2_total": "counter",
    "rtpengine_mos_samples_total": "counter", "rtpengine_requests_total": "counter",
    "rtpengine_request_seconds_total": "counter", "rtpengine_errors_total": "counter",
    "rtpengine_ports_used": "gauge", "rtpengine_ports_free": "gauge", "rtpengine_ports": "gauge",
}  # fmt: skip


class Part:
    """A composed part whose stats() the collector reads (start/close are never called here)."""

    def __init__(self, stats: dict[str, Any] | Exception) -> None:
        self._stats = stats

    async def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def stats(self) -> dict[str, Any]:
        if isinstance(self._stats, Exception):
            raise self._stats
        return self._stats


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(daemon: Daemon) -> tuple[str, dict[str, str], Samples]:
    if not hasattr(daemon, "_test_registry"):
        daemon._test_registry = make_registry(daemon)  # type: ignore[attr-defined]
    body = exposition(*daemon._test_registry).decode()  # type: ignore[attr-defined]
    # `# TYPE` lines as written: the parser folds rtpengine_sessions_total (counter) and
    # rtpengine_sessions (gauge) into one family name, as rtpengine's own names collide.
    types = {line.split()[2]: line.split()[3] for line in body.splitlines()
             if line.startswith("# TYPE ")}  # fmt: skip
    samples = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return body, types, samples


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    return samples[(metric, tuple(sorted(labels.items())))]


def _pump(daemon: Daemon, done: Any) -> None:
    """Run the daemon's loop until `done()` (bounded: a stuck plane fails, not hangs)."""
    deadline = time.monotonic() + 10
    while not done() and time.monotonic() < deadline:
        daemon.loop.run_until_complete(__import__("asyncio").sleep(0.01))


def test_families_types_and_the_guide_counter(daemon: Daemon) -> None:
    body, types, samples = scrape(daemon)
    assert {n: types.get(n) for n in RTPENGINE_TYPES} == RTPENGINE_TYPES
    # the deployment guide's name, exactly (no _total): a sample line as written
    assert "\nrtpengine_total_traffic_bytes 0\n" in body
    assert "# TYPE rtpengine_total_traffic_bytes counter\n" in body
    assert value(samples, "rtpengine_sessions", type="own") == 0
    assert value(samples, "rtpengine_ports", name="lo", address="127.0.0.1") == 100
    assert value(samples, "rtpengine_closed_sessions_total", reason="force_terminated") == 0
    assert not any(name == "rtpengine_requests_total" for name, _ in samples)  # no ng yet
    for family in ("rtpvault_recordings_total", "rtpvault_uploads_total",
                   "rtpvault_hep_dropped_total", "rtpvault_upload_lag_seconds",
                   "rtpvault_db_errors_total"):  # fmt: skip
        assert family in types  # present (as 0) with no recording/archive/homer part
    # every secure drop cause from the start (docs/spec/metrics.md §4.1)
    for cause in ("srtp_auth", "srtp_replay", "srtp_error", "stun", "dtls", "dtls_fingerprint",
                  "dtls_timeout", "no_keys", "not_selected"):  # fmt: skip
        assert value(samples, "rtpvault_secure_packets_dropped_total", cause=cause) == 0


def test_counters_follow_a_call_and_survive_its_end(daemon: Daemon) -> None:
    caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    caller.bind(("127.0.0.1", 0))
    callee = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    callee.bind(("127.0.0.1", 0))
    scrape(daemon)  # the collector observes ng commands from its creation on
    try:
        r = offer(daemon, "m1", port=caller.getsockname()[1])
        to_callee = int(r["sdp"].split("m=audio ")[1].split()[0])
        answer(daemon, "m1", port=callee.getsockname()[1])
        _, _, during = scrape(daemon)
        assert value(during, "rtpengine_sessions", type="own") == 1
        assert value(during, "rtpengine_ports_used", name="lo", address="127.0.0.1") == 4
        assert value(during, "rtpengine_requests_total", proxy="127.0.0.1", request="offer") == 1
        assert value(during, "rtpvault_ng_commands_total", command="answer", result="ok") == 1
        for seq in range(5):
            caller.sendto(rtp(seq, seq * 160, 0xAAAA0001), ("127.0.0.1", to_callee))
        _pump(daemon, lambda: daemon.registry.relayed()[0] >= 5)
        _, _, moving = scrape(daemon)
        assert value(moving, "rtpengine_packets_total", type="userspace") == 5
        assert value(moving, "rtpengine_bytes_total", type="userspace") == 5 * 172
        assert value(moving, "rtpengine_mediastreams", type="userspace") == 1
        stream = daemon.registry.calls["m1"].streams()[0]
        stream.dropped += 3  # as the plane counts an injected packet
        assert value(scrape(daemon)[2], "rtpvault_injected_packets_dropped_total") >= 3
        daemon.registry.terminate("m1", "forced")
        body, _, after = scrape(daemon)
    finally:
        caller.close()
        callee.close()
    assert value(after, "rtpengine_sessions", type="own") == 0
    assert value(after, "rtpengine_sessions_total") == 1
    assert value(after, "rtpengine_closed_sessions_total", reason="force_terminated") == 1
    assert value(after, "rtpengine_one_way_sessions_total") == 1
    assert value(after, "rtpengine_packets_total", type="userspace") == 5  # kept after the end
    assert value(after, "rtpvault_injected_packets_dropped_total") >= 3
    assert value(after, "rtpengine_ports_used", name="lo", address="127.0.0.1") == 0
    assert f"\nrtpengine_total_traffic_bytes {5 * 172}\n" in body


def test_parts_stats_partial_missing_or_failing(daemon: Daemon) -> None:
    daemon.components["recording"] = Part({
        "recordings": {"recording": 2, "complete": 5, "discarded": 1},
        "recorded_bytes": 12345, "flush_lag_seconds": 0.5,
    })  # fmt: skip
    daemon.components["archive"] = Part({
        "upload_queue_depth": 3, "upload_oldest_age_seconds": 61.0,
        "uploads": {"done": 4, "retry": 2}, "db_errors": 1,
    })  # fmt: skip
    daemon.components["homer"] = Part(RuntimeError("sender gone"))
    _, _, s = scrape(daemon)
    assert value(s, "rtpvault_recordings_active") == 2
    assert value(s, "rtpvault_recordings_total", status="complete") == 5
    assert value(s, "rtpvault_recordings_total", status="failed") == 0
    assert value(s, "rtpvault_recordings_total", status="discarded") == 1
    assert value(s, "rtpvault_recording_bytes_total") == 12345
    assert value(s, "rtpvault_recording_flush_lag_seconds") == 0.5
    assert value(s, "rtpvault_recording_errors_total", reason="io_error") == 0  # key missing
    assert value(s, "rtpvault_upload_queue_length") == 3
    assert value(s, "rtpvault_upload_lag_seconds") == 61.0
    assert value(s, "rtpvault_uploads_total", result="retry") == 2
    assert value(s, "rtpvault_upload_failures_total") == 2
    assert value(s, "rtpvault_db_errors_total") == 1
    assert value(s, "rtpvault_hep_packets_sent_total", type="all") == 0  # failing part → 0
    daemon.components["homer"] = Part({"hep_sent": 9, "hep_dropped": 2, "hep_errors": 1,
                                       "hep_queue": 4})  # fmt: skip
    _, _, s = scrape(daemon)
    assert value(s, "rtpvault_hep_packets_sent_total", type="all") == 9
    assert value(s, "rtpvault_hep_dropped_total") == 2
    assert value(s, "rtpvault_hep_queue_length") == 4
