"""recording-dir checks at start-up quote the path cut like every config value (relay.config's
`shown`): a runaway value gives one readable line."""

from __future__ import annotations

from pathlib import Path

import pytest

from recorder.names import SUBDIRS
from relay.config.keyfile import MAX_SHOWN
from rtpvault.component import StartupError
from rtpvault.recording import prepare_dirs

LONG = "d" * 250  # one file name, longer than MAX_SHOWN


def test_a_file_in_the_way_is_named_cut(tmp_path: Path) -> None:
    target = tmp_path / LONG
    target.write_text("x")
    with pytest.raises(StartupError) as err:
        prepare_dirs(str(target))
    message = str(err.value)
    assert message.startswith(f'spool file exists, but "{str(target)[:MAX_SHOWN]}... (')
    assert f"({len(str(target))} characters)\" is not a directory." in message
    assert err.value.code == 255


def test_a_missing_parent_is_named_cut(tmp_path: Path) -> None:
    target = tmp_path / LONG / "spool"
    with pytest.raises(StartupError) as err:
        prepare_dirs(str(target))
    message = str(err.value)
    assert message == (f"Failed to create spool directory {str(target)[:MAX_SHOWN]}... "
                       f"({len(str(target))} characters): No such file or directory")  # fmt: skip


def test_directories_another_worker_makes_meanwhile_are_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """num-threads workers start together on one recording-dir: between one worker's look and
    its mkdir another worker made the directory (here: every look says "not there yet"). That is
    no reason to refuse the start (it stopped the daemon with 255, "File exists")."""
    prepare_dirs(str(tmp_path / "spool"))  # the other worker's
    monkeypatch.setattr("os.path.exists", lambda path: False)
    monkeypatch.setattr("os.path.isdir", lambda path: Path(path).is_dir())
    prepare_dirs(str(tmp_path / "spool"))  # no StartupError
    assert all((tmp_path / "spool" / sub).is_dir() for sub in SUBDIRS)
