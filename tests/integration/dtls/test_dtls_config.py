"""The DTLS configuration keys on a real daemon (docs/configuration.md, docs/spec/sdp.md §1.12b).

* `tls-certificate` / `tls-private-key`: the daemon's `a=fingerprint` is the fingerprint of the
  configured certificate file, as `openssl x509 -fingerprint` computes it (sha-256, and sha-1
  when the offer asks with `DTLS-fingerprint`); a broken or mismatched file stops the start
  with exit status 1 and a message naming the key and file; missing files (the deployment
  guide's rtpengine.conf names PEM files rtpengine 10.5 never reads) warn, and the daemon
  starts with a generated certificate as rtpengine does.
* `dtls-cert-cipher=RSA`, `dtls-signature=SHA-1`: the SDP looks as rtpengine 10.5's does with
  the same options (the fingerprint stays sha-256: the signature hash is the certificate's own).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.differential.normalise import ScenarioState, normalise_reply
from tests.support import daemons
from tests.support.daemons import Daemon
from tests.support.tools import free_port, free_port_range, require

pytestmark = pytest.mark.integration

PLAIN = ("v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=Talk\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
         "m=audio 16000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def _openssl(*args: str) -> str:
    return subprocess.run([require("openssl"), *args], check=True, capture_output=True,
                           text=True).stdout


def _pair(tmp: Path, name: str, newkey: list[str]) -> tuple[Path, Path]:
    cert, key = tmp / f"{name}.crt", tmp / f"{name}.key"
    _openssl("req", "-x509", *newkey, "-nodes", "-keyout", str(key), "-out", str(cert),
             "-subj", f"/CN={name}", "-days", "2")
    return cert, key


def _openssl_fingerprint(cert: Path, digest: str) -> str:
    """`sha256 Fingerprint=AB:CD:...` → `AB:CD:...`."""
    out = _openssl("x509", "-noout", "-fingerprint", f"-{digest}", "-in", str(cert))
    return out.strip().split("=", 1)[1]


def _offer(d: Daemon, call: str, **extra: Any) -> dict[str, Any]:
    c = d.client()
    try:
        return c.call({"command": "offer", "call-id": call, "from-tag": "ft", "sdp": PLAIN,
                       "flags": ["trust-address"], "transport-protocol": "UDP/TLS/RTP/SAVPF",
                       **extra})
    finally:
        c.close()


def _fingerprint_line(reply: dict[str, Any]) -> str:
    assert reply["result"] == "ok", reply
    lines = [ln for ln in str(reply["sdp"]).split("\r\n") if ln.startswith("a=fingerprint:")]
    assert len(lines) == 1, reply["sdp"]
    return lines[0]


@pytest.mark.parametrize(
    "newkey",
    [["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"], ["-newkey", "rsa:2048"]],
    ids=["ec", "rsa"],
)
def test_fingerprint_is_the_configured_certificates(tmp_path: Path, newkey: list[str]) -> None:
    cert, key = _pair(tmp_path, "vault", newkey)
    d = daemons.start("rtpvault", tmp_path / "run", ports=20,
                      extra=[f"--tls-certificate={cert}", f"--tls-private-key={key}"])
    try:
        sha256 = _fingerprint_line(_offer(d, "fp-256"))
        sha1 = _fingerprint_line(_offer(d, "fp-1", **{"DTLS-fingerprint": "sha-1"}))
    finally:
        d.stop()
    assert sha256 == f"a=fingerprint:sha-256 {_openssl_fingerprint(cert, 'sha256')}"
    assert sha1 == f"a=fingerprint:sha-1 {_openssl_fingerprint(cert, 'sha1')}"


def _run(*extra: str) -> subprocess.CompletedProcess[str]:
    pmin, pmax = free_port_range(20)
    command = [
        *daemons.rtpvault_command(), "run", "--config-file=none", "--foreground", "--table=-1",
        "--interface=lo/127.0.0.1", f"--port-min={pmin}", f"--port-max={pmax}",
        f"--listen-ng=127.0.0.1:{free_port()}", *extra,
    ]  # fmt: skip
    # the timeout is a hang guard: each of these exits at start-up
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_unusable_files_stop_the_start_naming_key_and_file(tmp_path: Path) -> None:
    cert, key = _pair(tmp_path, "a", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
    _, other_key = _pair(tmp_path, "b", ["-newkey", "ec", "-pkeyopt",
                                         "ec_paramgen_curve:prime256v1"])
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    locked = tmp_path / "locked.key"
    _openssl("pkey", "-in", str(key), "-out", str(locked), "-aes256", "-passout", "pass:secret")
    unreadable = tmp_path / "a-directory.pem"
    unreadable.mkdir()
    cases = [
        ((unreadable, key), f"config: key 'tls-certificate' value '{unreadable}': cannot read: "
                            "Is a directory"),
        ((garbage, key), f"config: key 'tls-certificate' value '{garbage}': not a PEM "
                         "certificate"),
        ((cert, other_key), f"config: key 'tls-private-key' value '{other_key}': not the key "
                            "of tls-certificate"),
        ((cert, locked), f"config: key 'tls-private-key' value '{locked}': not an unencrypted "
                         "PEM private key"),
    ]
    for (c, k), message in cases:
        out = _run(f"--tls-certificate={c}", f"--tls-private-key={k}")
        assert out.returncode == 1, (message, out.stderr)
        assert f"\nrtpvault: {message}" in f"\n{out.stderr}", out.stderr
    out = _run(f"--tls-certificate={cert}")
    assert out.returncode == 1
    assert "needs tls-private-key too" in out.stderr


def test_missing_files_warn_and_a_certificate_is_generated(tmp_path: Path) -> None:
    """The guide's `tls-certificate = /etc/ssl/certs/rtpengine.pem` on a box without it."""
    cert, key = tmp_path / "absent.pem", tmp_path / "absent.key"
    d = daemons.start("rtpvault", tmp_path / "run", ports=20,
                      extra=[f"--tls-certificate={cert}", f"--tls-private-key={key}"])
    try:
        line = _fingerprint_line(_offer(d, "fp-generated"))
        log = d.log()
    finally:
        d.stop()
    assert line.startswith("a=fingerprint:sha-256 "), line
    assert f"tls-certificate {cert}: no such file; using a generated DTLS certificate" in log
    assert f"tls-private-key {key}: no such file" in log


def _normalised_offer(d: Daemon, call: str, **extra: Any) -> dict[str, Any]:
    st = ScenarioState(d.port_min, d.port_max, 0, "run")
    return normalise_reply(_offer(d, call, **extra), st, frozenset(), PLAIN)


@pytest.mark.parametrize(
    "options",
    [["--dtls-cert-cipher=RSA"], ["--dtls-signature=SHA-1"],
     ["--dtls-cert-cipher=rsa", "--dtls-rsa-key-size=1024", "--dtls-signature=sha1"]],
    ids=["rsa", "sha1", "rsa-1024-sha1"],
)
def test_certificate_choices_show_in_the_sdp_as_rtpengines(tmp_path: Path,
                                                           options: list[str]) -> None:
    replies = {}
    for kind in ("rtpengine", "rtpvault"):
        d = daemons.start(kind, tmp_path / kind, ports=20, extra=options)
        try:
            replies[kind] = [_normalised_offer(d, "c-256"),
                             _normalised_offer(d, "c-1", **{"DTLS-fingerprint": "sha-1"})]
            raw = _fingerprint_line(_offer(d, "c-raw"))
        finally:
            d.stop()
        # still sha-256, 32 upper-case pairs, whatever the certificate's key or signature hash
        assert raw.startswith("a=fingerprint:sha-256 ") and len(raw.split()[1]) == 95, raw
    assert replies["rtpvault"] == replies["rtpengine"]
