"""relay.call.rng: the call's SHAKE-256 generator is deterministic per seed, saves and restores
its position exactly, and derived generators leave the signalling stream alone."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.call.model import Call
from relay.call.rng import CallRandom

SEED = bytes(range(32))


def test_same_seed_same_draws_and_the_first_bytes_are_shake256() -> None:
    a, b = CallRandom(SEED), CallRandom(SEED)
    assert [a.getrandbits(64) for _ in range(50)] == [b.getrandbits(64) for _ in range(50)]
    block0 = hashlib.shake_256(b"rtpvault call rng v1\0" + SEED + bytes(8)).digest(512)
    assert CallRandom(SEED).randbytes(16) == block0[:16]
    assert CallRandom(SEED).getrandbits(8) == block0[0]
    assert CallRandom(bytes(32)).randbytes(16) != block0[:16]


def test_random_module_api_uses_the_stream() -> None:
    r = CallRandom(SEED)
    assert isinstance(r, random.Random)
    values = [r.random() for _ in range(1000)]
    assert all(0.0 <= v < 1.0 for v in values)
    assert 0 <= CallRandom(SEED).randrange(1, 2**32) < 2**32
    assert CallRandom(SEED).choice("abcdef") == CallRandom(SEED).choice("abcdef")
    with pytest.raises(ValueError):
        r.getrandbits(-1)
    assert r.getrandbits(0) == 0


@given(st.lists(st.integers(1, 700), max_size=30), st.integers(0, 30))
def test_getstate_setstate_resume_exactly(sizes: list[int], split: int) -> None:
    r = CallRandom(SEED)
    for n in sizes[:split]:
        r.randbytes(n)
    state = r.getstate()
    rest = [r.randbytes(n) for n in sizes[split:]] + [r.randbytes(600)]
    again = CallRandom(b"other seed")
    again.setstate(state)
    assert [again.randbytes(n) for n in sizes[split:]] + [again.randbytes(600)] == rest


def test_setstate_refuses_garbage() -> None:
    for bad in [(), ("CallRandom/1", SEED, -1, 0, None), ("x", SEED, 0, 0, None),
                ("CallRandom/1", SEED, 1, 513, None), random.Random(1).getstate()]:  # fmt: skip
        with pytest.raises(ValueError):
            CallRandom(SEED).setstate(bad)


def test_derive_is_independent_and_deterministic() -> None:
    r = CallRandom(SEED)
    before = r.getstate()
    d1, d2 = r.derive("player a"), r.derive("player a")
    assert d1.randbytes(32) == d2.randbytes(32) != r.derive("player b").randbytes(32)
    assert r.getstate() == before


def test_a_call_gets_a_fresh_seed_and_its_rng_follows_it() -> None:
    c1, c2 = Call("x", 0.0, 0.0), Call("x", 0.0, 0.0)
    assert len(c1.seed) == 32 and c1.seed != c2.seed
    c3 = Call("y", 0.0, 0.0, seed=c1.seed)
    assert c3.rng.getrandbits(64) == c1.rng.getrandbits(64)
    assert c1.restored is None
