"""`num-threads` worker processes under one supervisor (ARCHITECTURE rule 2).

The supervisor reads the configuration, makes what all workers share (the DTLS certificate, the
channels between workers, the daemon-wide limits, the nftables table), checks that no other
program holds the listening addresses, and forks the workers. Each worker is a whole daemon
(rtpvault.daemon.Daemon) with its own event loop and its share of the calls (rtpvault.shard);
the supervisor runs no event loop and no thread, so forking a replacement is always safe.

* A worker that dies (a crash, `kill -9`) is forked again at once: its calls are gone, as in a
  crash of rtpengine (with `redis`, the new worker restores them: rtpvault.redis_state), and
  its recordings are recovered by the new worker's recorder; the other
  workers carry on untouched. A worker that keeps dying right after its start is forked again
  at most once a second.
* A worker that cannot start (configuration, a listener that cannot bind) stops the daemon with
  its exit status, as one process would.
* SIGTERM/SIGINT stop every worker (each ends its calls; recordings end `complete`), then the
  supervisor removes what it made and exits 0. SIGHUP stops the daemon too: it ends one
  rtpvault or rtpengine 10.5 process (neither handles it), and a worker must not be left
  restarting under it; here the stop is the orderly one.

Hand-written with os.fork and sigtimedwait: multiprocessing would start workers through its own
bootstrap (spawn re-imports everything, ~1 s a worker; its fork mode is this with less control
over signals and exit codes).
"""

from __future__ import annotations

import ctypes
import errno
import gc
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from relay.config import Settings
from relay.listener import bind_error
from rtpvault.peers import Channels

__all__ = ["Supervisor", "WorkerSetup", "check_listeners"]

logger = logging.getLogger("rtpvault.supervisor")

SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD}
STOP_GRACE = 30.0
"""Seconds the workers get to end their calls at shutdown before they are killed."""
RESTART_GAP = 1.0
"""A worker that dies within this time of its start is forked again this long after."""
EXIT_FATAL = 255


@dataclass
class WorkerSetup:
    """What a worker gets from the supervisor (inherited across fork)."""

    index: int
    count: int
    channels: Channels
    ready: int
    """Write end of the supervisor's ready pipe: the worker writes one byte once serving."""
    shared: dict[str, object]
    """Objects made once for every worker (the daemon's composition root knows the keys)."""
    replacement: bool = False
    """Forked again after a worker of this index died (the daemon was already serving)."""


def _listeners(settings: Settings) -> Iterator[tuple[str, str, int, int]]:
    """(what, host, port, socket type) of every listening address of the daemon."""
    s = settings
    if s.listen_ng is not None:
        for host in s.listen_ng.hosts:
            yield "ng (UDP)", host, s.listen_ng[1], socket.SOCK_DGRAM
    if s.listen_tcp_ng is not None:
        for host in s.listen_tcp_ng.hosts:
            yield "ng (TCP)", host, s.listen_tcp_ng[1], socket.SOCK_STREAM
    for listen in s.listen_http:
        for host in listen.hosts:
            yield "HTTP", host, listen.port, socket.SOCK_STREAM
    if s.prometheus and s.prometheus_listen is not None:
        for host in s.prometheus_listen.hosts:
            yield "prometheus-listen", host, s.prometheus_listen.port, socket.SOCK_STREAM
    if s.listen_cli is not None:
        for host in s.listen_cli.hosts:
            yield "CLI", host, s.listen_cli.port, socket.SOCK_STREAM


def check_listeners(settings: Settings) -> None:
    """OSError (naming the listener) if another program holds one of the daemon's addresses.

    The workers bind with SO_REUSEPORT, which would let them join a group another process of
    the same user formed on that port (a second rtpvault) instead of failing as rtpengine does;
    a plain bind here fails in that case, and when the address is not local."""
    for what, host, port, kind in _listeners(settings):
        for family, _, proto, _, address in socket.getaddrinfo(host, port, type=kind):
            sock = socket.socket(family, kind, proto)
            try:
                if kind == socket.SOCK_STREAM:  # as the listeners: TIME_WAIT does not count
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(address)
            except OSError as exc:
                raise bind_error(exc, what, host, port) from None
            finally:
                sock.close()


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with(parent: int) -> None:
    """SIGKILL this worker when the supervisor dies. `kill -9` of the daemon ends all of it, as
    it ends every thread of rtpengine: orphaned workers would go on with their calls (their
    recordings ending `complete` instead of being recovered as `interrupted`) and keep the
    listening ports, so the daemon could not be started again."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:  # the supervisor died before the line above
        os.kill(os.getpid(), signal.SIGKILL)


class Supervisor:
    """Forks `count` workers running `work(setup) -> exit status` and keeps them running."""

    def __init__(self, count: int, work: Callable[[WorkerSetup], int],
                 shared: dict[str, object]) -> None:  # fmt: skip
        self.count = count
        self._work = work
        self.shared = shared
        self.channels = Channels(count)
        self._ready_r, self._ready_w = os.pipe()
        os.set_blocking(self._ready_r, False)
        self.pids: dict[int, int] = {}
        """pid → worker index of the live workers."""
        self._started: dict[int, float] = {}
        self._pending: dict[int, float] = {}
        """Worker index → when to fork it again (one that died right after its start)."""
        self.stopping = False
        self.restarts = 0
        self.on_death: Callable[[int], None] | None = None
        """Called with a dead worker's index before it is forked again (shared state reset)."""

    # --- forking ------------------------------------------------------------------------------

    def _fork(self, index: int) -> None:
        for handler in logging.getLogger().handlers:
            handler.flush()
        parent = os.getpid()
        # Everything made so far (modules, settings) is shared copy-on-write with the worker;
        # frozen, the worker's garbage collector never writes into it, so its pages stay shared
        # (Python docs, gc.freeze): 27 -> 15.5 KB per idle call with 2 workers, PSS
        # (docs/PERFORMANCE.md, "Issue 18: workers").
        gc.freeze()
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the supervisor's code
            code = 1
            try:
                _die_with(parent)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
                os.close(self._ready_r)
                code = self._work(WorkerSetup(index, self.count, self.channels, self._ready_w,
                                              self.shared, index in self._started))  # fmt: skip
            except BaseException:  # noqa: BLE001 - reported, then the process ends
                logger.exception("worker %d failed", index)
            finally:
                logging.shutdown()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.pids[pid] = index
        self._started[index] = time.monotonic()
        logger.info("worker %d started (pid %d)", index, pid)

    # --- the supervisor's life ----------------------------------------------------------------

    def run(self) -> int:
        """Fork the workers, wait for them to serve, keep them alive until SIGTERM."""
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        for index in range(self.count):
            self._fork(index)
        code = self._wait_ready()
        if code is not None:
            self._stop()
            return code
        logger.info("Startup complete, rtpvault (%d workers)", self.count)
        while True:
            info = signal.sigtimedwait(SIGNALS, 1.0)
            self._drain_ready()
            self._fork_pending()
            if info is None:
                continue
            if info.si_signo in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                logger.info("Shutting down (%s)", signal.Signals(info.si_signo).name)
                self._stop()
                return 0
            if info.si_signo == signal.SIGCHLD:
                self._reap()

    def _wait_ready(self) -> int | None:
        """None once every worker serves; the exit status of one that failed to start."""
        ready: set[int] = set()
        while len(ready) < self.count:
            info = signal.sigtimedwait(SIGNALS, 0.05)
            ready |= self._drain_ready()
            if info is None:
                continue
            if info.si_signo in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                return 0
            if info.si_signo == signal.SIGCHLD:
                for _pid, index, status in self._dead():
                    if index not in ready:
                        return status if status else 1
                    self._restart(index)
        return None

    def _drain_ready(self) -> set[int]:
        try:
            return set(os.read(self._ready_r, 4096))
        except BlockingIOError:
            return set()

    def _dead(self) -> Iterator[tuple[int, int, int]]:
        """(pid, index, exit status) of every worker that ended since the last call."""
        while self.pids:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            index = self.pids.pop(pid, None)
            if index is None:
                continue
            level = logging.INFO if self.stopping else logging.ERROR
            if os.WIFSIGNALED(status):
                sig = os.WTERMSIG(status)
                logger.log(level, "worker %d (pid %d) killed by signal %d (%s)", index, pid, sig,
                             signal.Signals(sig).name)  # fmt: skip
                yield pid, index, 128 + sig
            else:
                code = os.waitstatus_to_exitcode(status)
                logger.log(level, "worker %d (pid %d) exited with status %d", index, pid, code)
                yield pid, index, code

    def _reap(self) -> None:
        for _pid, index, _status in self._dead():
            self._restart(index)

    def _restart(self, index: int) -> None:
        if self.on_death is not None:
            try:
                self.on_death(index)
            except Exception:
                logger.exception("cleaning up after worker %d failed", index)
        self.restarts += 1
        lived = time.monotonic() - self._started.get(index, 0.0)
        if lived < RESTART_GAP:
            self._pending[index] = time.monotonic() + RESTART_GAP
        else:
            self._fork(index)

    def _fork_pending(self) -> None:
        now = time.monotonic()
        for index, when in list(self._pending.items()):
            if when <= now:
                del self._pending[index]
                self._fork(index)

    def _signal_all(self, sig: int) -> None:
        for pid in list(self.pids):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def _stop(self) -> None:
        """SIGTERM to every worker, wait for them (SIGKILL after STOP_GRACE)."""
        self.stopping = True
        self._pending.clear()
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        while self.pids:
            for _ in self._dead():
                pass
            if not self.pids:
                break
            if time.monotonic() > deadline:
                logger.error("workers did not stop in %.0f s: killing them", STOP_GRACE)
                self._signal_all(signal.SIGKILL)
                deadline = float("inf")
            signal.sigtimedwait({signal.SIGCHLD}, 0.1)

    def close(self) -> None:
        self.channels.close()
        for fd in (self._ready_r, self._ready_w):
            try:
                os.close(fd)
            except OSError as exc:
                if exc.errno != errno.EBADF:
                    raise
