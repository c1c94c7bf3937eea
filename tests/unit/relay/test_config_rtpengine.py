"""The real rtpengine 10.5 accepts a file written from our key table's defaults."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from relay.config import parse_args, settings_from_text
from relay.config.interfaces import Resolver
from relay.config.keys import CLI_ONLY, KEYS, Kind, Origin
from tests.support.tools import free_port, require


def defaults_file(ng_port: int) -> str:
    lines = [
        "[rtpengine]",
        "interface = lo/127.0.0.1",
        f"listen-ng = 127.0.0.1:{ng_port}",
        "port-min = 44500",
        "port-max = 44599",
    ]
    taken = {"interface", "listen-ng", "port-min", "port-max"} | CLI_ONLY
    for key in KEYS:
        if key.origin is Origin.RTPENGINE and key.default and key.name not in taken:
            lines.append(f"{key.name} = {key.default}")
    return "\n".join(lines) + "\n"


def test_defaults_file_reads_back_quietly_in_rtpvault() -> None:
    text = defaults_file(2223)
    assert "cn-payload = 32" in text and "redis-expires = 86400" in text
    s, warnings = settings_from_text(
        text, parse_args([]), resolver=Resolver({"lo": ("127.0.0.1",)})
    )
    assert warnings == []
    differ = {k.name for k in KEYS if k.default and s.raw[k.name] != k.default}
    assert differ == {"port-min", "port-max"} | {k.name for k in KEYS if k.kind is Kind.DOUBLE}


@pytest.mark.integration
def test_rtpengine_starts_with_the_defaults_file(tmp_path: Path) -> None:
    binary = require("rtpengine")
    conf = tmp_path / "defaults.conf"
    conf.write_text(defaults_file(free_port()))
    proc = subprocess.Popen(
        [binary, f"--config-file={conf}", "--foreground", "--log-stderr", "--no-log-timestamps"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # ends when the process exits
            seen.append(line)
            if "Startup complete" in line:
                break
        assert any("Startup complete" in s for s in seen), "".join(seen)
        assert not any("Fatal error" in s for s in seen), "".join(seen)
    finally:
        proc.kill()
        proc.wait(10)
