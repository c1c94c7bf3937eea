"""The module-scoped relay pair for the differential suite (see relays.py for the switches)."""

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
