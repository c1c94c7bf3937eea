"""A call's own deterministic random number generator (docs/design/redis-state.md).

Every random value a request of a call draws (SDES keys, ICE ufrag/pwd and tie-breaker, the o=
version, transcoder SSRCs) comes from `Call.rng`, a `CallRandom` keyed by the call's 32-byte
seed. A restore replays the call's requests with the same seed, so it draws the same values and
rebuilds the same SDP. Draws made at media time (RTCP report timers, a media player started by
`play media`, which is not journalled) use `derive(label)`: an independent generator that
leaves the signalling stream untouched, so the replayed stream stays in step with the original.

The generator is SHAKE-256 in counter mode: block i is SHAKE-256(domain ‖ seed ‖ i) (512
bytes), read in order. Pure: no clock, no I/O; `os.urandom` only for a seed nobody gave.
"""

from __future__ import annotations

import hashlib
import os
import random
from typing import Any

SEED_BYTES = 32
_BLOCK = 512
_DOMAIN = b"rtpvault call rng v1\0"
_STATE_VERSION = "CallRandom/1"


def new_seed() -> bytes:
    """A fresh call seed (32 bytes from the OS)."""
    return os.urandom(SEED_BYTES)


def _key(a: Any) -> bytes:
    if a is None:
        return new_seed()
    if isinstance(a, (bytes, bytearray, memoryview)):
        return bytes(a)
    if isinstance(a, int):
        return a.to_bytes((a.bit_length() + 8) // 8, "little", signed=True)
    if isinstance(a, str):
        return a.encode()
    raise TypeError(f"CallRandom seed must be bytes, int, str or None, not {type(a).__name__}")


class CallRandom(random.Random):
    """`random.Random` whose bits come from SHAKE-256 keyed by the seed (see the module doc).

    `random()`, `getrandbits()` (and so `randrange`, `randint`, `randbytes`, `choice`,
    `uniform`, ...) all read the same byte stream; `getstate`/`setstate` save and restore the
    position exactly."""

    _seed: bytes
    _counter: int
    _buffer: bytes
    _offset: int

    def __init__(self, seed: Any = None) -> None:
        super().__init__(seed)

    def seed(self, a: Any = None, version: int = 2) -> None:
        self._seed = _key(a)
        self._counter = 0
        self._buffer = b""
        self._offset = 0
        self.gauss_next = None  # random.Random's cached gauss value

    @property
    def key(self) -> bytes:
        return self._seed

    def _bytes(self, n: int) -> bytes:
        out = self._buffer[self._offset:self._offset + n]
        self._offset += len(out)
        while len(out) < n:
            block = self._block(self._counter)
            self._counter += 1
            need = n - len(out)
            out += block[:need]
            self._buffer, self._offset = block, min(need, _BLOCK)
        return out

    def _block(self, index: int) -> bytes:
        """Block `index` of the stream: SHAKE-256(domain ‖ seed ‖ index)."""
        return hashlib.shake_256(_DOMAIN + self._seed + index.to_bytes(8, "little")).digest(_BLOCK)

    def getrandbits(self, k: int) -> int:
        if k < 0:
            raise ValueError("number of bits must be non-negative")
        if k == 0:
            return 0
        n = (k + 7) // 8
        return int.from_bytes(self._bytes(n), "little") >> (n * 8 - k)

    def random(self) -> float:
        return self.getrandbits(53) * (1.0 / 9007199254740992.0)

    def randbytes(self, n: int) -> bytes:
        return self._bytes(n)

    def getstate(self) -> tuple[Any, ...]:
        """(version, seed, blocks used, offset in the current block, gauss_next)."""
        used = self._counter if self._buffer else 0
        return (_STATE_VERSION, self._seed, used, self._offset, self.gauss_next)

    def setstate(self, state: tuple[Any, ...]) -> None:
        if (not isinstance(state, tuple) or len(state) != 5 or state[0] != _STATE_VERSION
                or not isinstance(state[1], bytes) or not isinstance(state[2], int)
                or not isinstance(state[3], int) or not 0 <= state[3] <= _BLOCK
                or state[2] < 0):  # fmt: skip
            raise ValueError("not a CallRandom state")
        _, self._seed, used, offset, self.gauss_next = state
        if used:  # block used-1 is the current one, `offset` bytes of it read
            self._counter, self._buffer, self._offset = used, self._block(used - 1), offset
        else:
            self._counter, self._buffer, self._offset = 0, b"", 0

    def derive(self, label: str) -> CallRandom:
        """An independent generator for `label` (same seed and label: same values), leaving
        this one's stream where it is."""
        return CallRandom(hashlib.sha256(b"rtpvault derive\0" + self._seed + label.encode())
                          .digest())  # fmt: skip
