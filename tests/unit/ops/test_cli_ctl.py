"""`rtpvault ctl`'s address rules are rtpengine-ctl's: listen-cli from the config file (bare
port or address), -ip ADDR[:PORT] and -port over it, 127.0.0.1:9900 otherwise; and exit 111
when nothing listens."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from rtpvault.cli import cli
from rtpvault.cli.ctl import address
from tests.support.tools import free_port


def _conf(tmp_path: Path, listen: str | None) -> str:
    path = tmp_path / "rtpengine.conf"
    line = f"listen-cli = {listen}\n" if listen is not None else ""
    path.write_text(f"[rtpengine]\ninterface = lo/127.0.0.1\n{line}")
    return str(path)


def test_defaults_without_a_config_file(tmp_path: Path) -> None:
    assert address(None, None, str(tmp_path / "absent.conf")) == ("127.0.0.1", 9900)
    assert address(None, None, _conf(tmp_path, None)) == ("127.0.0.1", 9900)


def test_listen_cli_from_the_config_file(tmp_path: Path) -> None:
    assert address(None, None, _conf(tmp_path, "9901")) == ("127.0.0.1", 9901)
    assert address(None, None, _conf(tmp_path, "127.0.0.2:9902")) == ("127.0.0.2", 9902)
    assert address(None, None, _conf(tmp_path, "[::1]:9903")) == ("::1", 9903)
    assert address(None, None, _conf(tmp_path, "9904 # the CLI")) == ("127.0.0.1", 9904)


def test_options_win_over_the_file(tmp_path: Path) -> None:
    conf = _conf(tmp_path, "127.0.0.2:9902")
    # rtpengine-ctl: an ADDR:PORT listen-cli only fills -ip; with -ip given its port is unused
    assert address("10.0.0.1", None, conf) == ("10.0.0.1", 9900)
    assert address(None, 7000, conf) == ("127.0.0.2", 7000)
    assert address("10.0.0.1:7001", None, conf) == ("10.0.0.1", 7001)
    assert address("10.0.0.1:7001", 7002, conf) == ("10.0.0.1", 7002)
    assert address("::1", None, str(tmp_path / "absent")) == ("::1", 9900)


def test_nothing_listening_exits_111_naming_the_address(tmp_path: Path) -> None:
    port = free_port()
    args = ["ctl", "-ip", "127.0.0.1", "-port", str(port),
            "--config-file", str(tmp_path / "absent"), "list", "totals"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 111
    assert f"Cannot connect to the rtpengine at 127.0.0.1:{port}: Connection refused" in \
        result.output  # fmt: skip
    conf = _conf(tmp_path, f"[::1]:{port}")  # the address from the config file, IPv6 bracketed
    result = CliRunner().invoke(cli, ["ctl", "--config-file", conf, "list", "totals"])
    assert result.exit_code == 111 and f"at [::1]:{port}: " in result.output
