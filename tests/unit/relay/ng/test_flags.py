"""relay.ng.flags and the per-command delay record of relay.ng.commands."""

from __future__ import annotations

import pytest

from relay.ng.commands import Delays
from relay.ng.flags import parse_flags


def test_replace_list_is_read_with_its_spellings() -> None:
    flags = parse_flags({"replace": ["origin", "session connection", "SDP-version"]})
    assert flags.replace == {"origin", "session-connection", "sdp-version"}


def test_replace_list_as_opensips_spells_it() -> None:
    # OpenSIPS's replace-SDP-version / -session-name / -zero-address flags
    flags = parse_flags({"replace": ["SDP version", "session name", "zero address", "username"]})
    assert flags.replace == {"sdp-version", "session-name", "zero-address", "username"}


@pytest.mark.parametrize(
    "word", ["replace-origin", "replace-session-connection", "replace-username"]
)
def test_replace_words_in_flags_do_nothing_like_rtpengine_10_5(word: str) -> None:
    # Measured (differential scenario kamailio_replace_as_flag_words): rtpengine 10.5 keeps o=,
    # the session c= and the username when these come as `flags` words.
    flags = parse_flags({"flags": ["trust-address", word]})
    assert flags.replace == set()
    assert flags.has("trust-address")
    assert flags.unknown == [word]


def test_delays_keep_count_sum_min_max_only() -> None:
    d = Delays()
    assert (d.count, d.low, d.high, d.average) == (0, 0.0, 0.0, 0.0)
    for seconds in (0.003, 0.001, 0.002):
        d.add(seconds)
    assert d.count == 3
    assert (d.low, d.high) == (0.001, 0.003)
    assert d.average == pytest.approx(0.002)


def test_delete_delay_parsed_like_rtpengine() -> None:
    from relay.ng.commands import _delete_delay

    assert _delete_delay({}) == -1
    assert _delete_delay({"delete-delay": "0"}) == 0
    assert _delete_delay({"delete-delay": " 7"}) == 7
    assert _delete_delay({"delete-delay": "5x"}) == 5  # legacy prefix parse
    assert _delete_delay({"delete-delay": "x5"}) == -1
    assert _delete_delay({"delete-delay": -1, "delete delay": 0}) == 0
    assert _delete_delay({"delete delay": 0, "delete-delay": 5}) == 5
    assert _delete_delay({"delete-delay": 2**32}) == 0  # a C int
    assert _delete_delay({"delete-delay": ["0"]}) == -1


@pytest.mark.parametrize(
    ("value", "address", "family"),
    [
        ("198.51.100.7", "198.51.100.7", "IP4"),
        ("2001:db8::7", "2001:db8::7", "IP6"),
        ("bogus", None, "IP4"),  # rtpengine 10.5 ignores what is not an address
    ],
)
def test_media_address_is_an_address_with_its_family(
    value: str, address: str | None, family: str
) -> None:
    flags = parse_flags({"media-address": value})
    assert flags.media_address == address
    assert flags.media_address_family == family


@pytest.mark.parametrize(
    ("value", "plain"),
    [("RTP/AVPF", "RTP/AVPF"), ("RTP/AVP", "RTP/AVP"), ("accept", None), ("UDP", None)],
)
def test_plain_transport_ignores_accept_and_unknown_names(value: str, plain: str | None) -> None:
    assert parse_flags({"transport-protocol": value}).plain_transport == plain


@pytest.mark.parametrize(
    "key", ["ptime-reverse", "ptime reverse", "reverse ptime", "reverse-ptime"]
)
def test_ptime_reverse_spellings(key: str) -> None:
    # rtpengine 10.5 reads all four spellings (offers only); rtpvault refuses them (repacketizing)
    flags = parse_flags({"ptime": "20", key: 30})
    assert (flags.ptime, flags.rev_ptime) == (20, 30)


def test_tos_lower_case_spelling() -> None:
    assert parse_flags({"tos": "184"}).tos == 184


@pytest.mark.parametrize(
    ("words", "trust"),
    [
        (["SIP-source-address", "trust-address"], True),
        (["trust address", "SIP-source-address"], False),
        (["symmetric"], None),
    ],
)
def test_last_of_trust_address_and_sip_source_address_wins(
    words: list[str], trust: bool | None
) -> None:
    assert parse_flags({"flags": words}).trust_address is trust
