"""The real rtpvault daemon recording to a spool and archiving to a moto_server bucket, with the
CLI pointed at the same spool and bucket by an rtpengine.conf: for the tests that record a call
over ng + RTP and then search, show and export it (test_recorded_call, test_transcoded_recording).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from rtpvault.cli import cli
from tests.support import daemons
from tests.support.s3 import MotoServer
from tests.support.wait import wait_for

Run = Callable[..., Result]
"""`run("search", "--json", ...)`: one CLI command against the daemon's config file."""


def start(s3: MotoServer, tmp_path: Path, **start_args: Any) -> tuple[daemons.Daemon, Run]:
    """The daemon (bucket `calls`, pcapng, local copies kept) and a CLI runner for it."""
    s3.client.create_bucket(Bucket="calls")
    spool = tmp_path / "spool"
    conf = tmp_path / "rtpengine.conf"
    conf.write_text(f"[rtpengine]\ninterface = lo/127.0.0.1\nlisten-ng = 127.0.0.1:2223\n"
                    f"recording-dir = {spool}\ns3-bucket = calls\n"
                    f"s3-endpoint-url = {s3.endpoint}\ns3-region = us-east-1\n")  # fmt: skip
    relay = daemons.start("rtpvault", tmp_path / "run", **start_args, extra=[
        f"--recording-dir={spool}", "--recording-format=pcapng", "--delete-delay=0",
        "--s3-bucket=calls", f"--s3-endpoint-url={s3.endpoint}", "--s3-region=us-east-1",
        "--s3-keep-local=true"])  # fmt: skip

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, [args[0], "--config-file", str(conf), *args[1:]],
                                  env={"COLUMNS": "200"})  # fmt: skip

    return relay, run


def wait_archived(relay: daemons.Daemon, run: Run, call_ids: str) -> None:
    """Until `search --call-id call_ids` shows a recording archived."""

    def archived() -> bool:
        r = run("search", "--call-id", call_ids, "--json")
        return r.exit_code == 0 and any(x["archive"] == "archived" for x in json.loads(
            r.stdout))  # fmt: skip

    assert wait_for(archived), relay.log()[-3000:]
