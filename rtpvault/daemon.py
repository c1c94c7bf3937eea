"""`rtpvault run`: build the relay from rtpengine-style options and serve until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import functools
import gc
import importlib
import logging
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from relay.call import Registry, transcode_media
from relay.call.secure import SecureContext
from relay.config import ConfigError, Settings, load_settings, parse_args
from relay.config.keyfile import shown
from relay.control import NgControlServer
from relay.dtls import CertificateError
from relay.dtls.cert import (
    DEFAULT_HASH,
    HASHES,
    CertCipher,
    DtlsCertificate,
    generate_certificate,
    load_certificate,
)
from relay.ice.own_lines import new_foundation
from relay.limits import DaemonLimits
from relay.listener import share_ports
from relay.media.plane import ForwardingPlane
from relay.ng.commands import Commands
from relay.ng.statistics import Figures, figures
from relay.ng.statistics import reply as statistics_reply
from rtpvault.codec_list import codec_lines, wants_codecs
from rtpvault.component import Component, DaemonContext, StartupError
from rtpvault.limits import raise_open_files_limit
from rtpvault.logsetup import setup_logging, subsystem_levels
from rtpvault.peers import Peers
from rtpvault.shard import Shard
from rtpvault.supervisor import Supervisor, WorkerSetup, check_listeners
from rtpvault.taps import TapHub

logger = logging.getLogger("rtpvault.daemon")

EXIT_CONFIG = 1
"""`rtpvault run` exit status for a bad configuration (docs/operations.md, "Exit status")."""
EXIT_FATAL = 255
"""... for a listener that cannot bind (address in use or not local), as rtpengine exits."""

COMPONENTS = ("recording", "archive", "homer", "metrics", "ctl", "redis_state")
"""Modules of this package composed into the daemon, in start order (see rtpvault.component)."""


def _make_plane(loop: asyncio.AbstractEventLoop, settings: Settings,
                worker: WorkerSetup | None = None) -> ForwardingPlane:  # fmt: skip
    """The userspace plane, wrapped in the nftables kernel plane when `table` >= 0 allows it.
    A worker attaches to the table its supervisor made (`_kernel_table`)."""
    from relay.media.kernel import open_kernel_plane, table_name
    from relay.media.userspace import UserspacePlane

    share = (worker.index, worker.count) if worker is not None else None
    plane, why_not = open_kernel_plane(loop, UserspacePlane(loop), settings.table, share)
    if why_not:
        if settings.no_fallback:
            # rtpengine: "Fatal error: Userspace fallback disallowed - exiting", exit 255
            raise StartupError(
                f"kernel table {settings.table} unavailable ({why_not}); "
                "Userspace fallback disallowed - exiting",
                255,
            )
        logger.error(
            "FAILED TO CREATE KERNEL TABLE %d (%s), KERNEL FORWARDING DISABLED",
            settings.table,
            why_not,
        )
    elif plane is not None and settings.table >= 0:
        logger.info(
            "kernel forwarding: nftables table 'ip %s' (table = %d)",
            table_name(settings.table),
            settings.table,
        )
    return plane


def _set_tos() -> Any:
    try:
        from relay.media.userspace import set_tos
    except ImportError:
        return None
    return set_tos


class Daemon:
    """The running relay: call registry, ng server, timers. With `worker` set, one of the
    `num-threads` worker processes (rtpvault.supervisor): its share of the calls, handed its
    requests by the others (rtpvault.shard)."""

    def __init__(self, settings: Settings, loop: asyncio.AbstractEventLoop,
                 worker: WorkerSetup | None = None) -> None:  # fmt: skip
        self.settings = settings
        self.loop = loop
        self.worker = worker
        # the daemon's start: a worker forked again later still reports the daemon's uptime
        started = worker.shared.get("started") if worker else None
        self.started = started if isinstance(started, float) else time.monotonic()
        self.plane = _make_plane(loop, settings, worker)
        try:
            self._compose(settings, loop)
        except BaseException:  # a part refused to start: the nftables table must not stay
            self._close_plane()
            raise

    def _compose(self, settings: Settings, loop: asyncio.AbstractEventLoop) -> None:
        worker = self.worker
        secure = worker.shared["secure"] if worker else _secure_context(settings)
        assert isinstance(secure, SecureContext)
        self.registry = Registry(
            settings.interfaces,
            settings.port_min,
            settings.port_max,
            self.plane,
            delete_delay=settings.delete_delay,
            sip_source=settings.sip_source,
            endpoint_learning=settings.endpoint_learning,
            tos=settings.tos or None,
            set_tos=_set_tos(),
            secure=secure,
            make_chain=transcode_media.chain_maker(settings.transcoding),
            dtx=settings.dtx,
        )
        if worker is None:
            limits = DaemonLimits(1, settings).worker(0)  # one worker: this process
        else:
            shared_limits = worker.shared["limits"]
            assert isinstance(shared_limits, DaemonLimits)
            limits = shared_limits.worker(worker.index)
        self.commands = Commands(self.registry, self._statistics, limits)
        self.commands.merge_statistics = statistics_reply
        allow = list(settings.ng_allow) if settings.ng_allow else None
        self.control = NgControlServer(self.commands.dispatch, allow=allow)
        self.registry.defer = self.commands.defer = self.control.defer
        self.shard: Shard | None = None
        if worker is not None:
            self.shard = Shard(Peers(worker.channels, worker.index), self.control, self.commands)
        self.stopping = asyncio.Event()
        self.taps = TapHub(self.plane.update)
        self.components: dict[str, Component] = {}
        context: DaemonContext = self  # mypy checks here that the parts get what they expect
        for name in COMPONENTS:
            component = importlib.import_module(f"rtpvault.{name}").attach(context)
            if component is not None:
                self.components[name] = component

    def _statistics(self) -> Figures:
        """This process's part of ng `statistics` (relay.ng.statistics merges the workers')."""
        return figures(
            self.registry,
            self.control.counters,
            self.commands.delays,
            time.monotonic() - self.started,
            self.registry.relayed(),
        )

    async def start(self) -> None:
        s = self.settings
        for spec, start, kind in (
            (s.listen_ng, self.control.start_udp, "udp"),
            (s.listen_tcp_ng, self.control.start_tcp, "tcp"),
        ):
            if spec is None:
                continue
            for host in spec.hosts:
                await start(host, spec[1])
                logger.info("ng listening on %s:%d (%s)", host, spec[1], kind)
        for component in self.components.values():
            await component.start()
        for itf in s.interfaces:
            logger.info(
                "interface '%s': bind %s, advertise %s", itf.name, itf.local, itf.advertised
            )
        if self.shard is not None:
            # Last: a request another worker handed on while this one was starting waits in
            # the inbox until the listeners its reply leaves from, and the parts the command
            # uses, are up (handled during `await start_udp`, its reply had no socket).
            self.shard.peers.start(self.loop)

    async def run_timers(self) -> None:
        while not self.stopping.is_set():
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=1.0)
            except TimeoutError:
                pass
            s = self.settings  # re-read: `rtpvault ctl set timeout N` replaces it at run time
            try:
                self.registry.sweep(s.timeout, s.silent_timeout, s.final_timeout, s.offer_timeout)
            except Exception:
                logger.exception("timer sweep failed")

    def shutdown(self) -> None:
        """Stop serving, end every call (recordings end `complete`), close the parts, and
        whatever fails on the way, release the forwarding plane (the nftables table)."""
        try:
            self.control.close()
            if self.shard is not None:
                self.shard.peers.close()
            # the kernel plane first gives up all its streams at once (one counter read, one
            # table delete), so ending each call below costs no nft round trip
            stop = getattr(self.plane, "stop", None)
            if stop is not None:
                stop()
            for call_id in list(self.registry.calls):
                try:
                    self.registry.terminate(call_id, "forced")
                except Exception:
                    logger.exception("ending call %s failed", call_id)
            # Start order: producers first (the recorder hands its final events to the archive,
            # which must still be open to write them), then their consumers.
            for name, component in self.components.items():
                try:
                    component.close()
                except Exception:
                    logger.exception("closing %s failed", name)
        finally:
            self._close_plane()

    def _close_plane(self) -> None:
        close = getattr(self.plane, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                logger.exception("closing the forwarding plane failed")


async def _serve(settings: Settings, worker: WorkerSetup | None = None) -> int:
    loop = asyncio.get_running_loop()
    try:
        daemon = Daemon(settings, loop, worker)
    except StartupError as exc:
        logger.critical("%s", exc)
        print(f"rtpvault: {exc}", file=sys.stderr)
        return exc.code
    try:
        await daemon.start()
    except OSError as exc:  # a listener cannot bind: rtpengine's "Fatal error: ...", exit 255
        reason = exc.strerror or str(exc)
        logger.critical("Fatal error: %s", reason)
        print(f"rtpvault: Fatal error: {reason}", file=sys.stderr)
        daemon.shutdown()
        return EXIT_FATAL
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.stopping.set)
    if worker is None:
        logger.info("Startup complete, rtpvault")
    else:
        logger.info("worker %d of %d serving", worker.index, worker.count)
        os.write(worker.ready, bytes([worker.index]))
    try:
        await daemon.run_timers()
        logger.info("Shutting down")
    finally:
        daemon.shutdown()
    return 0


def _write_pidfile(path: str | None) -> None:
    if path:
        with open(path, "w") as f:
            f.write(f"{os.getpid()}\n")


def _runner() -> Callable[[Coroutine[Any, Any, int]], int]:
    """uvloop.run when installed, else asyncio.run. Chosen before running, so the server does
    not run inside `except ImportError:` (every traceback would carry the ImportError)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def main(argv: list[str]) -> int:
    if wants_codecs(argv):  # as rtpengine: print and exit, no configuration needed
        print("\n".join(codec_lines()))
        return 0
    try:
        settings, warnings = load_settings(parse_args(argv))
    except ConfigError as exc:
        print(f"rtpvault: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if settings.raw.get("codecs", "false").lower() in ("true", "1", "yes", "on"):
        print("\n".join(codec_lines()))  # `codecs = true` in the config file
        return 0
    setup_logging(
        settings.log_level,
        settings.log_stderr,
        settings.log_facility,
        rtcp_facility=settings.log_facility_rtcp,
        timestamps=not settings.no_log_timestamps,
        overrides=subsystem_levels(settings.raw),
    )
    for warning in warnings:
        logger.warning("%s", warning)
    raise_open_files_limit()
    _write_pidfile(settings.pidfile)
    try:
        workers = settings.num_threads or os.cpu_count() or 1
        if workers > 1:
            return _supervise(settings, workers)
        return int(_runner()(_serve(settings)))
    finally:
        # Everything is closed, flushed and released; what is left is the interpreter's final
        # garbage collection over the whole heap (0.3 s of a 1 s shutdown with 500 calls, see
        # docs/PERFORMANCE.md). Frozen objects are skipped by it; nothing needs finalising.
        gc.freeze()
        if settings.pidfile:
            try:
                os.unlink(settings.pidfile)
            except OSError:
                pass


def _supervise(settings: Settings, workers: int) -> int:
    """`num-threads` > 1: the supervisor (rtpvault.supervisor) and its worker processes."""
    try:
        check_listeners(settings)
    except OSError as exc:  # as one process exits when a listener cannot bind
        reason = exc.strerror or str(exc)
        logger.critical("Fatal error: %s", reason)
        print(f"rtpvault: Fatal error: {reason}", file=sys.stderr)
        return EXIT_FATAL
    try:
        secure = _secure_context(settings)
    except StartupError as exc:
        logger.critical("%s", exc)
        print(f"rtpvault: {exc}", file=sys.stderr)
        return exc.code
    settings, code = _kernel_table(settings, workers)
    if code is not None:
        return code
    limits = DaemonLimits(workers, settings)
    supervisor = Supervisor(workers, _work, {"secure": secure, "settings": settings,
                                             "limits": limits, "started": time.monotonic()})
    supervisor.on_death = functools.partial(_worker_died, settings.table, limits)
    try:
        return supervisor.run()
    finally:
        supervisor.close()
        if settings.table >= 0:
            from relay.media.ruleset import delete_shared_table

            delete_shared_table(settings.table)


def _kernel_table(settings: Settings, workers: int) -> tuple[Settings, int | None]:
    """`table` >= 0 with workers: the supervisor makes the one nftables table they all attach
    to. If it cannot, as one process: exit 255 with `no-fallback`, else the error line and
    every worker in userspace (`table` -1, so they do not each try and fail again)."""
    if settings.table < 0:
        return settings, None
    from relay.media.ruleset import create_shared_table

    why_not = create_shared_table(settings.table, workers)
    if why_not is None:
        return settings, None
    if settings.no_fallback:
        message = (f"kernel table {settings.table} unavailable ({why_not}); "
                   "Userspace fallback disallowed - exiting")  # fmt: skip
        logger.critical("%s", message)
        print(f"rtpvault: {message}", file=sys.stderr)
        return settings, 255
    logger.error("FAILED TO CREATE KERNEL TABLE %d (%s), KERNEL FORWARDING DISABLED",
                 settings.table, why_not)  # fmt: skip
    return dataclasses.replace(settings, table=-1), None


def _worker_died(table: int, limits: DaemonLimits, index: int) -> None:
    """A worker died with its calls: they no longer count against the daemon's limits, and its
    kernel streams stop at once (their ports may go to new calls)."""
    limits.reset(index)
    if table < 0:
        return
    from relay.media.ruleset import purge_worker

    removed = purge_worker(table, index)
    if removed:
        logger.info("worker %d: %d kernel streams removed", index, removed)


def _work(worker: WorkerSetup) -> int:
    """One worker process (forked by the supervisor): a daemon with its share of the calls."""
    random.seed()  # the module's generator was copied from the supervisor: same in every worker
    share_ports()
    return int(_runner()(_serve(worker.shared["settings"], worker)))  # type: ignore[arg-type]


def _secure_context(settings: Settings) -> SecureContext:
    """SRTP/DTLS/ICE inputs for every call: the DTLS certificate (loaded or generated at
    start-up, `_certificate`) and one ICE foundation per interface address and family of the
    side."""
    rng = random.SystemRandom()
    cert = _certificate(settings, rng)
    fingerprints = {name: cert.fingerprint(name).render() for name in HASHES}
    return SecureContext(
        fingerprint=lambda name: fingerprints.get(name, fingerprints[DEFAULT_HASH]),
        interfaces=[(new_foundation(rng), i.advertised) for i in settings.interfaces],
        interfaces6=[(new_foundation(rng), i.advertised) for i in settings.interfaces],
        rng=rng,
        dtls_passive=settings.dtls_passive,
        dtls_mtu=settings.dtls_mtu,
        dtls_ciphers=settings.dtls_ciphers,
        certificate=cert,
    )


def _certificate(settings: Settings, rng: random.Random) -> DtlsCertificate:
    """`tls-certificate` + `tls-private-key` (PEM) when set, else a certificate generated as
    rtpengine 10.5 does (`dtls-cert-cipher`, `dtls-rsa-key-size`, `dtls-signature`;
    docs/spec/sdp.md §1.12b). A file that exists but cannot be read or used stops the start
    (exit 1). Missing files only warn: the deployment guide's rtpengine.conf names PEM files
    that rtpengine 10.5 never reads (it generates a certificate), and a drop-in must start
    with that file where rtpengine does."""
    paths = (("tls-certificate", settings.tls_certificate),
             ("tls-private-key", settings.tls_private_key))  # fmt: skip
    missing = [(k, p) for k, p in paths if p and not os.path.exists(p)]
    for name, absent in missing:
        logger.warning("%s %s: no such file; using a generated DTLS certificate", name,
                       shown(absent))
    if not missing and settings.tls_certificate and settings.tls_private_key:
        pems = []
        for key, path in (("tls-certificate", settings.tls_certificate),
                          ("tls-private-key", settings.tls_private_key)):
            try:
                with open(path, "rb") as f:
                    pems.append(f.read())
            except OSError as exc:
                raise StartupError(
                    f"config: key '{key}' value '{shown(path)}': cannot read: {exc.strerror}"
                ) from None
        try:
            cert = load_certificate(pems[0], pems[1])
        except CertificateError as exc:
            key, _, reason = str(exc).partition(": ")
            path = {"tls-certificate": settings.tls_certificate}.get(key, settings.tls_private_key)
            raise StartupError(f"config: key '{key}' value '{shown(path)}': {reason}") from None
        logger.info("DTLS certificate from %s (%s)", shown(settings.tls_certificate),
                    cert.fingerprint().render())
        expiry = cert.certificate.not_valid_after_utc
        if expiry < datetime.datetime.now(datetime.UTC):
            # peers check the fingerprint, not the dates (RFC 5763 §5), so it still works
            logger.warning("tls-certificate %s expired on %s", shown(settings.tls_certificate),
                           expiry.isoformat())
        return cert
    cipher = CertCipher(settings.dtls_cert_cipher)
    logger.info("Generating new DTLS certificate (%s)",
                f"{settings.dtls_rsa_key_size}-bit RSA" if cipher is CertCipher.RSA
                else "EC prime256v1")
    try:
        return generate_certificate(
            datetime.datetime.now(datetime.UTC), rng.getrandbits(63) + 1, "rtpvault",
            cipher, settings.dtls_rsa_key_size, settings.dtls_signature,
        )
    except CertificateError as exc:  # settings checked the values; kept for a clear message
        raise StartupError(f"config: {exc}") from None
