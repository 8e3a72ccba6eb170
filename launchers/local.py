"""``local``: up to N runs at once on this machine, all on one device (the sweep scripts' JOBS=N)."""
from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed

from launchers.base import Launcher, Result, execute, progress, report_progress, threads_per_run
from reports.tables import Run


class LocalLauncher(Launcher):
    """A pool of ``jobs`` training processes; each run gets the cores divided by ``jobs`` as intra-op threads."""

    def __init__(self, jobs: int = 1) -> None:
        self.jobs = jobs

    def launch(self, runs: Sequence[Run]) -> list[Result]:
        results: dict[int, Result] = {}
        env = threads_per_run(self.jobs)
        with ThreadPoolExecutor(max_workers=self.jobs) as pool, progress(len(runs), "runs") as bar:
            futures = {pool.submit(execute, run, None, env): index for index, run in enumerate(runs)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                report_progress(bar, results[futures[future]])
        return [results[index] for index in range(len(runs))]
