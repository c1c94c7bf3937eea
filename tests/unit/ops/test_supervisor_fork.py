"""rtpvault.supervisor forks workers whose garbage collector leaves the objects inherited from
the supervisor alone (gc.freeze before fork), so their pages stay shared copy-on-write."""

from __future__ import annotations

import gc
import signal
from pathlib import Path

from rtpvault.supervisor import Supervisor, WorkerSetup


def test_a_worker_starts_with_the_supervisors_objects_frozen(tmp_path: Path) -> None:
    seen = tmp_path / "frozen"

    def work(setup: WorkerSetup) -> int:
        seen.write_text(str(gc.get_freeze_count()))
        return 7  # exits before it is ready: run() returns its status

    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, set())  # run() blocks its signals
    supervisor = Supervisor(1, work, {})
    try:
        assert supervisor.run() == 7
    finally:
        supervisor.close()
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        gc.unfreeze()
    assert int(seen.read_text()) > 0, "the worker's collector walks the inherited objects"
