"""Hypothesis laws for the SDP codec: parse never crashes, render(parse(x)) == x, rewrite total."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.sdp import MediaPlan, SdpError, SessionPlan, parse, render, rewrite

EOLS = st.sampled_from(["\r\n", "\n"])
ADDRESSES = st.sampled_from(["192.0.2.10", "0.0.0.0", "203.0.113.1"])
ATTRIBUTES = st.sampled_from(
    [
        "rtpmap:0 PCMU/8000",
        "rtpmap:96 opus/48000/2",
        "rtpmap:97 x",
        "fmtp:96 useinbandfec=1",
        "fmtp:x 1",
        "rtcp-fb:96 nack",
        "rtcp-fb:* ccm fir",
        "ptime:20",
        "ptime:0",
        "maxptime:40",
        "sendrecv",
        "sendonly",
        "recvonly",
        "inactive",
        "rtcp:49171",
        "rtcp:49171 IN IP4 1.2.3.4",
        "rtcp",
        "rtcp-mux",
        "mid:0",
        "mid",
        "end-of-candidates",
        "ice-ufrag:abcd",
        "candidate:1 1 UDP 1 1.2.3.4 5 typ host",
        "extmap:1 urn:x",
        "crypto:1 AES inline:x",
        "setup:actpass",
        "fingerprint:sha-256 AA",
        "group:BUNDLE 0",
        "X-foo:bar",
        "label:1",
        "rtpengine:abc",
    ]
)
OTHER = st.sampled_from(["i=info", "b=AS:64", "k=clear:x", "u=http://x", "e=a@b", "p=+1"])


@st.composite
def media_sections(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["audio", "video", "image"]))
    port = draw(st.sampled_from(["0", "49170", "49170/2", "1"]))
    if kind == "image":
        head = f"m=image {port} udptl t38"
    else:
        proto = draw(st.sampled_from(["RTP/AVP", "RTP/AVPF", "RTP/SAVP"]))
        fmts = draw(st.lists(st.sampled_from(["0", "8", "96", "97", "101", "127"]), max_size=4))
        head = f"m={kind} {port} {proto}" + "".join(f" {f}" for f in fmts)
    lines = [head]
    if draw(st.booleans()):
        lines.append(f"c=IN IP4 {draw(ADDRESSES)}")
    lines += [f"a={a}" for a in draw(st.lists(ATTRIBUTES, max_size=8))]
    lines += draw(st.lists(OTHER, max_size=2))
    return "".join(line + draw(EOLS) for line in lines)


@st.composite
def sdps(draw: st.DrawFn) -> str:
    session = [
        "v=0",
        f"o={draw(st.sampled_from(['alice', '-']))} 1 2 IN IP4 {draw(ADDRESSES)}",
        "s=-",
    ]
    if draw(st.booleans()):
        session.append(f"c=IN IP4 {draw(ADDRESSES)}")
    session.append("t=0 0")
    session += [f"a={a}" for a in draw(st.lists(ATTRIBUTES, max_size=4))]
    text = "".join(line + draw(EOLS) for line in session)
    text += "".join(draw(st.lists(media_sections(), max_size=3)))
    ending = draw(st.sampled_from(["", "", "\r\n", "\n", "x", "\r\ntrailing junk"]))
    # Without its last LF the body ends inside its last line; a glued-on "x" would then change
    # that line (`c=IN IP4 192.0.2.10x` is no SDP), so "x" only follows a complete line.
    if ending == "":
        text = text.rstrip("\r\n") if draw(st.booleans()) else text
    return text + ending


@st.composite
def plans(draw: st.DrawFn, count: int) -> SessionPlan:
    media = tuple(
        MediaPlan(
            port=draw(st.sampled_from([0, 30000, 30001])),
            address=draw(st.sampled_from(["203.0.113.1", "2001:db8::1"])),
            family=draw(st.sampled_from(["IP4", "IP6"])),
            rtcp_port=draw(st.sampled_from([None, 30001])),
            rtcp_mux=draw(st.booleans()),
            full_rtcp_attribute=draw(st.booleans()),
            protocol=draw(st.sampled_from([None, "RTP/AVP", "RTP/AVPF"])),
            formats=draw(
                st.one_of(st.none(), st.lists(st.sampled_from(["0", "96", "x"])).map(tuple))
            ),
            ptime=draw(st.sampled_from([None, 0, 20])),
            direction=draw(st.sampled_from([None, "sendrecv", "inactive"])),
            keep_zero_address=draw(st.booleans()),
            end_of_candidates=draw(st.booleans()),
            strip_extmap=draw(st.booleans()),
        )
        for _ in range(count)
    )
    return SessionPlan(
        address="203.0.113.1",
        media=media,
        replace_origin=draw(st.booleans()),
        replace_session_connection=draw(st.booleans()),
        origin_username=draw(st.sampled_from([None, "bob"])),
        origin_version=draw(st.sampled_from([None, "7"])),
        session_name=draw(st.sampled_from([None, "Talk"])),
        loop_protect_id=draw(st.sampled_from([None, "e31cf2fafd61"])),
    )


@settings(max_examples=500)
@given(st.text())
def test_arbitrary_text_parses_or_raises_sdp_error(text: str) -> None:
    try:
        desc = parse(text)
    except SdpError:
        return
    assert render(desc) == text


@settings(max_examples=300)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                ["v=0", "m=audio 1 RTP/AVP 0", "c=IN IP4 1.2.3.4", "o=a 1 1 IN IP4 1.2.3.4", "s=-"]
            ),
            ATTRIBUTES.map(lambda a: "a=" + a),
            st.text(max_size=12),
        ),
        max_size=12,
    ),
    EOLS,
)
def test_sdp_like_text_parses_or_raises_sdp_error(lines: list[str], eol: str) -> None:
    text = eol.join(lines)
    try:
        desc = parse(text)
    except SdpError:
        return
    assert render(desc) == text


@settings(max_examples=300)
@given(sdps())
def test_valid_sdp_round_trips(text: str) -> None:
    assert render(parse(text)) == text


@settings(max_examples=300)
@given(st.data())
def test_rewrite_is_total_for_matching_plans(data: st.DataObject) -> None:
    desc = parse(data.draw(sdps()))
    out = rewrite(desc, data.draw(plans(len(desc.media))))
    assert out.startswith("v=0")
    # Lines nobody touches come through unchanged and in order.
    kept = [line.text for line in desc.session_lines if line.value.startswith(("X-", "t="))]
    assert all(text in out for text in kept)


SDP_CHARS = st.text(alphabet="av=0 \r\n\tx", max_size=30)


@settings(max_examples=1000)
@given(SDP_CHARS)
def test_split_fast_path_agrees_with_rtpengines_line_loop(text: str) -> None:
    from relay.sdp.parse import _split_scan, split_lines

    def outcome(split: object) -> object:
        try:
            return split(text)  # type: ignore[operator]
        except SdpError as exc:
            return str(exc)

    assert outcome(split_lines) == outcome(_split_scan)


@settings(max_examples=1000)
@given(st.text(alphabet="ab1 \t", max_size=16))
def test_origin_split_agrees_with_the_token_walk(value: str) -> None:
    from relay.sdp.model import Origin
    from relay.sdp.parse import _State
    from relay.sdp.text import tokens

    found = tokens(value, 6)
    expected = None if found is None else Origin(*(value[a:b] for a, b in found[0]))
    state = _State()
    assert (state.origin if state._origin(value) is None else None) == expected
