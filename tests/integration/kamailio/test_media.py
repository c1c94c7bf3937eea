"""Media through the relay: the caller plays sipp's g711a.pcap, the callee echoes it (-rtp_echo).

tshark on `lo` counts packets on the four legs (caller → relay → callee → relay → caller).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .rig import ONE_WORKER, SipRig
from .sipcall import CallSpec

pytestmark = pytest.mark.integration

MEDIA_KINDS = ["rtpengine", "rtpvault", ONE_WORKER]


@pytest.mark.parametrize("kind", MEDIA_KINDS)
def test_media_flows_both_ways_through_relay(sip_rig: Callable[..., SipRig], kind: str) -> None:
    rig = sip_rig(kind)
    result, legs = rig.call_with_capture(CallSpec(media=True, media_packets=50))
    assert result.ok, result.describe() + rig.logs()
    assert result.media_packets_sent == 50
    # every packet the caller played reached the relay; the relay forwarded it to the callee,
    # whose echo came back through the relay to the caller
    assert legs.caller_to_relay == 50, legs
    assert legs.relay_to_callee == legs.caller_to_relay, legs
    assert legs.callee_to_relay == legs.relay_to_callee, legs
    assert legs.relay_to_caller == legs.callee_to_relay, legs
    assert legs.both_ways


@pytest.mark.parametrize("kind", MEDIA_KINDS)
def test_media_in_two_calls(sip_rig: Callable[..., SipRig], kind: str) -> None:
    rig = sip_rig(kind)
    result, legs = rig.call_with_capture(CallSpec(calls=2, media=True, media_packets=25))
    assert result.ok, result.describe() + rig.logs()
    assert legs.caller_to_relay == 50, legs
    assert legs.relay_to_caller == 50, legs
    assert legs.both_ways
