"""Every configuration key rtpvault knows: rtpengine 10.5.3.5's options plus rtpvault's own.

This is a declarative table and is allowed to run past the usual module size. Sources:
`rtpengine --help` of Debian's 10.5.3.5 build and /work/shared/spec/config.md §2 (rtpengine's
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
    RTPVAULT = "rtpvault"  # config.md §5 and the brief: ours, same file and section
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


B, I, U, D, S, L = Kind.BOOL, Kind.INT, Kind.UINT64, Kind.DOUBLE, Kind.STRING, Kind.LIST
_V, _C = Origin.RTPVAULT, Origin.COMPAT

_FACILITIES = (
    "auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news", "syslog",
    "user", "uucp", *(f"local{i}" for i in range(8)),
)  # fmt: skip
_SCHED = ("default", "none", "fifo", "rr", "other", "batch", "idle")
_SUBSYSTEMS = (
    "core", "spandsp", "ffmpeg", "transcoding", "codec", "rtcp", "ice", "crypto", "srtp",
    "internals", "http", "control", "dtx",
)  # fmt: skip


def _k(name: str, kind: Kind, default: str = "", short: str | None = None, *,
       impl: bool = False, origin: Origin = Origin.RTPENGINE,
       choices: tuple[str, ...] = (), doc: str = "") -> Key:  # fmt: skip
    return Key(name, kind, default, short, impl, origin, choices, doc)


_PROCESS = (
    _k("config-file", S, impl=True, doc="Config file to read; `none` reads none (command line)."),
    _k("config-section", S, "rtpengine", impl=True, doc="Section of the file to read."),
    _k("log-level", I, "6", "L", impl=True, doc="Default syslog level 0-7."),
    *(
        _k(f"log-level-{s}", I, "-1" if s == "internals" else "",
           doc=f"Log level override for the `{s}` subsystem.")  # fmt: skip
        for s in _SUBSYSTEMS
    ),
    _k("log-facility", S, "daemon", impl=True, choices=_FACILITIES, doc="Syslog facility."),
    _k("log-facility-cdr", S, impl=True, choices=_FACILITIES, doc="Facility for CDR lines."),
    _k("log-facility-rtcp", S, impl=True, choices=_FACILITIES, doc="Facility for RTCP lines."),
    _k("log-facility-dtmf", S, impl=True, choices=_FACILITIES, doc="Facility for DTMF events."),
    _k("log-stderr", B, "false", "E", impl=True, doc="Log to stderr instead of syslog."),
    _k("split-logs", B, "false", doc="One log line per line of a multi-line message."),
    _k("max-log-line-length", I, "0", doc="Wrap long log lines."),
    _k("no-log-timestamps", B, "false", impl=True, doc="No time prefix on stderr lines."),
    _k("log-mark-prefix", S, doc="Text before sensitive values in logs."),
    _k("log-mark-suffix", S, doc="Text after sensitive values in logs."),
    _k("log-format", S, "default", choices=("default", "parsable"), doc="Log prefix format."),
    _k("log-srtp-keys", B, "false", doc="Log SRTP keys (never done by rtpvault)."),
    _k("debug-srtp", B, "false", doc="Verbose SRTP packet logging."),
    _k("pidfile", S, "", "p", impl=True, doc="Write the PID to this file."),
    _k("foreground", B, "false", "f", impl=True, doc="Do not daemonize."),
    _k("thread-stack", I, "2048", doc="Thread stack size in kB."),
    _k("num-threads", I, impl=True, doc="Worker threads; unset or <= 0 = CPU-derived."),
    _k("media-num-threads", I, doc="Media playback threads."),
    _k("poller-per-thread", B, "false", doc="One poller per worker thread."),
    _k("scheduling", S, choices=_SCHED, doc="Thread scheduling policy."),
    _k("priority", I, doc="Thread scheduling priority."),
    _k("idle-scheduling", S, choices=_SCHED, doc="Idle thread scheduling policy."),
    _k("idle-priority", I, doc="Idle thread scheduling priority."),
    _k("socket-cpu-affinity", I, "0", doc="SO_INCOMING_CPU on media sockets."),
    _k("codecs", B, "false", doc="Print supported codecs and exit (rtpengine only)."),
)

_NETWORK = (
    _k("interface", L, "", "i", impl=True, doc="Media addresses `[NAME/]ADDR[!ADVERTISED]`."),
    _k("save-interface-ports", B, "false", "S", doc="Ports only on the first local address."),
    _k("port-min", I, "30000", "m", impl=True, doc="Lowest media port."),
    _k("port-max", I, "40000", "M", impl=True, doc="Highest media port."),
    _k("listen-ng", S, "", "n", impl=True, doc="ng protocol over UDP, `[ADDR:]PORT`."),
    _k("listen-tcp-ng", S, "", "N", impl=True, doc="ng protocol over TCP, `[ADDR:]PORT`."),
    _k("listen-udp", S, "", "u", doc="Legacy rtpproxy protocol over UDP."),
    _k("listen-tcp", S, "", "l", doc="Obsolete TCP control protocol."),
    _k("listen-cli", S, "", "c", impl=True, doc="rtpengine-ctl CLI (TCP), `[ADDR:]PORT`."),
    _k("listen-http", L, impl=True, doc="HTTP listeners: /metrics, /ping, /ng, ..."),
    _k("listen-https", L, doc="HTTPS listeners."),
    _k("https-cert", S, doc="Certificate for listen-https."),
    _k("https-key", S, doc="Private key for listen-https."),
    _k("http-threads", I, doc="HTTP worker threads."),
    _k("tos", I, "0", "T", impl=True, doc="TOS byte on media sockets, 0-255 (0 = untouched)."),
    _k("control-tos", I, "0", impl=True, doc="TOS byte on ng replies, 0-255."),
    _k("table", I, "-1", "t", impl=True, doc="Kernel table; rtpvault always forwards in userspace."),
    _k("no-fallback", B, "false", "F", impl=True, doc="Refuse to run without kernel forwarding."),
    _k("iptables-chain", S, doc="Manage per-port ACCEPT rules in this chain."),
)

_CALLS = (
    _k("timeout", I, "60", "o", impl=True, doc="Close a call after this much media silence; <= 0 = 60."),
    _k("silent-timeout", I, "3600", "s", impl=True, doc="Same for muted/on-hold streams; <= 0 = 3600."),
    _k("final-timeout", I, "0", "a", impl=True, doc="Absolute call lifetime; <= 0 = off."),
    _k("offer-timeout", I, "3600", impl=True, doc="Lifetime of an unanswered offer; <= 0 = 3600."),
    _k("delete-delay", I, "30", "d", impl=True, doc="Keep a deleted call this long; 0 = at once."),
    _k("max-sessions", I, "-1", impl=True, doc="Refuse new calls above this count; -1 = no limit."),
    _k("max-load", D, "0", impl=True, doc="Refuse new calls above this load average; 0 = off."),
    _k("max-cpu", D, "0", impl=True, doc="Refuse new calls above this CPU %; 0 = off."),
    _k("max-bandwidth", U, "0", impl=True, doc="Refuse new calls above this B/s; 0 = off."),
    _k("endpoint-learning", S, "delayed", impl=True,
       choices=("delayed", "immediate", "off", "heuristic"), doc="Remote address learning."),  # fmt: skip
    _k("sip-source", B, "false", impl=True, doc="Prefer the SIP source address over SDP's."),
    _k("reject-invalid-sdp", B, "false", impl=True, doc="Refuse SDP that does not parse."),
    _k("software-id", S, doc="Identity shown to ICE/STUN peers."),
)

_RECORDING = (
    _k("recording-dir", S, impl=True, doc="Spool directory; unset = no recording."),
    _k("recording-method", S, "pcap", impl=True, doc="`pcap` (`proc` is read as pcap)."),
    _k("recording-format", S, "raw", impl=True, doc="`raw`, `eth` or rtpvault's `pcapng`."),
)

_HOMER = (
    _k("homer", S, impl=True, doc="HEPv3 capture server `ADDR:PORT` for RTCP."),
    _k("homer-protocol", S, "udp", impl=True, doc="`udp` or `tcp`."),
    _k("homer-id", I, "2001", impl=True, doc="HEP capture-agent ID."),
)

_DTLS = (
    _k("dtls-passive", B, "false", doc="Prefer the DTLS passive role."),
    _k("dtls-rsa-key-size", I, "2048", doc="RSA key size for the DTLS certificate."),
    _k("dtls-cert-cipher", S, "prime256v1",
       choices=("prime256v1", "ec_prime256v1", "ec-prime256v1", "RSA"), doc="Certificate type."),  # fmt: skip
    _k("dtls-mtu", I, "1200", doc="DTLS fragment size (>= 576)."),
    _k("dtls-ciphers", S, "DEFAULT:!NULL:!aNULL:!SHA256:!SHA384:!aECDH:!AESGCM+AES256:!aPSK",
       doc="OpenSSL cipher list."),  # fmt: skip
    _k("dtls-signature", S, "SHA-256", doc="`SHA-256`/`sha256` or `SHA-1`/`sha1`."),
)

_REDIS = (
    _k("redis", S, "", "r", doc="Redis `[PW@]ADDR:PORT/DB`."),
    _k("redis-write", S, "", "w", doc="Separate Redis write database."),
    _k("redis-num-threads", I, doc="Redis restore threads."),
    _k("redis-expires", I, "86400", doc="Redis key expiry (s)."),
    _k("no-redis-required", B, "false", "q", doc="Start even if Redis is unreachable."),
    _k("redis-allowed-errors", I, "-1", doc="Errors before Redis is paused."),
    _k("redis-disable-time", I, "10", doc="Pause length (s)."),
    _k("redis-cmd-timeout", I, "0", doc="Per-command timeout (ms)."),
    _k("redis-connect-timeout", I, "1000", doc="Connect timeout (ms)."),
    _k("redis-delete-async", I, "0", "y", doc="Non-zero: delete keys asynchronously."),
    _k("redis-delete-async-interval", I, "0", doc="Async delete interval (s)."),
    _k("subscribe-keyspace", L, "", "k", doc="Redis keyspaces to subscribe to."),
    _k("active-switchover", B, "false", doc="Take over foreign calls on activity."),
)

_MISC = (
    _k("graphite", S, "", "g", doc="Graphite server `ADDR:PORT`."),
    _k("graphite-interval", I, "0", "G", doc="Graphite send interval (s)."),
    _k("graphite-prefix", S, doc="Prefix for Graphite lines."),
    _k("graphite-timeout", I, "0", doc="Graphite socket timeout (s)."),
    _k("b2b-url", S, "", "b", doc="XML-RPC URL called on call timeout."),
    _k("xmlrpc-format", I, "0", "x", doc="XML-RPC flavour 0-2."),
    _k("dtmf-log-dest", S, doc="Send DTMF events (JSON) by UDP to `ADDR:PORT`."),
    _k("dtmf-log-ng-tcp", B, "false", doc="Push DTMF events to TCP-ng clients."),
    _k("dtmf-no-suppress", B, "false", doc="No audio suppression during DTMF."),
    _k("dtmf-digit-delay", I, "2500", doc="Gap between DTMF digits (ms)."),
    _k("mysql-host", S, doc="MySQL host for stored media."),
    _k("mysql-port", I, doc="MySQL port."),
    _k("mysql-user", S, doc="MySQL user."),
    _k("mysql-pass", S, doc="MySQL password."),
    _k("mysql-query", S, doc="MySQL query with one `%llu`."),
    _k("jitter-buffer", I, "0", doc="Jitter buffer size (packets)."),
    _k("jb-clock-drift", B, "false", doc="Jitter buffer clock-drift compensation."),
    _k("dtx-delay", I, "0", doc="DTX detection delay (ms)."),
    _k("max-dtx", I, "30", doc="Longest DTX handling (s)."),
    _k("dtx-buffer", I, "10", doc="Packets held in the DTX buffer."),
    _k("dtx-lag", I, "100", doc="Audio held in the DTX buffer (ms)."),
    _k("dtx-shift", I, "5", doc="DTX timer shift (ms)."),
    _k("dtx-cn-params", L, doc="Comfort-noise parameters for DTX."),
    _k("amr-dtx", S, "native", choices=("native", "CN"), doc="AMR DTX mechanism."),
    _k("silence-detect", D, "0", doc="Silence threshold (%)."),
    _k("cn-payload", L, "32", doc="Comfort-noise parameters."),
    _k("mqtt-host", S, doc="MQTT broker host."),
    _k("mqtt-port", I, "1883", doc="MQTT broker port."),
    _k("mqtt-id", S, doc="MQTT client ID."),
    _k("mqtt-keepalive", I, "30", doc="MQTT keepalive (s)."),
    _k("mqtt-user", S, doc="MQTT user."),
    _k("mqtt-pass", S, doc="MQTT password."),
    _k("mqtt-cafile", S, doc="MQTT CA file."),
    _k("mqtt-capath", S, doc="MQTT CA path."),
    _k("mqtt-certfile", S, doc="MQTT client certificate."),
    _k("mqtt-keyfile", S, doc="MQTT client key."),
    _k("mqtt-publish-qos", I, "0", doc="MQTT publish QoS 0-2."),
    _k("mqtt-publish-topic", S, doc="MQTT publish topic."),
    _k("mqtt-publish-interval", I, "5000", doc="MQTT publish interval (ms)."),
    _k("mqtt-publish-scope", S, "global", choices=("global", "call", "media"),
       doc="MQTT message scope."),  # fmt: skip
    _k("mos", S, "CQ", impl=True, choices=("CQ", "LQ"), doc="MOS formula."),
    _k("janus-secret", S, doc="Admin secret for the Janus API."),
)

_RTPVAULT = (
    _k("recording-db", S, impl=True, origin=_V,
       doc="SQLAlchemy URL of the recording index; default SQLite in recording-dir."),  # fmt: skip
    _k("s3-bucket", S, impl=True, origin=_V, doc="Upload finished recordings here; empty = no upload."),
    _k("s3-prefix", S, impl=True, origin=_V, doc="Key prefix for uploaded objects."),
    _k("s3-endpoint-url", S, impl=True, origin=_V, doc="S3-compatible endpoint URL."),
    _k("s3-region", S, impl=True, origin=_V, doc="Bucket region."),
    _k("s3-sse", S, "none", impl=True, origin=_V, choices=("none", "AES256", "aws:kms"),
       doc="Server-side encryption."),  # fmt: skip
    _k("s3-kms-key-id", S, impl=True, origin=_V, doc="KMS key for `s3-sse = aws:kms`."),
    _k("s3-object-lock-mode", S, "none", impl=True, origin=_V,
       choices=("none", "GOVERNANCE", "COMPLIANCE"), doc="Object Lock mode."),  # fmt: skip
    _k("s3-object-lock-days", I, "0", impl=True, origin=_V, doc="Object Lock retention (days)."),
    _k("s3-storage-class", S, impl=True, origin=_V, doc="S3 storage class."),
    _k("s3-keep-local", B, "true", impl=True, origin=_V, doc="Keep the local file after upload."),
    _k("homer-password", S, impl=True, origin=_V, doc="HEP capture password (auth-key chunk)."),
    _k("homer-rtcp", B, "true", impl=True, origin=_V, doc="Export received RTCP (HEP type 5)."),
    _k("homer-qos", B, "true", impl=True, origin=_V, doc="Export RTP-derived QoS reports."),
    _k("homer-qos-interval", I, "10", impl=True, origin=_V, doc="QoS report period (s)."),
    _k("homer-ng-trace", B, "true", impl=True, origin=_V, doc="Export ng offer/answer/delete."),
    _k("ng-allow", L, "127.0.0.0/8;::1/128", impl=True, origin=_V,
       doc="CIDRs allowed to send ng commands."),  # fmt: skip
    _k("homer-ng", S, impl=True, origin=_C, doc="HEP target for ng traces, `[udp:|tcp:]ADDR:PORT`."),
    _k("prometheus", B, "false", impl=True, origin=_C, doc="Serve /metrics on prometheus-listen."),
    _k("prometheus-listen", S, impl=True, origin=_C, doc="`[ADDR:]PORT` for /metrics."),
    _k("tls-certificate", S, origin=_C, doc="DTLS certificate (PEM); DTLS is not implemented yet."),
    _k("tls-private-key", S, origin=_C, doc="DTLS private key (PEM); DTLS is not implemented yet."),
)

KEYS: tuple[Key, ...] = (
    *_PROCESS, *_NETWORK, *_CALLS, *_RECORDING, *_HOMER, *_DTLS, *_REDIS, *_MISC, *_RTPVAULT,
)  # fmt: skip

BY_NAME: dict[str, Key] = {k.name: k for k in KEYS}

# `-F` and `-y` are registered twice in rtpengine; GLib keeps the first, as `--help` shows.
BY_SHORT: dict[str, Key] = {k.short: k for k in reversed(KEYS) if k.short}

# Keys that only make sense on the command line (read before the file is chosen).
CLI_ONLY = frozenset({"config-file", "config-section"})
