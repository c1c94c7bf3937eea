"""rtpengine-ctl against the real rtpengine 10.5 and against rtpvault, side by side: the same two
calls on each (one answered with media both ways, one offer only), then the same command
sequence through the real `rtpengine-ctl`; every reply must be rtpengine's, exactly or with only
the numbers differing (ports, times, uptime). `rtpvault ctl` must print what rtpengine-ctl
prints, and HTTP /cli must answer the same text."""

from __future__ import annotations

import re
import socket
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.recording.media import Call
from tests.support import daemons
from tests.support.tools import free_port, require
from tests.unit.relay.ng.test_codec_huge import HUGE

EXACT = [
    "list numsessions", "list maxsessions", "get timeout", "list silenttimeout",
    "list offertimeout", "list finaltimeout", "list deletedelay", "list controltos",
    "list loglevel", "list loglevels", "get loglevel core", "get loglevel internals",
    "list transcoders", "list maxcpu", "list maxload", "list maxbw", "kslist",
    "list", "set", "get", "terminate", "params", "list sessions", "bogus", "list bogus",
    "set bogus 1", "params bogus", "set timeout", "set timeout abc", "set timeout -5",
    "set maxsessions -2", "set maxsessions abc", "set loglevel abc", "set loglevel core",
    "set deletedelay x", "set controltos 300", "list sessions foreign", "list sessions nosuch",
    "terminate nosuch", "set timeout 90", "set silenttimeout 200", "list silenttimeout",
    "set offertimeout x", "set finaltimeout -1", "set finaltimeout 7200", "list finaltimeout",
    "set loglevel core 5", "get loglevel core", "set maxsessions 50", "list maxsessions",
    "params diff", "set maxsessions -1", "params revert", "params diff", "get timeout",
    "terminate ctl-offer", "list numsessions",
]  # fmt: skip
SAME_BUT_NUMBERS = [
    "list sessions all", "list sessions own", "list sessions ctl-call",
    "list sessions ctl-offer", "list totals",
    "list counters", "list interfaces", "list maxopenfiles",
]  # fmt: skip


def _numbers(text: str) -> str:
    return re.sub(r"\d+", "N", text)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, daemons.Daemon]]:
    require("rtpengine-ctl")
    tmp = tmp_path_factory.mktemp("ctl")
    started: dict[str, daemons.Daemon] = {}
    try:
        for kind in ("rtpengine", "rtpvault"):
            cli, http = free_port(), free_port()
            d = daemons.start(
                kind,
                Path(tmp) / kind,
                extra=[f"--listen-cli=127.0.0.1:{cli}", f"--listen-http=127.0.0.1:{http}"],
            )
            d.cli_port, d.http_port = cli, http  # type: ignore[attr-defined]
            started[kind] = d
        for d in started.values():
            call = Call(d, "ctl-call")
            call.offer()
            call.answer()
            call.media(5)
            assert call.received(call.callee, 5) == 5 and call.received(call.caller, 5) == 5
            Call(d, "ctl-offer").offer()
        yield started
    finally:
        for d in started.values():
            d.stop()


def rtpengine_ctl(d: daemons.Daemon, line: str) -> str:
    out = subprocess.run([require("rtpengine-ctl"), "-ip", "127.0.0.1", "-port",
                          str(d.cli_port), *line.split()],  # type: ignore[attr-defined]
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return str(out.stdout)


def rtpvault_ctl(d: daemons.Daemon, line: str) -> str:
    out = subprocess.run([*daemons.rtpvault_command(), "ctl", "-ip", "127.0.0.1", "-port",
                          str(d.cli_port), *line.split()],  # type: ignore[attr-defined]
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return str(out.stdout)


def test_replies_are_rtpengines(pair: dict[str, daemons.Daemon]) -> None:
    ref, ours = pair["rtpengine"], pair["rtpvault"]
    mismatches = []
    for line in SAME_BUT_NUMBERS:
        theirs, mine = rtpengine_ctl(ref, line), rtpengine_ctl(ours, line)
        # rtpengine lists calls in hash order: compare the lines as a set
        if sorted(_numbers(theirs).splitlines()) != sorted(_numbers(mine).splitlines()):
            mismatches.append((line, theirs, mine))
    for line in EXACT:
        theirs, mine = rtpengine_ctl(ref, line), rtpengine_ctl(ours, line)
        if theirs != mine:
            mismatches.append((line, theirs, mine))
    assert mismatches == []
    # the last `list numsessions` (after terminate ctl-offer) saw one call on both
    assert "Current sessions own: 1\n" in rtpengine_ctl(ours, "list numsessions")


def test_help_offers_rtpengines_commands(pair: dict[str, daemons.Daemon]) -> None:
    ref, ours = pair["rtpengine"], pair["rtpvault"]
    for line in ("help", "list help", "set help"):
        theirs = set(rtpengine_ctl(ref, line).splitlines()[1:])
        mine = set(rtpengine_ctl(ours, line).splitlines()[1:])
        # not offered: Redis keyspace and standby/active/debug/call (no Redis ownership)
        missing = {w for w in theirs - mine
                   if not re.search(r"redis|active|standby|debug|call|maxopenfiles|maxcpu"
                                    r"|maxload|maxbw", w)}  # fmt: skip
        assert missing == set(), line


def test_rtpvault_ctl_prints_what_rtpengine_ctl_prints(pair: dict[str, daemons.Daemon]) -> None:
    for d in pair.values():
        for line in ("list numsessions", "list sessions ctl-call", "bogus", "get timeout"):
            a, b = rtpengine_ctl(d, line), rtpvault_ctl(d, line)
            assert _numbers(a) == _numbers(b), (d.name, line)


def test_http_cli_answers_the_same_text(pair: dict[str, daemons.Daemon]) -> None:
    texts = {}
    for kind, d in pair.items():
        url = f"http://127.0.0.1:{d.http_port}/cli/{urllib.parse.quote('list numsessions')}"  # type: ignore[attr-defined]
        texts[kind] = urllib.request.urlopen(url, timeout=10).read().decode()
    assert texts["rtpvault"] == texts["rtpengine"]


def _post_ng(port: int, body: bytes) -> tuple[int, bytes]:
    ng = {"Content-Type": "application/x-rtpengine-ng"}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/ng", data=body, headers=ng)
    with urllib.request.urlopen(request, timeout=10) as reply:
        return reply.status, reply.read()


@pytest.mark.parametrize(("index", "body"), list(enumerate(body for body, _ in HUGE)))
def test_http_ng_answers_huge_numbers_the_same(pair: dict[str, daemons.Daemon], index: int,
                                               body: bytes) -> None:  # fmt: skip
    replies = {kind: _post_ng(d.http_port, b"hh%d " % index + body)  # type: ignore[attr-defined]
               for kind, d in pair.items()}  # fmt: skip
    assert replies["rtpvault"] == replies["rtpengine"]


LONG = "9" * 5000  # past Python's 4,300-digit int() limit; rtpengine's strtol/strtoull clamp


def _sdp(origin: str = "1", port: str = "4000", extra: str = "") -> str:
    return (f"v=0\r\no=- 1 {origin} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\n{extra}")  # fmt: skip


HUGE_IN_COMMANDS = [
    {"command": "offer", "call-id": "huge-o", "from-tag": "f", "sdp": _sdp(origin=LONG)},
    {"command": "offer", "call-id": "huge-m", "from-tag": "f", "sdp": _sdp(port=LONG)},
    {"command": "offer", "call-id": "huge-a", "from-tag": "f",
     "sdp": _sdp(extra=f"a=ptime:{LONG}\r\na=rtpmap:0 PCMU/{LONG}\r\na=rtcp:{LONG}\r\n")},
    {"command": "offer", "call-id": "huge-d", "from-tag": "f", "sdp": _sdp()},
    {"command": "delete", "call-id": "huge-d", "from-tag": "f", "delete-delay": LONG},
    {"command": "delete", "call-id": "huge-x", "from-tag": "f", "delete delay": LONG},
]  # fmt: skip


@pytest.mark.parametrize("message", HUGE_IN_COMMANDS, ids=[m["call-id"] for m in HUGE_IN_COMMANDS])
def test_huge_numbers_in_commands_get_rtpengines_answer(
    pair: dict[str, daemons.Daemon], message: dict[str, str]
) -> None:
    outcome = {}
    for kind, d in pair.items():
        reply = d.client().call(message)
        outcome[kind] = {k: reply.get(k) for k in ("result", "error-reason", "warning")}
    assert outcome["rtpvault"] == outcome["rtpengine"]
    assert "Traceback" not in pair["rtpvault"].log()


def _raw_http(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
        return got


@pytest.mark.parametrize("length", [b"9" * 4301, b"0" * 4300 + b"20"], ids=["huge", "zeros"])
def test_http_huge_content_length_is_closed_like_rtpengine(
    pair: dict[str, daemons.Daemon], length: bytes
) -> None:
    request = (b"POST /ng HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-rtpengine-ng\r\n"
               b"Content-Length: " + length + b"\r\n\r\nc1 d7:command4:pinge")  # fmt: skip
    replies = {kind: _raw_http(d.http_port, request)  # type: ignore[attr-defined]
               for kind, d in pair.items()}  # fmt: skip
    assert replies["rtpvault"] == replies["rtpengine"] == b""
