"""relay.sdp.codec_store: rtpengine 10.5's codec lists (docs/spec/sdp.md §1.11a), pure.

Examples are the measured ones; hypothesis laws: building from any SDP format list and codec
names, or from any flag codec name, never raises, and the list operations keep numbers unique.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.sdp import codec_store as cs

NAMES = {"0": "PCMU/8000", "8": "PCMA/8000", "101": "telephone-event/8000"}


def numbers(store: cs.Store) -> list[int]:
    return [p.number for p in store.pts]


def offerer() -> cs.Store:
    return cs.from_sdp(("0", "101"), NAMES, {"101": "0-16"})


def test_transcode_inserts_before_telephone_event_and_adds_one_per_clock() -> None:
    sdp = offerer()
    b = cs.populate(cs.Store(), sdp)
    cs.transcode(b, ["opus"], sdp)
    cs.tracker_update(b)
    assert numbers(b) == [0, 96, 97, 101]
    te48 = b.get(97)
    assert te48 is not None and (te48.with_params, te48.fmtp) == ("telephone-event/48000", "0-15")
    opus = b.get(96)
    assert opus is not None and (opus.with_params, opus.fmtp) == ("opus/48000/2", "")


def test_static_numbers_and_existing_codecs() -> None:
    sdp = offerer()
    b = cs.populate(cs.Store(), sdp)
    cs.transcode(b, ["G722", "PCMA", "PCMU"], sdp)
    assert numbers(b) == [0, 9, 8, 101]


def test_mask_all_then_transcode_leaves_only_the_new_codec() -> None:
    sdp = offerer()
    b = cs.populate(cs.Store(), sdp)
    cs.strip(b, ["all"], [])
    cs.transcode(b, ["opus"], sdp)
    cs.tracker_update(b)
    assert numbers(b) == [96]


def test_handlers_pick_the_receivers_number_and_dtmf() -> None:
    a = offerer()
    b = cs.from_sdp(("111", "110"), {"111": "opus/48000/2", "110": "telephone-event/48000"}, {})
    handlers, transcoding = cs.handlers(a, b)
    assert transcoding
    pcmu = handlers[0]
    assert pcmu.dest is not None and pcmu.dest.number == 111 and pcmu.dtmf_pt == 110


def test_matching_codecs_pass_through() -> None:
    handlers, transcoding = cs.handlers(offerer(), offerer())
    assert not transcoding and all(h.dest is None for h in handlers)


def test_make_pt_defaults_and_unknown() -> None:
    opus = cs.make_pt("opus")
    assert opus is not None and (opus.number, opus.clock, opus.channels) == (-1, 48000, 2)
    pcma = cs.make_pt("PCMA/8000")
    assert pcma is not None and pcma.number == 8
    assert cs.make_pt("AMR-WB") is None
    assert cs.make_pt("PCMA/x") is None


def test_from_sdp_skips_what_is_no_payload_type() -> None:
    store = cs.from_sdp(("²", "x", "0", "0", "96"), {"0": "PCMU/8000", "96": "opus/x"}, {})
    assert numbers(store) == [0]


FORMATS = st.lists(
    st.one_of(st.sampled_from(["0", "8", "9", "18", "96", "101", "13"]), st.text(max_size=4)),
    max_size=8,
)
CODECS = st.one_of(
    st.sampled_from(
        ["PCMU/8000", "PCMA/8000", "opus/48000/2", "telephone-event/8000", "CN/8000",
         "G722/8000", "telephone-event/48000", "AMR/8000", "x", "/", "opus/x/y", ""]
    ),
    st.text(max_size=12),
)
FLAG_NAMES = st.lists(
    st.one_of(st.sampled_from(["all", "full", "opus", "PCMA", "G722", "telephone-event",
                               "PCMU/8000", "opus/48000/2", "G729"]), st.text(max_size=10)),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(FORMATS, st.dictionaries(st.sampled_from(["0", "8", "96", "101", "13"]), CODECS),
       FLAG_NAMES, FLAG_NAMES, FLAG_NAMES)
def test_lists_stay_total_and_unique(
    formats: list[str], names: dict[str, str], strip: list[str], transcode: list[str],
    accept: list[str],
) -> None:
    sdp = cs.from_sdp(tuple(formats), names, {})
    a = cs.populate(cs.Store(), sdp)
    b = cs.populate(cs.Store(), sdp)
    cs.strip(b, strip, [])
    cs.transcode(b, transcode, sdp)
    b = cs.check_empty(b, sdp)
    cs.accept(a, accept, sdp)
    cs.tracker_update(b)
    for store in (a, b):
        assert len(numbers(store)) == len(set(numbers(store)))
        assert all(0 <= n < 128 for n in numbers(store) if n >= 0)
    hb, _ = cs.handlers(b, a)
    out = cs.answer(a, b, hb, single=False)
    assert len(numbers(out)) == len(set(numbers(out)))


@given(st.text(max_size=30))
def test_make_pt_never_raises(spec: str) -> None:
    pt = cs.make_pt(spec)
    assert pt is None or pt.known
