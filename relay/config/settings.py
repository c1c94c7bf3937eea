"""rtpengine.conf + command line → frozen Settings (docs/spec/config.md; docs/configuration.md).

One GLib key file, section `[rtpengine]` (or `--config-section`), keys = rtpengine's long option
names; command-line options override the file per option (a list option replaces the whole
list). rtpvault is more forgiving than rtpengine where rtpengine's behaviour is a trap, and says
so: every such case returns a warning for the caller to log. Bad values raise ConfigError.

`settings_from_text` is pure; `load_settings` adds the thin I/O (reading the file, looking at the
system's interfaces, the CWD and whether certificate files exist).
"""

from __future__ import annotations

import difflib
import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from relay.dtls.cert import MIN_RSA_BITS
from relay.dtls.session import check_ciphers
from relay.transcode.dtx import DtxSettings
from relay.transcode.options import ChainOptions, cn_payload

from .cli import CommandLine
from .interfaces import Interface, Resolver, resolve_interfaces
from .keyfile import (
    ConfigError,
    bad_value,
    file_list,
    file_string,
    parse_bool,
    parse_double,
    parse_int,
    parse_key_file,
    parse_uint64,
    quoted,
    shown,
)
from .keys import BY_NAME, CLI_ONLY, KEYS, Key, Kind
from .redis import REDIS_KEYS, RedisSettings, redis_settings
from .values import (
    HepTarget,
    IpNetwork,
    Listen,
    parse_hep_target,
    parse_listen,
    parse_networks,
)

DEFAULT_CONFIG_FILE = "/etc/rtpengine/rtpengine.conf"  # Debian's rtpengine reads this by default


@dataclass(frozen=True)
class Settings:
    """Effective configuration. Attribute = key with '-' → '_' (semantic rules applied)."""

    interfaces: tuple[Interface, ...]
    listen_ng: Listen | None
    listen_tcp_ng: Listen | None
    listen_cli: Listen | None
    listen_http: tuple[Listen, ...]
    port_min: int
    port_max: int
    table: int
    no_fallback: bool
    tos: int
    control_tos: int
    timeout: int
    silent_timeout: int
    final_timeout: int  # 0 = off
    offer_timeout: int
    delete_delay: int
    max_sessions: int  # -1 = no limit
    max_load: float
    max_cpu: float
    max_bandwidth: int
    endpoint_learning: str
    sip_source: bool
    reject_invalid_sdp: bool
    mos: str
    num_threads: int  # 0 = derive from the CPU count
    transcoding: ChainOptions  # dtmf-no-suppress, silence-detect, cn-payload
    dtx: DtxSettings  # dtx-delay (0 = no DTX buffer), max-dtx, dtx-buffer, dtx-lag, dtx-shift
    recording_dir: str | None  # absolute; None = recording disabled
    recording_method: str  # always "pcap" (see docs: proc is read as pcap)
    recording_format: str  # raw | eth | pcapng
    recording_db: str | None
    log_level: int
    log_stderr: bool
    log_facility: str
    log_facility_cdr: str | None
    log_facility_rtcp: str | None
    log_facility_dtmf: str | None
    no_log_timestamps: bool
    foreground: bool
    pidfile: str | None
    dtls_passive: bool
    dtls_cert_cipher: str  # "prime256v1" | "RSA"
    dtls_rsa_key_size: int
    dtls_signature: str  # "sha-256" | "sha-1": the generated certificate's signature hash
    dtls_mtu: int
    dtls_ciphers: str  # OpenSSL cipher list, checked at load
    tls_certificate: str | None  # PEM pair loaded at start-up instead of generating one
    tls_private_key: str | None
    homer: tuple[str, int] | None
    homer_protocol: str  # udp | tcp
    homer_id: int
    homer_ng: HepTarget | None
    homer_password: str | None
    homer_rtcp: bool
    homer_qos: bool
    homer_qos_interval: int
    homer_ng_trace: bool
    prometheus: bool
    prometheus_listen: Listen | None  # None unless prometheus is true
    ng_allow: tuple[IpNetwork, ...]
    s3_bucket: str | None
    s3_prefix: str
    s3_endpoint_url: str | None
    s3_region: str | None
    s3_sse: str
    s3_kms_key_id: str | None
    s3_object_lock_mode: str
    s3_object_lock_days: int
    s3_storage_class: str | None
    s3_keep_local: bool
    config_file: str | None  # the file actually read
    raw: Mapping[str, str]  # every key's effective text (lists joined with ';')
    redis: RedisSettings | None = None  # `redis`/`redis-write` set (docs/spec/config.md §2.10)


# --- reading values --------------------------------------------------------------------------


def _convert(key: Key, text: str | tuple[str, ...], warnings: list[str], cli: bool) -> Any:
    """Text from the file (GLib rules) or the command line → Python value of the key's kind."""
    if isinstance(text, tuple):  # a list option repeated on the command line
        return tuple(t.strip() for t in text if t.strip())
    if key.kind is Kind.BOOL:
        return parse_bool(key.name, text, warnings, cli=cli)
    if key.kind is Kind.INT:
        return parse_int(key.name, text, warnings, cli=cli)
    if key.kind is Kind.UINT64:
        return parse_uint64(key.name, text, warnings, cli=cli)
    if key.kind is Kind.DOUBLE:
        return parse_double(key.name, text, warnings, cli=cli)
    if key.kind is Kind.LIST:
        return (text.strip(),) if cli else file_list(key.name, text, warnings)
    value = text.rstrip() if cli else file_string(key.name, text, warnings)
    if key.choices and value and value not in key.choices:
        raise bad_value(key.name, value, f"not one of {', '.join(key.choices)}", cli=cli)
    return value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ";".join(value)
    return str(value)


class _Values:
    """Typed values after file + command line; unset keys fall back to the table's default."""

    def __init__(self) -> None:
        self.typed: dict[str, Any] = {}
        self.cli: set[str] = set()

    def set(self, key: Key, value: Any, *, cli: bool) -> None:
        self.typed[key.name] = value
        if cli:
            self.cli.add(key.name)

    def get(self, name: str) -> Any:
        if name in self.typed:
            return self.typed[name]
        key = BY_NAME[name]
        if key.default == "" and key.kind is not Kind.STRING:
            return () if key.kind is Kind.LIST else None
        return _convert(key, key.default, [], cli=False)

    def given(self, name: str) -> bool:
        return name in self.typed

    def opt(self, name: str) -> str | None:
        value = self.get(name)
        return value or None

    def raw(self) -> Mapping[str, str]:
        typed = {k.name: self.get(k.name) for k in KEYS}
        return MappingProxyType({k: "" if v is None else _text(v) for k, v in typed.items()})

    def bad(self, name: str, reason: str) -> ConfigError:
        return bad_value(name, _text(self.get(name)), reason, cli=name in self.cli)


def _read_section(
    text: str, section: str, source: str, values: _Values, warnings: list[str]
) -> None:
    groups = parse_key_file(text).groups
    if section not in groups:
        raise ConfigError(f"config: file '{shown(source)}' has no section [{section}]")
    for name, entry in groups[section].items():
        key = BY_NAME.get(name)
        if key is None:
            near = difflib.get_close_matches(name, BY_NAME, n=1)
            hint = f" (did you mean '{shown(near[0])}'?)" if near else ""
            warnings.append(
                f"config: unknown key '{shown(name)}' (line {entry.line}) ignored{hint}; "
                f"rtpengine ignores it silently"
            )
        elif name in CLI_ONLY:
            warnings.append(f"config: key '{shown(name)}' has no effect inside the file; ignored")
        else:
            values.set(key, _convert(key, entry.value, warnings, cli=False), cli=False)


def _read_command_line(cmd: CommandLine, values: _Values, warnings: list[str]) -> None:
    for name, text in cmd.options.items():
        key = BY_NAME.get(name)
        if key is None:
            raise ConfigError(f"command line: unknown option '--{name}'")
        values.set(key, _convert(key, text, warnings, cli=True), cli=True)


def _warn_unimplemented(values: _Values, warnings: list[str]) -> None:
    for key in KEYS:
        if key.implemented or not values.given(key.name):
            continue
        default = _Values().get(key.name)
        if values.get(key.name) != default:
            warnings.append(
                f"{quoted(key.name, _text(values.get(key.name)))} accepted for "
                f"rtpengine compatibility, but rtpvault does not implement it yet: no effect"
            )


# --- semantic rules --------------------------------------------------------------------------


def _positive_or(values: _Values, name: str, fallback: int) -> int:
    value = values.get(name)
    return int(value) if value > 0 else fallback  # rtpengine: <= 0 means "use the default"


def _ranged(values: _Values, name: str, low: int, high: int, note: str = "") -> int:
    value = int(values.get(name))
    if not low <= value <= high:
        raise values.bad(name, f"not within {low}..{high}{note}")
    return value


def _ports(values: _Values) -> tuple[int, int]:
    low = _ranged(values, "port-min", 1, 65535)
    high = _ranged(values, "port-max", 1, 65535)
    if low > high:
        raise ConfigError(f"{quoted('port-min', low)}: above port-max {high} (empty port range)")
    return low, high


def _table(values: _Values, warnings: list[str]) -> int:
    """rtpengine's kernel table: < 0 userspace only; >= 0 asks for kernel forwarding, which the
    daemon provides with nftables when it can (relay.media.kernel) and otherwise reports, or
    refuses to start with `no-fallback`, at start-up."""
    return int(values.get("table"))


def _recording(
    values: _Values, cwd: str, warnings: list[str]
) -> tuple[str | None, str, str, str | None]:
    method = values.get("recording-method")
    if method == "proc":
        # Debian's packaged file says proc (kernel module + rtpengine-recording); rtpvault has
        # neither, and silently not recording would be worse than recording in-process.
        warnings.append(
            "config: key 'recording-method' value 'proc': rtpvault has no kernel recording "
            "interface; recording with the pcap method instead"
        )
    elif method != "pcap":
        raise values.bad("recording-method", "not pcap or proc")
    fmt = values.get("recording-format")
    if fmt not in ("raw", "eth", "pcapng"):
        raise values.bad("recording-format", "not raw, eth or pcapng")
    directory = values.opt("recording-dir")
    if directory is not None:
        directory = posixpath.normpath(posixpath.join(cwd, directory))
    db = values.opt("recording-db")
    if db is None and directory is not None:
        db = f"sqlite:///{posixpath.join(directory, 'recordings.db')}"
    return directory, "pcap", fmt, db


def _listen(values: _Values, name: str, *, need_host: bool = False) -> Listen | None:
    text = values.opt(name)
    if text is None:
        return None
    return parse_listen(name, text, cli=name in values.cli, need_host=need_host)


def _homer(values: _Values, warnings: list[str]) -> dict[str, Any]:
    proto = values.get("homer-protocol")
    spelled = {"17": "udp", "6": "tcp", "UDP": "udp", "TCP": "tcp"}.get(proto)
    if spelled is not None:
        warnings.append(
            f"{quoted('homer-protocol', proto)}: read as {spelled}, but rtpengine "
            f"accepts only 'udp' or 'tcp' and refuses to start - write 'homer-protocol = {spelled}'"
        )
        proto = spelled
    if proto not in ("udp", "tcp"):
        raise values.bad("homer-protocol", "not udp or tcp")
    homer = _listen(values, "homer", need_host=True)
    ng_text = values.opt("homer-ng")
    ng = None if ng_text is None else parse_hep_target("homer-ng", ng_text, proto)
    interval = values.get("homer-qos-interval")
    if interval <= 0:
        raise values.bad("homer-qos-interval", "must be at least 1 second")
    return {
        "homer": None if homer is None else (homer.host, homer.port),
        "homer_protocol": proto,
        "homer_id": values.get("homer-id"),
        "homer_ng": ng,
        "homer_password": values.opt("homer-password"),
        "homer_rtcp": values.get("homer-rtcp"),
        "homer_qos": values.get("homer-qos"),
        "homer_qos_interval": interval,
        "homer_ng_trace": values.get("homer-ng-trace"),
    }


def _prometheus(values: _Values, warnings: list[str]) -> tuple[bool, Listen | None]:
    enabled = bool(values.get("prometheus"))
    where = _listen(values, "prometheus-listen")
    if enabled and where is None:
        warnings.append(
            "config: key 'prometheus' is true but prometheus-listen is not set; "
            "/metrics is served on listen-http only"
        )
    if not enabled and where is not None:
        warnings.append("config: key 'prometheus-listen' ignored because prometheus is false")
        where = None
    return enabled, where


_CERT_CIPHERS = {"prime256v1": "prime256v1", "ec_prime256v1": "prime256v1",
                 "ec-prime256v1": "prime256v1", "rsa": "RSA"}
_SIGNATURES = {"sha-256": "sha-256", "sha256": "sha-256", "sha-1": "sha-1", "sha1": "sha-1"}
MIN_DTLS_MTU = 576
"""rtpengine 10.5: `Fatal error: Invalid --dtls-mtu (575)`; larger values are taken as given."""


def _dtls(values: _Values) -> dict[str, Any]:
    """The DTLS keys as rtpengine 10.5 reads them (docs/spec/config.md §2.6), case-insensitive
    names normalised (`RSA`/`prime256v1`, `sha-256`/`sha-1`), plus rtpvault's PEM pair."""
    cipher = _CERT_CIPHERS.get(str(values.get("dtls-cert-cipher")).lower())
    if cipher is None:
        raise values.bad("dtls-cert-cipher", "not prime256v1 or RSA (rtpengine: 'Invalid "
                         "--dtls-cert-cipher option')")
    signature = _SIGNATURES.get(str(values.get("dtls-signature")).lower())
    if signature is None:
        raise values.bad("dtls-signature", "not SHA-256 or SHA-1 (rtpengine: 'Invalid "
                         "--dtls-signature option')")
    rsa_bits = int(values.get("dtls-rsa-key-size"))
    if cipher == "RSA" and rsa_bits < MIN_RSA_BITS:
        raise values.bad("dtls-rsa-key-size", f"an RSA key needs at least {MIN_RSA_BITS} bits")
    mtu = int(values.get("dtls-mtu"))
    if mtu < MIN_DTLS_MTU:
        raise values.bad("dtls-mtu", f"below {MIN_DTLS_MTU} (rtpengine: 'Invalid --dtls-mtu')")
    ciphers = str(values.get("dtls-ciphers"))
    try:
        check_ciphers(ciphers)
    except ValueError as exc:
        raise values.bad("dtls-ciphers", str(exc)) from None
    cert, key = values.opt("tls-certificate"), values.opt("tls-private-key")
    if (cert is None) != (key is None):
        given = "tls-certificate" if cert is not None else "tls-private-key"
        missing = "tls-private-key" if cert is not None else "tls-certificate"
        raise values.bad(given, f"needs {missing} too (the certificate and its key, PEM)")
    return {
        "dtls_passive": values.get("dtls-passive"),
        "dtls_cert_cipher": cipher,
        "dtls_rsa_key_size": rsa_bits,
        "dtls_signature": signature,
        "dtls_mtu": mtu,
        "dtls_ciphers": ciphers,
        "tls_certificate": cert,
        "tls_private_key": key,
    }


def _s3(values: _Values, warnings: list[str]) -> dict[str, Any]:
    days = values.get("s3-object-lock-days")
    if days < 0:
        raise values.bad("s3-object-lock-days", "must not be negative")
    if values.opt("s3-kms-key-id") and values.get("s3-sse") != "aws:kms":
        warnings.append("config: key 's3-kms-key-id' has no effect unless s3-sse = aws:kms")
    return {
        "s3_bucket": values.opt("s3-bucket"),
        "s3_prefix": values.get("s3-prefix"),
        "s3_endpoint_url": values.opt("s3-endpoint-url"),
        "s3_region": values.opt("s3-region"),
        "s3_sse": values.get("s3-sse"),
        "s3_kms_key_id": values.opt("s3-kms-key-id"),
        "s3_object_lock_mode": values.get("s3-object-lock-mode"),
        "s3_object_lock_days": days,
        "s3_storage_class": values.opt("s3-storage-class"),
        "s3_keep_local": values.get("s3-keep-local"),
    }


def _listeners(values: _Values) -> dict[str, Any]:
    http = tuple(
        parse_listen("listen-http", t, cli="listen-http" in values.cli)
        for t in values.get("listen-http")
    )
    result = {
        "listen_ng": _listen(values, "listen-ng"),
        "listen_tcp_ng": _listen(values, "listen-tcp-ng"),
        "listen_cli": _listen(values, "listen-cli"),
        "listen_http": http,
    }
    if not (result["listen_ng"] or result["listen_tcp_ng"] or http):
        raise ConfigError(
            "config: no control listener: set listen-ng, listen-tcp-ng or listen-http "
            "(rtpengine: 'Missing option --listen-tcp, --listen-udp, --listen-ng, ...')"
        )
    return result


def _process(values: _Values) -> dict[str, Any]:
    def facility(name: str) -> str | None:
        return values.opt(name)

    threads = values.get("num-threads")
    return {
        "log_level": _ranged(values, "log-level", 0, 7),
        "log_stderr": values.get("log-stderr"),
        "log_facility": values.get("log-facility"),
        "log_facility_cdr": facility("log-facility-cdr"),
        "log_facility_rtcp": facility("log-facility-rtcp"),
        "log_facility_dtmf": facility("log-facility-dtmf"),
        "no_log_timestamps": values.get("no-log-timestamps"),
        "foreground": values.get("foreground"),
        "pidfile": values.opt("pidfile"),
        "num_threads": threads if threads is not None and threads > 0 else 0,
    }


def _transcoding(values: _Values) -> ChainOptions:
    """The chain's keys (docs/spec/config.md §2.9)."""
    silence = values.get("silence-detect")
    cn = {}
    for key, default in (("cn-payload", b"\x20"), ("dtx-cn-params", b"")):
        try:
            cn[key] = cn_payload(values.get(key), default)
        except ValueError as exc:
            raise values.bad(key, f"{exc} (rtpengine: 'Invalid CN payload specified')") \
                from None
    return ChainOptions(bool(values.get("dtmf-no-suppress")),
                        min(max(silence or 0.0, 0.0), 100.0) / 100, cn["cn-payload"],
                        cn["dtx-cn-params"])  # fmt: skip


def _dtx(values: _Values) -> DtxSettings:
    """rtpengine's DTX buffer keys (docs/spec/config.md §2.9); negative delays are off."""
    def ms(name: str) -> float:
        return max(0, int(values.get(name))) / 1000

    return DtxSettings(ms("dtx-delay"), float(values.get("max-dtx")),
                       max(0, int(values.get("dtx-buffer"))), ms("dtx-lag"),
                       ms("dtx-shift"))  # fmt: skip


def _calls(values: _Values) -> dict[str, Any]:
    delete_delay = values.get("delete-delay")
    if delete_delay < 0:
        raise values.bad("delete-delay", "must not be negative")
    return {
        "timeout": _positive_or(values, "timeout", 60),
        "silent_timeout": _positive_or(values, "silent-timeout", 3600),
        "final_timeout": max(0, values.get("final-timeout")),
        "offer_timeout": _positive_or(values, "offer-timeout", 3600),
        "delete_delay": delete_delay,
        "max_sessions": max(-1, values.get("max-sessions")),
        "max_load": max(0.0, values.get("max-load")),
        "max_cpu": max(0.0, values.get("max-cpu")),
        "max_bandwidth": values.get("max-bandwidth"),
        "endpoint_learning": values.get("endpoint-learning"),
        "sip_source": values.get("sip-source"),
        "reject_invalid_sdp": values.get("reject-invalid-sdp"),
        "mos": values.get("mos"),
    }


def _build(
    values: _Values,
    resolver: Resolver,
    cwd: str,
    source: str | None,
    warnings: list[str],
) -> Settings:
    specs = values.get("interface")
    if not specs:
        raise ConfigError(
            "config: key 'interface' is missing (rtpengine: 'Missing option --interface')"
        )
    interfaces, iface_warnings = resolve_interfaces(specs, resolver)
    warnings.extend(iface_warnings)
    port_min, port_max = _ports(values)
    rec_dir, method, fmt, db = _recording(values, cwd, warnings)
    prometheus, prometheus_listen = _prometheus(values, warnings)
    return Settings(
        interfaces=interfaces,
        **_listeners(values),
        port_min=port_min,
        port_max=port_max,
        table=_table(values, warnings),
        no_fallback=values.get("no-fallback"),
        tos=_ranged(values, "tos", 0, 255, " (rtpengine: 'Invalid TOS value')"),
        control_tos=_ranged(values, "control-tos", 0, 255),
        **_calls(values),
        recording_dir=rec_dir,
        recording_method=method,
        recording_format=fmt,
        recording_db=db,
        **_process(values),
        transcoding=_transcoding(values),
        dtx=_dtx(values),
        **_dtls(values),
        **_homer(values, warnings),
        prometheus=prometheus,
        prometheus_listen=prometheus_listen,
        ng_allow=parse_networks("ng-allow", values.get("ng-allow"), cli="ng-allow" in values.cli),
        **_s3(values, warnings),
        config_file=source,
        raw=values.raw(),
        redis=redis_settings({n: values.get(n) for n in REDIS_KEYS}, frozenset(values.cli)),
    )


def settings_from_text(
    text: str | None,
    cmd: CommandLine,
    *,
    resolver: Resolver,
    source: str | None = None,
    cwd: str = "/",
) -> tuple[Settings, list[str]]:
    """Pure core: key-file text (None = no file) + command line → Settings and warnings."""
    warnings: list[str] = []
    values = _Values()
    if text is not None:
        _read_section(text, cmd.config_section, source or "<text>", values, warnings)
    _read_command_line(cmd, values, warnings)
    settings = _build(values, resolver, cwd, source, warnings)
    _warn_unimplemented(values, warnings)
    return settings, warnings


def _read_config_file(cmd: CommandLine, warnings: list[str]) -> tuple[str | None, str | None]:
    """The thin loader: which file, and its text (None when no file is read)."""
    path = cmd.config_file
    if path == "none":
        return None, None
    if path is None:
        if not os.path.exists(DEFAULT_CONFIG_FILE):
            return None, None
        path = DEFAULT_CONFIG_FILE
        warnings.append(
            f"config: no --config-file given; reading rtpengine's default {path} "
            f"(pass --config-file=none to read no file)"
        )
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(f"config: cannot read file '{shown(path)}': {e.strerror}") from None
    try:
        return data.decode("utf-8"), path
    except UnicodeDecodeError as e:
        raise ConfigError(f"config: file '{shown(path)}' is not UTF-8 (byte {e.start})") from None


def load_settings(
    cmd: CommandLine, *, resolver: Resolver | None = None
) -> tuple[Settings, list[str]]:
    """Read the config file chosen by `cmd`, apply the command line; settings + warnings."""
    warnings: list[str] = []
    text, path = _read_config_file(cmd, warnings)
    if resolver is None:
        from .netifs import system_resolver  # the only place that inspects the machine

        resolver = system_resolver()
    settings, more = settings_from_text(
        text, cmd, resolver=resolver, source=path, cwd=os.getcwd()
    )
    return settings, warnings + more
