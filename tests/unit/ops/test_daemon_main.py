"""`rtpvault run` (rtpvault.daemon.main): the event loop is chosen before the server runs."""

from __future__ import annotations

import logging
import sys
import traceback

import pytest

from rtpvault import daemon
from tests.support.tools import free_port

logger = logging.getLogger("rtpvault.test")


async def _fails_and_logs() -> int:
    try:
        raise RuntimeError("handler bug")
    except RuntimeError:
        logger.exception("internal error")
    return 0


@pytest.mark.parametrize("uvloop_installed", [False, True])
def test_logged_tracebacks_do_not_carry_the_uvloop_import(
    monkeypatch: pytest.MonkeyPatch, uvloop_installed: bool
) -> None:
    if not uvloop_installed:
        monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` raises ImportError
    monkeypatch.setattr(daemon, "_serve", lambda settings: _fails_and_logs())
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    monkeypatch.setattr(logger, "propagate", False)
    argv = ["--config-file=none", "--interface=lo/127.0.0.1", "--num-threads=1",
            f"--listen-ng=127.0.0.1:{free_port()}", "--log-stderr"]  # fmt: skip
    try:
        assert daemon.main(argv) == 0
    finally:
        logger.removeHandler(handler)
    [record] = records
    assert record.exc_info is not None
    text = "".join(traceback.format_exception(*record.exc_info))
    assert "handler bug" in text
    assert "uvloop" not in text and record.exc_info[1].__context__ is None
