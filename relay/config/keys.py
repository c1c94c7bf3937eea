"""Every configuration key rtpvault knows: rtpengine 10.5.3.5's options plus rtpvault's own.

This is a declarative table and is allowed to run past the usual module size. Sources:
`rtpengine --help` of Debian's 10.5.3.5 build and docs/spec/config.md §2 (rtpengine's
options, defaults from `daemon/main.c`/`lib/auxlib.c`) and §5 (rtpvault's additions). The key
file, the command line, `docs/configuration.md` and the `raw` view of Settings all come from here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(enum.Enum):
    """How a key's value is spelled (GLib key-file type of the rtpengine option)."""

    BOOL = "bool"
    INT = "int"
    UINT64 = "uint64"
    DOUBLE = "double"
    STRING = "string"
    LIST = "list"


class Origin(enum.Enum):
    RTPENGINE = "rtpengine"  # an option of rtpengine 10.5.3.5
    RTPVAULT = "rtpvault"  # docs/spec/config.md §5 and the brief: ours, same file and section
    COMPAT = "compat"  # not a 10.5 option, but found in popular guides/newer releases


@dataclass(frozen=True, slots=True)
class Key:
    name: str
    kind: Kind
    default: str  # effective text when set nowhere ("" = unset)
    short: str | None = None
    implemented: bool = False  # False: accepted and validated, warns when set, no effect
    origin: Origin = Origin.RTPENGINE
    choices: tuple[str, ...] = ()  # exact spellings rtpengine accepts, checked at load
    doc: str = ""


_B, _I, _U, _D, _S, _L = Kind.BOOL, Kind.INT, Kind.UINT64, Kind.DOUBLE, Kind.STRING, Kind.LIST
_V, _C = Origin.RTPVAULT, Origin.COMPAT

_FACILITIES = (
    "auth",
    "authpriv",
    "cron",
    "daemon",
    "ftp",
    "kern",
    "lpr",
    "mail",
    "news",
    "syslog",
    "user",
    "uucp",
    *(f"local{i}" for i in range(8)),
)
_SCHED = ("default", "none", "fifo", "rr", "other", "batch", "idle")
_SUBSYSTEMS = (
    "core",
    "spandsp",
    "ffmpeg",
    "transcoding",
    "codec",
    "rtcp",
    "ice",
    "crypto",
    "srtp",
    "internals",
    "http",
    "control",
    "dtx",
)


_LOGGED = ("core", "ffmpeg", "transcoding", "codec", "rtcp", "http", "control", "dtx")
"""Subsystems with loggers of ours (rtpvault.logsetup.SUBSYSTEMS, docs/spec/config.md §2.9)."""


def _k(
    name: str,
    kind: Kind,
    default: str = "",
    short: str | None = None,
    *,
    impl: bool = False,
    origin: Origin = Origin.RTPENGINE,
    choices: tuple[str, ...] = (),
    doc: str = "",
) -> Key:
    return Key(name, kind, default, short, impl, origin, choices, doc)


_PROCESS = (
    _k("config-file", _S, impl=True, doc="Config file to read; `none` reads none (command line)."),
    _k("config-section", _S, "rtpengine", impl=True, doc="Section of the file to read."),
    _k("log-level", _I, "6", "L", impl=True, doc="Default syslog level 0-7."),
    *(
        _k(
            f"log-level-{s}",
            _I,
            "-1" if s == "internals" else "",
            impl=s in _LOGGED,
            doc=f"Log level override for the `{s}` subsystem.",
        )
        for s in _SUBSYSTEMS
    ),
    _k("log-facility", _S, "daemon", impl=True, choices=_FACILITIES, doc="Syslog facility."),
    _k("log-facility-cdr", _S, impl=True, choices=_FACILITIES, doc="Facility for CDR lines."),
    _k("log-facility-rtcp", _S, impl=True, choices=_FACILITIES, doc="Facility for RTCP lines."),
    _k("log-facility-dtmf", _S, impl=True, choices=_FACILITIES, doc="Facility for DTMF events."),
    _k("log-stderr", _B, "false", "E", impl=True, doc="Log to stderr instead of syslog."),
    _k("split-logs", _B, "false", doc="One log line per line of a multi-line message."),
    _k("max-log-line-length", _I, "0", doc="Wrap long log lines."),
    _k("no-log-timestamps", _B, "false", impl=True, doc="No time prefix on stderr lines."),
    _k("log-mark-prefix", _S, doc="Text before sensitive values in logs."),
    _k("log-mark-suffix", _S, doc="Text after sensitive values in logs."),
    _k("log-format", _S, "default", choices=("default", "parsable"), doc="Log prefix format."),
    _k("log-srtp-keys", _B, "false", doc="Log SRTP keys (never done by rtpvault)."),
    _k("debug-srtp", _B, "false", doc="Verbose SRTP packet logging."),
    _k("pidfile", _S, "", "p", impl=True, doc="Write the PID to this file."),
    _k("foreground", _B, "false", "f", impl=True, doc="Do not daemonize."),
    _k("thread-stack", _I, "2048", doc="Thread stack size in kB."),
    _k("num-threads", _I, impl=True,
       doc="Worker processes, calls sharded by call-id; unset or <= 0 = the CPU count."),
    _k("media-num-threads", _I, doc="Media playback threads."),
    _k("poller-per-thread", _B, "false", doc="One poller per worker thread."),
    _k("scheduling", _S, choices=_SCHED, doc="Thread scheduling policy."),
    _k("priority", _I, doc="Thread scheduling priority."),
    _k("idle-scheduling", _S, choices=_SCHED, doc="Idle thread scheduling policy."),
    _k("idle-priority", _I, doc="Idle thread scheduling priority."),
    _k("socket-cpu-affinity", _I, "0", doc="SO_INCOMING_CPU on media sockets."),
    _k("codecs", _B, "false", impl=True, doc="Print supported codecs and exit (`--codecs`)."),
)

_NETWORK = (
    _k("interface", _L, "", "i", impl=True, doc="Media addresses `[NAME/]ADDR[!ADVERTISED]`."),
    _k("save-interface-ports", _B, "false", "S", doc="Ports only on the first local address."),
    _k("port-min", _I, "30000", "m", impl=True, doc="Lowest media port."),
    _k("port-max", _I, "40000", "M", impl=True, doc="Highest media port."),
    _k("listen-ng", _S, "", "n", impl=True, doc="ng protocol over UDP, `[ADDR:]PORT`."),
    _k("listen-tcp-ng", _S, "", "N", impl=True, doc="ng protocol over TCP, `[ADDR:]PORT`."),
    _k("listen-udp", _S, "", "u", doc="Legacy rtpproxy protocol over UDP."),
    _k("listen-tcp", _S, "", "l", doc="Obsolete TCP control protocol."),
    _k("listen-cli", _S, "", "c", impl=True, doc="rtpengine-ctl CLI (TCP), `[ADDR:]PORT`."),
    _k("listen-http", _L, impl=True, doc="HTTP listeners: /metrics, /ping, /ng, ..."),
    _k("listen-https", _L, doc="HTTPS listeners."),
    _k("https-cert", _S, doc="Certificate for listen-https."),
    _k("https-key", _S, doc="Private key for listen-https."),
    _k("http-threads", _I, doc="HTTP worker threads."),
    _k("tos", _I, "0", "T", impl=True, doc="TOS byte on media sockets, 0-255 (0 = untouched)."),
    _k("control-tos", _I, "0", impl=True, doc="TOS byte on ng replies, 0-255."),
    _k(
        "table",
        _I,
        "-1",
        "t",
        impl=True,
        doc="Kernel table; rtpvault always forwards in userspace.",
    ),
    _k("no-fallback", _B, "false", "F", impl=True, doc="Refuse to run without kernel forwarding."),
    _k("iptables-chain", _S, doc="Manage per-port ACCEPT rules in this chain."),
)

_CALLS = (
    _k(
        "timeout",
        _I,
        "60",
        "o",
        impl=True,
        doc="Close a call after this much media silence; <= 0 = 60.",
    ),
    _k(
        "silent-timeout",
        _I,
        "3600",
        "s",
        impl=True,
        doc="Same for muted/on-hold streams; <= 0 = 3600.",
    ),
    _k("final-timeout", _I, "0", "a", impl=True, doc="Absolute call lifetime; <= 0 = off."),
    _k("offer-timeout", _I, "3600", impl=True, doc="Lifetime of an unanswered offer; <= 0 = 3600."),
    _k("delete-delay", _I, "30", "d", impl=True, doc="Keep a deleted call this long; 0 = at once."),
    _k(
        "max-sessions", _I, "-1", impl=True, doc="Refuse new calls above this count; -1 = no limit."
    ),
    _k("max-load", _D, "0", impl=True, doc="Refuse new calls above this load average; 0 = off."),
    _k("max-cpu", _D, "0", impl=True, doc="Refuse new calls above this CPU %; 0 = off."),
    _k("max-bandwidth", _U, "0", impl=True, doc="Refuse new calls above this B/s; 0 = off."),
    _k(
        "endpoint-learning",
        _S,
        "delayed",
        impl=True,
        choices=("delayed", "immediate", "off", "heuristic"),
        doc="Remote address learning.",
    ),
    _k("sip-source", _B, "false", impl=True, doc="Prefer the SIP source address over SDP's."),
    _k("reject-invalid-sdp", _B, "false", impl=True, doc="Refuse SDP that does not parse."),
    _k("software-id", _S, doc="Identity shown to ICE/STUN peers."),
)

_RECORDING = (
    _k("recording-dir", _S, impl=True, doc="Spool directory; unset = no recording."),
    _k("recording-method", _S, "pcap", impl=True, doc="`pcap` (`proc` is read as pcap)."),
    _k("recording-format", _S, "raw", impl=True, doc="`raw`, `eth` or rtpvault's `pcapng`."),
)

_HOMER = (
    _k("homer", _S, impl=True, doc="HEPv3 capture server `ADDR:PORT` for RTCP."),
    _k("homer-protocol", _S, "udp", impl=True, doc="`udp` or `tcp`."),
    _k("homer-id", _I, "2001", impl=True, doc="HEP capture-agent ID."),
)

_DTLS = (
    _k("dtls-passive", _B, "false", impl=True, doc="Prefer the DTLS passive role."),
    _k(
        "dtls-rsa-key-size",
        _I,
        "2048",
        impl=True,
        doc="RSA key size of the generated certificate (`dtls-cert-cipher = RSA`; >= 1024).",
    ),
    _k(
        "dtls-cert-cipher",
        _S,
        "prime256v1",
        impl=True,
        doc="Generated certificate's key: `prime256v1` (EC) or `RSA`; case-insensitive.",
    ),
    _k("dtls-mtu", _I, "1200", impl=True, doc="Largest DTLS datagram (>= 576)."),
    _k(
        "dtls-ciphers",
        _S,
        "DEFAULT:!NULL:!aNULL:!SHA256:!SHA384:!aECDH:!AESGCM+AES256:!aPSK",
        impl=True,
        doc="OpenSSL cipher list for DTLS (checked at start-up).",
    ),
    _k(
        "dtls-signature",
        _S,
        "SHA-256",
        impl=True,
        doc="Generated certificate's signature hash, `SHA-256` or `SHA-1` (not a=fingerprint's).",
    ),
)

_REDIS = (
    _k("redis", _S, "", "r", impl=True, doc="Redis `[PW@]ADDR:PORT/DB` for call state."),
    _k("redis-write", _S, "", "w", impl=True, doc="Separate Redis write database."),
    _k("redis-num-threads", _I, impl=True, doc="Redis writer threads (rtpengine: restore)."),
    _k("redis-expires", _I, "86400", impl=True, doc="Redis key expiry (s)."),
    _k("no-redis-required", _B, "false", "q", impl=True, doc="Start even if Redis is unreachable."),
    _k("redis-allowed-errors", _I, "-1", impl=True, doc="Errors before Redis is paused."),
    _k("redis-disable-time", _I, "10", impl=True, doc="Pause length (s)."),
    _k("redis-cmd-timeout", _I, "0", impl=True, doc="Per-command timeout (ms)."),
    _k("redis-connect-timeout", _I, "1000", impl=True, doc="Connect timeout (ms)."),
    _k("redis-delete-async", _I, "0", "y", doc="Non-zero: delete keys asynchronously."),
    _k("redis-delete-async-interval", _I, "0", doc="Async delete interval (s)."),
    _k("subscribe-keyspace", _L, "", "k", doc="Redis keyspaces to subscribe to."),
    _k("active-switchover", _B, "false", doc="Take over foreign calls on activity."),
)

_MISC = (
    _k("graphite", _S, "", "g", doc="Graphite server `ADDR:PORT`."),
    _k("graphite-interval", _I, "0", "G", doc="Graphite send interval (s)."),
    _k("graphite-prefix", _S, doc="Prefix for Graphite lines."),
    _k("graphite-timeout", _I, "0", doc="Graphite socket timeout (s)."),
    _k("b2b-url", _S, "", "b", doc="XML-RPC URL called on call timeout."),
    _k("xmlrpc-format", _I, "0", "x", doc="XML-RPC flavour 0-2."),
    _k("dtmf-log-dest", _S, doc="Send DTMF events (JSON) by UDP to `ADDR:PORT`."),
    _k("dtmf-log-ng-tcp", _B, "false", doc="Push DTMF events to TCP-ng clients."),
    _k("dtmf-no-suppress", _B, "false", impl=True,
       doc="Transcoded calls: audio sent during a DTMF event is sent too (default: dropped)."),
    _k("dtmf-digit-delay", _I, "2500", doc="Gap between DTMF digits (ms)."),
    _k("mysql-host", _S, doc="MySQL host for stored media."),
    _k("mysql-port", _I, doc="MySQL port."),
    _k("mysql-user", _S, doc="MySQL user."),
    _k("mysql-pass", _S, doc="MySQL password."),
    _k("mysql-query", _S, doc="MySQL query with one `%llu`."),
    _k("jitter-buffer", _I, "0", doc="Jitter buffer size (packets)."),
    _k("jb-clock-drift", _B, "false", doc="Jitter buffer clock-drift compensation."),
    _k("dtx-delay", _I, "0", impl=True,
       doc="Transcoded input held this long (ms) in a DTX buffer that fills gaps; 0 = none."),
    _k("max-dtx", _I, "30", impl=True, doc="Gaps filled for at most this long (s); <= 0 = always."),
    _k("dtx-buffer", _I, "10", impl=True, doc="Packets held in the DTX buffer before overflow."),
    _k("dtx-lag", _I, "100", impl=True, doc="Audio held in the DTX buffer before overflow (ms)."),
    _k("dtx-shift", _I, "5", impl=True,
       doc="DTX timer shift on over/underflow (ms); 0 = drop packets instead."),
    _k("dtx-cn-params", _L, impl=True,
       doc="CN parameters (level;coefficients) whose noise fills DTX gaps; unset = silence."),
    _k("amr-dtx", _S, "native", choices=("native", "CN"), doc="AMR DTX mechanism."),
    _k("silence-detect", _D, "0", impl=True,
       doc="Transcoded output with CN: frames below this % of the sample range go out as CN."),
    _k("cn-payload", _L, "32", impl=True,
       doc="Payload of those CN packets: level 0-127, then coefficients 0-254 (RFC 3389)."),
    _k("mqtt-host", _S, doc="MQTT broker host."),
    _k("mqtt-port", _I, "1883", doc="MQTT broker port."),
    _k("mqtt-id", _S, doc="MQTT client ID."),
    _k("mqtt-keepalive", _I, "30", doc="MQTT keepalive (s)."),
    _k("mqtt-user", _S, doc="MQTT user."),
    _k("mqtt-pass", _S, doc="MQTT password."),
    _k("mqtt-cafile", _S, doc="MQTT CA file."),
    _k("mqtt-capath", _S, doc="MQTT CA path."),
    _k("mqtt-certfile", _S, doc="MQTT client certificate."),
    _k("mqtt-keyfile", _S, doc="MQTT client key."),
    _k("mqtt-publish-qos", _I, "0", doc="MQTT publish QoS 0-2."),
    _k("mqtt-publish-topic", _S, doc="MQTT publish topic."),
    _k("mqtt-publish-interval", _I, "5000", doc="MQTT publish interval (ms)."),
    _k(
        "mqtt-publish-scope",
        _S,
        "global",
        choices=("global", "call", "media"),
        doc="MQTT message scope.",
    ),
    _k("mos", _S, "CQ", impl=True, choices=("CQ", "LQ"), doc="MOS formula."),
    _k("janus-secret", _S, doc="Admin secret for the Janus API."),
)

_RTPVAULT = (
    _k(
        "recording-db",
        _S,
        impl=True,
        origin=_V,
        doc="SQLAlchemy URL of the recording index; default SQLite in recording-dir.",
    ),
    _k(
        "s3-bucket",
        _S,
        impl=True,
        origin=_V,
        doc="Upload finished recordings here; empty = no upload.",
    ),
    _k("s3-prefix", _S, impl=True, origin=_V, doc="Key prefix for uploaded objects."),
    _k("s3-endpoint-url", _S, impl=True, origin=_V, doc="S3-compatible endpoint URL."),
    _k("s3-region", _S, impl=True, origin=_V, doc="Bucket region."),
    _k(
        "s3-sse",
        _S,
        "none",
        impl=True,
        origin=_V,
        choices=("none", "AES256", "aws:kms"),
        doc="Server-side encryption.",
    ),
    _k("s3-kms-key-id", _S, impl=True, origin=_V, doc="KMS key for `s3-sse = aws:kms`."),
    _k(
        "s3-object-lock-mode",
        _S,
        "none",
        impl=True,
        origin=_V,
        choices=("none", "GOVERNANCE", "COMPLIANCE"),
        doc="Object Lock mode.",
    ),
    _k("s3-object-lock-days", _I, "0", impl=True, origin=_V, doc="Object Lock retention (days)."),
    _k("s3-storage-class", _S, impl=True, origin=_V, doc="S3 storage class."),
    _k("s3-keep-local", _B, "true", impl=True, origin=_V, doc="Keep the local file after upload."),
    _k("s3-workers", _I, "2", impl=True, origin=_V, doc="Upload worker threads."),
    _k("s3-retry-initial", _D, "2", impl=True, origin=_V, doc="First upload retry delay (s)."),
    _k("s3-retry-max", _D, "300", impl=True, origin=_V, doc="Longest upload retry delay (s)."),
    _k("recording-node", _S, impl=True, origin=_V, doc="Node id in the index; default hostname."),
    _k(
        "recording-min-free",
        _I,
        "16",
        impl=True,
        origin=_V,
        doc="MiB of the spool kept free for sidecars, metadata and the index.",
    ),
    _k("homer-password", _S, impl=True, origin=_V, doc="HEP capture password (auth-key chunk)."),
    _k("homer-rtcp", _B, "true", impl=True, origin=_V, doc="Export received RTCP (HEP type 5)."),
    _k("homer-qos", _B, "true", impl=True, origin=_V, doc="Export RTP-derived QoS reports."),
    _k("homer-qos-interval", _I, "10", impl=True, origin=_V, doc="QoS report period (s)."),
    _k("homer-ng-trace", _B, "true", impl=True, origin=_V, doc="Export ng offer/answer/delete."),
    _k(
        "ng-allow",
        _L,
        "127.0.0.0/8;::1/128",
        impl=True,
        origin=_V,
        doc="CIDRs allowed to send control requests (ng, HTTP /cli and /ng, listen-cli).",
    ),
    _k(
        "homer-ng",
        _S,
        impl=True,
        origin=_C,
        doc="HEP target for ng traces, `[udp:|tcp:]ADDR:PORT`.",
    ),
    _k("prometheus", _B, "false", impl=True, origin=_C, doc="Serve /metrics on prometheus-listen."),
    _k("prometheus-listen", _S, impl=True, origin=_C,
       doc="`[ADDR:]PORT` for /metrics (serves /metrics only)."),
    _k(
        "tls-certificate",
        _S,
        impl=True,
        origin=_C,
        doc="DTLS certificate (PEM file) loaded at start-up; unset: one is generated.",
    ),
    _k(
        "tls-private-key",
        _S,
        impl=True,
        origin=_C,
        doc="Private key (PEM file, unencrypted) of `tls-certificate`.",
    ),
)

KEYS: tuple[Key, ...] = (
    *_PROCESS,
    *_NETWORK,
    *_CALLS,
    *_RECORDING,
    *_HOMER,
    *_DTLS,
    *_REDIS,
    *_MISC,
    *_RTPVAULT,
)

BY_NAME: dict[str, Key] = {k.name: k for k in KEYS}

# `-F` and `-y` are registered twice in rtpengine; GLib keeps the first, as `--help` shows.
BY_SHORT: dict[str, Key] = {k.short: k for k in reversed(KEYS) if k.short}

# Keys that only make sense on the command line (read before the file is chosen).
CLI_ONLY = frozenset({"config-file", "config-section"})
