"""Logging as rtpengine: syslog datagrams (facility and severity in <PRI>, call-id in the line)
read from a real unix socket standing in for /dev/log, log-facility-rtcp, the stderr fallback
when no syslog daemon listens, and the subsystem levels."""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtpvault.logsetup import LogLevels, python_level, setup_logging, subsystem_levels

LOCAL3, LOCAL5, DAEMON = 19, 21, 3
INFO, WARNING, NOTICE = 6, 4, 5


@pytest.fixture
def syslog(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "log")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


def _pri(facility: int, severity: int) -> str:
    return f"<{facility * 8 + severity}>"


Capture = pytest.CaptureFixture[str]


def test_syslog_facility_severity_and_call_id(syslog: tuple[socket.socket, str],
                                              capsys: Capture) -> None:  # fmt: skip
    sock, path = syslog
    levels = setup_logging(6, False, "local3", syslog_socket=path)
    assert levels.syslog
    logging.getLogger("relay.calls").info("Call closed (%s)", "forced",
                                          extra={"call_id": "abc@host"})  # fmt: skip
    line = sock.recv(4096).decode()
    assert line == (f"{_pri(LOCAL3, INFO)}rtpvault[{os.getpid()}]: "
                    "INFO: [abc@host]: [relay.calls] Call closed (forced)\x00")  # fmt: skip
    logging.getLogger("rtpvault.ctl").log(25, "notice")
    assert sock.recv(4096).decode().startswith(_pri(LOCAL3, NOTICE))
    logging.getLogger("x").warning("disk nearly full")
    assert sock.recv(4096).decode().startswith(_pri(LOCAL3, WARNING))
    # rtpengine also writes warnings and worse to stderr when it logs to syslog
    err = capsys.readouterr().err
    assert re.fullmatch(r"\[\d+\.\d{6}\] WARNING: \[x\] disk nearly full\n", err)
    logging.getLogger("x").debug("not at level 6")
    logging.getLogger("x").info("next")
    assert sock.recv(4096).decode().endswith("[x] next\x00")


def test_rtcp_lines_go_to_their_own_facility(syslog: tuple[socket.socket, str]) -> None:
    sock, path = syslog
    setup_logging(6, False, "daemon", rtcp_facility="local5", syslog_socket=path)
    logging.getLogger("rtpvault.rtcp").info("SR from %s", "1.2.3.4", extra={"call_id": "c1"})
    first = sock.recv(4096).decode()
    assert first.startswith(_pri(LOCAL5, INFO)) and "[c1]: [rtpvault.rtcp] SR from 1.2.3.4" in first
    logging.getLogger("relay.calls").info("other")
    assert sock.recv(4096).decode().startswith(_pri(DAEMON, INFO))


def test_without_a_syslog_daemon_lines_go_to_stderr(tmp_path: Path, capsys: Capture) -> None:
    missing = str(tmp_path / "nothing-listens")
    levels = setup_logging(6, False, "daemon", syslog_socket=missing, timestamps=False)
    assert not levels.syslog
    logging.getLogger("relay.calls").info("hello", extra={"call_id": "k"})
    err = capsys.readouterr().err.splitlines()
    assert err == [f"WARNING: [rtpvault] no syslog socket at {missing}: logging to stderr instead",
                   "INFO: [k]: [relay.calls] hello"]  # fmt: skip


def test_log_stderr_has_rtpengine_timestamps(capsys: Capture) -> None:
    setup_logging(7, True)
    logging.getLogger("relay.sdp").debug("x")
    assert re.fullmatch(r"\[\d+\.\d{6}\] DEBUG: \[relay\.sdp\] x\n", capsys.readouterr().err)


def test_subsystem_levels() -> None:
    lv = LogLevels(6, {"control": 7})
    assert lv.levels["internals"] == -1
    assert logging.getLogger().level == logging.INFO
    assert logging.getLogger("relay.ng").level == logging.DEBUG
    lv.set(3)
    assert set(lv.levels.values()) == {3}
    assert logging.getLogger("relay.ng").level == logging.ERROR
    assert python_level(-1) > logging.CRITICAL and python_level(9) == logging.DEBUG
    assert subsystem_levels({"log-level-core": "5", "log-level-rtcp": "", "log-level": "6"}) == \
        {"core": 5}  # fmt: skip


def test_ffmpeg_info_lines_are_notice(capsys: Capture) -> None:
    setup_logging(5, to_stderr=True, timestamps=False)
    logging.getLogger("libav.libopus").info("from FFmpeg")
    logging.getLogger("libav.libopus").debug("verbose")
    setup_logging(4, to_stderr=True, timestamps=False)
    logging.getLogger("libav.libopus").info("hidden at 4")
    assert capsys.readouterr().err == "NOTICE: [libav.libopus] from FFmpeg\n"
    setup_logging(6)
