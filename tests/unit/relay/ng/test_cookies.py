"""relay.ng.cookies: retransmission cache lifetime (30-60 s) and its (source, cookie) key."""

from __future__ import annotations

from relay.ng.cookies import CookieCache

KAMAILIO = "127.0.0.1"
OTHER_PROXY = "127.0.0.2"
REPLY = b"dupA d6:result4:ponge"


def test_entry_lives_between_30_and_60_seconds() -> None:
    cache = CookieCache(now=0.0)
    cache.insert(KAMAILIO, b"dupA", REPLY, now=1.0)
    assert cache.lookup(KAMAILIO, b"dupA", now=29.9) == REPLY
    assert cache.lookup(KAMAILIO, b"dupA", now=35.0) == REPLY  # swapped at 35: now "old"
    assert cache.lookup(KAMAILIO, b"dupA", now=64.9) == REPLY
    assert cache.lookup(KAMAILIO, b"dupA", now=65.0) is None  # second swap drops it
    assert len(cache) == 0


def test_swaps_follow_lookups_not_a_timer() -> None:
    # As in rtpengine, a generation swap happens at the first lookup 30 s after the last one.
    cache = CookieCache(now=0.0)
    cache.insert(KAMAILIO, b"dupA", REPLY, now=20.0)
    assert cache.lookup(KAMAILIO, b"x", now=30.0) is None  # swap: dupA becomes old
    assert cache.lookup(KAMAILIO, b"dupA", now=55.0) == REPLY
    assert cache.lookup(KAMAILIO, b"dupA", now=60.0) is None  # second swap: gone at +40 s


def test_idle_minute_empties_both_generations() -> None:
    cache = CookieCache(now=0.0)
    cache.insert(KAMAILIO, b"c", REPLY, now=0.0)
    assert cache.lookup(KAMAILIO, b"c", now=61.0) is None


def test_same_cookie_from_two_proxies_is_two_entries() -> None:
    cache = CookieCache(now=0.0)
    cache.insert(KAMAILIO, b"0_100_1", b"0_100_1 d6:result4:ponge", now=0.0)
    assert cache.lookup(OTHER_PROXY, b"0_100_1", now=1.0) is None
    cache.insert(OTHER_PROXY, b"0_100_1", b"0_100_1 d6:result2:oke", now=1.0)
    assert cache.lookup(KAMAILIO, b"0_100_1", now=2.0) == b"0_100_1 d6:result4:ponge"
    assert cache.lookup(OTHER_PROXY, b"0_100_1", now=2.0) == b"0_100_1 d6:result2:oke"


def test_reinsert_replaces_and_refreshes() -> None:
    cache = CookieCache(now=0.0)
    cache.insert(KAMAILIO, b"c", b"first", now=0.0)
    assert cache.lookup(KAMAILIO, b"c", now=31.0) == b"first"  # now in the old generation
    cache.insert(KAMAILIO, b"c", b"second", now=31.0)
    assert cache.lookup(KAMAILIO, b"c", now=62.0) == b"second"
    assert len(cache) == 1
