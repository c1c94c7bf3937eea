"""`rtpvault run --codecs` prints the codec table in rtpengine's layout and exits 0 without
any configuration (rtpengine --codecs does the same)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rtpvault.codec_list import codec_lines, wants_codecs


def test_rows_say_what_pyav_can_do() -> None:
    rows = {line.split(":")[0].strip(): line.split(": ", 1)[1] for line in codec_lines()}
    assert rows["PCMU"] == rows["PCMA"] == rows["G722"] == rows["opus"] == "fully supported"
    assert rows["G729"] == rows["GSM"] == "supported for decoding only"  # no FFmpeg encoder
    assert rows["telephone-event"] == rows["CN"] == "fully supported"
    assert rows["iLBC"] == "not supported"
    assert codec_lines()[0] == "                PCMA: fully supported"  # rtpengine's alignment


def test_flag_forms() -> None:
    assert wants_codecs(["--codecs"]) and wants_codecs(["--x=1", "--codecs=yes"])
    assert not wants_codecs(["--codecs=false"]) and not wants_codecs(["--codecsx"])


def test_run_prints_and_exits_without_config() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rtpvault", "run", "--codecs"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "                opus: fully supported" in done.stdout.splitlines()


def test_config_file_key_prints_too(tmp_path: Path) -> None:
    conf = tmp_path / "rtpengine.conf"
    conf.write_text("[rtpengine]\ninterface = 127.0.0.1\nlisten-ng = 127.0.0.1:1\ncodecs = true\n")
    done = subprocess.run(
        [sys.executable, "-m", "rtpvault", "run", f"--config-file={conf}"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "                PCMU: fully supported" in done.stdout.splitlines()
