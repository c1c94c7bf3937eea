from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.tools import free_port

from .rig import OwnRedis, machine_db


@pytest.fixture
def redis_db() -> Iterator[tuple[int, redis.Redis]]:
    with machine_db() as pair:
        yield pair


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()
