"""The normalisation used by the differential suite: pure, so tested without any relay."""

from __future__ import annotations

from typing import Any

import pytest

from .harness import Expander, Scenario, decode_body, encode, load_sdps, matches
from .normalise import ScenarioState, normalise_reply, normalise_sdp, sdp_lines

RUN = "abcd1234"


def state(scenario: int = 3) -> ScenarioState:
    return ScenarioState(30000, 30499, scenario, RUN)


def test_ports_numbered_by_first_appearance_and_rtcp_pairs() -> None:
    st = state()
    sdp = "m=audio 30010 RTP/AVP 0\r\na=rtcp:30011\r\nm=video 30020 RTP/AVP 96\r\na=rtcp:30021\r\n"
    assert normalise_sdp(sdp, st, frozenset()) == [
        "m=audio {P1} RTP/AVP 0\r\n",
        "a=rtcp:{P1+1}\r\n",
        "m=video {P2} RTP/AVP 96\r\n",
        "a=rtcp:{P2+1}\r\n",
    ]
    # the same port later keeps its name; a new one gets the next
    assert normalise_sdp("m=audio 30010 RTP/AVP 0\n", st, frozenset()) == [
        "m=audio {P1} RTP/AVP 0\n"
    ]
    assert normalise_sdp("m=audio 30030 RTP/AVP 0\n", st, frozenset()) == [
        "m=audio {P3} RTP/AVP 0\n"
    ]


def test_odd_single_port_and_out_of_range_ports() -> None:
    st = state()
    out = normalise_sdp(
        "m=audio 30013 RTP/AVP 0\r\na=rtcp:30013\r\nm=video 0 RTP/AVP 96\r\n", st, frozenset()
    )
    assert out == ["m=audio {P1} RTP/AVP 0\r\n", "a=rtcp:{P1}\r\n", "m=video 0 RTP/AVP 96\r\n"]
    assert normalise_sdp("m=audio 16000/2 RTP/AVP 0", st, frozenset()) == [
        "m=audio 16000/2 RTP/AVP 0"
    ]
    assert normalise_sdp("m=audio 30040/2 RTP/AVP 0", st, frozenset()) == [
        "m=audio {P2}/2 RTP/AVP 0"
    ]


def test_line_terminators_are_kept() -> None:
    assert sdp_lines("v=0\r\no=x\ns=-") == ["v=0\r\n", "o=x\n", "s=-"]
    assert normalise_sdp("v=0\n\r\n", state(), frozenset()) == ["v=0\n", "\r\n"]


def test_random_sdp_values_replaced() -> None:
    st = state()
    sdp = (
        "a=rtpengine:a7a57032525b\r\n"
        "a=rtcp:30001 IN IP4 203.0.113.1\r\n"
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:KEPTKEY|1:32\r\n"
        "a=crypto:2 AEAD_AES_128_GCM inline:F2jsm9khqnkBfbxZK\r\n"
        "a=fingerprint:sha-256 52:85:24\r\n"
        "a=ice-ufrag:n11CxhpZ\r\n"
        "a=ice-pwd:h2S64SmlkLrqWl1J6wmpMCGFpd\r\n"
        "a=candidate:f6rQTJ9X 1 UDP 2130706431 203.0.113.1 30000 typ host\r\n"
        "a=candidate:f6rQTJ9X 2 UDP 2130706430 203.0.113.1 30001 typ host\r\n"
        "a=candidate:zz 1 UDP 1 203.0.113.1 30100 typ srflx raddr 1.2.3.4 rport 30000\r\n"
    )
    assert normalise_sdp(sdp, st, frozenset(), request_text="inline:KEPTKEY|2^20|1:32") == [
        "a=rtpengine:{rtpengine-id}\r\n",
        "a=rtcp:{P1} IN IP4 203.0.113.1\r\n",
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:KEPTKEY|1:32\r\n",
        "a=crypto:2 AEAD_AES_128_GCM inline:{key1}\r\n",
        "a=fingerprint:sha-256 {fingerprint1}\r\n",
        "a=ice-ufrag:{ufrag1}\r\n",
        "a=ice-pwd:{pwd1}\r\n",
        "a=candidate:{F1} 1 UDP 2130706431 203.0.113.1 {P2} typ host\r\n",
        "a=candidate:{F1} 2 UDP 2130706430 203.0.113.1 {P1} typ host\r\n",
        "a=candidate:{F2} 1 UDP 1 203.0.113.1 {P3} typ srflx raddr 1.2.3.4 rport {P2}\r\n",
    ]


def test_random_values_numbered_across_steps_padding_kept() -> None:
    st = state()
    first = normalise_sdp("a=crypto:1 X inline:AAAA\r\na=ice-ufrag:u1\r\n", st, frozenset())
    again = normalise_sdp(
        "a=crypto:1 X inline:AAAA==\r\na=crypto:2 X inline:BBBB|2^31\r\na=ice-ufrag:u2\r\n",
        st, frozenset(),
    )
    assert first == ["a=crypto:1 X inline:{key1}\r\n", "a=ice-ufrag:{ufrag1}\r\n"]
    assert again == [
        "a=crypto:1 X inline:{key1}==\r\n",
        "a=crypto:2 X inline:{key2}|2^31\r\n",
        "a=ice-ufrag:{ufrag2}\r\n",
    ]


def test_o_version_only_on_request() -> None:
    line = "o=alice 100 12345678901234 IN IP4 192.0.2.10\r\n"
    assert normalise_sdp(line, state(), frozenset()) == [line]
    assert normalise_sdp(line, state(), frozenset({"o-version"})) == [
        "o=alice 100 {o-version} IN IP4 192.0.2.10\r\n"
    ]


def test_query_stats_clock_and_ports_key_order_kept() -> None:
    reply = {
        "created": 1795581206,
        "created_us": 346522,
        "last signal": 1795581206,
        "SSRC": {},
        "tags": {
            "b": {
                "tag": "b",
                "medias": [
                    {
                        "streams": [
                            {"local port": 30046, "last packet": 1, "endpoint": {"port": 30046}}
                        ]
                    }
                ],
            },
            "a": {"tag": "a", "created": 5},
        },
        "result": "ok",
    }
    out = normalise_reply(reply, state())
    assert list(out) == list(reply)
    assert list(out["tags"]) == ["b", "a"]
    stream = out["tags"]["b"]["medias"][0]["streams"][0]
    # a client endpoint keeps its number even inside the range: only `local port` is ours
    assert stream == {"local port": "{P1}", "last packet": "{clock}", "endpoint": {"port": 30046}}
    assert out["created"] == out["created_us"] == out["tags"]["a"]["created"] == "{clock}"


def test_run_identifiers_mapped_back() -> None:
    st = state(scenario=3)
    reply = {"calls": [f"call2.3.{RUN}", f"call.3.{RUN}", f"x.4.{RUN}", "foreign"], "result": "ok"}
    assert normalise_reply(reply, st)["calls"] == ["call", "call2", "foreign", "{other}"]
    assert normalise_reply(reply, st, frozenset({"list-anonymous"}))["calls"] == ["{call}"] * 4


def test_statistics_structure_and_counters() -> None:
    stats = {
        "currentstatistics": {"sessionsown": 1, "packetrate": 0},
        "totalstatistics": {"uptime": "117", "managedsessions": 0, "avgcallduration": "0.000000"},
        "controlstatistics": {"proxies": [{"proxy": "127.0.0.1", "pingcount": 3, "offercount": 1}]},
        "interfaces": [
            {
                "name": "lo",
                "ports": {"min": 30000, "max": 30499, "used": 4, "used_pct": "0.80", "last": 30100},
            }
        ],
    }
    plain = normalise_reply({"statistics": stats, "result": "ok"}, state())["statistics"]
    assert plain["currentstatistics"] == {"sessionsown": "{int}", "packetrate": "{int}"}
    assert plain["totalstatistics"]["uptime"] == "{str}"
    assert plain["controlstatistics"]["proxies"][0]["proxy"] == "127.0.0.1"
    assert plain["interfaces"][0]["name"] == "lo"
    counted = normalise_reply({"statistics": stats}, state(), frozenset({"stats-counters"}))
    c = counted["statistics"]
    assert c["currentstatistics"] == {"sessionsown": 1, "packetrate": "{int}"}
    assert c["totalstatistics"] == {
        "uptime": "{str}",
        "managedsessions": 0,
        "avgcallduration": "{str}",
    }
    assert c["controlstatistics"]["proxies"][0] == {
        "proxy": "127.0.0.1",
        "pingcount": "{int}",
        "offercount": 1,
    }
    assert c["interfaces"][0]["ports"] == {
        "min": "{port-min}",
        "max": "{port-max}",
        "used": 4,
        "used_pct": "0.80",
        "last": "{int}",
    }


def test_ice_address_ports_numbered_per_address() -> None:
    """rtpengine's independent per-address ports and rtpvault's equal ones normalise alike."""
    opts = frozenset({"ice-address-ports"})

    def lines(p1: int, p2: int, p3: int) -> str:
        return "".join(f"a=candidate:f{i} {c} UDP 1 {a} {p + c - 1} typ host\r\n"
                       for c in (1, 2) for i, (a, p) in enumerate(
                           (("203.0.113.1", p1), ("203.0.113.2", p2), ("::1", p3))))  # fmt: skip

    engine = normalise_sdp("c=IN IP4 203.0.113.1\r\n" + lines(30010, 30022, 30040), state(), opts)
    vault = normalise_sdp("c=IN IP4 203.0.113.1\r\n" + lines(30010, 30010, 30010), state(), opts)
    assert engine == vault
    assert vault[1:4] == [
        "a=candidate:{F1} 1 UDP 1 203.0.113.1 {P1} typ host\r\n",
        "a=candidate:{F2} 1 UDP 1 203.0.113.2 {203.0.113.2:P1} typ host\r\n",
        "a=candidate:{F3} 1 UDP 1 ::1 {::1:P1} typ host\r\n",
    ]
    assert vault[5] == "a=candidate:{F2} 2 UDP 1 203.0.113.2 {203.0.113.2:P1+1} typ host\r\n"
    # without the option a shared port number shows as the same placeholder
    assert normalise_sdp(lines(30010, 30010, 30010), state(), frozenset())[1].endswith(
        " {P1} typ host\r\n")  # fmt: skip


def test_unknown_option_rejected() -> None:
    with pytest.raises(ValueError, match="normalisation options"):
        normalise_reply({}, state(), frozenset({"nope"}))


def test_two_daemons_with_different_ranges_normalise_equal() -> None:
    a = ScenarioState(30000, 30499, 1, RUN)
    b = ScenarioState(50000, 50499, 1, RUN)
    sdp_a = "m=audio 30100 RTP/AVP 0\r\na=rtcp:30101\r\n"
    sdp_b = "m=audio 50442 RTP/AVP 0\r\na=rtcp:50443\r\n"
    assert normalise_sdp(sdp_a, a, frozenset()) == normalise_sdp(sdp_b, b, frozenset())
    # but "reused the same port" and "allocated a new one" stay different
    assert normalise_sdp("m=audio 30100 x\n", a, frozenset()) != normalise_sdp(
        "m=audio 50446 x\n", b, frozenset()
    )


def test_bencode_roundtrip_keeps_order() -> None:
    body = encode({"sdp": "v=0\r\n", "result": "ok", "n": 5, "l": ["a", {"z": 1, "a": 2}]})
    assert body == b"d3:sdp5:v=0\r\n6:result2:ok1:ni5e1:ll1:ad1:zi1e1:ai2eeee"
    fmt, value = decode_body(body)
    assert fmt == "bencode"
    assert list(value) == ["sdp", "result", "n", "l"]
    assert list(value["l"][1]) == ["z", "a"]
    assert decode_body(b'{"b":1,"a":"x"}') == ("json", {"b": 1, "a": "x"})
    assert decode_body(b"garbage")[0] == "undecodable"


def test_matches_wildcard_and_types() -> None:
    assert matches(
        {"result": "error", "error-reason": "{*}"}, {"result": "error", "error-reason": "whatever"}
    )
    assert not matches({"a": 1, "b": 2}, {"b": 2, "a": 1})  # key order matters
    assert not matches({"n": 1}, {"n": "1"})


def test_expander_identifiers_and_sdps() -> None:
    sc = Scenario("x", "t", 7, (), None, None, "")
    ex = Expander(sc, RUN, load_sdps())
    req: Any = ex.request(
        {
            "offer": {
                "call-id": "${c}",
                "flags": ["a"],
                "from-tag": None,
                "sdp": {"@sdp": "alice1", "eol": "\n", "sub": [["100 5", "100 0"]]},
            }
        }
    )
    assert list(req) == ["command", "call-id", "sdp", "flags"]
    assert req["call-id"] == f"c.7.{RUN}"
    assert req["sdp"].startswith("v=0\no=alice 100 0 IN IP4")
    assert ex.request({"req": {"sdp": ["v=0", "s=-"]}}) == {"sdp": "v=0\r\ns=-\r\n"}


def test_client_ports_named_in_endpoints() -> None:
    st = state()
    st.clients[30200] = "{port:a}"
    reply = {
        "tags": {"x": {"endpoint": {"port": 30200}, "rtcp": {"port": 30201}, "o": {"port": 5}}}
    }
    out = normalise_reply(reply, st)["tags"]["x"]
    assert out == {
        "endpoint": {"port": "{port:a}"},
        "rtcp": {"port": "{port:a+1}"},
        "o": {"port": 5},
    }
    st.port(30010)
    assert st.port_number("{P1}") == 30010
    assert st.port_number("{P9}") is None


def test_rtp_packet_header() -> None:
    from .media import rtp_packet

    pkt = rtp_packet(7, 320, 0x11111111)
    assert pkt[:12] == bytes.fromhex("80000007000001401111111" + "1")
    assert len(pkt) == 172


def test_transient_loop_check_flag_dropped_other_flags_kept() -> None:
    media = {"flags": ["initialized", "send", "recv", "ICE controlling", "loop check"]}
    out = normalise_reply({"tags": {"ft": {"medias": [media]}}, "result": "ok"}, state())
    assert out["tags"]["ft"]["medias"][0]["flags"] == [
        "initialized", "send", "recv", "ICE controlling"
    ]


def test_sampled_media_gauges_compared_by_type_only() -> None:
    current = {"sessionsown": 1, "media_userspace": 2, "media_kernel": 0, "media_mixed": 0}
    counted = normalise_reply(
        {"statistics": {"currentstatistics": current}}, state(), frozenset({"stats-counters"})
    )
    assert counted["statistics"]["currentstatistics"] == {
        "sessionsown": 1,
        "media_userspace": "{int}",
        "media_kernel": "{int}",
        "media_mixed": "{int}",
    }
