"""The module-scoped relay pair for the differential suite, and one with one worker each
(see relays.py for the switches)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .relays import Relays


@pytest.fixture(scope="module")
def relays(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relays]:
    r = Relays(tmp_path_factory.mktemp("differential"))
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture(scope="module")
def relays_one_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relays]:
    """Both relays with `num-threads = 1` (the default run uses the CPU count: 2 here)."""
    r = Relays(tmp_path_factory.mktemp("differential-1"), num_threads=1)
    try:
        yield r
    finally:
        r.stop()
