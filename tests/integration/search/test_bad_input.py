"""Bad input of every kind: one line on stderr, non-zero exit, never a traceback (real process)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.daemons import rtpvault_command
from tests.support.s3 import ENV as AWS_ENV
from tests.support.tools import free_port

from .conftest import Lab

pytestmark = pytest.mark.integration


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run([*rtpvault_command(), *args], capture_output=True, text=True,
                          timeout=120, env={**base, **(env or {})})  # fmt: skip


def one_line_error(p: subprocess.CompletedProcess[str], expected: str) -> None:
    assert p.returncode != 0
    assert "Traceback" not in p.stderr and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], p.stderr


def test_bad_time_and_unknown_id(lab: Lab) -> None:
    conf = str(lab.conf)
    one_line_error(run("search", "--config-file", conf, "--since", "last tuesday"),
                   "bad time 'last tuesday'")  # fmt: skip
    one_line_error(run("show", "--config-file", conf, "no-such-call"),
                   "Error: no recording with id or Call-ID 'no-such-call'")  # fmt: skip
    one_line_error(run("fetch", "--config-file", conf, "0123456789abcdef"),
                   "no recording with id or Call-ID")  # fmt: skip
    one_line_error(run("purge", "--config-file", conf, "--older-than", "ninety days"),
                   "bad duration")  # fmt: skip


def test_unreachable_or_unusable_database(tmp_path: Path) -> None:
    port = free_port()
    one_line_error(run("search", "--db", f"postgresql+psycopg://postgres@127.0.0.1:{port}/x"),
                   "recording-db postgresql+psycopg://postgres@127.0.0.1")  # fmt: skip
    empty = tmp_path / "empty.db"
    empty.touch()  # an SQLite database without the schema
    one_line_error(run("search", "--db", f"sqlite:///{empty}"), "run `rtpvault db upgrade")
    one_line_error(run("search", "--db", "nosuchdb://x"), "recording-db nosuchdb://x")
    one_line_error(run("search", "--db", f"sqlite:///{tmp_path}/none.db"),
                   f"no recording index at {tmp_path}/none.db")  # fmt: skip
    assert not (tmp_path / "none.db").exists()
    one_line_error(run("search", "--config-file", str(tmp_path / "missing.conf")),
                   "cannot read config file")  # fmt: skip
    bad = tmp_path / "bad.conf"
    bad.write_text("[rtpengine]\ninterface = lo\nlisten-ng = 2223\nport-min = lots\n")
    one_line_error(run("search", "--config-file", str(bad)), "port-min")


def test_unreachable_s3(lab: Lab, tmp_path: Path) -> None:
    doc = lab.add("s3down@pbx")
    with lab.index.session() as s:
        from storage.models import Recording

        rec = s.get(Recording, doc["id"])
        assert rec is not None
        rec.object_key, rec.archive_state, rec.local_removed = "k", "archived", True
    Path(doc["path"]).unlink()
    conf = tmp_path / "s3.conf"
    conf.write_text(lab.conf.read_text() + f"s3-bucket = b\ns3-endpoint-url = "
                    f"http://127.0.0.1:{free_port()}\n")  # fmt: skip
    args = ("fetch", "--config-file", str(conf), doc["id"], "-o", str(tmp_path / "o"))
    one_line_error(run(*args), "S3 unavailable: Unable to locate credentials")
    one_line_error(run(*args, env=AWS_ENV), "S3 unavailable: Could not connect to the endpoint URL")
    p = run("verify", "--config-file", str(conf), env=AWS_ENV)
    assert p.returncode == 1 and "Traceback" not in p.stderr + p.stdout
    assert f"MISSING {doc['id']} (s3down@pbx): s3://b/k: S3 unavailable" in p.stdout


def test_hold_needs_a_reason(lab: Lab) -> None:
    p = run("hold", "--config-file", str(lab.conf), "x")
    assert p.returncode == 2 and "Missing option '--reason'" in p.stderr
    assert "Traceback" not in p.stderr
