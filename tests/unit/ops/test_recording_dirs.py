"""recording-dir checks at start-up quote the path cut like every config value (relay.config's
`shown`): a runaway value gives one readable line."""

from __future__ import annotations

from pathlib import Path

import pytest

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
