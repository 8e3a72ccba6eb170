"""``local``: up to N runs at once on this machine, all on one device (the sweep scripts' JOBS=N)."""
from __future__ import annotations

from collections.abc import Sequence

from launchers.base import Launcher, Result, run_pool
from reports.tables import Run


class LocalLauncher(Launcher):
    """A pool of ``jobs`` training processes on the entry scripts' default device; each run gets the cores divided
    by ``jobs`` as intra-op threads."""

    def __init__(self, jobs: int = 1) -> None:
        self.jobs = jobs

    def launch(self, runs: Sequence[Run]) -> list[Result]:
        return run_pool(runs, [None] * self.jobs)
