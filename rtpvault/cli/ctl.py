"""`rtpvault ctl COMMAND...`: rtpengine-ctl for rtpvault (and for rtpengine: same protocol).

    rtpvault ctl list numsessions
    rtpvault ctl -ip 127.0.0.1 -port 9900 terminate all
    rtpvault ctl --config-file /etc/rtpengine/rtpengine.conf list sessions all

The address follows rtpengine-ctl: `listen-cli` of section [rtpengine] in --config-file (default
/etc/rtpengine/rtpengine.conf, when it exists) gives the port (a bare number) or the address;
-ip ADDR[:PORT] and -port PORT override it; else 127.0.0.1:9900. Prints the server's text; exit
status 111 when nothing listens (the message names the address tried), 0 otherwise (also for
errors the server reports), as rtpengine-ctl.
"""

from __future__ import annotations

import os
import socket
import sys

import click

from relay.listener import host_port

DEFAULT_CONFIG = "/etc/rtpengine/rtpengine.conf"


def _listen_cli(path: str) -> str | None:
    """`listen-cli` of the [rtpengine] section, as written (rtpengine-ctl reads it raw too)."""
    from relay.config.keyfile import ConfigError, parse_key_file

    try:
        with open(path, encoding="utf-8") as f:
            keyfile = parse_key_file(f.read())
    except (OSError, UnicodeDecodeError, ConfigError) as exc:
        raise click.ClickException(f"Failed to read config file {path}: {exc}") from None
    entry = keyfile.groups.get("rtpengine", {}).get("listen-cli")
    return entry.value.split("#")[0].strip() if entry is not None else None


def address(ip: str | None, port: int | None, config_file: str | None) -> tuple[str, int]:
    """Where to connect, by rtpengine-ctl's rules (see the module docstring)."""
    path = config_file or DEFAULT_CONFIG
    if os.path.isfile(path):
        listen = _listen_cli(path)
        if listen and listen.isdigit():
            port = port if port is not None else int(listen)
        elif listen:
            ip = ip if ip is not None else listen
    if ip:
        host, sep, tail = ip.rpartition(":")
        if sep and tail.isdigit() and (host.count(":") == 0 or host.endswith("]")):
            ip = host
            port = port if port is not None else int(tail)
        ip = ip.strip("[]")
    return ip or "127.0.0.1", port if port is not None else 9900


def send(host: str, port: int, line: str, timeout: float) -> bytes:
    """One command over rtpengine-ctl's protocol: the line, then everything until close."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall((line + "\n").encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@click.command("ctl", context_settings={"ignore_unknown_options": True,
                                        "help_option_names": ["-h", "--help"]})  # fmt: skip
@click.option("-ip", "--ip", "ip", metavar="ADDR[:PORT]", help="CLI address (listen-cli).")
@click.option("-port", "--port", "port", type=click.IntRange(1, 65535), help="CLI port.")
@click.option("--config-file", "-config-file", "config_file", type=click.Path(dir_okay=False),
              help=f"Read listen-cli from this file (default {DEFAULT_CONFIG}).")  # fmt: skip
@click.option("--timeout", type=float, default=10.0, show_default=True,
              help="Seconds to wait for the daemon.")  # fmt: skip
@click.argument("command", nargs=-1, required=True)
def ctl(ip: str | None, port: int | None, config_file: str | None, timeout: float,
        command: tuple[str, ...]) -> None:  # fmt: skip
    """Send one rtpengine-ctl command: list, get, set, terminate, params, forwarding, help."""
    host, p = address(ip, port, config_file)
    try:
        reply = send(host, p, " ".join(command).strip(), timeout)
    except OSError as exc:
        reason = exc.strerror or exc
        click.echo(f"Cannot connect to the rtpengine at {host_port(host, p)}: {reason}", err=True)
        sys.exit(111)
    click.echo(reply.decode("utf-8", "replace"), nl=False)


def register(cli: click.Group) -> None:
    cli.add_command(ctl)
