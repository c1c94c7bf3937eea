"""A real call, UAC → Kamailio → UAS, with Kamailio anchoring the media on the relay.

Each party must receive SDP that points at the relay, never at the other party: c= and o= are the
relay's advertised address (replace-session-connection, replace-origin), and the m= port is an
even port from the relay's range. The relay must have seen offer, answer and delete.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.tools import require

from .rig import ONE_WORKER, RELAY_KINDS, SipRig
from .sipcall import EXAMPLE_CFG, PARTY_ADDRESS, RELAY_ADDRESS, CallSpec
from .sipmsg import Sdp

pytestmark = pytest.mark.integration
KINDS = [*RELAY_KINDS, ONE_WORKER]


def assert_points_at_relay(sdp: Sdp, rig: SipRig, party_port: int) -> None:
    audio = sdp.audio
    assert sdp.origin_address == RELAY_ADDRESS, sdp.text
    assert sdp.session_connection == RELAY_ADDRESS, sdp.text
    assert sdp.connection_for(audio) == RELAY_ADDRESS, sdp.text
    assert rig.relay.port_min <= audio.port <= rig.relay.port_max, sdp.text
    assert audio.port % 2 == 0, sdp.text
    assert audio.port != party_port, sdp.text
    assert audio.rtcp_port in (None, audio.port + 1), sdp.text


@pytest.mark.parametrize("kind", KINDS)
def test_call_sdp_points_at_relay(sip_rig: Callable[..., SipRig], kind: str) -> None:
    rig = sip_rig(kind)
    before = rig.commands()
    result = rig.call(CallSpec(calls=1))
    assert result.ok, result.describe() + rig.logs()

    offer = result.offer_seen_by_callee()
    answer = result.answer_seen_by_caller()
    assert_points_at_relay(offer, rig, result.uac_media[1])
    assert_points_at_relay(answer, rig, result.uas_media[1])
    # the two legs get different relay ports
    assert offer.audio.port != answer.audio.port
    # codecs pass through untouched
    assert offer.audio.formats == ("8", "0", "101")
    assert answer.audio.formats == ("8", "101")

    after = rig.commands()
    for command in ("offer", "answer", "delete"):
        assert after[command] - before[command] >= 1, (command, before, after, rig.logs())


@pytest.mark.parametrize("kind", KINDS)
def test_several_calls_get_distinct_ports(sip_rig: Callable[..., SipRig], kind: str) -> None:
    rig = sip_rig(kind)
    before = rig.commands()
    result = rig.call(CallSpec(calls=3, rate=20))
    assert result.ok, result.describe() + rig.logs()
    assert len(result.call_ids) == 3
    ports = set()
    for call_id in result.call_ids:
        offer = result.offer_seen_by_callee(call_id)
        answer = result.answer_seen_by_caller(call_id)
        assert_points_at_relay(offer, rig, result.uac_media[1])
        assert_points_at_relay(answer, rig, result.uas_media[1])
        ports |= {offer.audio.port, answer.audio.port}
    assert len(ports) == 6
    after = rig.commands()
    for command in ("offer", "answer", "delete"):
        assert after[command] - before[command] >= 3, (command, before, after, rig.logs())


@pytest.mark.parametrize("kind", KINDS)
def test_recording_headers_reach_the_relay(sip_rig: Callable[..., SipRig], kind: str) -> None:
    """X-Record/X-Metadata become record-call=yes and metadata=... and are not forwarded."""
    rig = sip_rig(kind)
    result = rig.call(CallSpec(record=True, metadata="from:alice|to:bob"))
    assert result.ok, result.describe() + rig.logs()
    invite = result.invite_seen_by_callee()
    assert invite.header("X-Record") == "" and invite.header("X-Metadata") == ""
    log = rig.kamailio.log()
    assert "record-call=yes metadata=from:alice|to:bob" in log, log[-3000:]
    assert_points_at_relay(result.offer_seen_by_callee(), rig, result.uac_media[1])


@pytest.mark.parametrize("kind", KINDS)
def test_rejected_call_is_deleted(sip_rig: Callable[..., SipRig], kind: str) -> None:
    """A 486 from the callee: offer, no answer (no SDP), and failure_route sends delete."""
    rig = sip_rig(kind)
    before = rig.commands()
    result = rig.call(CallSpec(callee="busy"))
    assert result.ok, result.describe() + rig.logs()
    assert set(result.final_statuses_seen_by_caller()) == {486}
    assert_points_at_relay(result.offer_seen_by_callee(), rig, result.uac_media[1])
    after = rig.commands()
    assert after["offer"] - before["offer"] >= 1, (before, after)
    assert after["answer"] == before["answer"], (before, after)
    assert after["delete"] - before["delete"] >= 1, (before, after, rig.logs())


def test_example_config_is_valid(tmp_path: Path) -> None:
    """examples/kamailio.cfg, with its own defaults, passes Kamailio's syntax check."""
    kamailio = require("kamailio")
    (tmp_path / "run").mkdir()
    check = subprocess.run(
        [kamailio, "-c", "-f", str(EXAMPLE_CFG), "-Y", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "config file ok" in check.stdout + check.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_offer_flags_come_from_kamailio(sip_rig: Callable[..., SipRig], kind: str) -> None:
    """Without replace-origin the callee sees the caller's o= address; c= is still the relay's."""
    rig = sip_rig(kind, offer_flags="trust-address replace-session-connection")
    result = rig.call()
    assert result.ok, result.describe() + rig.logs()
    offer = result.offer_seen_by_callee()
    assert offer.origin_address == PARTY_ADDRESS, offer.text
    assert offer.connection_for(offer.audio) == RELAY_ADDRESS, offer.text
    assert_points_at_relay(result.answer_seen_by_caller(), rig, result.uas_media[1])
