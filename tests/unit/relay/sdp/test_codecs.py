"""relay.sdp.codecs: codec strip/mask/except and answer filtering, as measured on rtpengine 10.5
(differential scenarios codec_*)."""

from __future__ import annotations

import pytest

from relay.sdp.codecs import (
    answer_formats,
    answer_transcodes,
    codec_matches,
    offer_formats,
    single_codec,
)

NAMES = {
    "102": "telephone-event/48000",
    "0": "PCMU/8000",
    "8": "PCMA/8000",
    "13": "CN/8000",
    "96": "opus/48000/2",
    "101": "telephone-event/8000",
}


@pytest.mark.parametrize(
    ("wanted", "codec", "hit"),
    [
        ("PCMA", "PCMA/8000", True),
        ("pcma", "PCMA/8000", True),
        ("PCMA/8000", "PCMA/8000", True),
        ("PCMA/8000/1", "PCMA/8000", True),
        ("PCMA/16000", "PCMA/8000", False),
        ("8", "PCMA/8000", False),
        ("opus", "opus/48000/2", True),
        ("opus/48000", "opus/48000/2", False),
        ("opus/48000/2", "opus/48000/2", True),
        ("opus/48000/1", "opus/48000/2", False),
        ("telephone-event/8000/1", "telephone-event/8000", True),
        ("x", "", False),
    ],
)
def test_codec_names_match_like_rtpengine(wanted: str, codec: str, hit: bool) -> None:
    assert codec_matches(wanted, codec) is hit


def offer(formats: str, **codec: list[str]) -> tuple[str, str]:
    sent, kept = offer_formats(tuple(formats.split()), NAMES, codec)
    return " ".join(sent), " ".join(kept)


def test_strip_by_name_and_full_format() -> None:
    assert offer("0 8 101", strip=["PCMA"]) == ("0 101", "0 101")
    assert offer("0 8 101", strip=["PCMA/8000"]) == ("0 101", "0 101")
    assert offer("96 0 101", strip=["opus/48000"]) == ("96 0 101", "96 0 101")


def test_except_only_counts_with_all() -> None:
    assert offer("0 8 101", strip=["all"]) == ("0 8 101", "0 8 101")
    assert offer("0 8 101", strip=["all"], **{"except": ["PCMU"]}) == ("0", "0")
    assert offer("0 8 101", strip=["PCMA"], **{"except": ["PCMA"]}) == ("0 101", "0 101")


def test_nothing_left_strips_nothing_only_supplementary_left_empties() -> None:
    assert offer("0 8 101", strip=["PCMU", "PCMA", "telephone-event"]) == ("0 8 101",) * 2
    assert offer("0 8 13 101", strip=["PCMU", "PCMA"]) == ("", "")
    assert offer("0 101", strip=["all"], **{"except": ["telephone-event"]}) == ("", "")


def test_supplementary_codecs_need_a_codec_of_their_clock_rate() -> None:
    assert offer("96 0 101 102", strip=["PCMU"]) == ("96 102", "96 102")
    assert offer("96 0 101", mask=["PCMU"]) == ("96", "96 0 101")
    assert offer("96 8 0 13 101", strip=["PCMU"]) == ("96 8 13 101",) * 2


def test_masked_codecs_stay_with_the_offerer() -> None:
    assert offer("0 8 101", mask=["PCMA"]) == ("0 101", "0 8 101")
    assert offer("0 8 101", mask=["all"], **{"except": ["PCMA"]}) == ("8", "0 8 101")
    assert offer("0 8 101", mask=["all"]) == ("0 8 101", "0 8 101")


@pytest.mark.parametrize(
    ("answered", "sent", "kept", "out"),
    [
        ("0 101", "0 8 101", "0 8 101", "0 101"),
        ("8 0 101", "0 101", "0 101", "0 101"),  # stripped PCMA answered anyway
        ("8", "0 101", "0 8 101", "8"),  # masked PCMA is fine
        ("8", "0 101", "0 101", "0"),  # transcoded to PCMU (rtpvault: rejected lines only)
        ("9", "8 0 101", "8 0 101", "8"),
        ("0 100", "0 8 101", "0 8 101", "0"),  # matched by payload type number
    ],
)
def test_answer_keeps_what_was_offered(answered: str, sent: str, kept: str, out: str) -> None:
    got = answer_formats(answered.split(), tuple(sent.split()), tuple(kept.split()))
    assert " ".join(got) == out


OFFERED_NAMES = {"0": "PCMU/8000", "8": "PCMA/8000", "9": "G722/8000", "96": "opus/48000/2",
         "101": "telephone-event/8000"}


@pytest.mark.parametrize(
    ("answered", "answered_names", "sent", "kept", "transcodes"),
    [
        # measured with rtpengine 10.5 (differential scenarios tc_*)
        ("9", {"9": "G722/8000"}, "0 8 101", "0 8 101", True),  # codec not offered
        ("111", {"111": "opus/48000/2"}, "96 0 8 101", "96 0 8 101", True),  # other PT
        ("111 0", {"111": "opus/48000/2", "0": "PCMU/8000"}, "96 0 8 101", "96 0 8 101", False),
        ("8", {"8": "G722/8000"}, "0 8 101", "0 8 101", True),  # PT 8, but not PCMA
        ("101", {"101": "telephone-event/8000"}, "0 8 101", "0 8 101", False),  # DTMF only
        ("8", {"8": "PCMA/8000"}, "0 8 101", "0 8 101", False),  # subset
        ("9 8 101", {"9": "G722/8000", "8": "PCMA/8000"}, "0 8 101", "0 8 101", False),
        ("0", {"0": "PCMU/8000"}, "", "0 8 101", False),  # everything masked, PCMU answered
        ("101", {"101": "telephone-event/8000"}, "", "0 8 101", False),
        ("9", {"9": "G722/8000"}, "8 101", "0 8 101", True),  # PCMU masked, G722 answered
        ("8", {"8": "PCMA/8000"}, "0 101", "0 101", True),  # PCMA stripped, answered anyway
        ("8 0", {"8": "G722/8000", "0": "PCMU/8000"}, "0 8 101", "0 8 101", True),  # PT clash
        ("9 0", {"9": "G722/8000", "0": "PCMU/8000"}, "0 8", "0 8", False),  # 9 not offered
        ("8", {}, "0 8 101", "0 8 101", False),  # static PT without rtpmap
        ("96", {"96": "OPUS/48000/2"}, "96 0", "96 0", False),  # names match case-insensitively
        ("0", {"0": "PCMU/8000/1"}, "0", "0", False),  # channels 1 written out
    ],
)
def test_answer_transcodes(
    answered: str, answered_names: dict[str, str], sent: str, kept: str, transcodes: bool
) -> None:
    assert answer_transcodes(
        answered.split(), tuple(sent.split()), tuple(kept.split()), answered_names, OFFERED_NAMES
    ) is transcodes


def test_transcoded_answer_prints_the_offerers_first_codec() -> None:
    got = answer_formats(["9"], ("8", "101"), ("0", "8", "101"), {"9": "G722/8000"}, OFFERED_NAMES)
    assert got == ("0",)
    got = answer_formats(["8"], ("0", "8"), ("0", "8"), {"8": "G722/8000"}, OFFERED_NAMES)
    assert got == ("0",)


def test_single_codec_keeps_the_first_real_codec_and_all_supplementary_ones() -> None:
    names = {"0": "PCMU/8000", "8": "PCMA/8000", "9": "G722/8000", "13": "CN/8000",
             "101": "telephone-event/8000"}
    assert single_codec(("8", "0", "101", "9", "13"), names) == ("8", "101", "13")
    assert single_codec(("101", "8", "0"), names) == ("101", "8")
    assert single_codec(("0",), names) == ("0",)


def test_offer_formats_settles_like_rtpengine() -> None:
    names = {"0": "PCMU/8000", "9": "G722/8000", "100": "telephone-event/48000",
             "101": "speex/16000", "13": "CN/8000", "111": "telephone-event/8000"}
    # nothing matched: an orphaned telephone-event stays
    assert offer_formats(("100", "101"), names, {"strip": ["PCMU"]}) == (("100", "101"),) * 2
    assert offer_formats(("111", "13"), names, {"strip": ["0"]}) == (("111", "13"),) * 2
    # strip all empties the list, mask has nothing left: everything comes back, mask too
    assert offer_formats(("0", "9"), names, {"strip": ["G722", "all"], "mask": ["PCMU"]}) == (
        ("0", "9"), ("0", "9"))


def test_codecs_touched_and_orphans() -> None:
    from relay.sdp.codecs import codecs_touched, drop_orphans

    names = {"0": "PCMU/8000", "9": "G722/8000", "13": "CN/8000", "101": "telephone-event/8000"}
    assert codecs_touched(("0", "9"), names, {"mask": ["all"]})  # restored, but touched
    assert not codecs_touched(("0", "9"), names, {"strip": ["PCMA"]})
    assert drop_orphans(("13",), names) == ()
    assert drop_orphans(("0", "101"), names) == ("0", "101")
