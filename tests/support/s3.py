"""A real S3 API over HTTP for tests: moto_server on a free loopback port.

    def test_x(s3): s3.client.create_bucket(Bucket="b"); ... s3.endpoint ...
    s3.stop(); s3.start()   # an outage (moto keeps no state across restarts: buckets are gone)

boto3 finds credentials through its standard chain; the fixture sets dummy AWS_* variables in
the environment (inherited by daemons the test starts).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from .tools import free_port, require

ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _moto_command() -> list[str]:
    exe = Path(sys.executable).with_name("moto_server")
    if exe.exists():
        return [str(exe)]
    return [require("moto_server")]  # pip install 'moto[server]' (pyproject test extras)


class MotoServer:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "moto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [*_moto_command(), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **ENV},
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1).read()
                return
            except OSError:
                if self.proc.poll() is not None:
                    tail = self.log.read_text()[-2000:]
                    raise RuntimeError(f"moto_server exited: {tail}") from None
                time.sleep(0.1)
        raise RuntimeError("moto_server did not come up")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def requests(self, method: str, bucket: str, key: str) -> int:
        """How many `method` requests (PUT, DELETE, ...) for object `key` of `bucket` moto has
        logged so far."""
        log = self.log.read_text(errors="replace")
        path = re.escape(f"/{bucket}/{quote(key, safe='/')}")  # as boto3 sends the key
        # moto's log colours some methods: "\x1b[35m\x1b[1mDELETE /…"
        return len(re.findall(rf'"(?:\x1b\[[0-9;]*m)*{method} {path}[ ?]', log))

    @property
    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    server = MotoServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
