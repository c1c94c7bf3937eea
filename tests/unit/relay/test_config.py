"""Settings from whole files: the deployment guide's snippet, the examples, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.config import (
    ConfigError,
    Interface,
    Settings,
    load_settings,
    parse_args,
    settings_from_text,
)
from relay.config.interfaces import Resolver
from relay.config.keys import KEYS

REPO = Path(__file__).resolve().parents[3]
GUIDE = REPO / "examples" / "rtpengine.conf"
GUIDE_EXCERPT = REPO / "tests" / "fixtures" / "config" / "deployment-guide-snippets.txt"
RESOLVER = Resolver({"lo": ("127.0.0.1", "::1"), "eth0": ("192.0.2.2", "fd00::2")})
BASE = "[rtpengine]\ninterface = lo/127.0.0.1\nlisten-ng = 127.0.0.1:2223\n"


def load(body: str, *argv: str) -> tuple[Settings, list[str]]:
    return settings_from_text(BASE + body, parse_args(list(argv)), resolver=RESOLVER)


def error(body: str, *argv: str) -> str:
    with pytest.raises(ConfigError) as e:
        load(body, *argv)
    return str(e.value)


# --- the deployment guide's snippet ----------------------------------------------------------


def guide() -> tuple[Settings, list[str]]:
    cmd = parse_args([f"--config-file={GUIDE}"])
    return load_settings(cmd, resolver=RESOLVER)


def test_guide_snippet_is_the_guides_block_verbatim() -> None:
    # the guide's own text, cut from the reference copy (source named in the fixture's header)
    excerpt = GUIDE_EXCERPT.read_text().split("# " + "-" * 90 + "\n", 1)[1]
    assert GUIDE.read_text() in excerpt
    assert GUIDE.read_text().splitlines()[1] == "[rtpengine]"


def test_guide_snippet_binds_eth0_and_advertises_the_public_address() -> None:
    s, _ = guide()
    assert s.interfaces == (
        Interface("eth0", "192.0.2.2", "203.0.113.10", "IP4"),
        Interface("eth0", "fd00::2", "fd00::2", "IP6"),
    )


def test_guide_snippet_logs_exactly_one_interface_warning() -> None:
    _, warnings = guide()
    iface = [w for w in warnings if "interface '" in w]
    assert iface == [
        "config: interface 'eth0/203.0.113.10': rtpengine reads this as logical name 'eth0' "
        "bound to 203.0.113.10 (not a local address; every call would fail with 'Ran out of "
        "ports'); rtpvault binds eth0 (192.0.2.2, fd00::2) and advertises 203.0.113.10 - write "
        "'eth0/eth0!203.0.113.10' to say so unambiguously"
    ]


def test_guide_snippet_values() -> None:
    s, _ = guide()
    assert (s.listen_ng, s.listen_tcp_ng) == (("127.0.0.1", 2223), ("127.0.0.1", 2223))
    assert (s.port_min, s.port_max, s.table, s.tos) == (30000, 40000, 0, 184)
    assert (s.dtls_passive, s.log_level, s.timeout, s.silent_timeout) == (True, 5, 60, 3600)
    assert (s.log_facility, s.log_facility_rtcp) == ("daemon", "local0")
    assert (s.prometheus, s.prometheus_listen) == (True, ("127.0.0.1", 9900))
    assert s.homer_ng == ("udp", "127.0.0.1", 9060)
    assert (s.homer, s.homer_protocol, s.homer_id) == (None, "udp", 2002)
    assert s.tls_certificate == "/etc/ssl/certs/rtpengine.pem"
    assert s.tls_private_key == "/etc/ssl/private/rtpengine.key"
    assert s.config_file == str(GUIDE)


def test_guide_snippet_warns_about_each_rtpengine_trap() -> None:
    _, warnings = guide()
    text = "\n".join(warnings)
    assert "key 'dtls-passive' value 'yes': read as true" in text
    assert "key 'prometheus' value 'yes': read as true" in text
    assert "key 'homer-protocol' value '17': read as udp" in text
    assert "key 'tos' value '184 # DSCP EF (0xB8) for RTP traffic': trailing comment" in text
    assert "'tls-" not in text  # loaded (or refused) by the daemon at start-up


def test_local_example_loads_quietly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cmd = parse_args([f"--config-file={REPO / 'examples' / 'rtpvault-local.conf'}"])
    s, warnings = load_settings(cmd, resolver=RESOLVER)
    assert warnings == []
    assert s.interfaces == (Interface("lo", "127.0.0.1", "127.0.0.1", "IP4"),)
    assert (s.listen_ng, s.listen_tcp_ng) == (("127.0.0.1", 2223), ("127.0.0.1", 2223))
    assert s.recording_dir == str(tmp_path / "spool")
    assert s.recording_db == f"sqlite:///{tmp_path}/spool/recordings.db"
    assert (s.recording_method, s.s3_bucket, s.log_stderr, s.foreground) == (
        "pcap",
        None,
        True,
        True,
    )


def test_debian_packaged_file_loads() -> None:
    # The non-comment part of Debian's /etc/rtpengine/rtpengine.conf (10.5.3.5-1+deb12u1).
    text = (
        "[rtpengine]\ntable = 0\ninterface = any\nlisten-ng = localhost:2223\n"
        "listen-http = localhost:2225\nlisten-cli = localhost:2224\ntimeout = 60\n"
        "silent-timeout = 3600\ntos = 184\nport-min = 30000\nport-max = 40000\n"
        "recording-dir = /var/spool/rtpengine\nrecording-method = proc\n"
        "[rtpengine-testing]\ntable = -1\ninterface = 10.15.20.121\nlisten-ng = 2223\n"
    )
    s, warnings = settings_from_text(text, parse_args([]), resolver=RESOLVER)
    assert [i.local for i in s.interfaces] == ["192.0.2.2", "fd00::2"]
    assert s.listen_ng == ("localhost", 2223) and s.listen_http == (("localhost", 2225),)
    assert s.recording_method == "pcap"
    assert any("'recording-method' value 'proc'" in w for w in warnings)


# --- defaults, files, errors -----------------------------------------------------------------


def test_defaults() -> None:
    s, warnings = load("")
    assert warnings == []
    assert (s.timeout, s.silent_timeout, s.offer_timeout, s.final_timeout) == (60, 3600, 3600, 0)
    assert (s.delete_delay, s.port_min, s.port_max, s.table, s.tos) == (30, 30000, 40000, -1, 0)
    assert (s.log_level, s.endpoint_learning, s.max_sessions) == (6, "delayed", -1)
    assert (s.recording_dir, s.recording_db, s.recording_format) == (None, None, "raw")
    assert (s.homer, s.homer_protocol, s.homer_id) == (None, "udp", 2001)
    assert [str(n) for n in s.ng_allow] == ["127.0.0.0/8", "::1/128"]
    assert (s.s3_sse, s.s3_keep_local, s.prometheus) == ("none", True, False)


def test_raw_has_every_key() -> None:
    s, _ = load("timeout = 5\n")
    assert set(s.raw) == {k.name for k in KEYS}
    assert (s.raw["timeout"], s.raw["port-min"], s.raw["redis"]) == ("5", "30000", "")
    assert s.raw["interface"] == "lo/127.0.0.1"


def test_config_file_none_reads_nothing() -> None:
    cmd = parse_args(["--config-file=none", "--interface=127.0.0.1", "--listen-ng=2223"])
    s, _ = load_settings(cmd, resolver=RESOLVER)
    assert s.config_file is None and s.listen_ng == ("", 2223)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read file '.*nope.conf': No such file"):
        load_settings(parse_args([f"--config-file={tmp_path}/nope.conf"]), resolver=RESOLVER)


def test_unknown_key_warns_naming_it() -> None:
    _, warnings = load("prometheus-lisen = 1\n")
    assert warnings == [
        "config: unknown key 'prometheus-lisen' (line 4) ignored (did you mean "
        "'prometheus-listen'?); rtpengine ignores it silently"
    ]


def test_unimplemented_key_warns_when_set() -> None:
    _, warnings = load("redis-delete-async = 1\n")
    assert warnings == [
        "config: key 'redis-delete-async' value '1' accepted for rtpengine compatibility, "
        "but rtpvault does not implement it yet: no effect"
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("port-min = abc\n", "config: key 'port-min' value 'abc': not an integer"),
        ("port-min = 0\n", "config: key 'port-min' value '0': not within 1..65535"),
        ("port-max = 70000\n", "config: key 'port-max' value '70000': not within 1..65535"),
        (
            "port-min = 5000\nport-max = 4000\n",
            "config: key 'port-min' value '5000': above port-max 4000 (empty port range)",
        ),
        (
            "tos = 300\n",
            "config: key 'tos' value '300': not within 0..255 (rtpengine: 'Invalid TOS value')",
        ),
        ("log-level = 8\n", "config: key 'log-level' value '8': not within 0..7"),
        (
            "recording-method = foo\n",
            "config: key 'recording-method' value 'foo': not pcap or proc",
        ),
        (
            "recording-format = mp3\n",
            "config: key 'recording-format' value 'mp3': not raw, eth or pcapng",
        ),
        (
            "endpoint-learning = bad\n",
            "config: key 'endpoint-learning' value 'bad': "
            "not one of delayed, immediate, off, heuristic",
        ),
        (
            "log-facility = bogus\n",
            "config: key 'log-facility' value 'bogus': not one of auth, "
            "authpriv, cron, daemon, ftp, kern, lpr, mail, news, syslog, user, uucp, "
            "local0, local1, local2, local3, local4, local5, local6, local7",
        ),
        ("homer-protocol = sctp\n", "config: key 'homer-protocol' value 'sctp': not udp or tcp"),
        ("homer = 127.0.0.1\n", "config: key 'homer' value '127.0.0.1': expected [ADDRESS:]PORT"),
        ("homer = 9060\n", "config: key 'homer' value '9060': needs ADDRESS:PORT"),
        (
            "listen-cli = ::1:2224\n",
            "config: key 'listen-cli' value '::1:2224': an IPv6 address "
            "must be written in brackets: [ADDR]:PORT",
        ),
        (
            "listen-cli = 127.0.0.1:0\n",
            "config: key 'listen-cli' value '127.0.0.1:0': port 0 is not within 1..65535",
        ),
        (
            "ng-allow = 10.0.0.0/33\n",
            "config: key 'ng-allow' value '10.0.0.0/33': not an IP network (e.g. 10.0.0.0/8)",
        ),
        ("delete-delay = -1\n", "config: key 'delete-delay' value '-1': must not be negative"),
        ("s3-sse = aes\n", "config: key 's3-sse' value 'aes': not one of none, AES256, aws:kms"),
    ],
)
def test_bad_values_stop_with_key_value_and_reason(body: str, message: str) -> None:
    assert error(body) == message


def test_missing_interface_and_listener_are_errors() -> None:
    none = parse_args([])
    with pytest.raises(ConfigError, match="key 'interface' is missing"):
        settings_from_text("[rtpengine]\nlisten-ng = 2223\n", none, resolver=RESOLVER)
    with pytest.raises(ConfigError, match="no control listener"):
        settings_from_text("[rtpengine]\ninterface = 127.0.0.1\n", none, resolver=RESOLVER)


def test_listen_forms() -> None:
    s, _ = load(
        "listen-tcp-ng = [::1]:2223\nlisten-cli = 2224\nlisten-http = 127.0.0.1:1;[::1]:2\n"
    )
    assert s.listen_tcp_ng == ("::1", 2223) and s.listen_cli == ("", 2224)
    assert s.listen_http == (("127.0.0.1", 1), ("::1", 2))


def test_homer_protocol_spellings() -> None:
    assert load("homer-protocol = 6\n")[0].homer_protocol == "tcp"
    s, warnings = load("homer = 127.0.0.1:9060\nhomer-protocol = tcp\nhomer-ng = 127.0.0.1:9061\n")
    assert s.homer == ("127.0.0.1", 9060) and s.homer_ng == ("tcp", "127.0.0.1", 9061)
    assert warnings == []


def test_prometheus_listen_without_prometheus_is_ignored_loudly() -> None:
    s, warnings = load("prometheus-listen = 127.0.0.1:9900\n")
    assert s.prometheus_listen is None
    assert warnings == ["config: key 'prometheus-listen' ignored because prometheus is false"]


def test_recording_dir_relative_to_cwd_and_db_default() -> None:
    s, _ = settings_from_text(
        BASE + "recording-dir = spool/\n", parse_args([]), resolver=RESOLVER, cwd="/srv/rtp"
    )
    assert s.recording_dir == "/srv/rtp/spool"
    assert s.recording_db == "sqlite:////srv/rtp/spool/recordings.db"
    s, _ = load("recording-dir = /r\nrecording-db = postgresql://db/rec\n")
    assert s.recording_db == "postgresql://db/rec"


def test_key_only_for_the_command_line_is_ignored_in_the_file() -> None:
    _, warnings = load("config-section = x\n")
    assert warnings == ["config: key 'config-section' has no effect inside the file; ignored"]
