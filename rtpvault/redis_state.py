"""Call state in Redis (issue 20; docs/design/redis-state.md, docs/spec/config.md §2.10).

`redis` / `redis-write` set: a relay.state Journal hands each call's newest document to the
writer threads (rtpvault.redis_writer: `SET rtpvault:call:<call-id> … EX redis-expires`, `DEL`
when the call ends), off the loop.

* Start-up (`attach`): one connection attempt to each address (`redis-connect-timeout`, PING,
  the DB). Unreachable: the ERR line `Failed to connect to Redis H:P, error: …`, then with
  `no-redis-required = false` the daemon stops, exit 255, `Fatal error: Cannot start up without
  running Redis H:P database! See also NO_REDIS_REQUIRED parameter.`; with it true, the WARNING
  `Starting with no initial connection to Redis H:P !` and no restore, as rtpengine 10.5.
* Restore (`start`, before the ng listeners' first request is read: the loop is busy here
  until it is done): SCAN `rtpvault:call:*` on the `redis` address, GET, and each call this
  worker owns (rtpvault.shard.owner_of) is rebuilt by relay.state.replay.restore. A call that
  cannot be (port taken, call present, bad document) is one WARNING line naming it and why,
  and is skipped; one INFO line sums up (`Redis restore: N calls restored, M skipped in X ms`).
* A graceful stop (SIGTERM) keeps the keys, as rtpengine's shutdown (call_free) does: a
  standby or the restarted daemon restores the calls. Calls ended before are deleted.
* `stats()`: {"redis_up": 0/1, "redis_writes", "redis_deletes", "redis_write_errors",
  "redis_retried", "redis_disabled", "redis_pending", "redis_restored", "redis_restore_skipped"}
  (docs/spec/metrics.md §4.3).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from relay.config.redis import RedisAddress, RedisSettings
from rtpvault.component import DaemonContext, StartupError
from rtpvault.redis_writer import KEY_PREFIX, Health, Writer, reason
from rtpvault.shard import owner_of

if TYPE_CHECKING:
    from relay.state.journal import Journal

__all__ = ["RedisState", "attach"]

logger = logging.getLogger("rtpvault.redis_state")

AUTH_ENV = {"redis": "RTPENGINE_REDIS_AUTH_PW", "redis-write": "RTPENGINE_REDIS_WRITE_AUTH_PW"}
"""rtpengine takes the password from these when the address has none (daemon/main.c)."""
CLOSE_GRACE = 3.0
"""Seconds the writers get at shutdown to write what is queued."""
BATCH = 200


def client(address: RedisAddress, settings: RedisSettings, env_name: str) -> redis.Redis:
    """A redis-py client of one address: one attempt per command (the writers retry)."""
    password = address.password if address.password is not None else os.environ.get(env_name)
    return redis.Redis(
        host=address.host,
        port=address.port,
        db=address.db,
        password=password or None,
        socket_connect_timeout=settings.connect_timeout / 1000,
        socket_timeout=settings.cmd_timeout / 1000 if settings.cmd_timeout else None,
        retry=Retry(NoBackoff(), 0),
    )


def _connect(name: str, address: RedisAddress, settings: RedisSettings,
             required: bool) -> redis.Redis | None:  # fmt: skip
    """rtpengine's redis_new: one attempt; None (logged) when unreachable and not required."""
    store = client(address, settings, AUTH_ENV[name])
    try:
        store.ping()
    except redis.RedisError as exc:
        logger.error("Failed to connect to Redis %s, error: %s", address, reason(exc))
        if required:
            what = "write database" if name == "redis-write" else "database"
            raise StartupError(f"Fatal error: Cannot start up without running Redis {address} "
                               f"{what}! See also NO_REDIS_REQUIRED parameter.", 255) from None
        logger.warning("Starting with no initial connection to Redis %s !", address)
        return None
    logger.info("Established initial connection to Redis %s", address)
    return store


class RedisState:
    def __init__(self, daemon: DaemonContext, settings: RedisSettings) -> None:
        self.daemon = daemon
        self.settings = settings
        raw = getattr(daemon.settings, "raw", {}) or {}
        node = raw.get("recording-node") or socket.gethostname()
        write_addr = settings.write
        assert write_addr is not None  # redis_settings: one of the two is set
        write_name = "redis-write" if settings.write != settings.read else "redis"
        # A worker forked again while the daemon serves (a crash) must not stop on Redis: the
        # start-up rule is the daemon's; its calls are lost if Redis cannot give them back.
        worker = getattr(daemon, "worker", None)
        required = settings.required and not getattr(worker, "replacement", False)
        self.reader: redis.Redis | None = None
        if settings.write != settings.read and settings.read is not None:
            self.reader = _connect("redis", settings.read, settings, required)
        store = _connect(write_name, write_addr, settings, required)
        if settings.write == settings.read:
            self.reader = store
        self.health = Health(str(write_addr), settings.allowed_errors, settings.disable_time,
                             up=store is not None)  # fmt: skip
        self.writer = Writer(store or client(write_addr, settings, AUTH_ENV[write_name]),
                             settings.expires, settings.threads, self.health)  # fmt: skip
        self.closing = False
        self.kept: set[str] = set()
        """Call-ids whose restore failed: their keys stay (another start may restore them)."""
        self.restored = 0
        self.skipped = 0
        from relay.state.journal import Journal  # imported with Redis only (the daemon's start)

        self.journal: Journal = Journal(daemon.commands, daemon.registry, node, self._sink)

    def _sink(self, call_id: str, data: bytes | None) -> None:
        if data is None:
            if self.closing or _stopping(self.daemon):
                return  # a graceful stop keeps the keys (rtpengine's call_free deletes none)
            if call_id in self.kept:  # the half-built call of a skipped restore was closed
                self.kept.discard(call_id)
                return
        else:
            self.kept.discard(call_id)  # a new call under that id: its end deletes the key
        self.writer.put(call_id, data)

    async def start(self) -> None:
        self.writer.start()
        self.restore()

    def restore(self) -> None:
        """Every stored call this worker owns, rebuilt now (see the module doc)."""
        if self.reader is None:
            if self.settings.read is not None:
                logger.warning("Redis restore: Redis %s unreachable at start-up, no call "
                               "restored", self.settings.read)  # fmt: skip
            return
        started = time.monotonic()
        shard = self.daemon.shard
        try:
            keys = [k for k in self.reader.scan_iter(match=KEY_PREFIX + "*", count=1000)
                    if isinstance(k, bytes)]  # fmt: skip
        except redis.RedisError as exc:
            logger.error("Redis restore: could not list the calls in Redis %s: %s",
                         self.settings.read, exc)  # fmt: skip
            return
        mine = []
        for key in keys:
            call_id = key[len(KEY_PREFIX) :].decode("utf-8", "surrogateescape")
            if shard is None or owner_of(call_id, shard.count) == shard.index:
                mine.append((call_id, key))
        for i in range(0, len(mine), BATCH):
            batch = mine[i : i + BATCH]
            try:
                docs = self.reader.mget([key for _, key in batch])
            except redis.RedisError as exc:
                logger.error("Redis restore: reading %d calls failed: %s", len(batch), exc)
                self.skipped += len(batch)
                continue
            for (call_id, _), data in zip(batch, docs, strict=True):
                self._restore_one(call_id, data)
        where = f" (worker {shard.index})" if shard is not None else ""
        logger.info("Redis restore%s: %d calls restored, %d skipped in %.0f ms", where,
                    self.restored, self.skipped, (time.monotonic() - started) * 1000)  # fmt: skip

    def _restore_one(self, call_id: str, data: Any) -> None:
        if not isinstance(data, bytes):
            return  # the key expired or went between SCAN and GET
        from relay.state.replay import RestoreError, restore

        d = self.daemon
        try:
            restore(d.commands, d.registry, data, self.journal)
        except RestoreError as exc:
            self.skipped += 1
            self.kept.add(call_id)
            logger.warning("Redis restore: call %s skipped: %s", call_id, exc.reason)
            return
        except Exception as exc:  # never crash the start-up on one call
            self.skipped += 1
            self.kept.add(call_id)
            logger.error("Redis restore: call %s skipped: %r", call_id, exc)
            return
        self.restored += 1

    def close(self) -> None:
        self.closing = True
        left = self.writer.close(CLOSE_GRACE)
        if left:
            logger.warning("Redis %s: %d call states not written at shutdown", self.health.address,
                           left)  # fmt: skip

    def stats(self) -> dict[str, Any]:
        w, h = self.writer, self.health
        return {
            "redis_up": 1 if h.up else 0,
            "redis_writes": w.writes,
            "redis_deletes": w.deletes,
            "redis_write_errors": h.write_errors,
            "redis_retried": w.retried,
            "redis_disabled": h.disabled,
            "redis_pending": w.pending(),
            "redis_restored": self.restored,
            "redis_restore_skipped": self.skipped,
        }


def _stopping(daemon: DaemonContext) -> bool:
    event = getattr(daemon, "stopping", None)
    return bool(event is not None and event.is_set())


def attach(daemon: DaemonContext) -> RedisState | None:
    settings = daemon.settings.redis
    if settings is None:
        return None
    return RedisState(daemon, settings)
