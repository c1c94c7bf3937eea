"""SIP call flows beyond the basic call, through Kamailio's example routing, on both relays.

Each flow runs against the real rtpengine 10.5 and against rtpvault with the same assertions:

* every SDP a sipp party receives points at the relay (c= and o= address, an m= port from the
  relay's range), except where rtpengine keeps the caller's c=0.0.0.0 hold address;
* the SDP text each party receives, with the relay's ports replaced by names, equals the text
  written down here (taken from rtpengine 10.5), so rtpvault's SDP is rtpengine's, line by line:
  c=, m= proto and codecs, a=rtpmap/fmtp, the direction attribute, a=rtcp, a=ptime, o= ids;
* RTP played by the caller (sipp's g711a.pcap) and echoed by the callee crosses the relay on all
  four legs, counted by tshark on loopback;
* once the dialog has ended the relay has no call left: ng `list` is empty, `query` does not know
  the call-id, and no UDP socket is bound in the relay's port range.

The relays run with --delete-delay=0, so that a deleted call is gone at once (rtpengine's default
keeps it for 30 s).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .rig import RELAY_KINDS, SipRig
from .sipcall import RELAY_ADDRESS, CallResult, CallSpec
from .sipmsg import Sdp, SipMessage
from .test_control_plane import assert_points_at_relay

pytestmark = pytest.mark.integration

RELAY_OPTIONS = {"extra": ["--delete-delay=0"]}
MEDIA_PACKETS = 25  # packets of g711a.pcap the caller plays in each media phase
GONE_TIMEOUT = 10.0  # a bound on waiting for the relay to drop a call, not a measured threshold


# --- what each party received ---------------------------------------------------------------


def _cseq(m: SipMessage) -> tuple[int, str]:
    number, method = m.header("CSeq").split()
    return int(number), method


def sdps_received(messages: list[SipMessage], call_id: str) -> dict[str, Sdp]:
    """SDP bodies a party received in one call, keyed "<status or method> <cseq>", in order.

    Retransmissions (same key) are dropped; e.g. {"183 1": ..., "200 1": ..., "200 2": ...}.
    """
    out: dict[str, Sdp] = {}
    for m in messages:
        if not m.received or m.call_id != call_id or m.sdp is None:
            continue
        number, _method = _cseq(m)
        what = m.start_line.split()[0] if m.is_request else str(m.status)
        out.setdefault(f"{what} {number}", m.sdp)
    return out


def port_names(
    rig: SipRig, result: CallResult, callee_leg: int, caller_leg: int | None
) -> dict[int, str]:
    """Names for the ports that may appear in the relay's SDP of one call.

    `callee_leg` is the relay port in the offer the callee got, `caller_leg` the one in the
    answer the caller got (None: no answer); RTCP is the next port up.
    """
    names = {callee_leg: "{callee-leg}", callee_leg + 1: "{callee-leg+1}"}
    if caller_leg is not None:
        names |= {caller_leg: "{caller-leg}", caller_leg + 1: "{caller-leg+1}"}
    names |= {result.uac_media[1]: "{uac-media}", result.uas_media[1]: "{uas-media}"}
    for port in range(rig.relay.port_min, rig.relay.port_max + 1):
        names.setdefault(port, "{other-relay-port}")
    return names


def normalised(sdp: Sdp, names: dict[int, str]) -> str:
    """The SDP text with the m= and a=rtcp: ports replaced by their names."""
    lines = []
    for raw in sdp.text.strip().splitlines():
        line = raw.strip()
        if line.startswith("m="):
            kind, port, rest = line.split(" ", 2)
            line = f"{kind} {names.get(int(port), port)} {rest}"
        elif line.startswith("a=rtcp:"):
            port, *rest = line[len("a=rtcp:") :].split(" ", 1)
            line = " ".join([f"a=rtcp:{names.get(int(port), port)}", *rest])
        lines.append(line)
    return "\n".join(lines)


def expected_sdp(
    origin: str,
    port: str,
    formats: str,
    codec_lines: str,
    *,
    connection: str = RELAY_ADDRESS,
    direction: str = "sendrecv",
) -> str:
    """The SDP rtpengine 10.5 writes with trust-address replace-origin
    replace-session-connection: the party's lines, the direction attribute, then a=rtcp and
    a=ptime moved after it."""
    return "\n".join(
        [
            "v=0",
            f"o={origin} IN IP4 {RELAY_ADDRESS}",
            "s=-",
            f"c=IN IP4 {connection}",
            "t=0 0",
            f"m=audio {{{port}}} RTP/AVP {formats}",
            *codec_lines.split("|"),
            f"a={direction}",
            f"a=rtcp:{{{port}+1}}",
            "a=ptime:20",
        ]
    )


# the codecs of scenarios/uac.xml, uac_hold.xml and uas*.xml
CALLER_CODECS = "a=rtpmap:8 PCMA/8000|a=rtpmap:0 PCMU/8000|a=rtpmap:101 telephone-event/8000|" + (
    "a=fmtp:101 0-15"
)
CALLEE_CODECS = "a=rtpmap:8 PCMA/8000|a=rtpmap:101 telephone-event/8000|a=fmtp:101 0-15"
CALLER_ORIGIN = "alice 53655765 {version}"
CALLEE_ORIGIN = "bob 8765 {version}"


def caller_offer(version: int = 2353687637, **kwargs: Any) -> str:
    origin = CALLER_ORIGIN.format(version=version)
    return expected_sdp(origin, "callee-leg", "8 0 101", CALLER_CODECS, **kwargs)


def callee_answer(version: int = 4321, **kwargs: Any) -> str:
    origin = CALLEE_ORIGIN.format(version=version)
    return expected_sdp(origin, "caller-leg", "8 101", CALLEE_CODECS, **kwargs)


def assert_sdp(got: Sdp, names: dict[int, str], expected: str, what: str) -> None:
    text = normalised(got, names)
    assert text == expected, f"{what}:\n--- got\n{text}\n--- expected\n{expected}"


# --- the relay's state ------------------------------------------------------------------------


def ng(rig: SipRig, request: dict[str, Any]) -> dict[str, Any]:
    client = rig.relay.client()
    try:
        reply: dict[str, Any] = client.call(request)
    finally:
        client.close()
    return reply


def _process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (/proc/<pid>/task/<tid>/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for children in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in children.read_text().split()]
            except OSError:
                pass
    return out


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for p in _process_tree(pid):
        try:
            fds = list(Path(f"/proc/{p}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    return inodes


def bound_relay_ports(rig: SipRig) -> list[int]:
    """Ports of the relay's range that the relay process has a UDP socket bound to.

    Only the relay's own sockets count (/proc/<pid>/fd against /proc/net/udp's inodes): the
    range lies among the ephemeral ports, where other programs' sockets may turn up.
    """
    inodes = _socket_inodes(rig.relay.proc.pid)
    # The ng port is picked among the ephemeral ports too and may land inside the media range.
    control = {rig.relay.ng_port, rig.relay.tcp_ng_port}
    ports = []
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                port = int(fields[1].rsplit(":", 1)[1], 16)
                if (
                    fields[9] in inodes
                    and rig.relay.port_min <= port <= rig.relay.port_max
                    and port not in control
                ):
                    ports.append(port)
    return sorted(ports)


def wait_until(condition: Callable[[], Any], what: str, timeout: float = GONE_TIMEOUT) -> Any:
    """Poll `condition` until it returns something true; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def assert_no_call_left(rig: SipRig, call_ids: list[str]) -> None:
    """ng `list` is empty, `query` knows none of `call_ids`, no port of the range is bound."""
    try:
        wait_until(lambda: ng(rig, {"command": "list"}).get("calls") == [], "an empty list")
        wait_until(lambda: not bound_relay_ports(rig), "the relay's ports to be released")
    except AssertionError as e:
        listing = ng(rig, {"command": "list"})
        raise AssertionError(f"{e}: {listing} {bound_relay_ports(rig)}\n{rig.logs()}") from None
    for call_id in call_ids:
        reply = ng(rig, {"command": "query", "call-id": call_id})
        assert reply.get("result") == "error", reply
        assert reply.get("error-reason") == "Unknown call-id", reply


def assert_media_both_ways(legs: Any, packets: int) -> None:
    """Every packet the caller played crossed the relay to the callee and its echo came back."""
    assert legs.caller_to_relay == packets, legs
    assert legs.relay_to_callee == packets, legs
    assert legs.callee_to_relay == packets, legs
    assert legs.relay_to_caller == packets, legs


# --- the flows --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", RELAY_KINDS)
def test_early_media_183_then_200(sip_rig: Callable[..., SipRig], kind: str) -> None:
    """183 Session Progress with SDP, then 200 OK with the same SDP: rtpengine_answer runs twice
    and both answers the caller gets are the same, on the same relay port."""
    rig = sip_rig(kind, relay_options=RELAY_OPTIONS)
    before = rig.commands()
    spec = CallSpec(callee="early", media=True, media_packets=MEDIA_PACKETS)
    result, legs = rig.call_with_capture(spec)
    assert result.ok, result.describe() + rig.logs()
    call_id = result.call_ids[0]

    caller_got = sdps_received(result.uac_messages, call_id)
    callee_got = sdps_received(result.uas_messages, call_id)
    assert list(caller_got) == ["183 1", "200 1"], caller_got
    assert list(callee_got) == ["INVITE 1"], callee_got
    offer, early, final = callee_got["INVITE 1"], caller_got["183 1"], caller_got["200 1"]
    assert_points_at_relay(offer, rig, result.uac_media[1])
    assert_points_at_relay(early, rig, result.uas_media[1])
    assert_points_at_relay(final, rig, result.uas_media[1])
    assert offer.audio.port != early.audio.port
    assert final.text == early.text

    names = port_names(rig, result, offer.audio.port, early.audio.port)
    assert_sdp(offer, names, caller_offer(), "offer the callee got")
    assert_sdp(early, names, callee_answer(), "183 the caller got")
    assert_sdp(final, names, callee_answer(), "200 the caller got")

    offers, answers, deletes = rig.sent_since(before)
    assert (offers, answers) == (1, 2) and deletes >= 1, rig.logs()
    assert_media_both_ways(legs, MEDIA_PACKETS)
    assert_no_call_left(rig, [call_id])


@pytest.mark.parametrize("kind", RELAY_KINDS)
def test_hold_and_resume_reinvites(sip_rig: Callable[..., SipRig], kind: str) -> None:
    """re-INVITEs through the dialog: a=sendonly (callee answers a=recvonly), c=0.0.0.0 without
    a direction (callee answers a=sendrecv), a=sendrecv again; then BYE.

    The relay keeps both legs' ports for the whole dialog; rtpengine passes the direction
    attributes through and keeps c=0.0.0.0 in the offer (adding a=sendonly). Media is played
    while on hold (a=sendonly) and after resuming; rtpengine does not enforce the direction, so
    the callee's echo reaches the caller in both phases.
    """
    rig = sip_rig(kind, relay_options=RELAY_OPTIONS)
    before = rig.commands()
    spec = CallSpec(callee="hold", media=True, media_packets=MEDIA_PACKETS)
    result, legs = rig.call_with_capture(spec)
    assert result.ok, result.describe() + rig.logs()
    call_id = result.call_ids[0]

    caller_got = sdps_received(result.uac_messages, call_id)
    callee_got = sdps_received(result.uas_messages, call_id)
    assert list(callee_got) == ["INVITE 1", "INVITE 2", "INVITE 3", "INVITE 4"], callee_got
    assert list(caller_got) == ["200 1", "200 2", "200 3", "200 4"], caller_got
    first_offer, first_answer = callee_got["INVITE 1"], caller_got["200 1"]
    names = port_names(rig, result, first_offer.audio.port, first_answer.audio.port)
    for n in (1, 2, 4):
        assert_points_at_relay(callee_got[f"INVITE {n}"], rig, result.uac_media[1])
    for n in (1, 2, 3, 4):
        assert_points_at_relay(caller_got[f"200 {n}"], rig, result.uas_media[1])
    # the c=0.0.0.0 hold: the address stays 0.0.0.0, the port is still the relay's
    held = callee_got["INVITE 3"]
    assert held.session_connection == "0.0.0.0", held.text
    assert held.audio.port == first_offer.audio.port, held.text

    expected_offers = {
        "INVITE 1": caller_offer(),
        "INVITE 2": caller_offer(2353687638, direction="sendonly"),
        "INVITE 3": caller_offer(2353687639, connection="0.0.0.0", direction="sendonly"),
        "INVITE 4": caller_offer(2353687640),
    }
    expected_answers = {
        "200 1": callee_answer(),
        "200 2": callee_answer(4322, direction="recvonly"),
        "200 3": callee_answer(4323),
        "200 4": callee_answer(4324),
    }
    for key, expected in expected_offers.items():
        assert_sdp(callee_got[key], names, expected, f"{key} the callee got")
    for key, expected in expected_answers.items():
        assert_sdp(caller_got[key], names, expected, f"{key} the caller got")

    offers, answers, deletes = rig.sent_since(before)
    assert (offers, answers) == (4, 4) and deletes >= 1, rig.logs()
    assert_media_both_ways(legs, 2 * MEDIA_PACKETS)
    assert_no_call_left(rig, [call_id])


@pytest.mark.parametrize("kind", RELAY_KINDS)
def test_callee_puts_call_on_hold(sip_rig: Callable[..., SipRig], kind: str) -> None:
    """The callee sends the re-INVITEs (From and To swapped, so Kamailio's offer and answer carry
    the callee's tag as from-tag): a=inactive, answered a=inactive, then a=sendrecv; media plays
    after that, then the caller hangs up. The relay reuses each leg's port in both directions."""
    rig = sip_rig(kind, relay_options=RELAY_OPTIONS)
    before = rig.commands()
    spec = CallSpec(callee="callee-hold", media=True, media_packets=MEDIA_PACKETS)
    result, legs = rig.call_with_capture(spec)
    assert result.ok, result.describe() + rig.logs()
    call_id = result.call_ids[0]

    caller_got = sdps_received(result.uac_messages, call_id)
    callee_got = sdps_received(result.uas_messages, call_id)
    assert list(caller_got) == ["200 1", "INVITE 1", "INVITE 2"], caller_got
    assert list(callee_got) == ["INVITE 1", "200 1", "200 2"], callee_got
    for sdp in caller_got.values():
        assert_points_at_relay(sdp, rig, result.uas_media[1])
    for sdp in callee_got.values():
        assert_points_at_relay(sdp, rig, result.uac_media[1])
    callee_leg, caller_leg = callee_got["INVITE 1"].audio.port, caller_got["200 1"].audio.port
    names = port_names(rig, result, callee_leg, caller_leg)

    def from_caller(version: int, direction: str) -> str:
        origin = CALLER_ORIGIN.format(version=version)
        return expected_sdp(origin, "callee-leg", "8 101", CALLEE_CODECS, direction=direction)

    expected_for_caller = {
        "200 1": callee_answer(),
        "INVITE 1": callee_answer(4322, direction="inactive"),
        "INVITE 2": callee_answer(4323),
    }
    expected_for_callee = {
        "INVITE 1": caller_offer(),
        "200 1": from_caller(2353687638, "inactive"),
        "200 2": from_caller(2353687639, "sendrecv"),
    }
    for key, expected in expected_for_caller.items():
        assert_sdp(caller_got[key], names, expected, f"{key} the caller got")
    for key, expected in expected_for_callee.items():
        assert_sdp(callee_got[key], names, expected, f"{key} the callee got")

    offers, answers, deletes = rig.sent_since(before)
    assert (offers, answers) == (3, 3) and deletes >= 1, rig.logs()
    assert_media_both_ways(legs, MEDIA_PACKETS)
    assert_no_call_left(rig, [call_id])


@pytest.mark.parametrize("kind", RELAY_KINDS)
def test_cancel_while_ringing_leaves_no_call(sip_rig: Callable[..., SipRig], kind: str) -> None:
    """The caller cancels after 180 Ringing: 200 for the CANCEL, 487 for the INVITE. Kamailio
    deletes the call on the CANCEL (the failure route skips cancelled transactions); the relay
    must have nothing left."""
    rig = sip_rig(kind, relay_options=RELAY_OPTIONS)
    before = rig.commands()
    result = rig.call(CallSpec(callee="cancel"))
    assert result.ok, result.describe() + rig.logs()
    call_id = result.call_ids[0]
    responses = {(m.status, m.method) for m in result.uac_messages if m.received and m.status}
    assert (200, "CANCEL") in responses and (487, "INVITE") in responses, responses
    assert (200, "INVITE") not in responses, responses

    callee_got = sdps_received(result.uas_messages, call_id)
    assert list(callee_got) == ["INVITE 1"], callee_got
    assert sdps_received(result.uac_messages, call_id) == {}
    offer = callee_got["INVITE 1"]
    assert_points_at_relay(offer, rig, result.uac_media[1])
    names = port_names(rig, result, offer.audio.port, None)
    assert_sdp(offer, names, caller_offer(), "offer the callee got")

    offers, answers, deletes = rig.sent_since(before)
    assert (offers, answers) == (1, 0) and deletes >= 1, rig.logs()
    assert_no_call_left(rig, [call_id])


@pytest.mark.parametrize("kind", RELAY_KINDS)
def test_cancel_with_default_delete_delay(sip_rig: Callable[..., SipRig], kind: str) -> None:
    """With the default --delete-delay (30 s) a deleted call stays listed and queryable until
    the delay passes: rtpengine 10.5 does so, and so must rtpvault (this is why the other tests
    here use --delete-delay=0)."""
    rig = sip_rig(kind)
    before = rig.commands()
    result = rig.call(CallSpec(callee="cancel"))
    assert result.ok, result.describe() + rig.logs()
    call_id = result.call_ids[0]
    after = rig.commands()
    assert after["delete"] - before["delete"] >= 1, (before, after, rig.logs())
    assert ng(rig, {"command": "list"}).get("calls") == [call_id]
    reply = ng(rig, {"command": "query", "call-id": call_id})
    assert reply.get("result") == "ok", reply
    stats = ng(rig, {"command": "statistics"})["statistics"]
    assert stats["currentstatistics"]["sessionsown"] == 1, stats["currentstatistics"]
    assert stats["totalstatistics"]["managedsessions"] == 0, stats["totalstatistics"]
    # both legs' RTP and RTCP ports are still held (this also shows bound_relay_ports works)
    assert len(bound_relay_ports(rig)) == 4, bound_relay_ports(rig)


@pytest.mark.parametrize("kind", RELAY_KINDS)
def test_callee_answers_fewer_codecs(sip_rig: Callable[..., SipRig], kind: str) -> None:
    """Five codecs offered (PCMU, PCMA, G722, G729, telephone-event), PCMA alone answered: the
    callee gets all five, the caller gets PCMA alone, and PCMA media flows both ways."""
    rig = sip_rig(kind, relay_options=RELAY_OPTIONS)
    spec = CallSpec(callee="one-codec", media=True, media_packets=MEDIA_PACKETS)
    result, legs = rig.call_with_capture(spec)
    assert result.ok, result.describe() + rig.logs()
    call_id = result.call_ids[0]

    caller_got = sdps_received(result.uac_messages, call_id)
    callee_got = sdps_received(result.uas_messages, call_id)
    assert list(caller_got) == ["200 1"] and list(callee_got) == ["INVITE 1"]
    offer, answer = callee_got["INVITE 1"], caller_got["200 1"]
    assert_points_at_relay(offer, rig, result.uac_media[1])
    assert_points_at_relay(answer, rig, result.uas_media[1])
    assert offer.audio.formats == ("0", "8", "9", "18", "101")
    assert answer.audio.formats == ("8",)

    names = port_names(rig, result, offer.audio.port, answer.audio.port)
    five = (
        "a=rtpmap:0 PCMU/8000|a=rtpmap:8 PCMA/8000|a=rtpmap:9 G722/8000|a=rtpmap:18 G729/8000|"
        "a=fmtp:18 annexb=no|a=rtpmap:101 telephone-event/8000|a=fmtp:101 0-15"
    )
    expected_offer = expected_sdp(
        CALLER_ORIGIN.format(version=2353687637), "callee-leg", "0 8 9 18 101", five
    )
    expected_answer = expected_sdp(
        CALLEE_ORIGIN.format(version=4321), "caller-leg", "8", "a=rtpmap:8 PCMA/8000"
    )
    assert_sdp(offer, names, expected_offer, "offer the callee got")
    assert_sdp(answer, names, expected_answer, "answer the caller got")
    assert_media_both_ways(legs, MEDIA_PACKETS)
    assert_no_call_left(rig, [call_id])


LOAD_CALLS = 20
LOAD_PACKETS = 10


@pytest.mark.parametrize("kind", RELAY_KINDS)
def test_twenty_calls_leave_nothing_behind(sip_rig: Callable[..., SipRig], kind: str) -> None:
    """20 calls from one sipp run (-m 20, 10 new calls a second, overlapping), each with a little
    media: every call is anchored on the relay, its media crosses the relay, and afterwards the
    relay has no call, no session and no bound port left."""
    rig = sip_rig(kind, relay_options={**RELAY_OPTIONS, "ports": 200})
    before = rig.commands()
    stats_before = ng(rig, {"command": "statistics"})["statistics"]
    spec = CallSpec(calls=LOAD_CALLS, rate=10, media=True, media_packets=LOAD_PACKETS)
    result, legs = rig.call_with_capture(spec)
    assert result.ok, result.describe() + rig.logs()
    assert len(result.call_ids) == LOAD_CALLS
    for call_id in result.call_ids:
        offer = result.offer_seen_by_callee(call_id)
        answer = result.answer_seen_by_caller(call_id)
        assert_points_at_relay(offer, rig, result.uac_media[1])
        assert_points_at_relay(answer, rig, result.uas_media[1])
        names = port_names(rig, result, offer.audio.port, answer.audio.port)
        assert_sdp(offer, names, caller_offer(), f"offer the callee got in {call_id}")
        assert_sdp(answer, names, callee_answer(), f"answer the caller got in {call_id}")
    assert_media_both_ways(legs, LOAD_CALLS * LOAD_PACKETS)

    after = rig.commands()
    for command in ("offer", "answer", "delete"):
        assert after[command] - before[command] >= LOAD_CALLS, (command, before, after)
    assert_no_call_left(rig, result.call_ids)
    stats = ng(rig, {"command": "statistics"})["statistics"]
    current = stats["currentstatistics"]
    assert current["sessionsown"] == 0 and current["sessionstotal"] == 0, current
    managed = int(stats["totalstatistics"]["managedsessions"]) - int(
        stats_before["totalstatistics"]["managedsessions"]
    )
    assert managed == LOAD_CALLS, (stats_before["totalstatistics"], stats["totalstatistics"])
